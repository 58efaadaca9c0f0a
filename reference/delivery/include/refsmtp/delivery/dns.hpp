#pragma once
// DnsResolver over c-ares: MX, A and AAAA queries to the system's resolvers or to given servers
// ("127.0.0.1:5399" in tests). Each lookup is blocking, with a bounded total time; call it off
// the io threads. Safe to use from several threads at once (each lookup has its own channel).
#include <chrono>
#include <string>
#include <vector>

#include "refsmtp/delivery/mx.hpp"

namespace refsmtp::delivery {

struct DnsOptions {
  // "ADDRESS[:PORT]" entries ("[::1]:53" for IPv6); empty: the system's /etc/resolv.conf.
  std::vector<std::string> servers;
  std::chrono::milliseconds timeout{2000};  // per try
  int tries = 2;
};

class CaresResolver final : public DnsResolver {
 public:
  explicit CaresResolver(DnsOptions options);
  // Checks the options (the server list parses, c-ares initialises); empty when all is well.
  std::string check() const;

  MxLookup mx(const std::string& domain) override;
  AddressLookup addresses(const std::string& host) override;

 private:
  DnsOptions opt_;
};

}  // namespace refsmtp::delivery
