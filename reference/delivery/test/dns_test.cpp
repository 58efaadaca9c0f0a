// CaresResolver against a real DNS server (dnsmasq on loopback) and against servers that fail:
// MX with preferences, null MX, A and AAAA, no data, NXDOMAIN, a timeout, a refused port. Then the
// whole routing policy over it.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "refsmtp/testing/dnsmasq.hpp"
#include "refsmtp/delivery/dns.hpp"

namespace refsmtp::delivery {
namespace {

class DnsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new refsmtp::testing::Dnsmasq;
    std::string error;
    started_ = server_->start({"--mx-host=example.test,mx1.example.test,10", "--mx-host=example.test,mx2.example.test,20",
                               "--mx-host=nullmx.test,.,0", "--host-record=mx1.example.test,127.0.0.2",
                               "--host-record=mx2.example.test,127.0.0.3,::1", "--host-record=aonly.test,127.0.0.4",
                               "--mx-host=dangling.test,nowhere.dangling.test,10"},
                              "mx1.example.test", error);
    error_ = error;
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(started_) << error_; }
  CaresResolver resolver() const { return CaresResolver(DnsOptions{{server_->server()}, std::chrono::milliseconds(500), 2}); }

  static refsmtp::testing::Dnsmasq* server_;
  static bool started_;
  static std::string error_;
};
refsmtp::testing::Dnsmasq* DnsTest::server_ = nullptr;
bool DnsTest::started_ = false;
std::string DnsTest::error_;

TEST_F(DnsTest, MxRecordsWithPreferences) {
  auto dns = resolver();
  MxLookup mx = dns.mx("example.test");
  ASSERT_EQ(mx.status, DnsStatus::ok) << mx.error;
  std::sort(mx.records.begin(), mx.records.end(), [](auto& a, auto& b) { return a.preference < b.preference; });
  ASSERT_EQ(mx.records.size(), 2u);
  EXPECT_EQ(mx.records[0].preference, 10);
  EXPECT_EQ(mx.records[0].host, "mx1.example.test");
  EXPECT_EQ(mx.records[1].host, "mx2.example.test");
}

TEST_F(DnsTest, AddressesAreIpv4ThenIpv6) {
  auto dns = resolver();
  const AddressLookup a = dns.addresses("mx2.example.test");
  ASSERT_EQ(a.status, DnsStatus::ok) << a.error;
  EXPECT_EQ(a.addresses, (std::vector<std::string>{"127.0.0.3", "::1"}));
}

TEST_F(DnsTest, NoDataAndNxdomainAreTold) {
  auto dns = resolver();
  EXPECT_EQ(dns.mx("aonly.test").status, DnsStatus::no_data);
  EXPECT_EQ(dns.mx("nope.test").status, DnsStatus::nxdomain);
  EXPECT_EQ(dns.addresses("nope.test").status, DnsStatus::nxdomain);
}

TEST_F(DnsTest, RoutesOverRealDns) {
  auto dns = resolver();
  std::mt19937_64 rng(7);
  const RoutePlan p = plan_mx_route(dns, "example.test", MxOptions{2525, 10, 2, {}, {}, false}, rng);
  ASSERT_EQ(p.kind, RoutePlan::Kind::hops) << p.reply.one_line();
  ASSERT_EQ(p.hops.size(), 3u);
  EXPECT_EQ(p.hops[0].address, "127.0.0.2");
  EXPECT_EQ(p.hops[1].address, "127.0.0.3");
  EXPECT_EQ(p.hops[2].address, "::1");
  const RoutePlan implicit = plan_mx_route(dns, "aonly.test", {}, rng);
  ASSERT_EQ(implicit.kind, RoutePlan::Kind::hops);
  EXPECT_EQ(implicit.hops[0].address, "127.0.0.4");
  const RoutePlan null_mx = plan_mx_route(dns, "nullmx.test", {}, rng);
  EXPECT_EQ(null_mx.kind, RoutePlan::Kind::permanent);
  EXPECT_EQ(null_mx.reply.one_line().substr(0, 11), "556 5.1.10 ");
  EXPECT_EQ(plan_mx_route(dns, "nope.test", {}, rng).kind, RoutePlan::Kind::permanent);
  const RoutePlan dangling = plan_mx_route(dns, "dangling.test", {}, rng);
  EXPECT_EQ(dangling.kind, RoutePlan::Kind::permanent);  // its only exchanger does not exist
  EXPECT_EQ(dangling.reply.one_line().substr(0, 10), "550 5.4.4 ");
}

TEST(DnsFailure, SilentServerTimesOutAsTemporary) {
  // A UDP socket that is never read: queries vanish.
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  CaresResolver dns(DnsOptions{{"127.0.0.1:" + std::to_string(ntohs(a.sin_port))}, std::chrono::milliseconds(100), 2});
  const MxLookup mx = dns.mx("example.test");
  EXPECT_EQ(mx.status, DnsStatus::temporary);
  EXPECT_FALSE(mx.error.empty());
  std::mt19937_64 rng(1);
  EXPECT_EQ(plan_mx_route(dns, "example.test", {}, rng).kind, RoutePlan::Kind::temporary);
  ::close(fd);
}

TEST(DnsFailure, BadServerListIsReported) {
  CaresResolver dns(DnsOptions{{"not an address"}, std::chrono::milliseconds(100), 1});
  EXPECT_FALSE(dns.check().empty());
  EXPECT_EQ(dns.mx("example.test").status, DnsStatus::temporary);
}

}  // namespace
}  // namespace refsmtp::delivery
