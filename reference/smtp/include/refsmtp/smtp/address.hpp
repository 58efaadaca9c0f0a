#pragma once
// Address grammar of RFC 5321 §4.1.2 and §4.1.3, with the UTF-8 extensions of RFC 6531 §3.3.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "refsmtp/smtp/limits.hpp"
#include "refsmtp/core/result.hpp"

namespace refsmtp::smtp {

using core::Result;  // the shared value-or-error type
using core::Unexpected;

enum class AddressError {
  syntax,                // does not match the ABNF
  local_part_too_long,   // §4.5.3.1.1
  domain_too_long,       // §4.5.3.1.2 (or a label over 63 octets, RFC 1035 §2.3.4)
  path_too_long,         // §4.5.3.1.3
  utf8_not_allowed,      // non-ASCII without SMTPUTF8 in effect (RFC 6531 §3.3)
};
std::string_view describe(AddressError e);

struct AddressOptions {
  Limits limits{};
  bool utf8 = false;  // RFC 6531: UTF-8 in local-part, domain and quoted strings
};

struct Mailbox {
  std::string local_part;  // as sent: a Dot-string, or a Quoted-string with its quotes
  std::string domain;      // a Domain, or an address-literal with its brackets; empty only for
                           // the special "<Postmaster>" forward-path (§4.1.1.3)
  bool domain_is_literal = false;
  bool operator==(const Mailbox&) const = default;
  std::string to_string() const;  // local@domain
};

struct Path {
  std::optional<Mailbox> mailbox;  // empty for the null reverse-path "<>"
  std::string source_route;        // A-d-l, accepted and ignored (§4.1.1.3, Appendix C)
  bool is_null() const { return !mailbox.has_value(); }
  bool operator==(const Path&) const = default;
  std::string to_string() const;  // "<>" or "<local@domain>" (source route dropped)
};

// What a local part means: a Quoted-string's content with its quoted-pairs resolved
// ("\"a\\\"b\"" -> a"b), a Dot-string as it is. RFC 5321 §4.1.2: all quoted forms MUST be treated
// as equivalent, so "\"postmaster\"" and postmaster are the same mailbox.
std::string unquote_local_part(std::string_view local_part);

// The path <local_part@domain> (a domain, not an address literal): for hosts building envelopes
// and for tests. No syntax check: parse_mailbox_exact() is the check.
Path make_path(std::string local_part, std::string domain);

// Each parser reads a prefix of `in` and reports how much it consumed; the caller decides what
// may follow. They never read past in.size().
template <class T>
struct Parsed {
  T value;
  std::size_t consumed = 0;
};

Result<Parsed<std::string>, AddressError> parse_domain(std::string_view in, const AddressOptions& opt);
Result<Parsed<std::string>, AddressError> parse_address_literal(std::string_view in);
Result<Parsed<Mailbox>, AddressError> parse_mailbox(std::string_view in, const AddressOptions& opt);
// Reverse-path = Path / "<>"
Result<Parsed<Path>, AddressError> parse_reverse_path(std::string_view in, const AddressOptions& opt);
// "<Postmaster@" Domain ">" / "<Postmaster>" / Forward-path
Result<Parsed<Path>, AddressError> parse_forward_path(std::string_view in, const AddressOptions& opt);

// Whole-string conveniences: the entire input must be the production.
Result<Mailbox, AddressError> parse_mailbox_exact(std::string_view in, const AddressOptions& opt);

bool is_atext(unsigned char c);

// Length of one well-formed UTF-8 sequence starting at in[0] for a non-ASCII lead byte
// (RFC 3629 §4: no overlongs, no surrogates, at most U+10FFFF); 0 when malformed.
std::size_t utf8_sequence_length(std::string_view in);
bool is_valid_utf8(std::string_view in);

}  // namespace refsmtp::smtp
