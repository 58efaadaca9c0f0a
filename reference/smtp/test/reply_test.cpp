// RFC 5321 §4.2 (reply format), RFC 2034 / RFC 3463 (enhanced status codes).
#include "refsmtp/smtp/reply.hpp"
#include "refsmtp/smtp/replies.hpp"

#include <gtest/gtest.h>

#include <set>

using namespace refsmtp::smtp;

namespace {

std::vector<ReplyReader::Item> read_all(std::string_view in, std::vector<std::size_t> cuts = {}) {
  ReplyReader r;
  std::vector<ReplyReader::Item> out;
  cuts.push_back(in.size());
  std::size_t pos = 0;
  for (std::size_t c : cuts) {
    r.feed(in.substr(pos, c - pos));
    pos = c;
    while (auto item = r.next()) out.push_back(*item);
  }
  return out;
}

bool same(const std::vector<ReplyReader::Item>& a, const std::vector<ReplyReader::Item>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].reply != b[i].reply || a[i].error != b[i].error || a[i].bare_lf != b[i].bare_lf ||
        a[i].inconsistent_codes != b[i].inconsistent_codes) {
      return false;
    }
  }
  return true;
}

// Reads whole and split at every offset; all must agree.
std::vector<ReplyReader::Item> grind(std::string_view in) {
  auto whole = read_all(in);
  for (std::size_t i = 0; i <= in.size(); ++i) EXPECT_TRUE(same(read_all(in, {i}), whole)) << "split at " << i;
  return whole;
}

}  // namespace

TEST(Reply, FormatSingleAndMultiLine) {
  EXPECT_EQ(make_reply(250, 2, 1, 0, "Sender OK").format(), "250 2.1.0 Sender OK\r\n");
  Reply ehlo{250, std::nullopt, {"mx.test Hello", "PIPELINING", "8BITMIME"}};
  EXPECT_EQ(ehlo.format(), "250-mx.test Hello\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
  Reply help = make_reply(214, 2, 0, 0, "one");
  help.lines.emplace_back("two");
  EXPECT_EQ(help.format(), "214-2.0.0 one\r\n214 2.0.0 two\r\n");  // RFC 2034 §4: every line
  EXPECT_EQ((Reply{354, std::nullopt, {}}).format(), "354 \r\n");
}

TEST(Reply, FormatNeutralisesControlCharacters) {
  EXPECT_EQ(make_reply(550, 5, 1, 1, "bad\r\n250 injected").format(), "550 5.1.1 bad??250 injected\r\n");
}

TEST(EnhancedStatus, Parse) {  // RFC 3463 §2
  EXPECT_EQ(EnhancedStatus::parse("2.1.0"), (EnhancedStatus{2, 1, 0}));
  EXPECT_EQ(EnhancedStatus::parse("5.7.11"), (EnhancedStatus{5, 7, 11}));
  EXPECT_EQ(EnhancedStatus::parse("4.999.999"), (EnhancedStatus{4, 999, 999}));
  EXPECT_FALSE(EnhancedStatus::parse("3.1.0"));
  EXPECT_FALSE(EnhancedStatus::parse("2.1"));
  EXPECT_FALSE(EnhancedStatus::parse("2.1.0.1"));
  EXPECT_FALSE(EnhancedStatus::parse("2.1000.0"));
  EXPECT_FALSE(EnhancedStatus::parse("2..0"));
}

TEST(ReplyReader, SingleAndMultiLine) {
  auto items = grind("220 mx.test ESMTP\r\n250-mx.test\r\n250-SIZE 100\r\n250 8BITMIME\r\n");
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].reply->code, 220);
  EXPECT_EQ(items[0].reply->lines, std::vector<std::string>{"mx.test ESMTP"});
  EXPECT_EQ(items[1].reply->lines, (std::vector<std::string>{"mx.test", "SIZE 100", "8BITMIME"}));
  EXPECT_FALSE(items[1].reply->enhanced);
}

TEST(ReplyReader, EnhancedStatusStripped) {
  auto items = grind("550-5.1.1 no such\r\n550 5.1.1 user\r\n");
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].reply->enhanced, (EnhancedStatus{5, 1, 1}));
  EXPECT_EQ(items[0].reply->lines, (std::vector<std::string>{"no such", "user"}));
  // A status whose class disagrees with the code is left as text.
  auto odd = grind("250 5.1.1 odd\r\n");
  EXPECT_FALSE(odd[0].reply->enhanced);
  EXPECT_EQ(odd[0].reply->lines[0], "5.1.1 odd");
}

TEST(ReplyReader, ToleratesWhatServersSend) {
  auto items = grind("250\r\n250 \r\n220 bare lf\n");
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0].reply->code, 250);
  EXPECT_EQ(items[0].reply->lines, std::vector<std::string>{""});
  EXPECT_TRUE(items[2].bare_lf);
  EXPECT_FALSE(items[0].bare_lf);
  auto mixed = grind("250-a\r\n251 b\r\n");
  ASSERT_EQ(mixed.size(), 1u);
  EXPECT_TRUE(mixed[0].inconsistent_codes);
  EXPECT_EQ(mixed[0].reply->code, 250);
}

TEST(ReplyReader, MalformedLinesAreErrorsAndReadingGoesOn) {
  auto items = grind("hello\r\n2500 x\r\n600 x\r\n25\r\n250 ok\r\n");
  ASSERT_EQ(items.size(), 5u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(items[static_cast<std::size_t>(i)].error, ReplyReader::ErrorKind::malformed_line) << i;
  EXPECT_EQ(items[4].reply->code, 250);
}

TEST(ReplyReader, LimitsAreEnforced) {
  ReplyReader r(ReplyReader::Options{16, 3});
  r.feed(std::string(40, 'x'));
  auto e = r.next();
  ASSERT_TRUE(e && e->error);
  EXPECT_EQ(*e->error, ReplyReader::ErrorKind::line_too_long);
  r.feed("yyy\r\n250 ok\r\n");
  auto ok = r.next();
  ASSERT_TRUE(ok && ok->reply);
  EXPECT_EQ(ok->reply->code, 250);
  EXPECT_LE(r.buffered(), 16u);

  r.feed("250-a\r\n250-b\r\n250-c\r\n250 d\r\n");
  auto many = r.next();
  ASSERT_TRUE(many && many->error);
  EXPECT_EQ(*many->error, ReplyReader::ErrorKind::too_many_lines);
}

TEST(ReplyReader, LineAtTheLimitAcceptedInAnyChunking) {
  ReplyReader::Options opt{16, 10};
  const std::string line = "250 " + std::string(12, 'x');  // exactly 16 octets before CRLF
  for (std::size_t cut = 0; cut <= line.size() + 2; ++cut) {
    ReplyReader r(opt);
    const std::string wire = line + "\r\n";
    r.feed(wire.substr(0, cut));
    auto first = r.next();
    r.feed(wire.substr(cut));
    auto item = first ? first : r.next();
    ASSERT_TRUE(item && item->reply) << cut;
  }
}

TEST(ReplyReader, RoundTripsFormattedReplies) {
  Reply a = make_reply(451, 4, 3, 0, "try later");
  Reply b{250, std::nullopt, {"host", "PIPELINING"}};
  auto items = grind(a.format() + b.format());
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(*items[0].reply, a);
  EXPECT_EQ(*items[1].reply, b);
}

// The reply catalogue: every reply cites its RFC section, its enhanced status agrees with its
// code's class (RFC 3463 §2), and only 5yz replies to a bad command count as client errors.
TEST(ReplyCatalogue, EveryReplyCitesItsSectionAndIsConsistent) {
  std::set<const refsmtp::smtp::NamedReply*> seen;
  for (const auto* r : refsmtp::smtp::replies::all) {
    EXPECT_TRUE(seen.insert(r).second) << r->text << " listed twice";
    EXPECT_TRUE(r->section.starts_with("RFC ")) << r->text << ": " << r->section;
    EXPECT_NE(r->section.find("§"), std::string_view::npos) << r->text;
    EXPECT_FALSE(r->text.empty());
    EXPECT_GE(r->code, 200);
    EXPECT_LT(r->code, 600);
    if (r->has_status()) {
      EXPECT_EQ(r->status.klass, r->code / 100) << r->text;
    } else {
      EXPECT_EQ(r->code / 100, 3) << r->text << ": only intermediate replies go without a status";
    }
    if (r->client_error) {
      EXPECT_EQ(r->code / 100, 5) << r->text;
    }
  }
}

TEST(ReplyCatalogue, DetailAndHostNameAreAddedToTheText) {
  const auto r = refsmtp::smtp::replies::syntax_error.to_reply("bad address");
  EXPECT_EQ(r.format(), "501 5.5.4 Syntax error: bad address\r\n");
  EXPECT_EQ(refsmtp::smtp::replies::bye.with_host("mx.test").format(), "221 2.0.0 mx.test Bye\r\n");
  EXPECT_EQ(refsmtp::smtp::replies::start_data.to_reply().format(), "354 End data with <CR><LF>.<CR><LF>\r\n");
}
