// The conformance script parser on arbitrary text (suites come from users too): never crashes,
// and a parsed script has a name, an RFC, a quote, steps with sane expectations, and at least
// one step asserting the rule, every such step a check.
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
  if (s->name.empty() || s->rfc.empty() || s->steps.empty() || s->quote.empty() || s->assertions_end() == 0) std::abort();
  if (!quote_has_keyword(s->quote, s->level, s->rfc)) std::abort();
  for (const auto& st : s->steps) {
    const bool reply = st.kind == Step::Kind::expect || st.kind == Step::Kind::expect_all;
    if (reply && st.expect.kind == Expect::Kind::reply && st.expect.codes.empty()) std::abort();
    if (st.kind == Step::Kind::expect_all && st.expect.kind != Expect::Kind::reply) std::abort();
    if (st.asserts && (st.kind == Step::Kind::send || st.kind == Step::Kind::raw || st.kind == Step::Kind::bdat)) std::abort();
  }
  return 0;
}
