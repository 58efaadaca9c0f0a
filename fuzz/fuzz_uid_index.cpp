// The mail store's UID index on untrusted bytes (it is read back from disk): it never crashes,
// whatever parses keeps the UID rules, and it is canonical -- serialising it gives back the same
// bytes.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "refsmtp/mailstore/uid_index.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace refsmtp::mailstore;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto r = parse_uidlist(text);
  if (!r.ok()) return 0;
  if (serialize(*r) != text) std::abort();
  std::uint32_t prev = 0;
  for (const auto& e : r->entries) {
    if (e.uid <= prev || e.uid >= r->next_uid || !valid_key(e.key)) std::abort();
    prev = e.uid;
  }
  return 0;
}
