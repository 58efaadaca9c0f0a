// RFC 4648 §4 and §10 test vectors.
#include "refsmtp/core/base64.hpp"

#include <gtest/gtest.h>

using namespace refsmtp::core;

TEST(Base64, Rfc4648Vectors) {
  const std::pair<const char*, const char*> vectors[] = {
      {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(base64_encode(plain), encoded);
    auto d = base64_decode(encoded);
    ASSERT_TRUE(d.has_value()) << encoded;
    EXPECT_EQ(*d, plain);
  }
}

TEST(Base64, RejectsNonCanonicalAndForeignInput) {
  EXPECT_FALSE(base64_decode("Zg="));     // length not a multiple of 4
  EXPECT_FALSE(base64_decode("Zh=="));    // non-zero bits under the padding
  EXPECT_FALSE(base64_decode("Z===" ));
  EXPECT_FALSE(base64_decode("Zm9v\r\n"));
  EXPECT_FALSE(base64_decode("Zm=v"));    // data after padding
  EXPECT_FALSE(base64_decode("Zm9*"));
}

TEST(Base64, SaslPlainRoundTrip) {  // RFC 4616 §2 message shape
  const std::string msg = std::string("\0user\0pass", 10);
  EXPECT_EQ(*base64_decode(base64_encode(msg)), msg);
}
