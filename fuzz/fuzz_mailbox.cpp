// Address grammar: paths and mailboxes never read out of bounds, respect the §4.5.3.1 limits, and
// a parsed mailbox prints back to text that parses to the same mailbox.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "refsmtp/smtp/address.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace refsmtp::smtp;
  if (size == 0) return 0;
  AddressOptions opt;
  opt.utf8 = (data[0] & 1) != 0;
  const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);

  for (int kind = 0; kind < 3; ++kind) {
    auto r = kind == 0 ? parse_reverse_path(in, opt) : parse_forward_path(in, opt);
    if (kind == 2) {
      auto m = parse_mailbox(in, opt);
      if (!m) continue;
      if (m->consumed > in.size() || m->value.local_part.size() > opt.limits.local_part) std::abort();
      auto again = parse_mailbox_exact(m->value.to_string(), opt);
      if (!again || !(*again == m->value)) std::abort();
      continue;
    }
    if (!r) continue;
    if (r->consumed > in.size() || r->consumed > opt.limits.path) std::abort();
    if (!opt.utf8) {
      for (std::size_t i = 0; i < r->consumed; ++i) {
        if (static_cast<unsigned char>(in[i]) >= 0x80) std::abort();
      }
    }
  }
  return 0;
}
