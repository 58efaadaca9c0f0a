#pragma once
// Drives one smtp::ServerSession over a TCP connection with Boost.Asio, with STARTTLS through
// OpenSSL. The session makes every protocol decision; this layer only moves bytes, runs the
// session's deadlines on a timer, performs TLS handshakes, and asks the SessionHost the session's
// questions. One coroutine per connection.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <atomic>
#include <chrono>
#include <mutex>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "refsmtp/smtp/server_session.hpp"

namespace refsmtp::net {

struct ConnectionInfo {
  std::uint64_t id = 0;
  std::string client_address;  // numeric
  std::string role;            // "mx", ...
  bool tls = false;
  std::string helo;
  std::string auth_identity;
};

using LogFields = std::vector<std::pair<std::string, std::string>>;

// What the embedding server decides. Called on the connection's executor; answers at once.
class SessionHost {
 public:
  virtual ~SessionHost() = default;
  virtual smtp::Verdict check_sender(const ConnectionInfo& c, const smtp::action::CheckSender& q) = 0;
  virtual smtp::Verdict check_recipient(const ConnectionInfo& c, const smtp::action::CheckRecipient& q) = 0;
  virtual smtp::Verdict check_auth(const ConnectionInfo& c, const smtp::action::CheckAuth& q) = 0;
  // The whole message (body as received, unstuffed). Answer accept only once it is durable.
  virtual smtp::Verdict message(const ConnectionInfo& c, const smtp::Envelope& envelope, std::string_view body) = 0;
  // One structured event: a name and key/value fields (the server writes text or JSON lines).
  virtual void log(const ConnectionInfo& c, std::string_view event, const LogFields& fields) = 0;
};

// Lets the server reach a running connection, from any thread: to drain it at shutdown.
struct ConnectionControl {
  std::atomic<bool> draining{false};  // close when idle (421 4.3.2); a transaction may finish
  std::atomic<bool> force{false};     // close now with 421
  // Interrupts the connection's wait for input; safe from any thread (it posts to the
  // connection's strand). Does nothing once the connection has ended.
  void wake();

  std::mutex m;
  std::function<void()> waker;  // set and cleared by the connection
};

struct ConnectionOptions {
  smtp::ServerConfig session;
  // For STARTTLS or implicit TLS; empty: no TLS. Shared so a certificate reload (a new context)
  // leaves connections already running on the old one untouched.
  std::shared_ptr<boost::asio::ssl::context> tls;
  bool implicit_tls = false;                 // RFC 8314: handshake before the greeting
  std::string role = "mx";
  // Failed AUTH attempts are answered after a delay that grows with each failure; at the limit
  // the connection is closed with 421 (RFC 4954 §4 leaves the policy to the server).
  std::chrono::milliseconds auth_failure_delay{500};
  int max_auth_failures = 3;
  // Slow-client protection beside the session's per-read timeouts: the whole connection may
  // last at most this long, however steadily the client trickles bytes.
  std::chrono::milliseconds max_duration{std::chrono::hours(1)};
  std::shared_ptr<ConnectionControl> control;  // optional
};

boost::asio::awaitable<void> serve_connection(boost::asio::ip::tcp::socket socket, ConnectionOptions options,
                                              SessionHost& host, std::uint64_t id);

}  // namespace refsmtp::net
