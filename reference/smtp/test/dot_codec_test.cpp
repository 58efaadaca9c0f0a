// RFC 5321 §4.5.2 (transparency), §4.1.1.4 (end of data), §2.3.8 (bare CR/LF), §4.5.3.1.6.
// Every decoder case is run with the input split at every offset (Beast's parsegrind).
#include "refsmtp/smtp/dot_codec.hpp"

#include <gtest/gtest.h>

using namespace refsmtp::smtp;

namespace {

struct Decoded {
  std::string body;
  std::size_t consumed = 0;
  bool done = false;
  bool bare_lf = false, bare_cr = false, too_long = false, too_large = false;
  bool operator==(const Decoded&) const = default;
};

Decoded decode_split(std::string_view in, std::vector<std::size_t> cuts, DataDecoder::Options opt = {}) {
  DataDecoder d(opt);
  Decoded out;
  cuts.push_back(in.size());
  std::size_t pos = 0;
  for (std::size_t cut : cuts) {
    if (cut < pos || out.done) continue;
    const auto p = d.decode(in.substr(pos, cut - pos), out.body);
    out.consumed += p.consumed;
    pos += p.consumed;
    if (p.done) out.done = true;
  }
  out.bare_lf = d.bare_lf();
  out.bare_cr = d.bare_cr();
  out.too_long = d.line_too_long();
  out.too_large = d.too_large();
  return out;
}

// Decodes whole, then at every single split point and every pair of split points for short
// inputs, and checks every run agrees.
Decoded grind(std::string_view in, DataDecoder::Options opt = {}) {
  const Decoded whole = decode_split(in, {}, opt);
  for (std::size_t i = 0; i <= in.size(); ++i) {
    EXPECT_EQ(decode_split(in, {i}, opt), whole) << "split at " << i;
    if (in.size() <= 24) {
      for (std::size_t j = i; j <= in.size(); ++j) {
        EXPECT_EQ(decode_split(in, {i, j}, opt), whole) << "split at " << i << "," << j;
      }
    }
  }
  // Byte at a time.
  std::vector<std::size_t> every;
  for (std::size_t i = 1; i < in.size(); ++i) every.push_back(i);
  EXPECT_EQ(decode_split(in, every, opt), whole) << "byte at a time";
  return whole;
}

}  // namespace

TEST(DataDecoder, EmptyMessage) {
  auto r = grind(".\r\n");
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.body, "");
  EXPECT_EQ(r.consumed, 3u);
}

TEST(DataDecoder, PlainLinesAndTerminator) {  // §4.1.1.4
  auto r = grind("Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n");
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.body, "Subject: x\r\n\r\nhello\r\n");
  EXPECT_EQ(r.consumed, 24u);  // stops right after the terminator
  EXPECT_FALSE(r.bare_lf || r.bare_cr || r.too_long);
}

TEST(DataDecoder, DotUnstuffing) {  // §4.5.2
  auto r = grind("..leading\r\n...\r\n. \r\n.x\r\n.\r\n");
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.body, ".leading\r\n..\r\n \r\nx\r\n");
}

TEST(DataDecoder, DotInsideALineIsData) {
  auto r = grind("a.\r\nb\r\n.c.\r\n.\r\n");
  EXPECT_EQ(r.body, "a.\r\nb\r\nc.\r\n");
}

TEST(DataDecoder, NotDoneWithoutTerminator) {
  auto r = grind("line\r\n.");
  EXPECT_FALSE(r.done);
  EXPECT_EQ(r.body, "line\r\n");
  r = grind("line\r\n.\r");
  EXPECT_FALSE(r.done);
  EXPECT_EQ(r.body, "line\r\n");
}

// The smuggling variants from the 2023 research: none of them ends the data, and each is
// reported so the strict session refuses the message (CVE-2023-51764..51766).
TEST(DataDecoder, SmugglingVariantsNeverEndData) {
  const char* variants[] = {"\n.\n", "\n.\r\n", "\r\n.\n", "\r.\r", "\r\n.\r", "\n.\r", "\r.\r\n", "\r.\n"};
  for (const char* v : variants) {
    const std::string in = std::string("body") + v + "MAIL FROM:<x@y.test>\r\n";
    auto r = grind(in);
    EXPECT_FALSE(r.done) << "variant ended data";
    EXPECT_TRUE(r.bare_lf || r.bare_cr) << "variant not flagged";
    const std::string full = in + ".\r\n";
    auto f = grind(full);
    EXPECT_TRUE(f.done);
    EXPECT_EQ(f.consumed, full.size());
  }
}

TEST(DataDecoder, BareLfAndBareCrAreReported) {  // §2.3.8
  EXPECT_TRUE(grind("a\nb\r\n.\r\n").bare_lf);
  EXPECT_TRUE(grind("a\rb\r\n.\r\n").bare_cr);
  EXPECT_TRUE(grind("a\r\r\n.\r\n").bare_cr);
  EXPECT_TRUE(grind(".\rx\r\n.\r\n").bare_cr);
  auto clean = grind("a\r\nb\r\n.\r\n");
  EXPECT_FALSE(clean.bare_lf || clean.bare_cr);
}

TEST(DataDecoder, LineLengthLimitAt999_1000_1001) {  // §4.5.3.1.6: 1000 including CRLF
  for (std::size_t total : {999u, 1000u, 1001u}) {
    const std::string line(total - 2, 'x');
    DataDecoder d;
    std::string body;
    const std::string in = line + "\r\n.\r\n";
    auto p = d.decode(in, body);
    EXPECT_TRUE(p.done);
    EXPECT_EQ(d.line_too_long(), total > 1000) << total;
  }
  // The stuffing dot does not count.
  DataDecoder d;
  std::string body;
  d.decode("." + std::string(998, '.') + "\r\n.\r\n", body);
  EXPECT_FALSE(d.line_too_long());
}

TEST(DataDecoder, LineLengthAcrossChunks) {
  auto r = grind(std::string(30, 'x') + "\r\n.\r\n", DataDecoder::Options{20, 0});
  EXPECT_TRUE(r.too_long);
  EXPECT_TRUE(r.done);
}

TEST(DataDecoder, SizeLimitReadsToTheEnd) {  // RFC 1870 §6.3
  auto r = grind("0123456789\r\nabc\r\n.\r\nNEXT", DataDecoder::Options{1000, 12});
  EXPECT_TRUE(r.done);
  EXPECT_TRUE(r.too_large);
  EXPECT_EQ(r.consumed, 20u);
  auto ok = grind("0123456789\r\n.\r\n", DataDecoder::Options{1000, 12});
  EXPECT_FALSE(ok.too_large);
  EXPECT_EQ(ok.body.size(), 12u);
}

TEST(DotStuff, AddsDotsAndTerminator) {
  EXPECT_EQ(dot_stuff(""), ".\r\n");
  EXPECT_EQ(dot_stuff("a\r\n"), "a\r\n.\r\n");
  EXPECT_EQ(dot_stuff(".a\r\n.\r\n"), "..a\r\n..\r\n.\r\n");
  EXPECT_EQ(dot_stuff("no newline"), "no newline\r\n.\r\n");
  EXPECT_EQ(dot_stuff("a\n.b"), "a\n..b\r\n.\r\n");  // over-stuffed after a bare LF
  EXPECT_EQ(dot_stuff("a\r.\r\nb"), "a\r..\r\nb\r\n.\r\n");  // and after a bare CR
}
