#pragma once
// The spool's envelope file: everything about a queued message except its body, in a text format
// that a person can read and that no field can break out of.
//
// Every value is escaped so that it contains no space, no control character, no byte >= 0x7F
// and none of "%", "=", "<", ">" unescaped (they become %XX, upper-case hex); the empty string
// is "=" and the null path "<>". The
// escaping is canonical, so parse(serialize(e)) == e and serialize(parse(text)) == text for every
// text that parses (the Exim CVE-2020-28021/28026 class: a sender or recipient cannot inject a
// record). The last line carries the length and FNV-1a 64 hash of everything before it, so a
// truncated or altered file is detected at recovery.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "refsmtp/core/checksum.hpp"
#include "refsmtp/smtp/address.hpp"
#include "refsmtp/smtp/command.hpp"
#include "refsmtp/smtp/reply.hpp"

namespace refsmtp::queue {

// A recipient's state only moves forward: pending -> delivered or failed.
enum class RecipientState { pending, delivered, failed };

// What kind of message this is decides who hears about a failure (no bounce loops).
enum class MessageKind {
  normal,  // failures bounce to the reverse-path (if not null)
  bounce,  // a DSN we generated (null reverse-path): if it fails, postmaster is told
  notice,  // a notice to postmaster about a failed bounce: if it fails, it is logged and dropped
};

struct QueuedRecipient {
  smtp::Path path;
  RecipientState state = RecipientState::pending;
  std::string last_reply;  // the reply that decided or last deferred it, as text ("550 5.1.1 ...")
  bool operator==(const QueuedRecipient&) const = default;
};

struct StoredEnvelope {
  std::string id;
  MessageKind kind = MessageKind::normal;
  std::int64_t arrival_ms = 0;  // wall clock, ms since the Unix epoch
  std::string helo;             // client's EHLO/HELO argument
  std::string client_address;   // e.g. "127.0.0.1"
  smtp::Path reverse_path;
  std::optional<std::uint64_t> size;  // from MAIL SIZE=
  smtp::BodyType body_type = smtp::BodyType::unspecified;
  bool smtputf8 = false;
  // MAIL's AUTH= value (RFC 4954 §5: an xtext mailbox, or "<>"), passed on when relaying to a
  // server that offers AUTH. Nothing when the client gave none.
  std::optional<std::string> auth;
  std::vector<QueuedRecipient> recipients;
  std::uint32_t attempts = 0;
  std::int64_t next_attempt_ms = 0;
  bool delay_notified = false;
  bool held = false;             // put on hold by the operator: never due until released
  std::uint64_t body_size = 0;   // octets of the body file
  std::uint64_t body_hash = 0;   // FNV-1a 64 of the body file
  bool operator==(const StoredEnvelope&) const = default;
};

std::string serialize(const StoredEnvelope& e);

enum class RecordError { bad_header, bad_line, bad_value, bad_checksum, truncated, trailing_data };
std::string_view describe(RecordError e);

struct RecordResult {
  std::optional<StoredEnvelope> envelope;
  std::optional<RecordError> error;
  std::size_t line = 0;  // 1-based line of the error
};
RecordResult parse_envelope(std::string_view text);

std::string escape(std::string_view raw);
std::optional<std::string> unescape(std::string_view text);
using core::fnv1a64;  // the checksum of envelopes, journal records and bodies

}  // namespace refsmtp::queue
