#pragma once
// refsmtpd's outbound side: for each destination domain, find the next hops (a static route or
// DNS MX resolution through c-ares), then hand the messages to net::relay_messages over Asio,
// with at most `max_per_destination` connections per domain at once. DNS lookups block, so they
// run on a small thread pool of their own, never on the io threads.
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "refsmtp/smtp/client_session.hpp"
#include "refsmtp/delivery/dns.hpp"
#include "refsmtp/delivery/mx.hpp"
#include "refsmtp/net/connection.hpp"
#include "refsmtp/queue/queue.hpp"

namespace refsmtp::server {

struct RelayConfig {
  bool mx = false;                       // relay to any domain by DNS MX lookup
  std::vector<std::string> routes;       // static routes (see delivery::RouteTable)
  delivery::DnsOptions dns;              // resolver servers and timeouts
  std::uint16_t mx_port = 25;            // the SMTP port of exchangers found by MX lookup
  smtp::TlsPolicy tls = smtp::TlsPolicy::opportunistic;  // routes may override it
  std::string ca_file;                   // trust store for TlsPolicy::required; empty: the system's
  std::string helo_name = "localhost";
  // Where this server itself takes mail on mx_port (numeric; and every loopback address when
  // local_loopback): an exchanger there is this host, whatever its name (RFC 5321 §5.1).
  // Server::start adds its listeners' addresses to those given (e.g. a public address that
  // NAT forwards here).
  std::vector<std::string> local_addresses;
  bool local_loopback = false;
  std::size_t max_per_destination = 2;   // connections at once per destination domain
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(30)};
  // Client timeouts (RFC 5321 §4.5.3.2); tests shorten them.
  std::chrono::milliseconds command_timeout{std::chrono::minutes(5)};
  std::chrono::milliseconds data_timeout{std::chrono::minutes(10)};
};

// One message's recipients for one destination. `index` maps each of msg.recipients to the
// queue's recipient index (one queue recipient may appear more than once: an alias).
struct RelayJob {
  smtp::OutgoingMessage msg;
  std::vector<std::size_t> index;
};

class Relayer {
 public:
  // Called once per job, as soon as that job's results are known (not when the connection
  // ends), with one outcome per job recipient, in order; on any thread.
  using Done = std::function<void(std::size_t job, std::vector<queue::DeliveryOutcome> outcomes)>;
  using Log = std::function<void(std::string_view event, const net::LogFields& fields)>;

  Relayer(boost::asio::io_context& io, RelayConfig config, Log log);
  ~Relayer();

  // Parses the routes, reads their auth files, checks the DNS options, makes the TLS context.
  bool start(std::string& error);
  bool enabled() const { return cfg_.mx || !routes_.empty(); }
  // Whether mail for `domain` can leave this server at all (relay by MX, or a route for it).
  bool routable(const std::string& domain) const;
  // Whether another connection to `domain` may start now.
  bool has_capacity(const std::string& domain) const;
  // Starts delivering `jobs` (all for `domain`) in the background; `done` runs once per job.
  void send(const std::string& domain, std::vector<RelayJob> jobs, Done done);
  // Waits for DNS lookups in progress; called before the io_context goes away.
  void stop();

 private:
  boost::asio::awaitable<void> run(std::string domain, std::vector<RelayJob> jobs, Done done);
  boost::asio::awaitable<void> relay(const std::string& domain, const std::vector<RelayJob>& jobs,
                                     const std::function<void(std::size_t, std::vector<queue::DeliveryOutcome>)>& report);
  delivery::RoutePlan plan(const std::string& domain, const delivery::StaticRoute* route);

  boost::asio::io_context& io_;
  RelayConfig cfg_;
  Log log_;
  delivery::RouteTable routes_;
  std::map<std::string, std::string> auth_;  // route auth file -> "USER:PASSWORD"
  std::shared_ptr<boost::asio::ssl::context> tls_;
  std::unique_ptr<delivery::CaresResolver> dns_;
  boost::asio::thread_pool dns_pool_{2};
  mutable std::mutex m_;
  std::map<std::string, std::size_t> active_;  // destination -> connections running
  std::mt19937_64 rng_;                       // under m_
};

}  // namespace refsmtp::server
