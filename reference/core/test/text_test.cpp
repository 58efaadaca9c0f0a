#include <gtest/gtest.h>

#include "refsmtp/core/checksum.hpp"
#include "refsmtp/core/text.hpp"

using refsmtp::core::nearest;

TEST(Text, NearestNamesTheClosestCandidateWithinTheEditLimit) {
  const std::vector<std::string> options = {"--listen", "--list", "--domain", "--hostname"};
  EXPECT_EQ(nearest("--listne", options), "--listen");  // a transposition is two edits
  EXPECT_EQ(nearest("--domian", options), "--domain");
  EXPECT_EQ(nearest("--lis", options), "--list");
  EXPECT_EQ(nearest("--frobnicate", options), "");
  EXPECT_EQ(nearest("--hostnme", options, 1), "--hostname");
  EXPECT_EQ(nearest("--hstnme", options, 1), "");
  EXPECT_EQ(nearest("x", {}), "");
}

TEST(Checksum, FnvAndItsHexForm) {
  using namespace refsmtp::core;
  EXPECT_EQ(fnv1a64(""), 0xcbf29ce484222325ULL);  // the offset basis
  EXPECT_EQ(hex64(fnv1a64("a")), "af63dc4c8601ec8c");  // FNV-1a 64 of "a"
  EXPECT_EQ(hex64(0xABCDEF, HexCase::upper), "0000000000ABCDEF");
  std::uint64_t v = 0;
  EXPECT_TRUE(parse_hex64("af63dc4c8601ec8c", v));
  EXPECT_EQ(v, fnv1a64("a"));
  EXPECT_FALSE(parse_hex64("AF63DC4C8601EC8C", v));  // the other case is another spelling
  EXPECT_TRUE(parse_hex64("AF63DC4C8601EC8C", v, HexCase::upper));
  EXPECT_FALSE(parse_hex64("af63dc4c8601ec8", v));   // 15 digits
  EXPECT_FALSE(parse_hex64("af63dc4c8601ec8g", v));
}
