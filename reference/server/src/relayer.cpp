#include "refsmtp/server/relayer.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fstream>
#include <sstream>

#include "refsmtp/delivery/relay.hpp"
#include "refsmtp/net/relay_client.hpp"
#include "refsmtp/core/text.hpp"

namespace refsmtp::server {

namespace asio = boost::asio;

namespace {

using core::ascii_lower;

smtp::TlsPolicy policy_of(const std::string& name, smtp::TlsPolicy fallback) {
  if (name == "none") return smtp::TlsPolicy::none;
  if (name == "opportunistic") return smtp::TlsPolicy::opportunistic;
  if (name == "required") return smtp::TlsPolicy::required;
  return fallback;
}

}  // namespace

Relayer::Relayer(asio::io_context& io, RelayConfig config, Log log)
    : io_(io), cfg_(std::move(config)), log_(std::move(log)), rng_(std::random_device{}()) {}

Relayer::~Relayer() { stop(); }

void Relayer::stop() { dns_pool_.join(); }

bool Relayer::start(std::string& error) {
  for (const auto& spec : cfg_.routes) {
    if (!routes_.add(spec, error)) return false;
    const delivery::StaticRoute* r = routes_.find(ascii_lower(spec.substr(0, spec.find('='))));
    if (!r || r->auth_file.empty() || auth_.count(r->auth_file)) continue;
    std::ifstream in(r->auth_file);
    std::string line;
    if (!in || !std::getline(in, line)) {
      error = "route '" + spec + "': cannot read auth file " + r->auth_file;
      return false;
    }
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find(':') == std::string::npos || line.find(':') == 0) {
      error = r->auth_file + ":1: expected USER:PASSWORD";
      return false;
    }
    auth_[r->auth_file] = line;
  }
  if (!enabled()) return true;
  dns_ = std::make_unique<delivery::CaresResolver>(cfg_.dns);
  if (std::string e = dns_->check(); !e.empty()) {
    error = "--dns-server: " + e;
    return false;
  }
  tls_ = net::make_client_tls(cfg_.ca_file, error);
  return tls_ != nullptr;
}

bool Relayer::routable(const std::string& domain) const { return cfg_.mx || routes_.find(domain) != nullptr; }

bool Relayer::has_capacity(const std::string& domain) const {
  std::lock_guard lock(m_);
  auto it = active_.find(domain);
  return it == active_.end() || it->second < cfg_.max_per_destination;
}

void Relayer::send(const std::string& domain, std::vector<RelayJob> jobs, Done done) {
  {
    std::lock_guard lock(m_);
    ++active_[domain];
  }
  asio::co_spawn(asio::make_strand(io_), run(domain, std::move(jobs), std::move(done)), asio::detached);
}

delivery::RoutePlan Relayer::plan(const std::string& domain, const delivery::StaticRoute* route) {
  if (route) return delivery::plan_static_route(*dns_, *route);
  std::mt19937_64 rng;
  {
    std::lock_guard lock(m_);
    rng.seed(rng_());
  }
  delivery::MxOptions o;
  o.port = cfg_.mx_port;
  o.local_names = {ascii_lower(cfg_.helo_name)};
  o.local_addresses = cfg_.local_addresses;
  o.local_loopback = cfg_.local_loopback;
  return delivery::plan_mx_route(*dns_, domain, o, rng);
}

asio::awaitable<void> Relayer::run(std::string domain, std::vector<RelayJob> jobs, Done done) {
  // Every job is reported exactly once, whatever happens: a job not reported when the relay
  // ends (an exception, say) is deferred, so its message is never stuck as "in flight".
  std::vector<bool> reported(jobs.size(), false);
  auto report = [&](std::size_t j, std::vector<queue::DeliveryOutcome> outcomes) {
    if (j >= jobs.size() || reported[j]) return;
    reported[j] = true;
    done(j, std::move(outcomes));
  };
  std::string failure;
  try {
    co_await relay(domain, jobs, report);
  } catch (const std::exception& e) {
    failure = e.what();
  }
  {
    std::lock_guard lock(m_);
    if (--active_[domain] == 0) active_.erase(domain);
  }
  for (std::size_t j = 0; j < jobs.size(); ++j) {
    if (reported[j]) continue;
    log_("relay", {{"domain", domain}, {"error", failure.empty() ? std::string("no result") : failure}});
    std::vector<queue::DeliveryOutcome> outcomes;
    for (std::size_t i : jobs[j].index) outcomes.push_back({i, queue::RecipientState::pending, smtp::make_reply(451, 4, 3, 0, "Relay failed: " + failure)});
    report(j, std::move(outcomes));
  }
}

asio::awaitable<void> Relayer::relay(const std::string& domain, const std::vector<RelayJob>& jobs,
                                     const std::function<void(std::size_t, std::vector<queue::DeliveryOutcome>)>& report) {
  const delivery::StaticRoute* route = routes_.find(domain);
  if (!route && !cfg_.mx) {
    // Nothing says how to reach it (the server checks routable() first; this is the backstop).
    for (std::size_t j = 0; j < jobs.size(); ++j) {
      std::vector<queue::DeliveryOutcome> outcomes;
      for (std::size_t i : jobs[j].index) {
        outcomes.push_back({i, queue::RecipientState::failed, smtp::make_reply(550, 5, 7, 1, "No route to " + domain + " (no --relay mx or --route)")});
      }
      report(j, std::move(outcomes));
    }
    co_return;
  }
  // The lookup blocks: it runs on the DNS pool, and this coroutine resumes on its strand.
  const delivery::RoutePlan plan = co_await asio::co_spawn(
      dns_pool_, [this, domain, route]() -> asio::awaitable<delivery::RoutePlan> { co_return this->plan(domain, route); },
      asio::use_awaitable);

  if (plan.kind != delivery::RoutePlan::Kind::hops) {
    const auto state = plan.kind == delivery::RoutePlan::Kind::permanent ? queue::RecipientState::failed
                                                                         : queue::RecipientState::pending;
    log_("route", {{"domain", domain}, {"verdict", plan.reply.one_line()}});
    for (std::size_t j = 0; j < jobs.size(); ++j) {
      std::vector<queue::DeliveryOutcome> outcomes;
      for (std::size_t i : jobs[j].index) outcomes.push_back({i, state, plan.reply});
      report(j, std::move(outcomes));
    }
    co_return;
  }
  std::vector<net::RelayHop> hops;
  for (const auto& h : plan.hops) hops.push_back(net::RelayHop{h.host, h.address, h.port});
  net::RelayOptions o;
  o.client.helo_name = cfg_.helo_name;
  o.client.tls = route && route->tls ? policy_of(*route->tls, cfg_.tls) : cfg_.tls;
  o.client.greeting_timeout = cfg_.command_timeout;
  o.client.command_timeout = cfg_.command_timeout;
  o.client.data_init_timeout = cfg_.command_timeout;
  o.client.data_block_timeout = cfg_.data_timeout;
  o.client.data_end_timeout = cfg_.data_timeout;
  if (route && !route->auth_file.empty()) {
    const std::string& up = auth_.at(route->auth_file);
    o.client.auth_user = up.substr(0, up.find(':'));
    o.client.auth_password = up.substr(up.find(':') + 1);
  }
  o.tls = tls_;
  o.connect_timeout = cfg_.connect_timeout;
  std::vector<smtp::OutgoingMessage> msgs;
  for (const auto& j : jobs) msgs.push_back(j.msg);
  const net::RelayResult r = co_await net::relay_messages(
      std::move(hops), std::move(msgs), std::move(o),
      [&](std::size_t j, const std::vector<smtp::RecipientResult>& results, const std::string& remote) {
        std::vector<queue::DeliveryOutcome> outcomes;
        for (std::size_t k = 0; k < jobs[j].index.size() && k < results.size(); ++k) {
          outcomes.push_back(delivery::to_outcome(jobs[j].index[k], results[k], remote));
        }
        report(j, std::move(outcomes));
      });
  for (const auto& line : r.log) log_("relay", {{"domain", domain}, {"hop", line}});
}

}  // namespace refsmtp::server
