#include <gtest/gtest.h>

#include "refsmtp/core/checksum.hpp"
#include "refsmtp/mailstore/uid_index.hpp"

using namespace refsmtp::mailstore;

namespace {

UidList sample() {
  UidList l;
  l.uidvalidity = 1764892800;
  l.next_uid = 4;
  l.entries = {{1, 120, 1764892800000, "1764892800.M1P2.host"}, {3, 4096, 1764892801000, "1764892801.M2P2.host"}};
  return l;
}

std::size_t error_line(std::string_view text) {
  const auto r = parse_uidlist(text);
  EXPECT_FALSE(r.ok()) << text;
  return r.ok() ? 999 : r.error().line;
}

// Re-stamps the end line (count and FNV-1a 64, as serialize() computes them) so that a
// deliberately wrong body still passes the checksum: the test is then about the rule, not the hash.
std::string with_end(const std::string& body, std::size_t entries) {
  return body + "end " + std::to_string(entries) + " " + refsmtp::core::hex64(refsmtp::core::fnv1a64(body)) + "\n";
}

}  // namespace

TEST(UidIndex, RoundTrip) {
  const UidList l = sample();
  const std::string text = serialize(l);
  EXPECT_TRUE(text.starts_with("refsmtp-uidlist 1 1764892800 4\n1 120 1764892800000 1764892800.M1P2.host\n"));
  const auto back = parse_uidlist(text);
  ASSERT_TRUE(back.ok()) << back.error().what;
  EXPECT_EQ(*back, l);
  const auto empty = parse_uidlist(serialize(UidList{7, 1, {}}));
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->uidvalidity, 7u);
}

TEST(UidIndex, DamageIsFoundWithItsLine) {
  const std::string text = serialize(sample());
  // Every truncation and every flipped byte is noticed.
  for (std::size_t n = 0; n < text.size(); ++n) EXPECT_FALSE(parse_uidlist(text.substr(0, n)).ok()) << n;
  for (std::size_t i = 0; i < text.size(); ++i) {
    std::string bad = text;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    EXPECT_FALSE(parse_uidlist(bad).ok()) << i;
  }
  // The rules, each on its line (with a valid checksum, so the rule is what fails).
  EXPECT_EQ(error_line(with_end("refsmtp-uidlist 2 1 4\n", 0)), 1u);
  EXPECT_EQ(error_line(with_end("refsmtp-uidlist 1 0 4\n", 0)), 1u);  // UIDVALIDITY is nonzero
  EXPECT_EQ(error_line(with_end("refsmtp-uidlist 1 9 4\n2 1 0 a\n1 1 0 b\n", 2)), 3u);  // not ascending
  EXPECT_EQ(error_line(with_end("refsmtp-uidlist 1 9 4\n4 1 0 a\n", 1)), 2u);           // not below next
  EXPECT_EQ(error_line(with_end("refsmtp-uidlist 1 9 4\n1 1 0 a\n2 1 0 a\n", 2)), 3u);  // key twice
  EXPECT_EQ(error_line(with_end("refsmtp-uidlist 1 9 4\n1 1 0 a:2,S\n", 1)), 2u);       // info in the key
  EXPECT_EQ(error_line(with_end("refsmtp-uidlist 1 9 4\n01 1 0 a\n", 1)), 2u);          // one spelling
  EXPECT_EQ(error_line(with_end("refsmtp-uidlist 1 9 4\n1 1 0 a\n", 2)), 3u);           // count
}

TEST(UidIndex, UpdateKeepsUidsDropsTheGoneAndNumbersArrivals) {
  const UidList l = sample();
  const auto next = update(l, {"1764892801.M2P2.host"}, {{"new1", 10, 5}, {"new2", 20, 6}});
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->uidvalidity, l.uidvalidity);
  ASSERT_EQ(next->entries.size(), 3u);
  EXPECT_EQ(next->entries[0].uid, 3u);  // kept its UID
  EXPECT_EQ(next->entries[1].uid, 4u);  // arrivals from next_uid on, in order
  EXPECT_EQ(next->entries[2].uid, 5u);
  EXPECT_EQ(next->next_uid, 6u);
  // Expunging the highest UID does not give it back (RFC 9051 §2.3.1.1).
  const auto after = update(*next, {"1764892801.M2P2.host", "new1"}, {{"new3", 1, 7}});
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->entries.back().uid, 6u);
}

TEST(UidIndex, UpdateRefusesWhatItCannotHold) {
  const UidList l = sample();
  EXPECT_EQ(update(l, {}, {{"bad key", 1, 1}}).error(), UpdateError::invalid_key);
  EXPECT_EQ(update(l, {"1764892800.M1P2.host"}, {{"1764892800.M1P2.host", 1, 1}}).error(), UpdateError::duplicate_key);
  EXPECT_EQ(update(l, {}, {{"x", 1, 1}, {"x", 1, 1}}).error(), UpdateError::duplicate_key);
  UidList full{5, 0xFFFFFFFFu, {}};
  EXPECT_EQ(update(full, {}, {{"x", 1, 1}}).error(), UpdateError::uids_exhausted);
  EXPECT_TRUE(update(full, {}, {}).ok());  // nothing to number: fine
}

TEST(UidIndex, KeysAreMaildirBaseNames) {
  EXPECT_TRUE(valid_key("1764892800.M1P2Q3.mx.example.test"));
  EXPECT_FALSE(valid_key(""));
  EXPECT_FALSE(valid_key(".hidden"));
  EXPECT_FALSE(valid_key("a/b"));
  EXPECT_FALSE(valid_key("a:2,S"));
  EXPECT_FALSE(valid_key("a b"));
  EXPECT_FALSE(valid_key("caf\xC3\xA9"));
  EXPECT_FALSE(valid_key(std::string(256, 'a')));
}
