#pragma once
// Delivery status notifications (RFC 3464, multipart/report per RFC 6522, status codes per
// RFC 3463) and the Received: trace header (RFC 5321 §4.4).
#include <cstdint>
#include <string>
#include <vector>

#include "refsmtp/smtp/address.hpp"

namespace refsmtp::queue {

// RFC 5322 §3.3 date-time in UTC, e.g. "Sun, 29 Nov 2026 00:31:16 +0000".
std::string rfc5322_date(std::int64_t epoch_ms);
// "2026-12-04T20:50:04Z": a time in the queue's log lines.
std::string iso8601_utc(std::int64_t epoch_ms);

struct TraceInfo {
  std::string helo, client_address, hostname, id;
  bool esmtp = true, tls = false, authenticated = false, smtputf8 = false;
  std::vector<smtp::Path> recipients;  // named in "for" only when there is exactly one
  std::int64_t now_ms = 0;
};
// "Received: from HELO (ADDRESS) by HOST (refsmtp) with ESMTPS id ID for <r>; DATE\r\n", folded.
// The "with" keyword follows RFC 3848 (ESMTP, ESMTPS, ESMTPA, ESMTPSA; UTF8 variants of RFC 6531).
std::string received_header(const TraceInfo& t);

struct DsnRecipient {
  DsnRecipient() = default;
  DsnRecipient(smtp::Path r, bool d, std::string st, std::string diag, std::string from = {})
      : recipient(std::move(r)), delayed(d), status(std::move(st)), diagnostic(std::move(diag)), remote_mta(std::move(from)) {}
  smtp::Path recipient;
  bool delayed = false;    // Action: delayed (else failed)
  std::string status;      // e.g. "5.1.1"
  std::string diagnostic;  // the reply, e.g. "550 5.1.1 no such user" (may be empty)
  std::string remote_mta;  // the server that gave it, if not this one (Remote-MTA, RFC 3464 §2.3.5)
};

struct DsnInput {
  std::string reporting_mta;    // our host name
  std::string original_id;      // queue id of the message reported on
  std::string postmaster;       // From: address of the report, e.g. "MAILER-DAEMON@host"
  smtp::Path to;                // who the report goes to
  std::int64_t arrival_ms = 0;
  std::int64_t now_ms = 0;
  std::vector<DsnRecipient> recipients;
  std::string original_headers;  // header section of the original, CRLF lines ("" = leave out)
  std::string boundary;          // MIME boundary; must be unpredictable (the queue makes one)
};

// The whole report message (header and body, CRLF lines), ready to be queued with the null
// reverse-path.
std::string make_dsn(const DsnInput& in);

// The status code to report for a reply text like "550 5.1.1 ...": its enhanced code if present,
// else one derived from the basic code (RFC 3463 §2: X.0.0).
std::string status_of(const std::string& reply_text, bool permanent);

}  // namespace refsmtp::queue
