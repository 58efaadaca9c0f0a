#include <gtest/gtest.h>

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
