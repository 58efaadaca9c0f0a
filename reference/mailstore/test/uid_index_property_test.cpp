// Any history of scans keeps the UID rules (RFC 9051 §2.3.1.1): UIDs strictly ascending, never
// reused, a message's UID never changing, next_uid never going back, UIDVALIDITY fixed; and every
// index survives its text form.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <map>

#include "refsmtp/mailstore/uid_index.hpp"

using namespace refsmtp::mailstore;

RC_GTEST_PROP(UidIndexProperty, HistoriesKeepTheUidRules, ()) {
  UidList list{*rc::gen::inRange<std::uint32_t>(1, 0xFFFFFFF0u), 1, {}};
  std::map<std::string, std::uint32_t> ever;  // every key ever numbered, and its UID
  std::set<std::uint32_t> used;
  int counter = 0;
  const int steps = *rc::gen::inRange(1, 12);
  for (int step = 0; step < steps; ++step) {
    std::set<std::string> present;
    for (const auto& e : list.entries) {
      if (*rc::gen::inRange(0, 4) != 0) present.insert(e.key);  // some are expunged
    }
    std::vector<Arrival> arrivals;
    const int n = *rc::gen::inRange(0, 5);
    for (int i = 0; i < n; ++i) arrivals.push_back({"m" + std::to_string(counter++), *rc::gen::arbitrary<std::uint32_t>(), step});
    const std::uint32_t before_next = list.next_uid;
    const auto next = update(list, present, arrivals);
    RC_ASSERT(next.ok());
    RC_ASSERT(next->uidvalidity == list.uidvalidity);
    RC_ASSERT(next->next_uid == before_next + static_cast<std::uint32_t>(n));
    std::uint32_t prev = 0;
    for (const auto& e : next->entries) {
      RC_ASSERT(e.uid > prev);
      RC_ASSERT(e.uid < next->next_uid);
      prev = e.uid;
      const auto [it, fresh] = ever.emplace(e.key, e.uid);
      if (fresh) {
        RC_ASSERT(used.insert(e.uid).second);  // a new message never gets an old UID
      } else {
        RC_ASSERT(it->second == e.uid);        // an old message keeps its UID
      }
    }
    const auto back = parse_uidlist(serialize(*next));
    RC_ASSERT(back.ok());
    RC_ASSERT(*back == *next);
    list = *next;
  }
}
