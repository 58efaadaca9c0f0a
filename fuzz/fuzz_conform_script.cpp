// The conformance script parser on arbitrary text (suites come from users too): never crashes,
// and a parsed script has a name, an RFC and steps with sane expectations.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "refsmtp/conform/script.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace refsmtp::conform;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  ParseError error;
  auto s = parse_script(text, "fuzz.smtp", error);
  if (!s) {
    if (error.message.empty()) std::abort();
    return 0;
  }
  if (s->name.empty() || s->rfc.empty() || s->steps.empty()) std::abort();
  for (const auto& st : s->steps) {
    if (st.kind == Step::Kind::expect && st.expect.kind == Expect::Kind::reply && st.expect.codes.empty()) std::abort();
  }
  return 0;
}
