#include "refsmtp/conform/script.hpp"

#include <cctype>
#include <regex>

namespace refsmtp::conform {

std::string_view level_name(Level l) {
  switch (l) {
    case Level::must: return "MUST";
    case Level::should: return "SHOULD";
    case Level::may: return "MAY";
    case Level::note: return "NOTE";
  }
  return "MUST";
}

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// A whole decimal number of at most 9 digits; -1 for anything else ("10abc", "", "4294967297").
int whole_number(std::string_view s) {
  if (s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string_view::npos) return -1;
  return std::atoi(std::string(s).c_str());
}

bool is_code_pattern(std::string_view c) {
  if (c.size() != 3 || c[0] < '2' || c[0] > '5') return false;
  const bool cls = c[1] == 'x' && c[2] == 'x';
  const bool exact = c[1] >= '0' && c[1] <= '9' && c[2] >= '0' && c[2] <= '9';
  return cls || exact;
}

// std::regex is fragile on hostile patterns (libstdc++ overflows on huge {n} counts and recurses
// on deep nesting), so patterns are kept short and counts small before compiling. ${name}
// stands for a profile value, escaped when substituted, so it is checked as a plain atom.
bool check_regex(const std::string& pattern, std::string& why) {
  std::string regex;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    const std::size_t close = pattern.compare(i, 2, "${") == 0 ? pattern.find('}', i) : std::string::npos;
    if (close == std::string::npos) {
      regex += pattern[i];
    } else {
      regex += 'v';
      i = close;
    }
  }
  if (regex.size() > 200) {
    why = "regex longer than 200 characters";
    return false;
  }
  // A safe subset: printable ASCII; escapes only of punctuation and the classes \d \s \w \b
  // (and their negations) -- no backreferences, whose numbers libstdc++ parses without
  // overflow checks; repetition counts of at most three digits.
  for (std::size_t i = 0; i < regex.size(); ++i) {
    const char ch = regex[i];
    if (static_cast<unsigned char>(ch) < 32 || static_cast<unsigned char>(ch) > 126) {
      why = "regex: printable ASCII only";
      return false;
    }
    if (ch == '\\') {
      const char next = i + 1 < regex.size() ? regex[i + 1] : '\0';
      if (std::string_view("dDsSwWbB.^$|()[]{}*+?\\/-").find(next) == std::string_view::npos || next == '\0') {
        why = "regex: only \\d \\s \\w \\b (and capitals) and escaped punctuation are supported";
        return false;
      }
      ++i;
      continue;
    }
    if (ch != '{') continue;
    std::size_t digits = 0;
    for (std::size_t j = i + 1; j < regex.size() && regex[j] != '}'; ++j) {
      if (regex[j] >= '0' && regex[j] <= '9') {
        if (++digits > 3) {
          why = "regex repetition counts are limited to 999";
          return false;
        }
      } else {
        digits = 0;
      }
    }
  }
  try {
    std::regex check(regex);
  } catch (const std::regex_error&) {
    why = "invalid regex /" + pattern + "/";
    return false;
  }
  return true;
}

bool parse_expect(std::string_view s, Expect& e, std::string& why) {
  s = trim(s);
  if (s == "closed") {
    e.kind = Expect::Kind::closed;
    return true;
  }
  if (s.starts_with("none")) {
    e.kind = Expect::Kind::none;
    const std::string ms(trim(s.substr(4)));
    e.silence_ms = ms.empty() ? 1000 : whole_number(ms);
    if (e.silence_ms <= 0 || e.silence_ms > 60000) {
      why = "none needs a time in milliseconds (1-60000)";
      return false;
    }
    return true;
  }
  // CODES [ENHANCED] [/REGEX/]
  const std::size_t slash = s.find('/');
  if (slash != std::string_view::npos) {
    if (s.back() != '/' || s.size() - slash < 2) {
      why = "a regex is written /.../ at the end";
      return false;
    }
    e.regex = std::string(s.substr(slash + 1, s.size() - slash - 2));
    if (!check_regex(e.regex, why)) return false;
    s = trim(s.substr(0, slash));
  }
  const std::size_t sp = s.find(' ');
  std::string_view codes = s.substr(0, sp);
  if (sp != std::string_view::npos) e.enhanced = std::string(trim(s.substr(sp + 1)));
  while (!codes.empty()) {
    const std::size_t bar = codes.find('|');
    const std::string_view c = codes.substr(0, bar);
    codes = bar == std::string_view::npos ? std::string_view() : codes.substr(bar + 1);
    if (c == "closed") {
      e.or_closed = true;
      continue;
    }
    if (!is_code_pattern(c)) {
      why = "bad reply code '" + std::string(c) + "' (like 250, 2xx or 550|553)";
      return false;
    }
    e.codes.emplace_back(c);
  }
  if (e.codes.empty()) {
    why = "S: needs a reply code, 'closed' or 'none MS'";
    return false;
  }
  if (!e.enhanced.empty()) {
    // c.s.d with digits or x
    int dots = 0;
    for (char ch : e.enhanced) {
      if (ch == '.') ++dots;
      else if (!(ch >= '0' && ch <= '9') && ch != 'x') dots = 99;
    }
    if (dots != 2) {
      why = "bad enhanced status '" + e.enhanced + "' (like 5.1.1 or 5.x.x)";
      return false;
    }
  }
  return true;
}

}  // namespace

std::optional<std::string> unescape_raw(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\') {
      out += s[i];
      continue;
    }
    if (++i >= s.size()) return std::nullopt;
    switch (s[i]) {
      case 'r': out += '\r'; break;
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case '0': out += '\0'; break;
      case '\\': out += '\\'; break;
      case 'x': {
        if (i + 2 >= s.size()) return std::nullopt;
        auto hex = [](char c) { return (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1; };
        const int hi = hex(s[i + 1]), lo = hex(s[i + 2]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        break;
      }
      default: return std::nullopt;
    }
  }
  return out;
}

std::string substitute(std::string_view s, const std::map<std::string, std::string>& vars, std::string& missing, bool for_regex) {
  std::string out;
  std::size_t i = 0;
  while (i < s.size()) {
    const std::size_t open = s.find("${", i);
    if (open == std::string_view::npos) break;
    const std::size_t close = s.find('}', open);
    if (close == std::string_view::npos) break;
    out += s.substr(i, open - i);
    const std::string name(s.substr(open + 2, close - open - 2));
    auto it = vars.find(name);
    if (it == vars.end()) {
      missing = name;
    } else if (for_regex) {
      for (char c : it->second) {
        if (std::string_view("\\^$.|?*+()[]{}/-").find(c) != std::string_view::npos) out += '\\';
        out += c;
      }
    } else {
      out += it->second;
    }
    i = close + 1;
  }
  out += s.substr(i);
  return out;
}

std::optional<Script> parse_script(std::string_view text, const std::string& file, ParseError& error) {
  Script sc;
  sc.file = file;
  std::size_t lineno = 0;
  auto fail = [&](const std::string& what) {
    // lineno 0: a rule about the whole file (a missing header), not about one line.
    error.message = file + (lineno ? ":" + std::to_string(lineno) : std::string()) + ": " + what;
    return std::nullopt;
  };
  while (!text.empty()) {
    ++lineno;
    const std::size_t lf = text.find('\n');
    std::string_view line = text.substr(0, lf);
    text = lf == std::string_view::npos ? std::string_view() : text.substr(lf + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (trim(line).empty()) continue;
    if (line.starts_with("#")) {
      std::string_view h = trim(line.substr(1));
      const std::size_t colon = h.find(':');
      if (colon == std::string_view::npos) continue;  // a plain comment
      const std::string key(trim(h.substr(0, colon)));
      const std::string value(trim(h.substr(colon + 1)));
      if (key == "case") sc.name = value;
      else if (key == "rfc") sc.rfc = value;
      else if (key == "title") sc.title = value;
      else if (key == "quote") sc.quote += (sc.quote.empty() ? "" : " ") + value;
      else if (key == "skip-when") {
        if (value != "accept_all" && value != "trusted_client") return fail("skip-when takes a profile flag: accept_all or trusted_client");
        sc.skip_when.push_back(value);
      } else if (key == "needs-profile") {
        if (value != "remote_via_sink") return fail("needs-profile takes a profile flag: remote_via_sink");
        sc.needs_profile.push_back(value);
      } else if (key == "level") {
        if (value == "MUST") sc.level = Level::must;
        else if (value == "SHOULD") sc.level = Level::should;
        else if (value == "MAY") sc.level = Level::may;
        else if (value == "NOTE") sc.level = Level::note;
        else return fail("level must be MUST, SHOULD, MAY or NOTE");
      } else if (key == "port") {
        if (value != "mx" && value != "submission" && value != "submissions") return fail("port must be mx, submission or submissions");
        sc.port = value;
      } else if (key == "delivery") {
        if (value != "optional" && value != "required" && value != "final") return fail("delivery must be optional, required or final");
        sc.delivery_optional = value == "optional";
        sc.delivery_final = value == "final";
      } else if (key == "needs") {
        std::string_view v = value;
        while (!v.empty()) {
          const std::size_t sp = v.find(' ');
          if (!v.substr(0, sp).empty()) sc.needs.emplace_back(v.substr(0, sp));
          v = sp == std::string_view::npos ? std::string_view() : trim(v.substr(sp + 1));
        }
      }
      continue;
    }
    Step st;
    st.line = lineno;
    if (line.starts_with("!")) {
      st.asserts = true;
      line.remove_prefix(1);
    }
    std::string why;  // set when the step is malformed
    auto arg = [&](std::size_t n) { return line.size() > n ? line.substr(n) : std::string_view(); };
    // RAW:, BDAT: and BODY: carry escaped bytes; SLEEP:, TIMEOUT: and SPLIT: a bounded number.
    auto bytes_step = [&](Step::Kind kind, std::size_t from, std::string_view name) {
      st.kind = kind;
      auto raw = unescape_raw(arg(from));
      if (raw) st.text = std::move(*raw);
      else why = "bad escape in " + std::string(name) + " (use \\r \\n \\t \\0 \\\\ \\xHH)";
    };
    auto number_step = [&](Step::Kind kind, std::size_t from, int most, std::string_view what) {
      st.kind = kind;
      st.ms = whole_number(trim(arg(from)));
      if (st.ms <= 0 || st.ms > most) why = std::string(what) + " (1-" + std::to_string(most) + ")";
    };
    if (line.starts_with("C: ") || line == "C:") {
      st.kind = Step::Kind::send;
      st.text = std::string(arg(3));
    } else if (line.starts_with("RAW: ")) {
      bytes_step(Step::Kind::raw, 5, "RAW:");
    } else if (line.starts_with("BDAT: ")) {
      bytes_step(Step::Kind::bdat, 6, "BDAT:");
    } else if (line.starts_with("FILL: ") || line.starts_with("BDAT FILL: ") || line.starts_with("BDAT LAST FILL: ")) {
      const bool bdat = line.starts_with("BDAT");
      st.kind = bdat ? Step::Kind::bdat : Step::Kind::fill;
      st.fill = bdat;
      st.last = line.starts_with("BDAT LAST");
      std::string_view spec = trim(line.substr(line.find(':') + 1));
      if (spec.starts_with("SIZE+")) {
        st.fill_over_size = true;
        spec.remove_prefix(5);
      }
      if (spec.empty() || spec.size() > 8 || spec.find_first_not_of("0123456789") != std::string_view::npos ||
          std::stoul(std::string(spec)) > 64u * 1024 * 1024) {
        why = "FILL: takes octets (at most 64 MiB) or SIZE+octets";
      } else {
        st.fill_octets = std::stoul(std::string(spec));
      }
    } else if (line.starts_with("BDAT LAST: ") || line == "BDAT LAST:") {
      bytes_step(Step::Kind::bdat, 11, "BDAT LAST:");
      st.last = true;
    } else if (line.starts_with("BODY: ") || line == "BODY:") {
      bytes_step(Step::Kind::body, 6, "BODY:");
    } else if (line.starts_with("SLEEP: ")) {
      number_step(Step::Kind::sleep, 7, 60000, "SLEEP: takes milliseconds");
    } else if (line.starts_with("TIMEOUT: ")) {
      number_step(Step::Kind::timeout, 9, 600000, "TIMEOUT: takes milliseconds");
    } else if (line.starts_with("SPLIT: ")) {
      number_step(Step::Kind::split, 7, 65536, "SPLIT: takes octets per write");
    } else if (trim(line) == "IDLE") {
      st.kind = Step::Kind::idle;
    } else if (trim(line) == "CLOSE") {
      st.kind = Step::Kind::close;
    } else if (trim(line) == "STARTTLS") {
      st.kind = Step::Kind::starttls;
    } else if (line.starts_with("S: ")) {
      st.kind = Step::Kind::expect;
      parse_expect(arg(3), st.expect, why);
    } else if (line.starts_with("S*: ")) {
      st.kind = Step::Kind::expect_all;
      if (parse_expect(arg(4), st.expect, why) && st.expect.kind != Expect::Kind::reply) why = "S*: takes reply codes, not closed or none";
    } else if (trim(line) == "AUTH" || trim(line) == "AUTH WRONG") {
      st.kind = Step::Kind::auth;
      st.last = trim(line) == "AUTH WRONG";
    } else if (line.starts_with("HEADER: ") || line.starts_with("NOHEADER: ")) {
      st.kind = line.starts_with("NO") ? Step::Kind::noheader : Step::Kind::header;
      std::string_view v = trim(arg(st.kind == Step::Kind::noheader ? 10 : 8));
      const std::size_t slash = v.find('/');
      st.text = std::string(trim(v.substr(0, slash)));
      if (st.text.empty() || st.text.find_first_of(" :\t") != std::string::npos) why = "HEADER:/NOHEADER: take a field name, then an optional /regex/";
      if (why.empty() && slash != std::string_view::npos) {
        if (v.size() - slash < 2 || v.back() != '/') why = "a regex is written /.../ at the end";
        else st.regex = std::string(v.substr(slash + 1, v.size() - slash - 2));
        if (why.empty()) check_regex(st.regex, why);
      }
    } else if (line.starts_with("CAP: ")) {
      st.kind = Step::Kind::cap;
      st.text = std::string(trim(arg(5)));
    } else if (line.starts_with("NOCAP: ")) {
      st.kind = Step::Kind::nocap;
      st.text = std::string(trim(arg(7)));
    } else if (line.starts_with("DELIVERED: ") || line.starts_with("DELIVERED TO ")) {
      st.kind = Step::Kind::delivered;
      std::string_view v = trim(arg(11));
      if (line.starts_with("DELIVERED TO ")) {  // DELIVERED TO ADDRESS: N
        const std::size_t colon = line.rfind(": ");
        st.text = colon == std::string_view::npos || colon < 13 ? "" : std::string(trim(line.substr(13, colon - 13)));
        if (st.text.empty() || st.text.find(' ') != std::string::npos) why = "DELIVERED TO takes an address, then ': ' and a count";
        v = colon == std::string_view::npos ? std::string_view() : trim(line.substr(colon + 2));
      }
      if (v.ends_with("+") && v.find('|') == std::string_view::npos) {  // "1+": at least one
        st.at_least = true;
        v.remove_suffix(1);
      }
      while (why.empty()) {
        const std::string n(v.substr(0, v.find('|')));
        if (n.empty() || n.size() > 3 || n.find_first_not_of("0123456789") != std::string::npos || std::atoi(n.c_str()) > 100) {
          why = "DELIVERED: takes a message count (0-100), alternatives like 0|1, or a least count like 1+";
        }
        st.counts.push_back(std::atoi(n.c_str()));
        if (v.find('|') == std::string_view::npos) break;
        v = v.substr(v.find('|') + 1);
      }
    } else {
      why = "unknown step '" + std::string(line.substr(0, 20)) +
            "' (C:, RAW:, BDAT:, FILL:, S:, S*:, CAP:, NOCAP:, AUTH, STARTTLS, CLOSE, SLEEP:, IDLE, SPLIT:, TIMEOUT:, DELIVERED:, BODY:, HEADER:, NOHEADER:)";
    }
    if (!why.empty()) return fail(why);
    const bool can_assert = st.kind == Step::Kind::expect || st.kind == Step::Kind::expect_all || st.kind == Step::Kind::cap ||
                            st.kind == Step::Kind::nocap || st.kind == Step::Kind::auth || st.kind == Step::Kind::delivered ||
                            st.kind == Step::Kind::body || st.kind == Step::Kind::header || st.kind == Step::Kind::noheader;
    if (st.asserts && !can_assert) {
      return fail("only a check can be marked '!' (S:, S*:, CAP:, NOCAP:, AUTH, DELIVERED:, BODY:, HEADER:, NOHEADER:)");
    }
    sc.steps.push_back(std::move(st));
  }
  lineno = 0;
  if (sc.name.empty()) return fail("missing '# case:' header");
  // The name is a file name (--export-seeds) and a word in baselines: letters, digits, . _ -
  if (sc.name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != std::string::npos ||
      sc.name.front() == '.' || sc.name.size() > 100) {
    return fail("case name '" + sc.name.substr(0, 100) + "': letters, digits, '.', '_' and '-' only, not starting with '.'");
  }
  if (sc.rfc.empty()) return fail("missing '# rfc:' header");
  if (sc.steps.empty()) return fail("no steps");
  if (sc.quote.empty()) return fail("missing '# quote:' header (the RFC sentence the case tests, verbatim)");
  if (!quote_has_keyword(sc.quote, sc.level, sc.rfc)) {
    return fail("the quote holds no " + std::string(level_name(sc.level)) + " keyword (RFC 2119); a rule without one is level NOTE");
  }
  if (sc.assertions_end() == 0) return fail("no step asserts the rule (mark the steps that test it with '!')");
  return sc;
}

bool quote_has_keyword(std::string_view quote, Level level, std::string_view rfc) {
  // Keywords are capitalised words: "MUST" inside "MUSTER" or a lower-case "must" do not count,
  // except in RFCs written before RFC 2119 gave the capitals their meaning (RFC 1870, RFC 2034),
  // and RFC 6152, which republished RFC 1652's text with its lower-case requirement words.
  int number = 0;
  if (rfc.starts_with("RFC ")) {
    for (std::size_t i = 4; i < rfc.size() && std::isdigit(static_cast<unsigned char>(rfc[i])) && number < 100000; ++i) {
      number = number * 10 + (rfc[i] - '0');
    }
  }
  const bool lower_case_counts = (number > 0 && number < 2119) || number == 6152;
  std::string upper;  // lower-case keywords count: compare the quote in capitals
  if (lower_case_counts) {
    for (char c : quote) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    quote = upper;
  }
  auto has = [&](std::string_view word) {
    for (std::size_t at = quote.find(word); at != std::string_view::npos; at = quote.find(word, at + 1)) {
      const bool start = at == 0 || !std::isalpha(static_cast<unsigned char>(quote[at - 1]));
      const std::size_t end = at + word.size();
      if (start && (end == quote.size() || !std::isalpha(static_cast<unsigned char>(quote[end])))) return true;
    }
    return false;
  };
  switch (level) {
    case Level::must: return has("MUST") || has("REQUIRED") || has("SHALL");
    case Level::should: return has("SHOULD") || has("RECOMMENDED");
    case Level::may: return has("MAY") || has("OPTIONAL");
    case Level::note: return true;
  }
  return false;
}

std::size_t Script::assertions_end() const {
  for (std::size_t i = steps.size(); i > 0; --i) {
    if (steps[i - 1].asserts) return i;
  }
  return 0;
}

bool Script::checks_delivery() const {
  for (const auto& st : steps) {
    if (st.kind == Step::Kind::delivered || st.kind == Step::Kind::body || st.kind == Step::Kind::header ||
        st.kind == Step::Kind::noheader) {
      return true;
    }
  }
  return false;
}

}  // namespace refsmtp::conform
