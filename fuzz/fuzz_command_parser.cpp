// Command parser: any line gives a command or an error, and a parsed command formats back to a
// line that parses to the same command.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "refsmtp/smtp/command.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace refsmtp::smtp;
  if (size == 0) return 0;
  CommandOptions opt;
  opt.address.utf8 = (data[0] & 1) != 0;
  opt.lenient_space_after_colon = (data[0] & 2) != 0;
  const std::string_view line(reinterpret_cast<const char*>(data + 1), size - 1);
  auto r = parse_command(line, opt);
  if (!r) return 0;
  auto again = parse_command(format_command(*r), opt);
  if (!again || !(*again == *r)) std::abort();
  return 0;
}
