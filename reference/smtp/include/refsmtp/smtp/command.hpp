#pragma once
// SMTP command parser: RFC 5321 §4.1.1 and §4.1.2, with BDAT (RFC 3030), STARTTLS (RFC 3207),
// AUTH (RFC 4954), SIZE (RFC 1870), BODY (RFC 6152, RFC 3030), SMTPUTF8 (RFC 6531) and the DSN
// parameters of RFC 3461, which are parsed even though the session does not advertise DSN yet.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "refsmtp/smtp/address.hpp"
#include "refsmtp/core/result.hpp"

namespace refsmtp::smtp {

enum class Verb { ehlo, helo, mail, rcpt, data, bdat, rset, vrfy, expn, help, noop, quit, starttls, auth };
std::string_view verb_name(Verb v);
std::optional<Verb> lookup_verb(std::string_view word);  // case-insensitive (§2.4)

enum class BodyType { unspecified, seven_bit, eight_bit_mime, binary_mime };
enum class DsnRet { unspecified, full, hdrs };

namespace notify {  // RFC 3461 §4.1 NOTIFY values as bits
inline constexpr unsigned never = 1, success = 2, failure = 4, delay = 8;
}

struct EsmtpParam {
  std::string keyword;  // as sent
  std::optional<std::string> value;
  bool operator==(const EsmtpParam&) const = default;
};

struct MailParams {
  std::optional<std::uint64_t> size;   // RFC 1870
  BodyType body = BodyType::unspecified;
  bool smtputf8 = false;               // RFC 6531 §3.4
  std::optional<std::string> auth;     // RFC 4954 §5: xtext mailbox or "<>"
  DsnRet ret = DsnRet::unspecified;    // RFC 3461 §4.3
  std::optional<std::string> envid;    // RFC 3461 §4.4, xtext
  bool operator==(const MailParams&) const = default;
};

struct RcptParams {
  unsigned notify = 0;                 // RFC 3461 §4.1 bits; 0 = not given
  std::optional<std::string> orcpt;    // RFC 3461 §4.2 addr-type ";" xtext
  bool operator==(const RcptParams&) const = default;
};

struct Command {
  Verb verb = Verb::noop;
  std::string domain;                  // EHLO/HELO: Domain or address-literal
  Path path;                           // MAIL: reverse-path; RCPT: forward-path
  std::vector<EsmtpParam> params;      // MAIL/RCPT parameters in order, as sent
  MailParams mail;
  RcptParams rcpt;
  std::uint64_t chunk_size = 0;        // BDAT
  bool last = false;                   // BDAT ... LAST
  std::string mechanism;               // AUTH, upper-cased
  std::optional<std::string> initial_response;  // AUTH, base64 text or "="
  std::string argument;                // VRFY/EXPN/HELP/NOOP argument as sent
  bool operator==(const Command&) const = default;
};

enum class CommandErrorKind {
  unknown_command,      // 500 5.5.1 (§4.2.4)
  syntax,               // 501 5.5.4 / 5.5.2 (§4.2.2)
  address,              // 501/553 with an AddressError
  unknown_parameter,    // 555 5.5.4 (§4.1.1.11, §4.2.2)
  bad_parameter_value,  // 501 5.5.4
};

struct CommandError {
  CommandErrorKind kind;
  std::optional<Verb> verb;  // empty when the verb itself is unknown
  std::optional<AddressError> address;
  std::string detail;        // short human text for the reply
};

struct CommandOptions {
  AddressOptions address{};          // .utf8: RCPT may carry UTF-8 (transaction has SMTPUTF8)
  // Leniency: accept "MAIL FROM: <a@b>" (a space after the colon), which RFC 5321's ABNF
  // forbids but old clients send. Risk: none for framing; it hides client bugs from tests.
  bool lenient_space_after_colon = false;
};

// Parses one command line without its CRLF. Never throws; every input gets a value or an error.
Result<Command, CommandError> parse_command(std::string_view line, const CommandOptions& opt = {});

// Formats a command the way a strict client writes it (without CRLF); parse(format(c)) == c.
std::string format_command(const Command& c);

// RFC 3461 §4 xtext; used by AUTH= and ENVID/ORCPT.
bool is_xtext(std::string_view s);

}  // namespace refsmtp::smtp
