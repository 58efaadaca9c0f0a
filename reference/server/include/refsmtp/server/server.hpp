#pragma once
// The composition root of refsmtpd: it builds the parts -- listeners with roles (listeners.cpp),
// the connection table (connections.cpp), recipient policy (recipient_policy.cpp), the queue and
// the delivery loop (delivery_loop.cpp), the test-mode capture store (capture.cpp), the event log
// (event_log.cpp) -- starts them in order, and stops or drains them; all on Boost.Asio.
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <cstdint>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "refsmtp/delivery/lmtp.hpp"
#include "refsmtp/delivery/local_recipients.hpp"
#include "refsmtp/delivery/relay.hpp"
#include "refsmtp/net/connection.hpp"
#include "refsmtp/queue/queue.hpp"
#include "refsmtp/server/credentials.hpp"
#include "refsmtp/server/listeners.hpp"
#include "refsmtp/server/relayer.hpp"

namespace refsmtp::server {

enum class Delivery { maildir, mbox, lmtp };

struct ServerOptions {
  std::vector<ListenerSpec> listeners;
  std::string hostname = "localhost";
  std::string spool_dir;                 // the queue lives here
  std::string mail_root;                 // Maildirs at MAIL_ROOT/<mailbox>/Maildir, or MAIL_ROOT/<mailbox>.mbox
  Delivery delivery = Delivery::maildir;
  delivery::Endpoint lmtp;           // with Delivery::lmtp
  std::string recipients_file;           // a recipient table (see delivery/local_recipients.hpp)
  std::vector<std::string> domains;      // or: local domains where every safe local part is a mailbox
  std::string tls_cert, tls_key;         // PEM files; STARTTLS is offered when both are set
  std::string credentials_file;          // for AUTH on submission(s): see credentials.hpp
  std::uint64_t max_message_size = 32 * 1024 * 1024;
  // Test mode: messages are captured instead of queued and delivered. Exactly one store:
  bool test_mode = false;
  std::string capture_dir;               // one file per message, NAME.eml, renamed into place whole
  std::string capture_mbox;              // or every message appended to this mbox file (mboxrd)

  // Limits (RFC 5321 §4.5.3.2 timeouts; connection counts answered 421 4.7.0 when exceeded).
  std::size_t max_connections = 200;     // refsmtpd sizes it to its file-descriptor limit
  std::size_t max_connections_per_client = 20;
  // Stress (Postfix's stress mode): while at least stress_percent of max_connections are open,
  // new connections get stress_timeout_s for every command and stress_errors bad commands, so
  // idle or abusive clients give their places back quickly; logged when it starts and ends.
  unsigned stress_percent = 75;
  std::uint32_t stress_timeout_s = 10;
  std::size_t stress_errors = 3;
  std::uint32_t command_timeout_s = 300;  // §4.5.3.2.7
  std::uint32_t data_timeout_s = 300;
  std::uint32_t max_connection_time_s = 3600;
  std::uint32_t drain_timeout_s = 30;     // at shutdown, how long transactions may finish

  // Relay (outbound SMTP): to other domains for authenticated clients, and for aliases and
  // bounces that point elsewhere. Off unless relay.mx is set or routes are given.
  RelayConfig relay;
  std::size_t max_received = delivery::kDefaultMaxReceived;  // more Received: headers: a mail loop (RFC 5321 §6.3)
  queue::RetryPolicy retry;               // when deferred mail is tried again, and when it bounces
  // The wall clock, in ms since the epoch, for the queue (arrival, retries); tests inject one.
  std::function<std::int64_t()> clock;

  bool log_json = false;                  // log lines as JSON objects (else key=value text)
  // When set, every log event goes here instead of stderr (for embedding; called on any thread).
  std::function<void(std::string_view event, const net::LogFields& fields)> log_hook;
  unsigned threads = 2;                   // io threads (refsmtpd: one io_context each, one per core by default)
  // Where connections run. Empty: each on a strand of the server's io_context, which may be run
  // by any number of threads. Else spread round-robin over these io_contexts, each run by
  // exactly one thread (the server's may be among them): a connection's handlers then never
  // hand off to, or wake, another thread.
  std::vector<boost::asio::io_context*> connection_contexts;
  // Runs after the listeners are bound and before the spool is opened: where refsmtpd drops
  // root privileges. Returns false with `error` set to abort the start.
  std::function<bool(std::string& error)> after_bind;
};

// What is wrong with the options themselves, before any file is read (Server::start stops at
// the first; check-config lists them all).
std::vector<std::string> option_problems(const ServerOptions& opt);

// Every problem Server::start (and the privilege drop to `run_as`) would meet with these options,
// found without binding a port or opening the spool: refsmtpd check-config.
std::vector<std::string> check_configuration(const ServerOptions& opt, const std::string& run_as);

// Why start() failed, for an exit status a script can act on (refsmtpd maps it to sysexits(3)).
enum class StartFailure {
  none,
  config,       // the options or a file's contents are wrong
  no_input,     // a file it needs cannot be read
  cant_create,  // a directory, file or socket it needs cannot be made
  busy,         // a port or the spool is taken: try again later
  privileges,   // --user cannot be taken on
  io_error,     // the spool cannot be read
};

class Server final : public net::SessionHost {
 public:
  Server(boost::asio::io_context& io, ServerOptions options);
  ~Server() override;

  // Loads the recipients, recovers the queue, binds every listener. Errors name what failed.
  bool start(std::string& error);
  StartFailure start_failure() const;  // after start() returned false
  // The bound (role, address, port) of each listener, in order, after start().
  std::vector<ListenerSpec> bound() const;
  void stop();
  // Graceful shutdown: stop accepting, tell idle sessions 421, let transactions finish for up to
  // drain_timeout_s, then close the rest with 421; `done` runs when no connection is left.
  void drain(std::function<void()> done);
  // Re-reads the TLS certificate and key for new connections (SIGHUP); false with `error` set
  // if they do not load, in which case the old ones stay in use.
  bool reload_tls(std::string& error);
  std::size_t connections() const;
  // Delivery passes completed so far (one runs each second and after each accepted message):
  // what a test or health check waits on to know the queue has looked at what is due.
  std::uint64_t delivery_passes() const;
  // Blocks until `n` delivery passes have completed in all (true), or `timeout` is up (false).
  bool wait_for_delivery_passes(std::uint64_t n, std::chrono::milliseconds timeout) const;
  // Writes one log line in the configured format (for events outside connections).
  void note(std::string_view event, const net::LogFields& fields) const;

  smtp::Verdict check_sender(const net::ConnectionInfo& c, const smtp::action::CheckSender& q) override;
  smtp::Verdict check_recipient(const net::ConnectionInfo& c, const smtp::action::CheckRecipient& q) override;
  smtp::Verdict check_auth(const net::ConnectionInfo& c, const smtp::action::CheckAuth& q) override;
  smtp::Verdict message(const net::ConnectionInfo& c, const smtp::Envelope& envelope, std::string_view body) override;
  void log(const net::ConnectionInfo& c, std::string_view event, const net::LogFields& fields) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace refsmtp::server
