// Properties of the DATA codec and base64.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>

#include "refsmtp/core/base64.hpp"
#include "refsmtp/smtp/dot_codec.hpp"

using namespace refsmtp::smtp;
using refsmtp::core::base64_decode;
using refsmtp::core::base64_encode;

namespace {

// Lines without CR or LF, biased towards dots and short lines where the edge cases live.
rc::Gen<std::string> gen_line() {
  return rc::gen::container<std::string>(
      rc::gen::weightedOneOf<char>({{4, rc::gen::just('.')}, {1, rc::gen::just(' ')},
                                    {8, rc::gen::inRange<char>('a', 'z')},
                                    {1, rc::gen::suchThat(rc::gen::arbitrary<char>(), [](char c) { return c != '\r' && c != '\n'; })}}));
}

std::string decode_all(std::string_view in, const std::vector<std::size_t>& cuts, bool& done, std::size_t& consumed) {
  DataDecoder d;
  std::string out;
  std::size_t pos = 0;
  done = false;
  consumed = 0;
  std::vector<std::size_t> points = cuts;
  points.push_back(in.size());
  std::sort(points.begin(), points.end());
  for (std::size_t p : points) {
    if (done || p < pos) continue;
    auto r = d.decode(in.substr(pos, p - pos), out);
    pos += r.consumed;
    consumed += r.consumed;
    done = r.done;
  }
  return out;
}

}  // namespace

RC_GTEST_PROP(DotCodec, StuffThenDecodeIsIdentity, ()) {
  const auto lines = *rc::gen::container<std::vector<std::string>>(gen_line());
  std::string body;
  for (const auto& l : lines) body += l + "\r\n";
  const std::string wire = dot_stuff(body) + "TRAILING";
  const auto cuts = *rc::gen::container<std::vector<std::size_t>>(rc::gen::inRange<std::size_t>(0, wire.size() + 1));
  bool done = false;
  std::size_t consumed = 0;
  RC_ASSERT(decode_all(wire, cuts, done, consumed) == body);
  RC_ASSERT(done);
  RC_ASSERT(consumed == wire.size() - 8);
}

RC_GTEST_PROP(DotCodec, ChunkingNeverChangesTheResult, (const std::string& raw)) {
  // Any bytes at all, made likelier to contain the interesting ones.
  std::string in = raw;
  for (std::size_t i = 0; i < in.size(); i += 3) {
    const char specials[] = {'\r', '\n', '.'};
    in[i] = specials[static_cast<unsigned char>(in[i]) % 3];
  }
  const auto cuts = *rc::gen::container<std::vector<std::size_t>>(rc::gen::inRange<std::size_t>(0, in.size() + 1));
  bool d1 = false, d2 = false;
  std::size_t c1 = 0, c2 = 0;
  const std::string whole = decode_all(in, {}, d1, c1);
  const std::string split = decode_all(in, cuts, d2, c2);
  RC_ASSERT(whole == split);
  RC_ASSERT(d1 == d2);
  RC_ASSERT(c1 == c2);
}

RC_GTEST_PROP(DotCodec, EndOfDataOnlyAtCrlfDotCrlf, (const std::string& raw)) {
  // If the decoder reports done, the consumed input ends in CRLF.CRLF (or is exactly ".\r\n").
  std::string in = raw;
  for (std::size_t i = 0; i < in.size(); i += 2) {
    const char specials[] = {'\r', '\n', '.'};
    in[i] = specials[static_cast<unsigned char>(in[i]) % 3];
  }
  bool done = false;
  std::size_t consumed = 0;
  decode_all(in, {}, done, consumed);
  if (done) {
    const std::string_view used(in.data(), consumed);
    RC_ASSERT(used == ".\r\n" || used.ends_with("\r\n.\r\n"));
  }
}

RC_GTEST_PROP(Base64, RoundTrip, (const std::string& s)) {
  const auto decoded = base64_decode(base64_encode(s));
  RC_ASSERT(decoded.has_value());
  RC_ASSERT(*decoded == s);
}
