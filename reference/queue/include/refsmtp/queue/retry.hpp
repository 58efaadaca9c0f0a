#pragma once
// When to try a deferred message again: a pure function of the policy, the attempts made, the
// arrival time and now (RFC 5321 §4.5.4.1). Tests inject the clock; nothing here reads one.
#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

namespace refsmtp::queue {

using std::chrono::milliseconds;

struct RetryPolicy {
  // Waits after the 1st, 2nd, ... failed attempt: "retries within minutes" at first...
  std::vector<milliseconds> first = {std::chrono::minutes(5), std::chrono::minutes(10), std::chrono::minutes(20)};
  // ...then "at least 30 minutes" apart (§4.5.4.1), doubling up to max_interval.
  milliseconds later = std::chrono::minutes(30);
  milliseconds max_interval = std::chrono::hours(4);
  // "give-up time generally needs to be at least 4-5 days" (§4.5.4.1).
  milliseconds give_up_after = std::chrono::hours(24 * 5);
  // Tell the sender once that delivery is delayed, after this long (RFC 3464 Action: delayed).
  std::optional<milliseconds> delay_warning = std::chrono::hours(4);
};

// `attempts` is the number of attempts made so far (>= 1). Returns when to try next, in ms since
// the epoch, or nothing when it is time to give up. The last retry is never scheduled after the
// give-up time, so a message is tried once more right at it.
std::optional<std::int64_t> next_attempt(const RetryPolicy& policy, std::uint32_t attempts, std::int64_t arrival_ms,
                                         std::int64_t now_ms);

}  // namespace refsmtp::queue
