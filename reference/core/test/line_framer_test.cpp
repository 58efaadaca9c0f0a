// The line framer alone, and fed every input split at every offset (Beast's parsegrind): the
// frames must not depend on how the bytes arrive.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "refsmtp/core/line_framer.hpp"

using refsmtp::core::LineFramer;
using Kind = LineFramer::Kind;

namespace {

// Feeds `input` in pieces cut at `cuts` (ascending offsets), as a session would: unread bytes
// stay buffered; records each frame but need_more, lines as "L:text".
std::vector<std::string> frames(const std::string& input, std::vector<std::size_t> cuts, std::size_t limit,
                                LineFramer::Options o = {}) {
  LineFramer f(o);
  std::vector<std::string> out;
  std::string buf;
  std::size_t fed = 0;
  cuts.push_back(input.size());
  for (const std::size_t cut : cuts) {
    buf += input.substr(fed, cut - fed);
    fed = cut;
    while (!buf.empty()) {
      const auto fr = f.next(buf, limit);
      const std::size_t taken = fr.consumed;
      switch (fr.kind) {
        case Kind::line: out.push_back("L:" + std::string(fr.line)); break;
        case Kind::too_long: out.emplace_back("too_long"); break;
        case Kind::bare_lf: out.emplace_back("bare_lf"); break;
        case Kind::skipped: break;
        case Kind::need_more: break;
      }
      buf.erase(0, taken);
      if (fr.kind == Kind::need_more) break;
    }
  }
  return out;
}

std::vector<std::string> whole(const std::string& input, std::size_t limit, LineFramer::Options o = {}) {
  return frames(input, {}, limit, o);
}

TEST(LineFramer, OnlyCrlfEndsALine) {
  EXPECT_EQ(whole("NOOP\r\nQUIT\r\n", 512), (std::vector<std::string>{"L:NOOP", "L:QUIT"}));
  EXPECT_EQ(whole("NOOP\nNOOP\r\n", 512), std::vector<std::string>{"bare_lf"});  // one bad line, not two
  EXPECT_EQ(whole("NOOP\r\nhalf", 512), std::vector<std::string>{"L:NOOP"});
  EXPECT_EQ(whole("A\rB\r\n", 512), std::vector<std::string>{"L:A\rB"});       // a bare CR is text here
}

TEST(LineFramer, TheLenientModeTakesABareLf) {
  EXPECT_EQ(whole("NOOP\nQUIT\r\n", 512, {true}), (std::vector<std::string>{"L:NOOP", "L:QUIT"}));
}

TEST(LineFramer, TheLimitCountsTheCrlfAndAnOverlongLineIsReportedOnce) {
  EXPECT_EQ(whole("12345678\r\n", 10), std::vector<std::string>{"L:12345678"});   // N: 10 with CRLF
  EXPECT_EQ(whole("123456789\r\n", 10), std::vector<std::string>{"too_long"});    // N+1
  EXPECT_EQ(whole("1234567\r\n", 10), std::vector<std::string>{"L:1234567"});     // N-1
  const std::string longer(100, 'x');
  EXPECT_EQ(whole(longer + "\r\nNOOP\r\n", 10), (std::vector<std::string>{"too_long", "L:NOOP"}));
}

TEST(LineFramer, FramesDoNotDependOnHowTheBytesArrive) {
  const std::vector<std::string> inputs = {
      "EHLO a\r\nNOOP\nNOOP\r\nQUIT\r\n",
      std::string(40, 'y') + "\r\nNOOP\r\n",
      "A\r\r\nB\n\r\n\r\n",
      std::string(30, 'z') + "\r" + std::string(5, 'z') + "\r\nok\r\n",
  };
  for (const auto& in : inputs) {
    const auto expected = whole(in, 16);
    for (std::size_t i = 0; i <= in.size(); ++i) {
      EXPECT_EQ(frames(in, {i}, 16), expected) << "one cut at " << i << " of " << in;
      for (std::size_t j = i; j <= in.size(); ++j) {
        ASSERT_EQ(frames(in, {i, j}, 16), expected) << "cuts at " << i << ", " << j;
      }
    }
  }
}

}  // namespace
