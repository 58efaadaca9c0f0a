#include "matchers.hpp"

#include <algorithm>
#include <cctype>
#include <regex>
#include <sstream>

namespace refsmtp::conform::detail {

namespace {
std::string upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::toupper(c); });
  return s;
}
}  // namespace

bool code_matches(const std::string& pattern, int code) {
  const std::string c = std::to_string(code);
  if (pattern[1] == 'x') return pattern[0] == c[0];
  return pattern == c;
}

bool enhanced_matches(const std::string& pattern, const std::string& text) {
  const std::string got = text.substr(0, text.find(' '));
  std::size_t i = 0, j = 0;
  auto part = [](const std::string& s, std::size_t& k) {
    const std::size_t dot = s.find('.', k);
    std::string p = s.substr(k, dot == std::string::npos ? std::string::npos : dot - k);
    k = dot == std::string::npos ? s.size() : dot + 1;
    return p;
  };
  for (int n = 0; n < 3; ++n) {
    const std::string a = part(pattern, i), b = part(got, j);
    if (b.empty() || (a != "x" && a != b)) return false;
  }
  return j == got.size();
}

std::string malformed(const std::vector<std::string>& lines) {
  const std::string& first = lines.front();
  for (std::size_t k = 0; k < lines.size(); ++k) {
    const std::string& l = lines[k];
    const bool final_line = k + 1 == lines.size();
    const bool ok = l.size() >= 3 && std::isdigit(static_cast<unsigned char>(l[0])) && l[0] >= '2' && l[0] <= '5' &&
                    std::isdigit(static_cast<unsigned char>(l[1])) && std::isdigit(static_cast<unsigned char>(l[2])) &&
                    l.compare(0, 3, first, 0, 3) == 0 && (final_line ? (l.size() == 3 || l[3] == ' ') : (l.size() > 3 && l[3] == '-'));
    if (!ok) {
      return (final_line && l.size() > 3 && l[3] == '-' ? "incomplete multi-line reply: " : "malformed reply line: ") +
             printable(l, 80);
    }
  }
  return "";
}

std::string mismatch(const Expect& e, const std::string& regex, const std::vector<std::string>& lines) {
  const std::string& first = lines.front();
  const int code = std::stoi(first.substr(0, 3));
  const std::string text = first.size() > 4 ? first.substr(4) : "";
  if (std::none_of(e.codes.begin(), e.codes.end(), [&](const std::string& p) { return code_matches(p, code); })) {
    return "expected " + describe(e) + ", got: " + printable(first, 200);
  }
  if (!e.enhanced.empty() && !enhanced_matches(e.enhanced, text)) {
    return "expected enhanced status " + e.enhanced + ", got: " + printable(first, 200);
  }
  if (!regex.empty()) {
    std::string all;
    for (const auto& l : lines) all += l.substr(std::min<std::size_t>(4, l.size())) + "\n";
    std::string why;
    const auto matched = search(regex, all, why);
    if (!matched) return why;
    if (!*matched) return "reply does not match /" + e.regex + "/: " + printable(first, 200);
  }
  return "";
}

std::optional<bool> search(const std::string& pattern, const std::string& text, std::string& why) {
  // libstdc++'s matcher recurses once per character: a bounded text keeps its stack bounded.
  constexpr std::size_t most = 8192;
  try {
    return std::regex_search(text.substr(0, most), std::regex(pattern));
  } catch (const std::regex_error&) {
    why = "the pattern /" + printable(pattern, 100) + "/ is not a valid regex once the profile's values are in it";
    return std::nullopt;
  }
}

std::string describe(const Expect& e) {
  std::string s;
  for (std::size_t i = 0; i < e.codes.size(); ++i) s += (i ? " or " : "") + e.codes[i];
  if (e.or_closed) s += s.empty() ? "closed" : " or closed";
  if (!e.enhanced.empty()) s += " " + e.enhanced;
  if (!e.regex.empty()) s += " /" + e.regex + "/";
  return s;
}

std::string printable(std::string_view s, std::size_t max) {
  std::string out;
  static const char* hex = "0123456789abcdef";
  for (char c : s.substr(0, max)) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\r') out += "\\r";
    else if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\\') out += "\\\\";
    else if (u < 32 || u >= 127) out += std::string("\\x") + hex[u >> 4] + hex[u & 15];
    else out += c;
  }
  return s.size() > max ? out + "... (" + std::to_string(s.size()) + " octets)" : out;
}

std::vector<std::string> ehlo_keywords(const std::vector<std::string>& lines) {
  std::vector<std::string> out;
  for (std::size_t i = 1; i < lines.size(); ++i) {
    std::string kw = lines[i].size() > 4 ? lines[i].substr(4) : "";
    kw = kw.substr(0, kw.find_first_of(" ="));  // "AUTH=LOGIN" is an old form of "AUTH LOGIN"
    if (!kw.empty()) out.push_back(upper(kw));
  }
  return out;
}

std::vector<std::string> ehlo_params(const std::vector<std::string>& lines, const std::string& keyword) {
  std::vector<std::string> out;
  for (std::size_t i = 1; i < lines.size(); ++i) {
    if (lines[i].size() <= 4) continue;
    std::string rest = lines[i].substr(4);
    const std::size_t sep = rest.find_first_of(" =");
    if (upper(rest.substr(0, sep)) != keyword || sep == std::string::npos) continue;
    std::istringstream words(rest.substr(sep + 1));
    for (std::string w; words >> w;) out.push_back(upper(w));
  }
  return out;
}

std::vector<std::string> header_fields(const std::string& message, const std::string& name) {
  std::vector<std::string> out;
  std::string want = upper(name), current;
  bool in_field = false;
  std::istringstream in(message);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) break;  // the end of the header section
    if (line[0] == ' ' || line[0] == '\t') {  // folded (RFC 5322 §2.2.3)
      if (in_field) current += line;
      continue;
    }
    if (in_field) out.push_back(current);
    in_field = false;
    const std::size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string field = line.substr(0, colon);
    while (!field.empty() && (field.back() == ' ' || field.back() == '\t')) field.pop_back();
    if (upper(field) != want) continue;
    in_field = true;
    current = line.substr(colon + 1);
    while (!current.empty() && (current.front() == ' ' || current.front() == '\t')) current.erase(0, 1);
  }
  if (in_field) out.push_back(current);
  return out;
}

}  // namespace refsmtp::conform::detail
