#include "refsmtp/core/checksum.hpp"

namespace refsmtp::core {

namespace {
const char* digits(HexCase c) { return c == HexCase::upper ? "0123456789ABCDEF" : "0123456789abcdef"; }
}  // namespace

std::uint64_t fnv1a64(std::string_view data) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::string hex64(std::uint64_t v, HexCase c) {
  const char* d = digits(c);
  std::string s(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) s[static_cast<std::size_t>(i)] = d[v & 15];
  return s;
}

bool parse_hex64(std::string_view s, std::uint64_t& out, HexCase c) {
  if (s.size() != 16) return false;
  const std::string_view d = digits(c);
  std::uint64_t v = 0;
  for (char ch : s) {
    const std::size_t pos = d.find(ch);
    if (pos == std::string_view::npos) return false;
    v = v << 4 | pos;
  }
  out = v;
  return true;
}

}  // namespace refsmtp::core
