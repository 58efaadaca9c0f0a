#include "refsmtp/queue/retry.hpp"

#include <algorithm>

namespace refsmtp::queue {

std::optional<std::int64_t> next_attempt(const RetryPolicy& p, std::uint32_t attempts, std::int64_t arrival_ms,
                                         std::int64_t now_ms) {
  const std::int64_t give_up_at = arrival_ms + p.give_up_after.count();
  if (now_ms >= give_up_at) return std::nullopt;
  std::int64_t wait;
  const std::size_t n = attempts == 0 ? 0 : attempts - 1;
  if (n < p.first.size()) {
    wait = p.first[n].count();
  } else {
    wait = p.later.count();
    for (std::size_t k = p.first.size(); k < n && wait < p.max_interval.count(); ++k) wait *= 2;
    wait = std::min(wait, p.max_interval.count());
  }
  return std::min(now_ms + std::max<std::int64_t>(wait, 0), give_up_at);
}

}  // namespace refsmtp::queue
