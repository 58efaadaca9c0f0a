// Reply reader on untrusted server output, fed in fuzzer-chosen chunks: bounded memory, every
// reply has a code in 200..599, and formatting a reply then reading it gives the same reply.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "refsmtp/smtp/reply.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace refsmtp::smtp;
  if (size == 0) return 0;
  const std::size_t chunk = 1 + data[0] % 64;
  const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  ReplyReader::Options opt;
  opt.max_line = 512;
  opt.max_lines = 50;
  ReplyReader reader(opt);
  for (std::size_t pos = 0; pos < in.size(); pos += chunk) {
    reader.feed(in.substr(pos, chunk));
    while (auto item = reader.next()) {
      if (item->reply) {
        const Reply& r = *item->reply;
        if (r.code < 200 || r.code > 599 || r.lines.empty() || r.lines.size() > opt.max_lines) std::abort();
        ReplyReader check;
        check.feed(r.format());
        auto back = check.next();
        if (!back || !back->reply || back->reply->code != r.code || back->reply->lines.size() != r.lines.size()) std::abort();
      }
    }
    if (reader.buffered() > opt.max_line + chunk + 2) std::abort();
  }
  return 0;
}
