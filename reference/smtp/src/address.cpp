#include "refsmtp/smtp/address.hpp"

#include "refsmtp/core/ascii.hpp"

namespace refsmtp::smtp {

using core::is_alpha;
using core::is_digit;
using core::is_hex;
using core::iequals;

std::string_view describe(AddressError e) {
  switch (e) {
    case AddressError::syntax: return "syntax error in address";
    case AddressError::local_part_too_long: return "local-part longer than 64 octets";
    case AddressError::domain_too_long: return "domain longer than 255 octets or a label over 63";
    case AddressError::path_too_long: return "path longer than 256 octets";
    case AddressError::utf8_not_allowed: return "non-ASCII address without SMTPUTF8";
  }
  return "address error";
}

std::string Mailbox::to_string() const {
  if (domain.empty()) return local_part;
  return local_part + "@" + domain;
}

std::string unquote_local_part(std::string_view local_part) {
  if (local_part.size() < 2 || local_part.front() != '"' || local_part.back() != '"') return std::string(local_part);
  std::string out;
  for (std::size_t i = 1; i + 1 < local_part.size(); ++i) {
    if (local_part[i] == '\\' && i + 2 < local_part.size()) ++i;
    out += local_part[i];
  }
  return out;
}

Path make_path(std::string local_part, std::string domain) {
  Path p;
  p.mailbox = Mailbox{std::move(local_part), std::move(domain), false};
  return p;
}

std::string Path::to_string() const {
  if (!mailbox) return "<>";
  return "<" + mailbox->to_string() + ">";
}

bool is_atext(unsigned char c) {
  // RFC 5322 §3.2.3 atext
  if (is_alpha(c) || is_digit(c)) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
    case '/': case '=': case '?': case '^': case '_': case '`': case '{': case '|': case '}':
    case '~':
      return true;
    default:
      return false;
  }
}

std::size_t utf8_sequence_length(std::string_view in) {
  if (in.empty()) return 0;
  const auto b0 = static_cast<unsigned char>(in[0]);
  std::size_t n;
  unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte (RFC 3629 §4 UTF8-2..4)
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    if (b0 == 0xE0) lo = 0xA0;  // no overlongs
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;  // at most U+10FFFF
  } else {
    return 0;
  }
  if (in.size() < n) return 0;
  const auto b1 = static_cast<unsigned char>(in[1]);
  if (b1 < lo || b1 > hi) return 0;
  for (std::size_t i = 2; i < n; ++i) {
    const auto b = static_cast<unsigned char>(in[i]);
    if (b < 0x80 || b > 0xBF) return 0;
  }
  return n;
}

bool is_valid_utf8(std::string_view in) {
  std::size_t i = 0;
  while (i < in.size()) {
    if (static_cast<unsigned char>(in[i]) < 0x80) {
      ++i;
      continue;
    }
    const std::size_t n = utf8_sequence_length(in.substr(i));
    if (n == 0) return false;
    i += n;
  }
  return true;
}

namespace {

using Error = AddressError;

// Consumes one UTF8-non-ascii character at in[i] when allowed. Returns octets consumed (0 if the
// byte is ASCII); sets err when the byte is non-ASCII but not acceptable here.
std::size_t take_utf8(std::string_view in, std::size_t i, bool utf8, std::optional<Error>& err) {
  if (i >= in.size() || static_cast<unsigned char>(in[i]) < 0x80) return 0;
  if (!utf8) {
    err = Error::utf8_not_allowed;
    return 0;
  }
  const std::size_t n = utf8_sequence_length(in.substr(i));
  if (n == 0) err = Error::syntax;
  return n;
}

// sub-domain = Let-dig [Ldh-str]; Ldh-str ends in Let-dig. RFC 6531 adds U-label, which we
// accept as any mix of Let-dig, "-" and well-formed UTF-8 with the same first/last rule.
Result<std::size_t, Error> sub_domain(std::string_view in, std::size_t i, const AddressOptions& opt) {
  const std::size_t start = i;
  bool last_was_hyphen = false;
  while (i < in.size()) {
    const auto c = static_cast<unsigned char>(in[i]);
    if (is_alpha(c) || is_digit(c)) {
      ++i;
      last_was_hyphen = false;
    } else if (c == '-') {
      if (i == start) return Unexpected{Error::syntax};
      ++i;
      last_was_hyphen = true;
    } else if (c >= 0x80) {
      std::optional<Error> err;
      const std::size_t n = take_utf8(in, i, opt.utf8, err);
      if (err) return Unexpected{*err};
      i += n;
      last_was_hyphen = false;
    } else {
      break;
    }
  }
  if (i == start || last_was_hyphen) return Unexpected{Error::syntax};
  if (i - start > 63) return Unexpected{Error::domain_too_long};  // RFC 1035 §2.3.4 label limit
  return i;
}

// Snum = 1*3DIGIT representing a decimal integer value in the range 0 through 255
Result<std::size_t, Error> snum(std::string_view in, std::size_t i) {
  const std::size_t start = i;
  unsigned value = 0;
  while (i < in.size() && i - start < 3 && is_digit(static_cast<unsigned char>(in[i]))) {
    value = value * 10 + static_cast<unsigned>(in[i] - '0');
    ++i;
  }
  if (i == start || value > 255) return Unexpected{Error::syntax};
  if (i < in.size() && is_digit(static_cast<unsigned char>(in[i]))) return Unexpected{Error::syntax};
  return i;
}

Result<std::size_t, Error> ipv4(std::string_view in, std::size_t i) {
  for (int part = 0; part < 4; ++part) {
    if (part > 0) {
      if (i >= in.size() || in[i] != '.') return Unexpected{Error::syntax};
      ++i;
    }
    auto r = snum(in, i);
    if (!r) return r;
    i = *r;
  }
  return i;
}

// IPv6-addr = IPv6-full / IPv6-comp / IPv6v4-full / IPv6v4-comp (§4.1.3). `in` is exactly the
// text between "IPv6:" and "]".
bool ipv6(std::string_view in) {
  std::size_t i = 0;
  int groups = 0;
  bool compressed = false;
  bool v4 = false;
  if (in.starts_with("::")) {
    compressed = true;
    i = 2;
  }
  while (i < in.size()) {
    // Try an embedded IPv4 address in the last position.
    std::size_t j = i;
    while (j < in.size() && is_hex(static_cast<unsigned char>(in[j]))) ++j;
    if (j < in.size() && in[j] == '.') {
      auto r = ipv4(in, i);
      if (!r || *r != in.size()) return false;
      v4 = true;
      i = *r;
      break;
    }
    if (j == i || j - i > 4) return false;
    ++groups;
    i = j;
    if (i == in.size()) break;
    if (in[i] != ':') return false;
    ++i;
    if (i < in.size() && in[i] == ':') {
      if (compressed) return false;  // only one "::"
      compressed = true;
      ++i;
    } else if (i == in.size()) {
      return false;  // trailing single ":"
    }
  }
  const int max_groups = v4 ? 6 : 8;
  if (compressed) return groups <= max_groups - 2;  // "::" stands for at least one group
  return groups == max_groups;
}

}  // namespace

Result<Parsed<std::string>, AddressError> parse_domain(std::string_view in, const AddressOptions& opt) {
  std::size_t i = 0;
  while (true) {
    auto r = sub_domain(in, i, opt);
    if (!r) return Unexpected{r.error()};
    i = *r;
    if (i < in.size() && in[i] == '.') {
      ++i;
      continue;
    }
    break;
  }
  if (i > opt.limits.domain) return Unexpected{Error::domain_too_long};
  return Parsed<std::string>{std::string(in.substr(0, i)), i};
}

Result<Parsed<std::string>, AddressError> parse_address_literal(std::string_view in) {
  if (in.empty() || in[0] != '[') return Unexpected{Error::syntax};
  const std::size_t close = in.find(']');
  if (close == std::string_view::npos) return Unexpected{Error::syntax};
  const std::string_view body = in.substr(1, close - 1);
  bool ok = false;
  if (!body.empty() && is_digit(static_cast<unsigned char>(body[0]))) {
    auto r = ipv4(body, 0);
    ok = r && *r == body.size();
  } else if (body.size() >= 5 && iequals(body.substr(0, 5), "IPv6:")) {
    ok = ipv6(body.substr(5));
  } else {
    // General-address-literal = Standardized-tag ":" 1*dcontent
    const std::size_t colon = body.find(':');
    if (colon != std::string_view::npos && colon > 0 && colon + 1 < body.size()) {
      const std::string_view tag = body.substr(0, colon);
      ok = is_alpha(static_cast<unsigned char>(tag[0])) || is_digit(static_cast<unsigned char>(tag[0]));
      ok = ok && tag.back() != '-';
      for (unsigned char c : tag) ok = ok && (is_alpha(c) || is_digit(c) || c == '-');
      for (unsigned char c : body.substr(colon + 1)) {
        ok = ok && ((c >= 33 && c <= 90) || (c >= 94 && c <= 126));  // dcontent
      }
    }
  }
  if (!ok) return Unexpected{Error::syntax};
  return Parsed<std::string>{std::string(in.substr(0, close + 1)), close + 1};
}

Result<Parsed<Mailbox>, AddressError> parse_mailbox(std::string_view in, const AddressOptions& opt) {
  std::size_t i = 0;
  if (i < in.size() && in[i] == '"') {
    // Quoted-string = DQUOTE *QcontentSMTP DQUOTE
    ++i;
    while (true) {
      if (i >= in.size()) return Unexpected{Error::syntax};
      const auto c = static_cast<unsigned char>(in[i]);
      if (c == '"') {
        ++i;
        break;
      }
      if (c == '\\') {  // quoted-pairSMTP = %d92 %d32-126
        if (i + 1 >= in.size()) return Unexpected{Error::syntax};
        const auto q = static_cast<unsigned char>(in[i + 1]);
        if (q < 32 || q > 126) return Unexpected{Error::syntax};
        i += 2;
      } else if (c >= 32 && c <= 126) {  // qtextSMTP = %d32-33 / %d35-91 / %d93-126
        ++i;
      } else {
        std::optional<Error> err;
        const std::size_t n = take_utf8(in, i, opt.utf8, err);
        if (err) return Unexpected{*err};
        if (n == 0) return Unexpected{Error::syntax};
        i += n;
      }
    }
  } else {
    // Dot-string = Atom *("." Atom)
    bool need_atom = true;
    while (i < in.size()) {
      const auto c = static_cast<unsigned char>(in[i]);
      if (is_atext(c)) {
        ++i;
        need_atom = false;
      } else if (c == '.' && !need_atom) {
        ++i;
        need_atom = true;
      } else if (c >= 0x80) {
        std::optional<Error> err;
        const std::size_t n = take_utf8(in, i, opt.utf8, err);
        if (err) return Unexpected{*err};
        i += n;
        need_atom = false;
      } else {
        break;
      }
    }
    if (need_atom) return Unexpected{Error::syntax};
  }
  const std::size_t local_len = i;
  if (i >= in.size() || in[i] != '@') return Unexpected{Error::syntax};
  // Check the local-part limit only once the production matched, so a malformed long input is
  // reported as a syntax error (what it is), not as a length problem.
  Mailbox mb;
  mb.local_part = std::string(in.substr(0, local_len));
  ++i;
  if (i < in.size() && in[i] == '[') {
    auto r = parse_address_literal(in.substr(i));
    if (!r) return Unexpected{r.error()};
    mb.domain = std::move(r->value);
    mb.domain_is_literal = true;
    i += r->consumed;
  } else {
    auto r = parse_domain(in.substr(i), opt);
    if (!r) return Unexpected{r.error()};
    mb.domain = std::move(r->value);
    i += r->consumed;
  }
  if (local_len > opt.limits.local_part) return Unexpected{Error::local_part_too_long};
  if (mb.domain.size() > opt.limits.domain) return Unexpected{Error::domain_too_long};
  return Parsed<Mailbox>{std::move(mb), i};
}

Result<Mailbox, AddressError> parse_mailbox_exact(std::string_view in, const AddressOptions& opt) {
  auto r = parse_mailbox(in, opt);
  if (!r) return Unexpected{r.error()};
  if (r->consumed != in.size()) return Unexpected{Error::syntax};
  return std::move(r->value);
}

namespace {

// Path = "<" [ A-d-l ":" ] Mailbox ">"
Result<Parsed<Path>, AddressError> parse_path(std::string_view in, const AddressOptions& opt) {
  if (in.empty() || in[0] != '<') return Unexpected{Error::syntax};
  std::size_t i = 1;
  Path path;
  if (i < in.size() && in[i] == '@') {
    // A-d-l = At-domain *( "," At-domain ), At-domain = "@" Domain
    const std::size_t start = i;
    while (true) {
      if (i >= in.size() || in[i] != '@') return Unexpected{Error::syntax};
      ++i;
      auto d = parse_domain(in.substr(i), opt);
      if (!d) return Unexpected{d.error()};
      i += d->consumed;
      if (i < in.size() && in[i] == ',') {
        ++i;
        continue;
      }
      break;
    }
    if (i >= in.size() || in[i] != ':') return Unexpected{Error::syntax};
    path.source_route = std::string(in.substr(start, i - start));
    ++i;
  }
  auto mb = parse_mailbox(in.substr(i), opt);
  if (!mb) {
    // Report a too-long path as such even when the mailbox inside failed for length.
    return Unexpected{mb.error()};
  }
  i += mb->consumed;
  if (i >= in.size() || in[i] != '>') return Unexpected{Error::syntax};
  ++i;
  if (i > opt.limits.path) return Unexpected{Error::path_too_long};
  path.mailbox = std::move(mb->value);
  return Parsed<Path>{std::move(path), i};
}

}  // namespace

Result<Parsed<Path>, AddressError> parse_reverse_path(std::string_view in, const AddressOptions& opt) {
  if (in.starts_with("<>")) return Parsed<Path>{Path{}, 2};
  return parse_path(in, opt);
}

Result<Parsed<Path>, AddressError> parse_forward_path(std::string_view in, const AddressOptions& opt) {
  // §4.1.1.3: "<Postmaster>" without a domain MUST be accepted; the name is case-insensitive.
  constexpr std::string_view postmaster = "<postmaster>";
  if (in.size() >= postmaster.size() && iequals(in.substr(0, postmaster.size()), postmaster)) {
    Path p;
    p.mailbox = Mailbox{std::string(in.substr(1, 10)), "", false};
    return Parsed<Path>{std::move(p), postmaster.size()};
  }
  return parse_path(in, opt);
}

}  // namespace refsmtp::smtp
