#pragma once
// Where mail for a domain goes: MX resolution as RFC 5321 §5.1 and RFC 7505 describe it, over a
// narrow DnsResolver interface (c-ares in dns.hpp, a table in tests), plus a static route table
// for setups without DNS (a per-domain next hop, or a smarthost).
//
// plan_route() is the policy; it owns no socket and no clock, and its randomness (the order
// among MX records of equal preference) comes from the caller.
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "refsmtp/smtp/reply.hpp"

namespace refsmtp::delivery {

enum class DnsStatus {
  ok,         // answers found
  no_data,    // the name exists, but has no record of that type
  nxdomain,   // the name does not exist (a permanent answer)
  temporary,  // SERVFAIL, timeout, refused, network error: ask again later
};

struct MxRecord {
  std::uint16_t preference = 0;
  std::string host;  // "" or "." is the null MX's root (RFC 7505)
};

struct MxLookup {
  DnsStatus status = DnsStatus::temporary;
  std::vector<MxRecord> records;
  std::string error;  // for the log and the DSN when not ok
};

struct AddressLookup {
  DnsStatus status = DnsStatus::temporary;
  std::vector<std::string> addresses;  // numeric, IPv4 first, then IPv6
  std::string error;
};

class DnsResolver {
 public:
  virtual ~DnsResolver() = default;
  virtual MxLookup mx(const std::string& domain) = 0;
  virtual AddressLookup addresses(const std::string& host) = 0;  // A and AAAA
};

struct NextHop {
  std::string host;     // the name (for logs, TLS SNI and certificate checks), or the literal
  std::string address;  // numeric
  std::uint16_t port = 25;
  std::uint16_t preference = 0;
};

struct RoutePlan {
  enum class Kind { hops, temporary, permanent };
  Kind kind = Kind::temporary;
  std::vector<NextHop> hops;  // in the order to try (Kind::hops)
  smtp::Reply reply;          // for failures: what the DSN and the queue say, e.g. 556 5.1.10 ...
};

struct MxOptions {
  std::uint16_t port = 25;           // the SMTP port of every exchanger (tests use their own)
  std::size_t max_hosts = 10;        // exchangers tried per domain, at most
  std::size_t max_addresses = 2;     // addresses tried per exchanger, at most
  // This server's own host names (lower case). RFC 5321 §5.1: when one of them is an exchanger
  // for the domain, only exchangers with a better (lower) preference may be used.
  std::vector<std::string> local_names;
  // Numeric addresses where this server itself takes mail on `port`: an exchanger at one of
  // them is this host too, whatever its name (IPv4-mapped IPv6 addresses match their IPv4).
  std::vector<std::string> local_addresses;
  // Every loopback address is this host too (a wildcard listener takes all of 127.0.0.0/8).
  bool local_loopback = false;
};

// MX resolution (RFC 5321 §5.1):
//   - MX records sorted by preference, shuffled among equal preferences (`rng`);
//   - no MX record (NOERROR, no data): the domain's own A/AAAA is the implicit MX;
//   - null MX (a single "0 ." record, RFC 7505): permanent failure 556 5.1.10, no retries;
//   - NXDOMAIN: permanent failure 550 5.1.2; temporary DNS failure: defer (451 4.4.3);
//   - if this host is itself an exchanger (by name, or by an address it takes mail at), it and
//     every exchanger not better than it are dropped;
//     none left is a permanent failure (5.4.6: the mail would loop back here);
//   - exchangers without an address are skipped; when none is left the failure is temporary if
//     any lookup failed temporarily, else permanent (5.4.4, unroutable).
// An address literal ("[192.0.2.1]", "[IPv6:...]", RFC 5321 §4.1.3) is its own single hop.
RoutePlan plan_mx_route(DnsResolver& dns, std::string_view domain, const MxOptions& options, std::mt19937_64& rng);

// A static route table. One entry per line (file) or --route option:
//   DOMAIN=HOST[:PORT][;tls=none|opportunistic|required][;auth=FILE]
//   *=HOST[:PORT]...            the smarthost: every domain without its own entry
// HOST is a name (its A/AAAA records are used, never its MX) or a numeric address ("[::1]:25").
// auth=FILE names a file holding "USER:PASSWORD" for AUTH PLAIN at that next hop.
struct StaticRoute {
  std::string domain;  // lower case; "*" for the smarthost
  std::string host;
  std::uint16_t port = 25;
  std::optional<std::string> tls;  // "none", "opportunistic" or "required"; nothing: the default
  std::string auth_file;
};

class RouteTable {
 public:
  // Adds "DOMAIN=HOST..." ; false with `error` set when it does not parse.
  bool add(std::string_view spec, std::string& error);
  // The route for a domain (case-insensitive), else the smarthost, else nothing.
  const StaticRoute* find(std::string_view domain) const;
  bool empty() const { return routes_.empty(); }

 private:
  std::vector<StaticRoute> routes_;
};

// Resolves a static route's host into hops (a numeric host needs no DNS).
RoutePlan plan_static_route(DnsResolver& dns, const StaticRoute& route);

}  // namespace refsmtp::delivery
