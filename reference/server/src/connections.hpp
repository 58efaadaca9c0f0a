#pragma once
// The accept loops and the connection table: each accepted socket is counted against the
// server-wide and per-client limits (over either: one 421 and close, RFC 5321 §3.8), handed to the
// protocol driver of its listener's role (chosen in listeners.cpp; this file knows no protocol),
// and tracked until it ends, so that a drain can ask every session to finish and then force the
// rest closed.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <atomic>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "event_log.hpp"
#include "refsmtp/net/connection.hpp"
#include "refsmtp/server/listeners.hpp"

namespace refsmtp::server {

class Connections {
 public:
  using Strand = boost::asio::strand<boost::asio::io_context::executor_type>;
  // Serves one accepted connection of a role to its end: the protocol driver, with the options
  // of that moment (a TLS reload takes effect for new connections). `control` carries drain
  // requests to it.
  // `stress`: the server is under stress (see Limits) as this connection starts.
  using Serve = std::function<boost::asio::awaitable<void>(boost::asio::ip::tcp::socket, Role, std::uint64_t id,
                                                           std::shared_ptr<net::ConnectionControl> control, bool stress)>;

  struct Limits {
    std::size_t max_connections = 200;
    std::size_t max_per_client = 20;
    std::chrono::seconds drain_timeout{30};
    unsigned stress_percent = 75;  // stress starts at this share of max_connections, ends below 2/3 of it
  };

  // `contexts`: where connections run (see ServerOptions::connection_contexts); empty: each on a
  // strand of `io`. The accept loops and the drain timer run on `strand`.
  Connections(boost::asio::io_context& io, Strand strand, std::vector<boost::asio::io_context*> contexts, Limits limits,
              std::string hostname, const EventLog& log, Serve serve);

  // Runs on the strand until the acceptor is closed.
  boost::asio::awaitable<void> accept_loop(boost::asio::ip::tcp::acceptor& acceptor, Role role);
  void stop() { stopping_ = true; }

  std::size_t active() const;
  // Asks every session to finish (idle ones get 421 at once), then, after the drain timeout,
  // forces the rest closed; `done` runs when no connection is left. Call on the strand.
  void drain(std::function<void()> done);

 private:
  boost::asio::awaitable<void> tracked(boost::asio::awaitable<void> conn, std::string client,
                                       std::shared_ptr<net::ConnectionControl> control);
  boost::asio::awaitable<void> refuse(boost::asio::ip::tcp::socket socket);

  boost::asio::io_context& io_;
  Strand strand_;
  std::vector<boost::asio::io_context*> contexts_;
  Limits limits_;
  std::string hostname_;
  const EventLog& log_;
  Serve serve_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> next_conn_{1};
  std::size_t next_context_ = 0;  // on the strand

  mutable std::mutex m_;  // the table below
  std::map<std::string, std::size_t> per_client_;
  std::size_t active_ = 0;
  bool stress_ = false;
  // Under m_: whether the table is under stress now; logs a change.
  bool update_stress();
  std::list<std::shared_ptr<net::ConnectionControl>> controls_;
  std::function<void()> on_drained_;
  std::unique_ptr<boost::asio::steady_timer> drain_timer_;  // on the strand
};

}  // namespace refsmtp::server
