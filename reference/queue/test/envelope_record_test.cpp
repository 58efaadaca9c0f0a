// The envelope record format: canonical escaping, checksummed, and closed to injection.
#include <gtest/gtest.h>


#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "refsmtp/queue/envelope_record.hpp"

using refsmtp::smtp::make_path;

using namespace refsmtp::queue;
using refsmtp::smtp::Mailbox;
using refsmtp::smtp::Path;

namespace {


StoredEnvelope sample() {
  StoredEnvelope e;
  e.id = "0192AB34CD56000001";
  e.arrival_ms = 1'795'000'000'000;
  e.helo = "client.example";
  e.client_address = "192.0.2.7";
  e.reverse_path = make_path("alice", "example.com");
  e.size = 1234;
  e.body_type = refsmtp::smtp::BodyType::eight_bit_mime;
  e.recipients.push_back({make_path("bob", "example.org"), RecipientState::delivered, "250 2.0.0 ok"});
  e.recipients.push_back({make_path("carol", "example.org"), RecipientState::pending, "451 4.3.0 later"});
  e.recipients.push_back({make_path("\"d e\"", "[192.0.2.1]"), RecipientState::failed, "550 5.1.1 no"});
  e.attempts = 2;
  e.next_attempt_ms = 1'795'000'600'000;
  e.body_size = 99;
  e.body_hash = 0x0123456789ABCDEFULL;
  return e;
}

}  // namespace

TEST(Escape, CanonicalAndReversible) {
  EXPECT_EQ(escape(""), "=");
  EXPECT_EQ(escape("plain"), "plain");
  EXPECT_EQ(escape("a b"), "a%20b");
  EXPECT_EQ(escape("100%=<>"), "100%25%3D%3C%3E");
  EXPECT_EQ(escape(std::string("\r\n\0\x7F\xC3", 5)), "%0D%0A%00%7F%C3");
  EXPECT_EQ(unescape("a%20b"), "a b");
  EXPECT_EQ(unescape("="), "");
  EXPECT_FALSE(unescape(""));
  EXPECT_FALSE(unescape("a%41"));   // "A" need not be escaped: not canonical
  EXPECT_FALSE(unescape("a%2"));
  EXPECT_FALSE(unescape("a%0a"));   // lower-case hex is not canonical
  EXPECT_FALSE(unescape("a b"));
  EXPECT_FALSE(unescape("a=b"));
}

TEST(EnvelopeRecord, RoundTrip) {
  const StoredEnvelope e = sample();
  const std::string text = serialize(e);
  auto r = parse_envelope(text);
  ASSERT_TRUE(r.envelope) << describe(*r.error) << " line " << r.line;
  EXPECT_EQ(*r.envelope, e);
  EXPECT_EQ(serialize(*r.envelope), text);
}

TEST(EnvelopeRecord, NullSenderAndPostmaster) {
  StoredEnvelope e = sample();
  e.reverse_path = Path{};
  e.recipients = {{make_path("Postmaster", ""), RecipientState::pending, ""}};
  auto r = parse_envelope(serialize(e));
  ASSERT_TRUE(r.envelope);
  EXPECT_EQ(*r.envelope, e);
}

TEST(EnvelopeRecord, FieldsCannotInjectRecords) {  // Exim CVE-2020-28021/28026 class
  StoredEnvelope e = sample();
  e.helo = "x\nrcpt delivered evil example.com 0 =";
  e.reverse_path = make_path("a\nrcpt pending x y 0 =\nend", "b");
  e.recipients[0].last_reply = "250 ok\nattempts 0";
  const std::string text = serialize(e);
  auto r = parse_envelope(text);
  ASSERT_TRUE(r.envelope);
  EXPECT_EQ(*r.envelope, e);
  EXPECT_EQ(r.envelope->recipients.size(), 3u);
  // Every line of the file is one record: the number of lines is fixed by the envelope shape.
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1 + 12 + 3 + 1);
}

TEST(EnvelopeRecord, EveryTruncationIsDetected) {
  const std::string text = serialize(sample());
  for (std::size_t n = 0; n < text.size(); ++n) {
    EXPECT_FALSE(parse_envelope(text.substr(0, n)).envelope) << "truncated to " << n;
  }
}

TEST(EnvelopeRecord, EveryByteFlipIsDetected) {
  const std::string text = serialize(sample());
  for (std::size_t i = 0; i < text.size(); ++i) {
    std::string bad = text;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    auto r = parse_envelope(bad);
    EXPECT_FALSE(r.envelope) << "flip at " << i;
  }
}

TEST(EnvelopeRecord, ErrorsNameTheLine) {
  std::string text = serialize(sample());
  text += "rcpt pending x y 0 =\n";
  auto r = parse_envelope(text);
  ASSERT_FALSE(r.envelope);
  EXPECT_EQ(*r.error, RecordError::trailing_data);
  auto h = parse_envelope("hello\n");
  EXPECT_EQ(*h.error, RecordError::bad_header);
  EXPECT_EQ(h.line, 1u);
}

// Writes real records as fuzz seeds when REFSMTP_WRITE_SEEDS names a directory (used by
// scripts/seed-corpus); otherwise does nothing.
TEST(EnvelopeRecord, WriteSeedsWhenAsked) {
  const char* dir = std::getenv("REFSMTP_WRITE_SEEDS");
  if (!dir) GTEST_SKIP() << "REFSMTP_WRITE_SEEDS not set";
  std::vector<StoredEnvelope> seeds{sample()};
  StoredEnvelope bounce = sample();
  bounce.kind = MessageKind::bounce;
  bounce.reverse_path = Path{};
  bounce.size.reset();
  bounce.recipients = {{make_path("alice", "example.com"), RecipientState::pending, ""}};
  seeds.push_back(bounce);
  StoredEnvelope odd = sample();
  odd.helo = "evil\nrcpt delivered x y 0 =";
  odd.smtputf8 = true;
  odd.auth = "alice+2Bsales@example.com";
  odd.recipients[0].path = make_path("j\xC3\xB6rg", "b\xC3\xBC" "cher.test");
  seeds.push_back(odd);
  for (const auto& e : seeds) {
    const std::string text = serialize(e);
    char name[32];
    std::snprintf(name, sizeof name, "%016llx", static_cast<unsigned long long>(fnv1a64(text)));
    std::ofstream(std::string(dir) + "/" + name, std::ios::binary) << text;
  }
}
