#include "refsmtp/delivery/mx.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdlib>

#include "refsmtp/smtp/address.hpp"
#include "refsmtp/core/text.hpp"

namespace refsmtp::delivery {

namespace {

using core::ascii_lower;

bool is_numeric_address(const std::string& s) {
  unsigned char buf[16];
  return ::inet_pton(AF_INET, s.c_str(), buf) == 1 || ::inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

// An address in one canonical text form, so that equal addresses compare equal: IPv6 as
// inet_ntop writes it, and an IPv4-mapped IPv6 address (::ffff:a.b.c.d) as the IPv4 address.
std::string canonical_address(const std::string& s) {
  unsigned char buf[16];
  char out[INET6_ADDRSTRLEN] = {0};
  if (::inet_pton(AF_INET, s.c_str(), buf) == 1) return ::inet_ntop(AF_INET, buf, out, sizeof out) ? out : s;
  if (::inet_pton(AF_INET6, s.c_str(), buf) != 1) return s;
  static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::equal(mapped, mapped + 12, buf)) return ::inet_ntop(AF_INET, buf + 12, out, sizeof out) ? out : s;
  return ::inet_ntop(AF_INET6, buf, out, sizeof out) ? out : s;
}

bool is_loopback(const std::string& canonical) { return canonical.starts_with("127.") || canonical == "::1"; }

RoutePlan failure(RoutePlan::Kind kind, smtp::Reply reply) {
  RoutePlan p;
  p.kind = kind;
  p.reply = std::move(reply);
  return p;
}

// "[192.0.2.1]" or "[IPv6:2001:db8::1]" -> the numeric address; nothing for anything else.
std::optional<std::string> address_literal(std::string_view domain) {
  if (domain.size() < 3 || domain.front() != '[' || domain.back() != ']') return std::nullopt;
  std::string inside(domain.substr(1, domain.size() - 2));
  if (inside.size() > 5 && ascii_lower(inside.substr(0, 5)) == "ipv6:") {
    inside = inside.substr(5);
    unsigned char buf[16];
    if (::inet_pton(AF_INET6, inside.c_str(), buf) != 1) return std::nullopt;
    return inside;
  }
  unsigned char buf[4];
  if (::inet_pton(AF_INET, inside.c_str(), buf) != 1) return std::nullopt;
  return inside;
}

// The text of a DNS failure for a reply: "... (SERVFAIL)" etc.
std::string why(const std::string& error) { return error.empty() ? std::string() : " (" + error + ")"; }

}  // namespace

RoutePlan plan_mx_route(DnsResolver& dns, std::string_view domain_in, const MxOptions& options, std::mt19937_64& rng) {
  const std::string domain = ascii_lower(domain_in);
  if (auto literal = address_literal(domain)) {
    RoutePlan p;
    p.kind = RoutePlan::Kind::hops;
    p.hops.push_back(NextHop{*literal, *literal, options.port, 0});  // named by its address
    return p;
  }
  if (domain.empty() || domain.front() == '[') {
    return failure(RoutePlan::Kind::permanent, smtp::make_reply(553, 5, 1, 2, "Bad destination domain '" + domain + "'"));
  }
  const MxLookup mx = dns.mx(domain);
  std::vector<MxRecord> records;
  switch (mx.status) {
    case DnsStatus::temporary:
      return failure(RoutePlan::Kind::temporary, smtp::make_reply(451, 4, 4, 3, "MX lookup for " + domain + " failed" + why(mx.error)));
    case DnsStatus::nxdomain:
      return failure(RoutePlan::Kind::permanent, smtp::make_reply(550, 5, 1, 2, "Domain " + domain + " does not exist"));
    case DnsStatus::no_data:
      // RFC 5321 §5.1: no MX records, so the domain itself is the implicit MX, preference 0.
      records.push_back(MxRecord{0, domain});
      break;
    case DnsStatus::ok:
      records = mx.records;
      break;
  }
  const auto is_root = [](const MxRecord& r) { return r.host.empty() || r.host == "."; };
  if (!records.empty() && std::all_of(records.begin(), records.end(), is_root)) {
    // RFC 7505 §4.1: a null MX says the domain accepts no mail; §4.2: 556 with 5.1.10 (RFC 7505 §4.3).
    return failure(RoutePlan::Kind::permanent, smtp::make_reply(556, 5, 1, 10, "Domain " + domain + " does not accept mail (null MX)"));
  }
  // A "." among real exchangers is a misconfiguration (RFC 7505 §3); use the real ones.
  records.erase(std::remove_if(records.begin(), records.end(), is_root), records.end());
  if (records.empty()) {
    return failure(RoutePlan::Kind::permanent, smtp::make_reply(550, 5, 1, 2, "No mail exchanger for " + domain));
  }
  // Sorted by preference; equal preferences in random order to spread the load (§5.1).
  std::shuffle(records.begin(), records.end(), rng);
  std::stable_sort(records.begin(), records.end(),
                   [](const MxRecord& a, const MxRecord& b) { return a.preference < b.preference; });
  // RFC 5321 §5.1: "If it [the SMTP client] is among the MX records, it MUST discard
  // records with preference values equal to or greater than its own." This host is an
  // exchanger named by one of its names (anywhere in the list: no lookup needed), or one at an
  // address where it takes mail itself. Exchangers are looked up once each, in preference
  // order, as far as the ones that may be tried: the best max_hosts, and the rest of the last
  // one's preference (this host tying with it must be seen), at most 2 x max_hosts lookups.
  std::size_t self = records.size();
  for (std::size_t i = 0; i < records.size(); ++i) {
    const auto& names = options.local_names;
    if (std::find(names.begin(), names.end(), ascii_lower(records[i].host)) != names.end()) {
      self = i;
      break;
    }
  }
  const auto lookup = [&](std::size_t i) {
    const std::string host = ascii_lower(records[i].host);
    // An MX must name a host, not an address (RFC 5321 §5.1); many senders accept it anyway.
    if (is_numeric_address(host)) return AddressLookup{DnsStatus::ok, {host}, {}};
    return dns.addresses(host);
  };
  const auto is_local = [&](const std::string& address) {
    const std::string a = canonical_address(address);
    if (options.local_loopback && is_loopback(a)) return true;
    return std::any_of(options.local_addresses.begin(), options.local_addresses.end(),
                       [&](const std::string& mine) { return canonical_address(mine) == a; });
  };
  std::vector<AddressLookup> addrs;
  const std::size_t hosts = std::max<std::size_t>(options.max_hosts, 1);
  for (std::size_t i = 0; i < self; ++i) {
    if (i >= hosts && (records[i].preference > records[hosts - 1].preference || i >= 2 * hosts)) break;
    addrs.push_back(lookup(i));
    if (addrs.back().status == DnsStatus::ok &&
        std::any_of(addrs.back().addresses.begin(), addrs.back().addresses.end(), is_local)) {
      self = i;
      break;
    }
  }
  if (self < records.size()) {
    // Sorted by preference: the better exchangers are the ones before the first of its preference.
    std::size_t kept = 0;
    while (kept < records.size() && records[kept].preference < records[self].preference) ++kept;
    if (kept == 0) {
      return failure(RoutePlan::Kind::permanent,
                     smtp::make_reply(554, 5, 4, 6, "Mail for " + domain + " loops back to this host (its best mail exchanger)"));
    }
    records.resize(kept);
  }
  if (records.size() > options.max_hosts) records.resize(options.max_hosts);
  addrs.resize(std::min(addrs.size(), records.size()));
  while (addrs.size() < records.size()) addrs.push_back(lookup(addrs.size()));

  RoutePlan plan;
  bool temporary = false;
  std::string last_error;
  for (std::size_t i = 0; i < addrs.size(); ++i) {
    const std::string host = ascii_lower(records[i].host);
    const AddressLookup& a = addrs[i];
    if (a.status == DnsStatus::ok) {
      std::size_t taken = 0;
      for (const auto& addr : a.addresses) {
        if (taken++ == options.max_addresses) break;
        plan.hops.push_back(NextHop{host, addr, options.port, records[i].preference});
      }
    } else {
      temporary = temporary || a.status == DnsStatus::temporary;
      last_error = host + ": " + (a.error.empty() ? std::string("no address") : a.error);
    }
  }
  if (!plan.hops.empty()) {
    plan.kind = RoutePlan::Kind::hops;
    return plan;
  }
  if (temporary) {
    return failure(RoutePlan::Kind::temporary, smtp::make_reply(451, 4, 4, 3, "No address for the mail exchangers of " + domain + why(last_error)));
  }
  return failure(RoutePlan::Kind::permanent, smtp::make_reply(550, 5, 4, 4, "Unable to route to " + domain + why(last_error)));
}

bool RouteTable::add(std::string_view spec, std::string& error) {
  const std::string text(spec);
  const auto fail = [&](const std::string& what) {
    error = "route '" + text + "': " + what;
    return false;
  };
  const std::size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) return fail("expected DOMAIN=HOST[:PORT][;tls=...][;auth=FILE]");
  StaticRoute r;
  r.domain = ascii_lower(text.substr(0, eq));
  std::string rest = text.substr(eq + 1);
  std::vector<std::string> parts;
  for (std::size_t start = 0;;) {
    const std::size_t semi = rest.find(';', start);
    parts.push_back(rest.substr(start, semi == std::string::npos ? std::string::npos : semi - start));
    if (semi == std::string::npos) break;
    start = semi + 1;
  }
  std::string hostport = parts.front();
  if (hostport.empty()) return fail("no next hop");
  // "[::1]:25", "[::1]", "host:25", "host", "192.0.2.1:25"
  std::string port_text;
  if (hostport.front() == '[') {
    const std::size_t close = hostport.find(']');
    if (close == std::string::npos) return fail("unbalanced '['");
    r.host = hostport.substr(1, close - 1);
    if (close + 1 < hostport.size()) {
      if (hostport[close + 1] != ':') return fail("expected ':PORT' after ']'");
      port_text = hostport.substr(close + 2);
    }
  } else {
    const std::size_t colon = hostport.find(':');
    if (colon != std::string::npos && hostport.find(':', colon + 1) != std::string::npos) {
      return fail("write an IPv6 next hop in brackets, e.g. [::1]:25");
    }
    r.host = hostport.substr(0, colon);
    if (colon != std::string::npos) port_text = hostport.substr(colon + 1);
  }
  if (r.host.empty()) return fail("no host");
  if (!port_text.empty() || hostport.back() == ':') {
    char* end = nullptr;
    const long p = std::strtol(port_text.c_str(), &end, 10);
    if (port_text.empty() || *end != '\0' || p < 1 || p > 65535) return fail("bad port '" + port_text + "'");
    r.port = static_cast<std::uint16_t>(p);
  }
  for (std::size_t i = 1; i < parts.size(); ++i) {
    const std::string& kv = parts[i];
    if (kv.rfind("tls=", 0) == 0) {
      r.tls = kv.substr(4);
      if (*r.tls != "none" && *r.tls != "opportunistic" && *r.tls != "required") {
        return fail("tls must be none, opportunistic or required");
      }
    } else if (kv.rfind("auth=", 0) == 0) {
      r.auth_file = kv.substr(5);
      if (r.auth_file.empty()) return fail("auth= needs a file holding USER:PASSWORD");
    } else {
      return fail("unknown setting '" + kv + "' (tls=, auth=)");
    }
  }
  routes_.erase(std::remove_if(routes_.begin(), routes_.end(), [&](const StaticRoute& o) { return o.domain == r.domain; }),
                routes_.end());
  routes_.push_back(std::move(r));
  return true;
}

const StaticRoute* RouteTable::find(std::string_view domain) const {
  const std::string d = ascii_lower(domain);
  const StaticRoute* star = nullptr;
  for (const auto& r : routes_) {
    if (r.domain == d) return &r;
    if (r.domain == "*") star = &r;
  }
  return star;
}

RoutePlan plan_static_route(DnsResolver& dns, const StaticRoute& route) {
  RoutePlan plan;
  if (is_numeric_address(route.host)) {
    plan.kind = RoutePlan::Kind::hops;
    plan.hops.push_back(NextHop{route.host, route.host, route.port, 0});
    return plan;
  }
  const AddressLookup a = dns.addresses(ascii_lower(route.host));
  if (a.status != DnsStatus::ok) {
    // A configured next hop that does not resolve is the operator's to fix: defer, not bounce.
    return failure(RoutePlan::Kind::temporary, smtp::make_reply(451, 4, 4, 3, "Next hop " + route.host + " has no address" + why(a.error)));
  }
  plan.kind = RoutePlan::Kind::hops;
  for (const auto& addr : a.addresses) plan.hops.push_back(NextHop{ascii_lower(route.host), addr, route.port, 0});
  return plan;
}

}  // namespace refsmtp::delivery
