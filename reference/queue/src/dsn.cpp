#include "refsmtp/queue/dsn.hpp"

#include <ctime>

#include "refsmtp/smtp/reply.hpp"

namespace refsmtp::queue {

namespace {
// `epoch_ms` in UTC, by a strftime format.
std::string utc(std::int64_t epoch_ms, const char* format) {
  const std::time_t t = static_cast<std::time_t>(epoch_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, format, &tm);
  return buf;
}
}  // namespace

std::string iso8601_utc(std::int64_t epoch_ms) { return utc(epoch_ms, "%Y-%m-%dT%H:%M:%SZ"); }

std::string rfc5322_date(std::int64_t epoch_ms) { return utc(epoch_ms, "%a, %d %b %Y %H:%M:%S +0000"); }

namespace {
// Header values must not carry CR or LF from the peer (header injection); replace them.
std::string clean(std::string s) {
  for (char& c : s) {
    if (c == '\r' || c == '\n' || c == '\0') c = ' ';
  }
  return s;
}
}  // namespace

std::string received_header(const TraceInfo& t) {
  // RFC 3848 / RFC 6531 §3.7.4: ESMTP, ESMTPS, ESMTPA, ESMTPSA; UTF8SMTP, UTF8SMTPS, ...
  std::string with = t.smtputf8 ? "UTF8SMTP" : t.esmtp ? "ESMTP" : "SMTP";
  if ((t.esmtp || t.smtputf8) && t.tls) with += "S";
  if ((t.esmtp || t.smtputf8) && t.authenticated) with += "A";
  std::string h = "Received: from " + clean(t.helo) + " (" + clean(t.client_address) + ")\r\n\tby " + clean(t.hostname) +
                  " (refsmtp) with " + with + " id " + clean(t.id);
  if (t.recipients.size() == 1) h += "\r\n\tfor " + clean(t.recipients[0].to_string());
  h += "; " + rfc5322_date(t.now_ms) + "\r\n";
  return h;
}

std::string status_of(const std::string& reply_text, bool permanent) {
  // "550 5.1.1 text": the second word, when it is a status code whose class matches.
  const std::size_t sp = reply_text.find(' ');
  if (sp != std::string::npos) {
    const std::size_t sp2 = reply_text.find(' ', sp + 1);
    auto st = smtp::EnhancedStatus::parse(std::string_view(reply_text).substr(sp + 1, sp2 == std::string::npos ? std::string::npos : sp2 - sp - 1));
    if (st && (st->klass == 5) == permanent) return st->to_string();
  }
  return permanent ? "5.0.0" : "4.0.0";
}

std::string make_dsn(const DsnInput& in) {
  const std::string boundary = in.boundary.empty() ? "refsmtp-dsn-" + in.original_id : in.boundary;
  bool all_delayed = true;
  for (const auto& r : in.recipients) all_delayed = all_delayed && r.delayed;
  std::string m;
  m += "From: Mail Delivery System <" + clean(in.postmaster) + ">\r\n";
  m += "To: " + clean(in.to.is_null() ? std::string("<>") : in.to.to_string()) + "\r\n";
  m += std::string("Subject: ") + (all_delayed ? "Delayed Mail (still being retried)" : "Undelivered Mail Returned to Sender") + "\r\n";
  m += "Date: " + rfc5322_date(in.now_ms) + "\r\n";
  m += "Message-ID: <" + clean(in.original_id) + "." + std::to_string(in.now_ms) + "@" + clean(in.reporting_mta) + ">\r\n";
  m += "Auto-Submitted: auto-replied\r\n";  // RFC 3834 §5
  m += "MIME-Version: 1.0\r\n";
  m += "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"" + boundary + "\"\r\n";
  m += "\r\n";
  m += "This is a MIME-encapsulated message.\r\n\r\n";
  // Part 1: for people.
  m += "--" + boundary + "\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n";
  m += "This is the mail system at " + clean(in.reporting_mta) + ".\r\n\r\n";
  m += all_delayed ? "Your message could not be delivered yet; the mail system will keep trying.\r\n"
                   : "Your message could not be delivered to one or more recipients.\r\n";
  m += "\r\n";
  for (const auto& r : in.recipients) {
    m += clean(r.recipient.to_string()) + ": " + (r.delayed ? "delayed" : "failed");
    if (!r.diagnostic.empty()) m += ", " + clean(r.diagnostic);
    m += "\r\n";
  }
  // Part 2: for machines (RFC 3464 §2.2, §2.3).
  m += "\r\n--" + boundary + "\r\nContent-Type: message/delivery-status\r\n\r\n";
  m += "Reporting-MTA: dns; " + clean(in.reporting_mta) + "\r\n";
  m += "X-Refsmtp-Queue-ID: " + clean(in.original_id) + "\r\n";
  m += "Arrival-Date: " + rfc5322_date(in.arrival_ms) + "\r\n";
  for (const auto& r : in.recipients) {
    m += "\r\n";
    m += "Final-Recipient: rfc822; " + clean(r.recipient.mailbox ? r.recipient.mailbox->to_string() : "") + "\r\n";
    m += std::string("Action: ") + (r.delayed ? "delayed" : "failed") + "\r\n";
    m += "Status: " + clean(r.status) + "\r\n";
    if (!r.remote_mta.empty()) m += "Remote-MTA: dns; " + clean(r.remote_mta) + "\r\n";
    // The diagnostic is an SMTP reply, whether a remote server or this one gave it (ours are
    // written as replies too), so its type is "smtp" (RFC 3464 §2.3.6).
    if (!r.diagnostic.empty()) m += "Diagnostic-Code: smtp; " + clean(r.diagnostic) + "\r\n";
    m += "Last-Attempt-Date: " + rfc5322_date(in.now_ms) + "\r\n";
  }
  // Part 3: the original header section (RFC 6522 §3: text/rfc822-headers), when there is one.
  if (!in.original_headers.empty()) {
    m += "\r\n--" + boundary + "\r\nContent-Type: text/rfc822-headers\r\n\r\n";
    m += in.original_headers;
    if (!in.original_headers.ends_with("\r\n")) m += "\r\n";
  }
  m += "\r\n--" + boundary + "--\r\n";
  return m;
}

}  // namespace refsmtp::queue
