#include "refsmtp/mailstore/uid_index.hpp"

#include <charconv>

#include "refsmtp/core/checksum.hpp"

namespace refsmtp::mailstore {

namespace {

using core::fnv1a64;
using core::hex64;
using core::parse_hex64;

constexpr std::string_view kMagic = "refsmtp-uidlist 1";

template <class T>
bool parse_number(std::string_view s, T& out) {
  if (s.empty() || s.size() > 20 || s.front() == '-' || s.front() == '+') return false;
  if (s.size() > 1 && s.front() == '0') return false;  // one spelling per number
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

bool parse_signed(std::string_view s, std::int64_t& out) {
  if (s.empty() || s.size() > 20 || s.front() == '+') return false;
  if (s.size() > 1 && (s.front() == '0' || s.starts_with("-0"))) return false;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

std::vector<std::string_view> fields(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t pos = 0;
  while (pos <= line.size()) {
    const std::size_t sp = line.find(' ', pos);
    out.push_back(line.substr(pos, sp == std::string_view::npos ? std::string_view::npos : sp - pos));
    if (sp == std::string_view::npos) break;
    pos = sp + 1;
  }
  return out;
}

}  // namespace

bool valid_key(std::string_view key) {
  if (key.empty() || key.size() > 255 || key.front() == '.') return false;
  for (unsigned char c : key) {
    if (c <= ' ' || c >= 127 || c == '/' || c == ':') return false;
  }
  return true;
}

std::string serialize(const UidList& list) {
  std::string s(kMagic);
  s += " " + std::to_string(list.uidvalidity) + " " + std::to_string(list.next_uid) + "\n";
  for (const auto& e : list.entries) {
    s += std::to_string(e.uid) + " " + std::to_string(e.size) + " " + std::to_string(e.internal_ms) + " " + e.key + "\n";
  }
  const std::uint64_t hash = fnv1a64(s);
  s += "end " + std::to_string(list.entries.size()) + " " + hex64(hash) + "\n";
  return s;
}

core::Result<UidList, UidListError> parse_uidlist(std::string_view text) {
  using core::Unexpected;
  auto fail = [](std::size_t line, std::string what) { return Unexpected{UidListError{line, std::move(what)}}; };
  if (text.empty() || text.back() != '\n') return fail(0, "truncated: no final line end");
  std::vector<std::string_view> lines;
  std::vector<std::size_t> starts;
  for (std::size_t pos = 0; pos < text.size();) {
    const std::size_t lf = text.find('\n', pos);
    starts.push_back(pos);
    lines.push_back(text.substr(pos, lf - pos));
    pos = lf + 1;
  }
  if (lines.size() < 2) return fail(0, "truncated: no end line");
  UidList list;
  const auto head = fields(lines[0]);
  if (head.size() != 4 || std::string(head[0]) + " " + std::string(head[1]) != kMagic) {
    return fail(1, "not a refsmtp-uidlist 1 header");
  }
  if (!parse_number(head[2], list.uidvalidity) || list.uidvalidity == 0) return fail(1, "bad UIDVALIDITY");
  if (!parse_number(head[3], list.next_uid) || list.next_uid == 0) return fail(1, "bad next UID");
  const std::size_t last = lines.size() - 1;
  const auto end = fields(lines[last]);
  std::size_t count = 0;
  std::uint64_t hash = 0;
  if (end.size() != 3 || end[0] != "end" || !parse_number(end[1], count) || !parse_hex64(end[2], hash)) {
    return fail(last + 1, "truncated or damaged: no end line");
  }
  if (fnv1a64(text.substr(0, starts[last])) != hash) return fail(last + 1, "checksum mismatch: the file is damaged");
  if (count != last - 1) return fail(last + 1, "entry count mismatch");
  std::set<std::string_view> keys;
  for (std::size_t i = 1; i < last; ++i) {
    const auto f = fields(lines[i]);
    UidEntry e;
    if (f.size() != 4 || !parse_number(f[0], e.uid) || e.uid == 0 || !parse_number(f[1], e.size) ||
        !parse_signed(f[2], e.internal_ms) || !valid_key(f[3])) {
      return fail(i + 1, "bad entry: expected UID SIZE INTERNALDATE KEY");
    }
    if (!list.entries.empty() && e.uid <= list.entries.back().uid) return fail(i + 1, "UIDs not strictly ascending");
    if (e.uid >= list.next_uid) return fail(i + 1, "UID not below the next UID");
    if (!keys.insert(f[3]).second) return fail(i + 1, "key listed twice");
    e.key = std::string(f[3]);
    list.entries.push_back(std::move(e));
  }
  return list;
}

core::Result<UidList, UpdateError> update(const UidList& list, const std::set<std::string>& present,
                                          const std::vector<Arrival>& arrivals) {
  using core::Unexpected;
  UidList out;
  out.uidvalidity = list.uidvalidity;
  out.next_uid = list.next_uid;
  std::set<std::string> indexed;
  for (const auto& e : list.entries) {
    if (!present.count(e.key)) continue;  // expunged
    out.entries.push_back(e);
    indexed.insert(e.key);
  }
  for (const auto& a : arrivals) {
    if (!valid_key(a.key)) return Unexpected{UpdateError::invalid_key};
    if (!indexed.insert(a.key).second) return Unexpected{UpdateError::duplicate_key};
    if (out.next_uid == 0xFFFFFFFFu) return Unexpected{UpdateError::uids_exhausted};  // UIDs are 32-bit, nonzero
    out.entries.push_back(UidEntry{out.next_uid++, a.size, a.internal_ms, a.key});
  }
  return out;
}

}  // namespace refsmtp::mailstore
