#include "refsmtp/smtp/command.hpp"

#include <array>
#include <utility>

#include "refsmtp/core/ascii.hpp"

namespace refsmtp::smtp {

using core::is_alpha;
using core::is_digit;
using core::to_upper;
using core::iequals;

namespace {

struct VerbEntry {
  std::string_view name;
  Verb verb;
};
constexpr std::array<VerbEntry, 14> kVerbs{{
    {"EHLO", Verb::ehlo}, {"HELO", Verb::helo}, {"MAIL", Verb::mail}, {"RCPT", Verb::rcpt},
    {"DATA", Verb::data}, {"BDAT", Verb::bdat}, {"RSET", Verb::rset}, {"VRFY", Verb::vrfy},
    {"EXPN", Verb::expn}, {"HELP", Verb::help}, {"NOOP", Verb::noop}, {"QUIT", Verb::quit},
    {"STARTTLS", Verb::starttls}, {"AUTH", Verb::auth},
}};

using Error = CommandError;
using Kind = CommandErrorKind;

Unexpected<Error> fail(Kind kind, Verb verb, std::string detail) {
  return Unexpected{Error{kind, verb, std::nullopt, std::move(detail)}};
}

bool is_ascii(std::string_view s) {
  for (unsigned char c : s) {
    if (c >= 0x80) return false;
  }
  return true;
}

// esmtp-value = 1*(%d33-60 / %d62-126), plus UTF8-non-ascii under RFC 6531 §3.3.
bool is_esmtp_value(std::string_view v) {
  if (v.empty()) return false;
  for (std::size_t i = 0; i < v.size();) {
    const auto c = static_cast<unsigned char>(v[i]);
    if (c >= 0x80) {
      const std::size_t n = utf8_sequence_length(v.substr(i));
      if (n == 0) return false;
      i += n;
      continue;
    }
    if (c < 33 || c > 126 || c == '=') return false;
    ++i;
  }
  return true;
}

// esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
bool is_esmtp_keyword(std::string_view k) {
  if (k.empty()) return false;
  if (!is_alpha(static_cast<unsigned char>(k[0])) && !is_digit(static_cast<unsigned char>(k[0]))) {
    return false;
  }
  for (unsigned char c : k) {
    if (!is_alpha(c) && !is_digit(c) && c != '-') return false;
  }
  return true;
}

bool all_digits(std::string_view s, std::size_t max_len) {
  if (s.empty() || s.size() > max_len) return false;
  for (unsigned char c : s) {
    if (!is_digit(c)) return false;
  }
  return true;
}

std::uint64_t to_u64(std::string_view s) {  // caller checked all_digits; saturates
  std::uint64_t v = 0;
  for (char c : s) {
    const auto d = static_cast<std::uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return UINT64_MAX;
    v = v * 10 + d;
  }
  return v;
}

// Mail-parameters = esmtp-param *(SP esmtp-param); `in` starts after the SP.
Result<std::vector<EsmtpParam>, Error> split_params(std::string_view in, Verb verb) {
  std::vector<EsmtpParam> out;
  while (true) {
    const std::size_t sp = in.find(' ');
    const std::string_view item = in.substr(0, sp);
    const std::size_t eq = item.find('=');
    EsmtpParam p;
    p.keyword = std::string(item.substr(0, eq));
    if (!is_esmtp_keyword(p.keyword)) return fail(Kind::syntax, verb, "malformed parameter");
    if (eq != std::string_view::npos) {
      const std::string_view value = item.substr(eq + 1);
      if (!is_esmtp_value(value)) return fail(Kind::syntax, verb, "malformed parameter value");
      p.value = std::string(value);
    }
    for (const auto& seen : out) {
      if (iequals(seen.keyword, p.keyword)) return fail(Kind::syntax, verb, "duplicate parameter");
    }
    out.push_back(std::move(p));
    if (sp == std::string_view::npos) break;
    in = in.substr(sp + 1);
  }
  return out;
}

Result<MailParams, Error> interpret_mail_params(const std::vector<EsmtpParam>& params) {
  MailParams m;
  for (const auto& p : params) {
    const std::string_view v = p.value ? std::string_view(*p.value) : std::string_view();
    if (iequals(p.keyword, "SIZE")) {  // RFC 1870 §6: size-value = 1*20DIGIT
      if (!p.value || !all_digits(v, 20)) return fail(Kind::bad_parameter_value, Verb::mail, "bad SIZE value");
      m.size = to_u64(v);
    } else if (iequals(p.keyword, "BODY")) {
      if (iequals(v, "7BIT")) m.body = BodyType::seven_bit;
      else if (iequals(v, "8BITMIME")) m.body = BodyType::eight_bit_mime;
      else if (iequals(v, "BINARYMIME")) m.body = BodyType::binary_mime;
      else return fail(Kind::bad_parameter_value, Verb::mail, "bad BODY value");
    } else if (iequals(p.keyword, "SMTPUTF8")) {
      if (p.value) return fail(Kind::bad_parameter_value, Verb::mail, "SMTPUTF8 takes no value");
      m.smtputf8 = true;
    } else if (iequals(p.keyword, "AUTH")) {  // RFC 4954 §5: AUTH=xtext / "<>"
      if (!p.value || (v != "<>" && !is_xtext(v))) {
        return fail(Kind::bad_parameter_value, Verb::mail, "bad AUTH value");
      }
      m.auth = std::string(v);
    } else if (iequals(p.keyword, "RET")) {
      if (iequals(v, "FULL")) m.ret = DsnRet::full;
      else if (iequals(v, "HDRS")) m.ret = DsnRet::hdrs;
      else return fail(Kind::bad_parameter_value, Verb::mail, "bad RET value");
    } else if (iequals(p.keyword, "ENVID")) {  // RFC 3461 §4.4: at most 100 characters
      if (!p.value || v.size() > 100 || !is_xtext(v)) {
        return fail(Kind::bad_parameter_value, Verb::mail, "bad ENVID value");
      }
      m.envid = std::string(v);
    } else {
      return fail(Kind::unknown_parameter, Verb::mail, "unrecognized parameter " + p.keyword);
    }
  }
  return m;
}

Result<RcptParams, Error> interpret_rcpt_params(const std::vector<EsmtpParam>& params) {
  RcptParams r;
  for (const auto& p : params) {
    const std::string_view v = p.value ? std::string_view(*p.value) : std::string_view();
    if (iequals(p.keyword, "NOTIFY")) {
      // RFC 3461 §4.1: "NEVER" or a comma-separated list of SUCCESS, FAILURE, DELAY
      if (!p.value) return fail(Kind::bad_parameter_value, Verb::rcpt, "bad NOTIFY value");
      unsigned bits = 0;
      std::string_view rest = v;
      while (true) {
        const std::size_t comma = rest.find(',');
        const std::string_view word = rest.substr(0, comma);
        unsigned bit = 0;
        if (iequals(word, "NEVER")) bit = notify::never;
        else if (iequals(word, "SUCCESS")) bit = notify::success;
        else if (iequals(word, "FAILURE")) bit = notify::failure;
        else if (iequals(word, "DELAY")) bit = notify::delay;
        if (bit == 0 || (bits & bit)) return fail(Kind::bad_parameter_value, Verb::rcpt, "bad NOTIFY value");
        bits |= bit;
        if (comma == std::string_view::npos) break;
        rest = rest.substr(comma + 1);
      }
      if ((bits & notify::never) && bits != notify::never) {
        return fail(Kind::bad_parameter_value, Verb::rcpt, "NOTIFY=NEVER with other values");
      }
      r.notify = bits;
    } else if (iequals(p.keyword, "ORCPT")) {
      // RFC 3461 §4.2: addr-type ";" xtext, addr-type an atom
      const std::size_t semi = v.find(';');
      if (!p.value || semi == 0 || semi == std::string_view::npos || !is_xtext(v.substr(semi + 1)) ||
          v.size() - semi - 1 == 0) {
        return fail(Kind::bad_parameter_value, Verb::rcpt, "bad ORCPT value");
      }
      for (unsigned char c : v.substr(0, semi)) {
        if (!is_atext(c)) return fail(Kind::bad_parameter_value, Verb::rcpt, "bad ORCPT value");
      }
      r.orcpt = std::string(v);
    } else {
      return fail(Kind::unknown_parameter, Verb::rcpt, "unrecognized parameter " + p.keyword);
    }
  }
  return r;
}

Result<Command, Error> parse_path_command(Verb verb, std::string_view arg, const CommandOptions& opt) {
  // "MAIL FROM:" Reverse-path [SP Mail-parameters]  /  "RCPT TO:" Forward-path [SP Rcpt-parameters]
  const std::string_view prefix = verb == Verb::mail ? "FROM:" : "TO:";
  if (arg.size() < prefix.size() || !iequals(arg.substr(0, prefix.size()), prefix)) {
    return fail(Kind::syntax, verb, verb == Verb::mail ? "expected MAIL FROM:<address>" : "expected RCPT TO:<address>");
  }
  arg.remove_prefix(prefix.size());
  if (opt.lenient_space_after_colon && arg.starts_with(' ')) arg.remove_prefix(1);

  // The path is parsed with UTF-8 allowed so its end is found whatever it holds; whether UTF-8
  // was allowed is decided once the parameters are known (RFC 6531 §3.4: SMTPUTF8 on MAIL).
  AddressOptions aopt = opt.address;
  aopt.utf8 = true;
  auto path = verb == Verb::mail ? parse_reverse_path(arg, aopt) : parse_forward_path(arg, aopt);
  if (!path) {
    return Unexpected{Error{Kind::address, verb, path.error(), std::string(describe(path.error()))}};
  }
  Command c;
  c.verb = verb;
  c.path = std::move(path->value);
  std::string_view rest = arg.substr(path->consumed);
  if (!rest.empty()) {
    if (rest[0] != ' ' || rest.size() == 1) return fail(Kind::syntax, verb, "junk after address");
    auto params = split_params(rest.substr(1), verb);
    if (!params) return Unexpected{params.error()};
    c.params = std::move(*params);
  }
  if (verb == Verb::mail) {
    auto m = interpret_mail_params(c.params);
    if (!m) return Unexpected{m.error()};
    c.mail = *m;
  } else {
    auto r = interpret_rcpt_params(c.params);
    if (!r) return Unexpected{r.error()};
    c.rcpt = *r;
  }
  const bool utf8_allowed = verb == Verb::mail ? (opt.address.utf8 && c.mail.smtputf8) : opt.address.utf8;
  if (!utf8_allowed && !is_ascii(arg.substr(0, path->consumed))) {
    return Unexpected{Error{Kind::address, verb, AddressError::utf8_not_allowed,
                            std::string(describe(AddressError::utf8_not_allowed))}};
  }
  return c;
}

}  // namespace

std::string_view verb_name(Verb v) {
  for (const auto& e : kVerbs) {
    if (e.verb == v) return e.name;
  }
  return "?";
}

std::optional<Verb> lookup_verb(std::string_view word) {
  for (const auto& e : kVerbs) {
    if (iequals(e.name, word)) return e.verb;
  }
  return std::nullopt;
}

bool is_xtext(std::string_view s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '+') {  // hexchar = "+" 2(%x30-39 / %x41-46)
      if (i + 2 >= s.size()) return false;
      for (std::size_t k = 1; k <= 2; ++k) {
        const auto h = static_cast<unsigned char>(s[i + k]);
        if (!is_digit(h) && !(h >= 'A' && h <= 'F')) return false;
      }
      i += 2;
    } else if (c < 33 || c > 126 || c == '=') {  // xchar: "!".."~" except "+" and "="
      return false;
    }
  }
  return true;
}

Result<Command, CommandError> parse_command(std::string_view line, const CommandOptions& opt) {
  // §4.1.1: receivers SHOULD tolerate trailing white space before the terminating CRLF.
  while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
  const std::size_t sp = line.find(' ');
  const std::string_view word = line.substr(0, sp);
  const auto verb = lookup_verb(word);
  if (!verb) return Unexpected{Error{Kind::unknown_command, std::nullopt, std::nullopt, "command unrecognized"}};
  const bool has_arg = sp != std::string_view::npos;
  const std::string_view arg = has_arg ? line.substr(sp + 1) : std::string_view();

  // Control characters (NUL, bare CR, TAB, ...) never belong in a command line (§4.1.1, §2.3.8).
  for (unsigned char c : line) {
    if (c < 32 || c == 127) return fail(Kind::syntax, *verb, "control character in command");
  }
  // Only MAIL and RCPT may carry UTF-8, inside addresses and parameter values (RFC 6531 §3.3).
  if (*verb != Verb::mail && *verb != Verb::rcpt && !is_ascii(line)) {
    return fail(Kind::syntax, *verb, "8-bit character in command");
  }

  Command c;
  c.verb = *verb;
  switch (*verb) {
    case Verb::ehlo:
    case Verb::helo: {
      // ehlo = "EHLO" SP ( Domain / address-literal ); helo = "HELO" SP Domain (§4.1.1.1)
      if (arg.empty()) return fail(Kind::syntax, *verb, "a domain name is required");
      if (*verb == Verb::ehlo && arg[0] == '[') {
        auto lit = parse_address_literal(arg);
        // §4.5.3.1.2 bounds "a domain name or number", literals included.
        if (!lit || lit->consumed != arg.size() || lit->consumed > opt.address.limits.domain) {
          return fail(Kind::syntax, *verb, "invalid address literal");
        }
        c.domain = std::move(lit->value);
      } else {
        AddressOptions aopt = opt.address;
        aopt.utf8 = false;  // RFC 6531 §3.7.1: the EHLO domain is an A-label
        auto d = parse_domain(arg, aopt);
        if (!d || d->consumed != arg.size()) return fail(Kind::syntax, *verb, "invalid domain name");
        c.domain = std::move(d->value);
      }
      return c;
    }
    case Verb::mail:
    case Verb::rcpt:
      if (!has_arg) return fail(Kind::syntax, *verb, *verb == Verb::mail ? "expected MAIL FROM:<address>" : "expected RCPT TO:<address>");
      return parse_path_command(*verb, arg, opt);
    case Verb::bdat: {
      // bdat-cmd = "BDAT" SP chunk-size [ SP end-marker ] CR LF (RFC 3030 §2)
      const std::size_t sp2 = arg.find(' ');
      const std::string_view size = arg.substr(0, sp2);
      if (!has_arg || !all_digits(size, 19)) return fail(Kind::syntax, *verb, "expected BDAT size [LAST]");
      c.chunk_size = to_u64(size);
      if (sp2 != std::string_view::npos) {
        if (!iequals(arg.substr(sp2 + 1), "LAST")) return fail(Kind::syntax, *verb, "expected BDAT size [LAST]");
        c.last = true;
      }
      return c;
    }
    case Verb::auth: {
      // "AUTH" SP sasl-mech [SP initial-response] (RFC 4954 §4); sasl-mech 1*20 chars (RFC 4422)
      const std::size_t sp2 = arg.find(' ');
      const std::string_view mech = arg.substr(0, sp2);
      if (mech.empty() || mech.size() > 20) return fail(Kind::syntax, *verb, "expected AUTH mechanism");
      for (unsigned char ch : mech) {
        if (!is_alpha(ch) && !is_digit(ch) && ch != '-' && ch != '_') {
          return fail(Kind::syntax, *verb, "invalid mechanism name");
        }
        c.mechanism.push_back(to_upper(static_cast<char>(ch)));
      }
      if (sp2 != std::string_view::npos) {
        const std::string_view ir = arg.substr(sp2 + 1);
        if (ir.empty()) return fail(Kind::syntax, *verb, "empty initial response");
        c.initial_response = std::string(ir);
      }
      return c;
    }
    case Verb::vrfy:
    case Verb::expn:
      // vrfy = "VRFY" SP String (§4.1.1.6); expn = "EXPN" SP String (§4.1.1.7)
      if (arg.empty()) return fail(Kind::syntax, *verb, "an argument is required");
      c.argument = std::string(arg);
      return c;
    case Verb::help:
    case Verb::noop:
      // help = "HELP" [ SP String ]; noop = "NOOP" [ SP String ]
      if (has_arg && arg.empty()) return fail(Kind::syntax, *verb, "empty argument");
      c.argument = std::string(arg);
      return c;
    case Verb::data:
    case Verb::rset:
    case Verb::quit:
    case Verb::starttls:
      // These take no parameters (§4.1.1.4, §4.1.1.5, §4.1.1.10; RFC 3207 §4).
      if (has_arg) return fail(Kind::syntax, *verb, "no parameters allowed");
      return c;
  }
  return fail(Kind::unknown_command, *verb, "command unrecognized");
}

std::string format_command(const Command& c) {
  std::string out(verb_name(c.verb));
  switch (c.verb) {
    case Verb::ehlo:
    case Verb::helo:
      out += " " + c.domain;
      break;
    case Verb::mail:
    case Verb::rcpt:
      out += c.verb == Verb::mail ? " FROM:" : " TO:";
      out += "<";
      if (!c.path.source_route.empty()) out += c.path.source_route + ":";
      if (c.path.mailbox) out += c.path.mailbox->to_string();
      out += ">";
      for (const auto& p : c.params) {
        out += " " + p.keyword;
        if (p.value) out += "=" + *p.value;
      }
      break;
    case Verb::bdat:
      out += " " + std::to_string(c.chunk_size);
      if (c.last) out += " LAST";
      break;
    case Verb::auth:
      out += " " + c.mechanism;
      if (c.initial_response) out += " " + *c.initial_response;
      break;
    case Verb::vrfy:
    case Verb::expn:
    case Verb::help:
    case Verb::noop:
      if (!c.argument.empty()) out += " " + c.argument;
      break;
    case Verb::data:
    case Verb::rset:
    case Verb::quit:
    case Verb::starttls:
      break;
  }
  return out;
}

}  // namespace refsmtp::smtp
