// Properties of the routing policy over arbitrary DNS answers (RapidCheck): whatever the MX and
// address tables say, the plan tries exchangers in preference order, only ever names hosts and
// addresses the answers gave, never routes back to this host, honours the limits, and fails
// permanently exactly for the answers RFC 5321 §5.1 and RFC 7505 call permanent.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <set>

#include "fake_dns.hpp"
#include "refsmtp/delivery/mx.hpp"

namespace refsmtp::delivery {
namespace {

DnsStatus gen_status(int k) {
  switch (k % 4) {
    case 0: return DnsStatus::ok;
    case 1: return DnsStatus::no_data;
    case 2: return DnsStatus::nxdomain;
    default: return DnsStatus::temporary;
  }
}

RC_GTEST_PROP(MxRouteProperty, PlansFollowTheAnswers, ()) {
  test::TableResolver dns;
  const int mx_kind = *rc::gen::inRange(0, 4);
  const auto n = *rc::gen::inRange(0, 8);
  std::vector<MxRecord> records;
  std::set<std::string> hosts;
  for (int i = 0; i < n; ++i) {
    const bool root = *rc::gen::inRange(0, 6) == 0;
    const std::string host = root ? "." : "mx" + std::to_string(*rc::gen::inRange(0, 5)) + ".d.test";
    records.push_back({static_cast<std::uint16_t>(*rc::gen::inRange(0, 4) * 10), host});
    if (!root) hosts.insert(host);
  }
  dns.mx_answers["d.test"] = MxLookup{gen_status(mx_kind), records, "x"};
  std::map<std::string, std::vector<std::string>> addresses;
  // Address answers for every exchanger, or for the domain itself (its implicit MX).
  const std::set<std::string> named = hosts.empty() ? std::set<std::string>{"d.test"} : hosts;
  for (const auto& h : named) {
    const int k = *rc::gen::inRange(0, 4);
    std::vector<std::string> addrs;
    const int count = *rc::gen::inRange(1, 4);
    for (int i = 0; i < count; ++i) addrs.push_back("192.0.2." + std::to_string(*rc::gen::inRange(1, 9)));
    dns.address_answers[h] = AddressLookup{gen_status(k), gen_status(k) == DnsStatus::ok ? addrs : std::vector<std::string>{}, "y"};
    if (gen_status(k) == DnsStatus::ok) addresses[h] = addrs;
  }
  MxOptions opt{2525, static_cast<std::size_t>(*rc::gen::inRange(1, 6)), static_cast<std::size_t>(*rc::gen::inRange(1, 3)), {}, {}, false};
  // Sometimes this host takes mail at an address some exchanger has (RFC 5321 §5.1).
  const int own = *rc::gen::inRange(0, 3);
  for (int i = 0; i < own; ++i) opt.local_addresses.push_back("192.0.2." + std::to_string(*rc::gen::inRange(1, 9)));
  std::mt19937_64 rng(*rc::gen::arbitrary<std::uint64_t>());
  const RoutePlan p = plan_mx_route(dns, "d.test", opt, rng);

  const DnsStatus mx_status = gen_status(mx_kind);
  if (mx_status == DnsStatus::temporary) RC_ASSERT(p.kind == RoutePlan::Kind::temporary);
  if (mx_status == DnsStatus::nxdomain) RC_ASSERT(p.kind == RoutePlan::Kind::permanent);
  const bool null_mx = mx_status == DnsStatus::ok && !records.empty() && hosts.empty();
  if (null_mx) RC_ASSERT(p.kind == RoutePlan::Kind::permanent && p.reply.one_line().rfind("556 5.1.10 ", 0) == 0);
  if (p.kind != RoutePlan::Kind::hops) {
    RC_ASSERT(p.hops.empty());
    RC_ASSERT(p.reply.one_line().size() > 10);
    RC_ASSERT(p.reply.one_line()[0] == (p.kind == RoutePlan::Kind::temporary ? '4' : '5'));
    return;
  }
  RC_ASSERT(!p.hops.empty());
  RC_ASSERT(p.hops.size() <= opt.max_hosts * opt.max_addresses);
  for (std::size_t i = 0; i < p.hops.size(); ++i) {
    const auto& h = p.hops[i];
    RC_ASSERT(h.port == 2525);
    if (i > 0) RC_ASSERT(p.hops[i - 1].preference <= h.preference);  // preference order
    auto it = addresses.find(h.host);
    RC_ASSERT(it != addresses.end());  // only hosts that resolved
    RC_ASSERT(std::find(it->second.begin(), it->second.end(), h.address) != it->second.end());
    // Never back to this host: no exchanger at one of its addresses.
    for (const auto& a : it->second) {
      RC_ASSERT(std::find(opt.local_addresses.begin(), opt.local_addresses.end(), a) == opt.local_addresses.end());
    }
  }
}

}  // namespace
}  // namespace refsmtp::delivery
