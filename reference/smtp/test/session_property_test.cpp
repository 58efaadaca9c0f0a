// Chunking invariance: any split of the same input bytes gives the same transcript.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>

#include "session_driver.hpp"

using namespace refsmtp::smtp;
using namespace refsmtp::smtp::testing;

namespace {

// Pieces of dialog, valid and not, including DATA bodies and BDAT chunks whose framing depends
// on every byte being counted the same way however it arrives. STARTTLS is left out on purpose:
// what arrives after it in the same read is discarded (RFC 3207 §4.2), so its transcript depends
// on the split by design; Starttls.* unit tests pin that.
const std::vector<std::string> kPieces = {
    "EHLO client.test\r\n", "HELO client.test\r\n", "MAIL FROM:<a@b.test>\r\n", "MAIL FROM:<>\r\n",
    "RCPT TO:<x@mx.test>\r\n", "RCPT TO:<Postmaster>\r\n", "DATA\r\n", "line\r\n", "..dot\r\n",
    ".\r\n", "bare\nlf\r\n", "RSET\r\n", "NOOP\r\n", "VRFY x\r\n", "HELP\r\n", "FOO\r\n",
    "MAIL FROM:bad\r\n", "BDAT 3\r\nabc", "BDAT 0 LAST\r\n", "BDAT 4 LAST\r\n\r\n.\r\n",
    "AUTH PLAIN AHUAcA==\r\n", "AUTH LOGIN\r\n", "dXNlcg==\r\n", "*\r\n",
    "NOOP\n", "\r\n", std::string(600, 'L') + "\r\n", "QUIT\r\n"};

Transcript run(const std::string& input, const std::vector<std::size_t>& cuts) {
  Driver d;
  std::size_t pos = 0;
  for (std::size_t c : cuts) {
    if (c < pos) continue;
    d.feed(std::string_view(input).substr(pos, c - pos));
    pos = c;
  }
  d.feed(std::string_view(input).substr(pos));
  return d.t;
}

}  // namespace

RC_GTEST_PROP(SessionChunking, AnySplitGivesTheSameTranscript, ()) {
  const auto picks = *rc::gen::container<std::vector<std::size_t>>(rc::gen::inRange<std::size_t>(0, kPieces.size()));
  std::string input;
  for (std::size_t i : picks) input += kPieces[i];
  auto cuts = *rc::gen::container<std::vector<std::size_t>>(rc::gen::inRange<std::size_t>(0, input.size() + 1));
  std::sort(cuts.begin(), cuts.end());
  const Transcript whole = run(input, {});
  const Transcript split = run(input, cuts);
  RC_ASSERT(whole == split);
}

RC_GTEST_PROP(SessionChunking, ByteAtATimeGivesTheSameTranscript, ()) {
  const auto picks = *rc::gen::resize(12, rc::gen::container<std::vector<std::size_t>>(rc::gen::inRange<std::size_t>(0, kPieces.size())));
  std::string input;
  for (std::size_t i : picks) input += kPieces[i];
  std::vector<std::size_t> cuts(input.size());
  for (std::size_t i = 0; i < cuts.size(); ++i) cuts[i] = i;
  RC_ASSERT(run(input, {}) == run(input, cuts));
}
// Found by AnySplitGivesTheSameTranscript: an overlong line cut between its CR and LF made the
// skipping swallow the next command too.
TEST(SessionChunking, OverlongLineSplitBetweenCrAndLf) {
  const std::string input = "EHLO client.test\r\n" + std::string(600, 'L') + "\r\nMAIL FROM:bad\r\nNOOP\r\n";
  const std::size_t cr = input.find('\r', 20);
  EXPECT_EQ(run(input, {}), run(input, {cr + 1}));
  EXPECT_EQ(run(input, {}), run(input, {cr - 300, cr + 1}));
  EXPECT_NE(run(input, {cr + 1}).output.find("501 "), std::string::npos);  // MAIL FROM:bad was read
}
