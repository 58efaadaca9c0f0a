#pragma once
// A DnsResolver answering from tables, for tests of the routing policy without a DNS server.
#include <map>
#include <string>
#include <vector>

#include "refsmtp/delivery/mx.hpp"

namespace refsmtp::delivery::test {

class TableResolver final : public DnsResolver {
 public:
  std::map<std::string, MxLookup> mx_answers;         // missing: NXDOMAIN
  std::map<std::string, AddressLookup> address_answers;  // missing: NXDOMAIN
  std::vector<std::string> asked;                     // "MX name" / "A name", in order

  MxLookup mx(const std::string& domain) override {
    asked.push_back("MX " + domain);
    auto it = mx_answers.find(domain);
    if (it == mx_answers.end()) return MxLookup{DnsStatus::nxdomain, {}, "NXDOMAIN"};
    return it->second;
  }
  AddressLookup addresses(const std::string& host) override {
    asked.push_back("A " + host);
    auto it = address_answers.find(host);
    if (it == address_answers.end()) return AddressLookup{DnsStatus::nxdomain, {}, "NXDOMAIN"};
    return it->second;
  }
  void add_mx(const std::string& domain, std::vector<MxRecord> records) {
    mx_answers[domain] = MxLookup{DnsStatus::ok, std::move(records), ""};
  }
  void add_a(const std::string& host, std::vector<std::string> addresses) {
    address_answers[host] = AddressLookup{DnsStatus::ok, std::move(addresses), ""};
  }
};

}  // namespace refsmtp::delivery::test
