// The routing policy (RFC 5321 §5.1, RFC 7505) against table-driven DNS answers, the static
// route table, and the relay's pure helpers.
#include <gtest/gtest.h>

#include <set>

#include "fake_dns.hpp"
#include "refsmtp/delivery/mx.hpp"
#include "refsmtp/delivery/relay.hpp"

namespace refsmtp::delivery {
namespace {

using test::TableResolver;

std::vector<std::string> hosts_of(const RoutePlan& p) {
  std::vector<std::string> out;
  for (const auto& h : p.hops) out.push_back(h.host + "=" + h.address);
  return out;
}

TEST(MxRoute, SortsByPreferenceAndResolvesEachExchanger) {
  TableResolver dns;
  dns.add_mx("example.test", {{20, "mx2.example.test"}, {10, "mx1.example.test"}, {30, "mx3.example.test"}});
  dns.add_a("mx1.example.test", {"192.0.2.1"});
  dns.add_a("mx2.example.test", {"192.0.2.2", "2001:db8::2"});
  dns.add_a("mx3.example.test", {"192.0.2.3"});
  std::mt19937_64 rng(1);
  const RoutePlan p = plan_mx_route(dns, "Example.TEST", MxOptions{2525, 10, 2, {}, {}, false}, rng);
  ASSERT_EQ(p.kind, RoutePlan::Kind::hops);
  EXPECT_EQ(hosts_of(p), (std::vector<std::string>{"mx1.example.test=192.0.2.1", "mx2.example.test=192.0.2.2",
                                                   "mx2.example.test=2001:db8::2", "mx3.example.test=192.0.2.3"}));
  for (const auto& h : p.hops) EXPECT_EQ(h.port, 2525);
  EXPECT_EQ(dns.asked.front(), "MX example.test");  // the domain is looked up in lower case
}

TEST(MxRoute, EqualPreferencesComeInRandomOrderButAfterBetterOnes) {
  TableResolver dns;
  dns.add_mx("example.test", {{10, "a.example.test"}, {10, "b.example.test"}, {5, "best.example.test"}});
  dns.add_a("a.example.test", {"192.0.2.1"});
  dns.add_a("b.example.test", {"192.0.2.2"});
  dns.add_a("best.example.test", {"192.0.2.5"});
  std::set<std::string> seconds;
  for (std::uint64_t seed = 0; seed < 64; ++seed) {
    std::mt19937_64 rng(seed);
    const RoutePlan p = plan_mx_route(dns, "example.test", {}, rng);
    ASSERT_EQ(p.hops.size(), 3u);
    EXPECT_EQ(p.hops[0].host, "best.example.test");
    seconds.insert(p.hops[1].host);
  }
  EXPECT_EQ(seconds, (std::set<std::string>{"a.example.test", "b.example.test"}));  // both orders occur
}

TEST(MxRoute, NoMxRecordMeansTheDomainIsItsOwnExchanger) {
  TableResolver dns;
  dns.mx_answers["aonly.test"] = MxLookup{DnsStatus::no_data, {}, "no data"};
  dns.add_a("aonly.test", {"192.0.2.9"});
  std::mt19937_64 rng(1);
  const RoutePlan p = plan_mx_route(dns, "aonly.test", {}, rng);
  ASSERT_EQ(p.kind, RoutePlan::Kind::hops);
  EXPECT_EQ(hosts_of(p), std::vector<std::string>{"aonly.test=192.0.2.9"});
}

TEST(MxRoute, NoMxAndNoAddressFailsPermanently) {
  TableResolver dns;
  dns.mx_answers["empty.test"] = MxLookup{DnsStatus::no_data, {}, "no data"};
  dns.address_answers["empty.test"] = AddressLookup{DnsStatus::no_data, {}, "no data"};
  std::mt19937_64 rng(1);
  const RoutePlan p = plan_mx_route(dns, "empty.test", {}, rng);
  EXPECT_EQ(p.kind, RoutePlan::Kind::permanent);
  EXPECT_EQ(p.reply.one_line().substr(0, 3), "550");
}

TEST(MxRoute, NullMxFailsAtOnceWith556) {
  for (const char* root : {"", "."}) {
    TableResolver dns;
    dns.add_mx("nullmx.test", {{0, root}});
    std::mt19937_64 rng(1);
    const RoutePlan p = plan_mx_route(dns, "nullmx.test", {}, rng);
    EXPECT_EQ(p.kind, RoutePlan::Kind::permanent);
    EXPECT_EQ(p.reply.one_line().substr(0, 11), "556 5.1.10 ");  // RFC 7505 §4.1, §4.3
    EXPECT_EQ(dns.asked, std::vector<std::string>{"MX nullmx.test"});  // no address lookups
  }
}

TEST(MxRoute, RootAmongRealExchangersIsIgnored) {
  TableResolver dns;
  dns.add_mx("mixed.test", {{0, "."}, {10, "mx.mixed.test"}});
  dns.add_a("mx.mixed.test", {"192.0.2.7"});
  std::mt19937_64 rng(1);
  const RoutePlan p = plan_mx_route(dns, "mixed.test", {}, rng);
  ASSERT_EQ(p.kind, RoutePlan::Kind::hops);
  EXPECT_EQ(hosts_of(p), std::vector<std::string>{"mx.mixed.test=192.0.2.7"});
}

TEST(MxRoute, NxdomainIsPermanentAndTemporaryFailureDefers) {
  TableResolver dns;
  dns.mx_answers["flaky.test"] = MxLookup{DnsStatus::temporary, {}, "Timeout while contacting DNS servers"};
  std::mt19937_64 rng(1);
  const RoutePlan nx = plan_mx_route(dns, "nowhere.test", {}, rng);
  EXPECT_EQ(nx.kind, RoutePlan::Kind::permanent);
  EXPECT_EQ(nx.reply.one_line().substr(0, 10), "550 5.1.2 ");
  const RoutePlan tmp = plan_mx_route(dns, "flaky.test", {}, rng);
  EXPECT_EQ(tmp.kind, RoutePlan::Kind::temporary);
  EXPECT_EQ(tmp.reply.one_line().substr(0, 10), "451 4.4.3 ");
  EXPECT_NE(tmp.reply.one_line().find("Timeout"), std::string::npos);
}

TEST(MxRoute, ExchangersWithoutAddressAreSkipped) {
  TableResolver dns;
  dns.add_mx("example.test", {{10, "gone.example.test"}, {20, "mx.example.test"}});
  dns.add_a("mx.example.test", {"192.0.2.4"});
  std::mt19937_64 rng(1);
  const RoutePlan p = plan_mx_route(dns, "example.test", {}, rng);
  ASSERT_EQ(p.kind, RoutePlan::Kind::hops);
  EXPECT_EQ(hosts_of(p), std::vector<std::string>{"mx.example.test=192.0.2.4"});
}

TEST(MxRoute, NoExchangerAddressIsTemporaryIfAnyLookupWasTemporary) {
  TableResolver dns;
  dns.add_mx("example.test", {{10, "gone.example.test"}, {20, "flaky.example.test"}});
  dns.address_answers["flaky.example.test"] = AddressLookup{DnsStatus::temporary, {}, "SERVFAIL"};
  std::mt19937_64 rng(1);
  EXPECT_EQ(plan_mx_route(dns, "example.test", {}, rng).kind, RoutePlan::Kind::temporary);
  dns.address_answers.erase("flaky.example.test");
  const RoutePlan p = plan_mx_route(dns, "example.test", {}, rng);
  EXPECT_EQ(p.kind, RoutePlan::Kind::permanent);
  EXPECT_EQ(p.reply.one_line().substr(0, 10), "550 5.4.4 ");
}

TEST(MxRoute, LimitsExchangersAndAddresses) {
  TableResolver dns;
  std::vector<MxRecord> many;
  for (int i = 0; i < 20; ++i) {
    const std::string host = "mx" + std::to_string(i) + ".example.test";
    many.push_back({static_cast<std::uint16_t>(i), host});
    dns.add_a(host, {"192.0.2.1", "192.0.2.2", "192.0.2.3"});
  }
  dns.add_mx("example.test", many);
  std::mt19937_64 rng(1);
  const RoutePlan p = plan_mx_route(dns, "example.test", MxOptions{25, 3, 1, {}, {}, false}, rng);
  EXPECT_EQ(p.hops.size(), 3u);
}

TEST(MxRoute, ThisHostAndWorseExchangersAreDropped) {  // RFC 5321 §5.1
  TableResolver dns;
  dns.add_mx("example.test", {{10, "best.example.test"}, {20, "Me.Example.Test"}, {20, "peer.example.test"},
                              {30, "worse.example.test"}});
  for (const char* h : {"best.example.test", "me.example.test", "peer.example.test", "worse.example.test"}) dns.add_a(h, {"192.0.2.1"});
  MxOptions opt;
  opt.local_names = {"me.example.test"};
  std::mt19937_64 rng(1);
  const RoutePlan p = plan_mx_route(dns, "example.test", opt, rng);
  ASSERT_EQ(p.kind, RoutePlan::Kind::hops);
  EXPECT_EQ(hosts_of(p), std::vector<std::string>{"best.example.test=192.0.2.1"});
  // As the best exchanger itself, there is nowhere to send it.
  opt.local_names = {"best.example.test"};
  const RoutePlan loop = plan_mx_route(dns, "example.test", opt, rng);
  EXPECT_EQ(loop.kind, RoutePlan::Kind::permanent);
  EXPECT_EQ(loop.reply.one_line().substr(0, 10), "554 5.4.6 ");
}

TEST(MxRoute, AnExchangerAtAnAddressOfThisHostIsThisHost) {  // RFC 5321 §5.1
  TableResolver dns;
  dns.add_mx("example.test", {{10, "best.example.test"}, {20, "alias.example.test"}, {30, "worse.example.test"}});
  dns.add_a("best.example.test", {"192.0.2.1"});
  dns.add_a("alias.example.test", {"2001:db8::9", "192.0.2.9"});
  dns.add_a("worse.example.test", {"192.0.2.3"});
  dns.add_mx("bare.test", {{10, "192.0.2.9"}});  // an address as an MX (not allowed, but seen)
  MxOptions opt;
  std::mt19937_64 rng(1);
  opt.local_addresses = {"192.0.2.99"};
  EXPECT_EQ(plan_mx_route(dns, "example.test", opt, rng).hops.size(), 4u) << "not ours: every exchanger stays";
  opt.local_addresses = {"192.0.2.9"};  // alias.example.test is this host under another name
  const RoutePlan p = plan_mx_route(dns, "example.test", opt, rng);
  ASSERT_EQ(p.kind, RoutePlan::Kind::hops);
  EXPECT_EQ(hosts_of(p), std::vector<std::string>{"best.example.test=192.0.2.1"});
  opt.local_addresses = {"192.0.2.1"};
  const RoutePlan loop = plan_mx_route(dns, "example.test", opt, rng);
  EXPECT_EQ(loop.kind, RoutePlan::Kind::permanent);
  EXPECT_EQ(loop.reply.one_line().substr(0, 10), "554 5.4.6 ");
  opt.local_addresses = {"192.0.2.9"};
  EXPECT_EQ(plan_mx_route(dns, "bare.test", opt, rng).kind, RoutePlan::Kind::permanent);
}

TEST(MxRoute, ThisHostTyingWithTheLastExchangerTriedIsSeen) {  // RFC 5321 §5.1
  // At most two exchangers are tried; this host shares the second one's preference, and may
  // come after it in the shuffle: every exchanger of that preference is discarded all the same.
  TableResolver dns;
  dns.add_mx("tie.test", {{5, "d.tie.test"}, {10, "a.tie.test"}, {10, "b.tie.test"}, {10, "c.tie.test"}});
  dns.add_a("d.tie.test", {"192.0.2.4"});
  dns.add_a("a.tie.test", {"192.0.2.1"});
  dns.add_a("b.tie.test", {"192.0.2.2"});
  dns.add_a("c.tie.test", {"192.0.2.9"});
  MxOptions opt;
  opt.max_hosts = 2;
  opt.local_addresses = {"192.0.2.9"};
  for (std::uint64_t seed = 0; seed < 20; ++seed) {
    std::mt19937_64 rng(seed);
    EXPECT_EQ(hosts_of(plan_mx_route(dns, "tie.test", opt, rng)), std::vector<std::string>{"d.tie.test=192.0.2.4"}) << seed;
  }
}

TEST(MxRoute, MappedAndLoopbackAddressesOfThisHostCount) {
  TableResolver dns;
  dns.add_mx("m.test", {{10, "best.m.test"}, {20, "mapped.m.test"}});
  dns.add_a("best.m.test", {"192.0.2.1"});
  dns.add_a("mapped.m.test", {"::ffff:192.0.2.9"});
  dns.add_mx("lo.test", {{10, "lo.lo.test"}});
  dns.add_a("lo.lo.test", {"127.0.0.2"});
  MxOptions opt;
  opt.local_addresses = {"192.0.2.9"};
  std::mt19937_64 rng(1);
  EXPECT_EQ(hosts_of(plan_mx_route(dns, "m.test", opt, rng)), std::vector<std::string>{"best.m.test=192.0.2.1"});
  EXPECT_EQ(plan_mx_route(dns, "lo.test", opt, rng).kind, RoutePlan::Kind::hops);  // 127.0.0.2 is not ours...
  opt.local_loopback = true;  // ...unless a wildcard listener takes every loopback address
  EXPECT_EQ(plan_mx_route(dns, "lo.test", opt, rng).kind, RoutePlan::Kind::permanent);
}

TEST(MxRoute, AddressLiteralsNeedNoDns) {
  TableResolver dns;
  std::mt19937_64 rng(1);
  const RoutePlan v4 = plan_mx_route(dns, "[192.0.2.1]", {}, rng);
  ASSERT_EQ(v4.kind, RoutePlan::Kind::hops);
  EXPECT_EQ(v4.hops[0].address, "192.0.2.1");
  const RoutePlan v6 = plan_mx_route(dns, "[IPv6:2001:db8::1]", {}, rng);
  ASSERT_EQ(v6.kind, RoutePlan::Kind::hops);
  EXPECT_EQ(v6.hops[0].address, "2001:db8::1");
  EXPECT_EQ(plan_mx_route(dns, "[300.1.1.1]", {}, rng).kind, RoutePlan::Kind::permanent);
  EXPECT_TRUE(dns.asked.empty());
}

TEST(RouteTable, ParsesEntriesAndFallsBackToTheSmarthost) {
  RouteTable t;
  std::string error;
  ASSERT_TRUE(t.add("Example.test=mx.example.test:2525;tls=required", error)) << error;
  ASSERT_TRUE(t.add("v6.test=[::1]:26", error)) << error;
  ASSERT_TRUE(t.add("plain.test=192.0.2.1", error)) << error;
  EXPECT_EQ(t.find("other.test"), nullptr);
  ASSERT_TRUE(t.add("*=smarthost.test:587;auth=secret.txt", error)) << error;
  const StaticRoute* r = t.find("EXAMPLE.test");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->host, "mx.example.test");
  EXPECT_EQ(r->port, 2525);
  EXPECT_EQ(r->tls.value_or(""), "required");
  EXPECT_EQ(t.find("v6.test")->host, "::1");
  EXPECT_EQ(t.find("v6.test")->port, 26);
  EXPECT_EQ(t.find("plain.test")->port, 25);
  const StaticRoute* star = t.find("other.test");
  ASSERT_NE(star, nullptr);
  EXPECT_EQ(star->host, "smarthost.test");
  EXPECT_EQ(star->auth_file, "secret.txt");
}

TEST(RouteTable, RefusesBadEntriesWithTheReason) {
  for (const char* bad : {"nodomain", "=host", "a.test=", "a.test=host:0", "a.test=host:70000", "a.test=host:x",
                          "a.test=::1:25", "a.test=[::1", "a.test=host;tls=maybe", "a.test=host;auth=", "a.test=host;color=red"}) {
    RouteTable t;
    std::string error;
    EXPECT_FALSE(t.add(bad, error)) << bad;
    EXPECT_NE(error.find(bad), std::string::npos) << error;
  }
}

TEST(RouteTable, StaticHopsNeedNoDnsWhenNumeric) {
  TableResolver dns;
  dns.add_a("relay.test", {"192.0.2.8"});
  const RoutePlan numeric = plan_static_route(dns, StaticRoute{"a.test", "192.0.2.1", 2525, {}, ""});
  ASSERT_EQ(numeric.kind, RoutePlan::Kind::hops);
  EXPECT_EQ(numeric.hops[0].port, 2525);
  EXPECT_TRUE(dns.asked.empty());
  const RoutePlan named = plan_static_route(dns, StaticRoute{"a.test", "relay.test", 25, {}, ""});
  ASSERT_EQ(named.kind, RoutePlan::Kind::hops);
  EXPECT_EQ(named.hops[0].address, "192.0.2.8");
  EXPECT_EQ(dns.asked, std::vector<std::string>{"A relay.test"});  // A/AAAA only, never MX
  EXPECT_EQ(plan_static_route(dns, StaticRoute{"a.test", "gone.test", 25, {}, ""}).kind, RoutePlan::Kind::temporary);
}

TEST(Relay, CountsReceivedHeadersInTheHeaderSectionOnly) {
  EXPECT_EQ(count_received_headers("Received: a\r\nreceived : b\r\n\tfolded Received: x\r\nRECEIVED:c\r\nSubject: s\r\n\r\n"
                                   "Received: in the body\r\n"),
            3u);
  EXPECT_EQ(count_received_headers("Subject: none\r\n\r\n"), 0u);
  EXPECT_EQ(count_received_headers("Received-SPF: pass\r\nReceived: a\n\nReceived: b\n"), 1u);
  std::string loop;
  for (int i = 0; i < 101; ++i) loop += "Received: from x by y\r\n";
  EXPECT_EQ(count_received_headers(loop + "\r\nbody\r\n"), 101u);
}

TEST(Relay, OutcomesFollowTheReplyClass) {
  smtp::RecipientResult ok{smtp::Path{}, smtp::DeliveryStatus::delivered, smtp::make_reply(250, 2, 0, 0, "OK")};
  smtp::RecipientResult bad{smtp::Path{}, smtp::DeliveryStatus::failed, smtp::make_reply(550, 5, 1, 1, "no such\r\nuser")};
  smtp::RecipientResult later{smtp::Path{}, smtp::DeliveryStatus::deferred, smtp::make_reply(451, 4, 3, 0, "busy")};
  EXPECT_EQ(to_outcome(0, ok).state, queue::RecipientState::delivered);
  const auto b = to_outcome(3, bad);
  EXPECT_EQ(b.state, queue::RecipientState::failed);
  EXPECT_EQ(b.recipient, 3u);
  EXPECT_EQ(b.reply.one_line(), "550 5.1.1 no such  user");  // one line: control characters become spaces
  EXPECT_EQ(to_outcome(1, later).state, queue::RecipientState::pending);
}

}  // namespace
}  // namespace refsmtp::delivery
