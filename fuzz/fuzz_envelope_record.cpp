// Spool envelope parser on untrusted bytes (recovery reads whatever is on disk): it never
// crashes, and whatever parses is canonical -- serialising it gives back the same bytes.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "refsmtp/queue/envelope_record.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace refsmtp::queue;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const RecordResult r = parse_envelope(text);
  if (r.envelope.has_value() == r.error.has_value()) std::abort();
  if (r.envelope && serialize(*r.envelope) != text) std::abort();
  return 0;
}
