// RFC 5321 §4.5.4.1 retry strategy.
#include <gtest/gtest.h>

#include "refsmtp/queue/retry.hpp"

using namespace refsmtp::queue;
using namespace std::chrono;

namespace {
constexpr std::int64_t kMin = 60'000;
}

TEST(Retry, DefaultScheduleStartsWithinMinutesThenAtLeastThirtyApart) {
  RetryPolicy p;
  std::int64_t now = 0;
  std::vector<std::int64_t> waits;
  for (std::uint32_t attempt = 1; attempt <= 8; ++attempt) {
    auto next = next_attempt(p, attempt, 0, now);
    ASSERT_TRUE(next);
    waits.push_back((*next - now) / kMin);
    now = *next;
  }
  EXPECT_EQ(waits, (std::vector<std::int64_t>{5, 10, 20, 30, 60, 120, 240, 240}));
  for (std::size_t i = 3; i < waits.size(); ++i) EXPECT_GE(waits[i], 30);
}

TEST(Retry, GivesUpAfterFiveDaysWithALastTryAtTheLimit) {
  RetryPolicy p;
  const std::int64_t limit = 5 * 24 * 60 * kMin;
  auto final_try = next_attempt(p, 40, 0, limit - 10 * kMin);
  ASSERT_TRUE(final_try);
  EXPECT_EQ(*final_try, limit);  // never scheduled past the give-up time
  EXPECT_FALSE(next_attempt(p, 41, 0, limit));
  EXPECT_FALSE(next_attempt(p, 41, 0, limit + 1));
}

TEST(Retry, EveryIntervalIsConfigurable) {
  RetryPolicy p;
  p.first = {milliseconds(10)};
  p.later = milliseconds(20);
  p.max_interval = milliseconds(50);
  p.give_up_after = milliseconds(1000);
  EXPECT_EQ(*next_attempt(p, 1, 0, 100), 110);
  EXPECT_EQ(*next_attempt(p, 2, 0, 100), 120);
  EXPECT_EQ(*next_attempt(p, 3, 0, 100), 140);
  EXPECT_EQ(*next_attempt(p, 4, 0, 100), 150);  // capped
  EXPECT_EQ(*next_attempt(p, 9, 0, 990), 1000);
  EXPECT_FALSE(next_attempt(p, 9, 0, 1000));
}
