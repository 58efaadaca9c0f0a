#include "refsmtp/server/server.hpp"

#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "capture.hpp"
#include "connections.hpp"
#include "control.hpp"
#include "delivery_loop.hpp"
#include "event_log.hpp"
#include "listeners_internal.hpp"
#include "recipient_policy.hpp"
#include "refsmtp/core/text.hpp"
#include "refsmtp/queue/spool_lock.hpp"

namespace refsmtp::server {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The whole of a configuration file; false if it cannot be read.
bool read_text_file(const std::string& path, std::string& text) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  text = ss.str();
  return true;
}

}  // namespace

// The parts, in the order they are built; destroyed in reverse, so the delivery loop (which uses
// the queue, the relay and the policy) goes first.
struct Server::Impl {
  asio::io_context& io;
  ServerOptions opt;
  EventLog log;
  // The acceptors, the connection table's drain timer and the delivery timer run on this strand.
  asio::strand<asio::io_context::executor_type> strand{asio::make_strand(io)};
  std::mutex tls_m;
  std::shared_ptr<asio::ssl::context> tls;
  std::optional<RecipientPolicy> policy;
  std::optional<Credentials> credentials;
  std::unique_ptr<CaptureStore> capture;
  // Held for the process's life; declared before the queue, so it is let go only after the
  // queue is gone.
  queue::SpoolLock spool_lock;
  std::unique_ptr<queue::PosixStorage> spool_storage, mail_storage;
  std::unique_ptr<queue::Queue> queue;
  std::unique_ptr<Relayer> relayer;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  std::vector<ListenerSpec> bound;
  std::unique_ptr<Connections> connections;
  std::unique_ptr<DeliveryLoop> delivery;
  std::unique_ptr<ControlSocket> control;  // after the delivery loop it hands requests to
  StartFailure failure = StartFailure::none;

  bool fail(StartFailure kind) {
    failure = kind;
    return false;
  }

  Impl(asio::io_context& i, ServerOptions o) : io(i), opt(std::move(o)), log(opt.log_json, opt.log_hook) {
    if (!opt.clock) opt.clock = wall_ms;
  }

  bool load_tls(std::string& error) {
    auto ctx = make_tls_context(opt.tls_cert, opt.tls_key, error);
    if (!ctx) return false;
    std::lock_guard lock(tls_m);
    tls = std::move(ctx);
    return true;
  }

  std::shared_ptr<asio::ssl::context> current_tls() {
    std::lock_guard lock(tls_m);
    return tls;
  }

  // Whether mail for a (lower-case) foreign domain has a way out; in --test-mode everything is
  // captured and nothing leaves, so every domain does.
  bool routable(const std::string& domain) const { return opt.test_mode || (relayer && relayer->routable(domain)); }

  // Stops accepting and delivering (on the strand).
  void stop_accepting() {
    boost::system::error_code ec;
    for (auto& a : acceptors) a->close(ec);
    if (control) control->close();
    if (connections) connections->stop();
    if (delivery) delivery->stop();
  }
};

Server::Server(asio::io_context& io, ServerOptions options) : impl_(std::make_unique<Impl>(io, std::move(options))) {}

Server::~Server() {
  if (impl_->delivery) impl_->delivery->join();
}

bool Server::start(std::string& error) {
  Impl& s = *impl_;
  // The rules on the options alone, shared with check-config; then what needs the files.
  if (const auto problems = option_problems(s.opt); !problems.empty()) {
    error = problems.front();
    return s.fail(StartFailure::config);
  }
  std::optional<delivery::LocalRecipients> table;
  if (!s.opt.recipients_file.empty()) {
    std::string text;
    if (!read_text_file(s.opt.recipients_file, text)) {
      error = "cannot read recipients file " + s.opt.recipients_file;
      return s.fail(StartFailure::no_input);
    }
    table = delivery::LocalRecipients::parse(text, s.opt.recipients_file, error);
    if (!table) return s.fail(StartFailure::config);
  }
  for (auto& d : s.opt.domains) d = core::ascii_lower(d);
  s.policy.emplace(s.opt.domains, std::move(table), s.opt.hostname);
  if (std::any_of(s.opt.listeners.begin(), s.opt.listeners.end(), [](const ListenerSpec& l) { return needs_auth(l.role); })) {
    if (auto problem = Credentials::mode_problem(s.opt.credentials_file)) {
      error = *problem;
      return s.fail(StartFailure::config);
    }
    std::string text;
    if (!read_text_file(s.opt.credentials_file, text)) {
      error = "cannot read credentials file " + s.opt.credentials_file;
      return s.fail(StartFailure::no_input);
    }
    s.credentials = Credentials::parse(text, s.opt.credentials_file, error);
    if (!s.credentials) return s.fail(StartFailure::config);
  }
  if (!s.opt.test_mode) {
    if (s.opt.mail_root.empty()) s.opt.mail_root = s.opt.spool_dir + "/unused-mail-root";
    for (const auto& [option, dir] : {std::pair{"--spool", s.opt.spool_dir}, std::pair{"--mail-root", s.opt.mail_root}}) {
      std::error_code ec;
      // Made private when refsmtpd makes them (queued mail and mailboxes are nobody else's); an
      // existing directory keeps the mode its owner gave it.
      if (std::filesystem::create_directories(dir, ec) && !ec) {
        std::filesystem::permissions(dir, std::filesystem::perms::owner_all, std::filesystem::perm_options::replace, ec);
      }
      if (!ec && !std::filesystem::is_directory(dir, ec)) ec = std::make_error_code(std::errc::not_a_directory);
      if (ec) {
        error = std::string(option) + " " + dir + ": cannot create the directory: " + ec.message();
        return s.fail(StartFailure::cant_create);
      }
    }
  }
  if (!s.opt.tls_cert.empty() || !s.opt.tls_key.empty()) {
    if (!s.load_tls(error)) return s.fail(StartFailure::config);
  }
  for (const auto& l : s.opt.listeners) {
    ListenerSpec b;
    auto acceptor = bind_listener(s.io, l, b, error);
    if (!acceptor) return s.fail(StartFailure::busy);
    s.bound.push_back(b);
    s.acceptors.push_back(std::move(acceptor));
  }
  // The relay (before privileges go: it reads the routes' auth files). It knows where this
  // server takes mail, so that an exchanger there counts as this host (RFC 5321 §5.1).
  RelayConfig rc = s.opt.relay;
  if (rc.helo_name == "localhost") rc.helo_name = s.opt.hostname;
  std::string interfaces_error;
  add_addresses_listening_on(s.bound, rc.mx_port, rc, interfaces_error);
  if (!interfaces_error.empty()) s.log.write("relay", {{"warning", interfaces_error}});
  s.relayer = std::make_unique<Relayer>(s.io, rc, [&s](std::string_view event, const net::LogFields& fields) {
    s.log.write(event, fields);
  });
  if (!s.relayer->start(error)) return s.fail(StartFailure::config);
  // Connections are taken only now that everything they use exists.
  Connections::Limits limits{s.opt.max_connections, s.opt.max_connections_per_client,
                             std::chrono::seconds(s.opt.drain_timeout_s), s.opt.stress_percent};
  s.connections = std::make_unique<Connections>(
      s.io, s.strand, s.opt.connection_contexts, limits, s.opt.hostname, s.log,
      [&s, this](tcp::socket socket, Role role, std::uint64_t id, std::shared_ptr<net::ConnectionControl> control, bool stress) {
        return serve(std::move(socket), role, id, std::move(control), stress, s.opt, s.current_tls(), *this);
      });
  for (std::size_t i = 0; i < s.acceptors.size(); ++i) {
    asio::co_spawn(s.strand, s.connections->accept_loop(*s.acceptors[i], s.bound[i].role), asio::detached);
  }
  // Privileges may be dropped here (refsmtpd --user): after binding, before touching the spool.
  if (s.opt.after_bind && !s.opt.after_bind(error)) return s.fail(StartFailure::privileges);
  // SIGHUP re-reads the certificate and key as the user the server now runs as: say now if it
  // cannot, rather than at the first reload.
  if (s.opt.after_bind && s.current_tls()) {
    for (const auto& file : {s.opt.tls_cert, s.opt.tls_key}) {
      if (::access(file.c_str(), R_OK) != 0) {
        s.log.write("tls", {{"warning", file + " is not readable after --user: a SIGHUP reload will fail (make it readable "
                                               "by that user, or restart to load a new certificate)"}});
      }
    }
  }
  if (s.opt.test_mode) {
    s.capture = CaptureStore::open(s.opt.capture_dir, s.opt.capture_mbox, error);
    if (!s.capture) return s.fail(StartFailure::cant_create);
    return true;
  }
  // One process per spool: a second one would overwrite the first one's messages.
  std::string lock_error;
  if (const auto st = s.spool_lock.take(s.opt.spool_dir, lock_error); st != queue::SpoolLock::Status::held) {
    error = "--spool " + s.opt.spool_dir + ": " + lock_error;
    return s.fail(st == queue::SpoolLock::Status::busy ? StartFailure::busy : StartFailure::cant_create);
  }
  s.spool_storage = std::make_unique<queue::PosixStorage>(s.opt.spool_dir);
  s.mail_storage = std::make_unique<queue::PosixStorage>(s.opt.mail_root);
  queue::QueueConfig qc;
  qc.hostname = s.opt.hostname;
  qc.retry = s.opt.retry;
  // Notices for postmaster go to the domainless <Postmaster>, which is always local here (RFC
  // 5321 §4.5.1), not to postmaster@HOSTNAME, which is local only when the host name is a local
  // domain (before, such notices bounced and were dropped).
  qc.postmaster = "Postmaster";
  s.queue = std::make_unique<queue::Queue>(*s.spool_storage, qc);
  queue::RecoveryReport report;
  if (auto err = s.queue->open(s.opt.clock(), &report)) {
    error = "cannot open the spool in " + s.opt.spool_dir + ": " + err.message();
    return s.fail(StartFailure::io_error);
  }
  for (const auto& q : report.quarantined) s.log.write("recovery", {{"quarantined", q}});
  s.log.write("recovery", {{"queued", std::to_string(report.messages.size())}});
  s.delivery = std::make_unique<DeliveryLoop>(s.strand, *s.queue, *s.mail_storage, *s.relayer, *s.policy, s.log, s.opt);
  s.delivery->start();
  // `refsmtpd queue ...` talks to this socket; requests run on the delivery thread.
  s.control = std::make_unique<ControlSocket>(s.io, s.log, [&s](std::string line, std::function<void(std::string)> reply) {
    s.delivery->control(std::move(line), std::move(reply));
  });
  if (!s.control->open(s.opt.spool_dir + "/control", error)) return s.fail(StartFailure::cant_create);
  return true;
}

std::vector<ListenerSpec> Server::bound() const { return impl_->bound; }

StartFailure Server::start_failure() const { return impl_->failure; }

void Server::stop() {
  // Stops accepting and delivering; running connections and relay jobs end with the
  // io_contexts they run on.
  asio::post(impl_->strand, [&s = *impl_] { s.stop_accepting(); });
}

std::uint64_t Server::delivery_passes() const { return impl_->delivery ? impl_->delivery->passes() : 0; }

bool Server::wait_for_delivery_passes(std::uint64_t n, std::chrono::milliseconds timeout) const {
  return impl_->delivery ? impl_->delivery->wait_for_passes(n, timeout) : n == 0;
}

std::size_t Server::connections() const { return impl_->connections ? impl_->connections->active() : 0; }

void Server::note(std::string_view event, const net::LogFields& fields) const { impl_->log.write(event, fields); }

bool Server::reload_tls(std::string& error) {
  if (!impl_->current_tls()) {
    error = "TLS is not configured";
    return false;
  }
  return impl_->load_tls(error);
}

void Server::drain(std::function<void()> done) {
  // On the server strand, where the acceptors and timers live.
  asio::post(impl_->strand, [&s = *impl_, done = std::move(done)]() mutable {
    s.stop_accepting();
    if (!s.connections) {
      done();
      return;
    }
    s.connections->drain(std::move(done));
  });
}

smtp::Verdict Server::check_sender(const net::ConnectionInfo&, const smtp::action::CheckSender&) {
  return smtp::Verdict::accept();  // an MX takes mail from anyone (sender checks are policy, later)
}

smtp::Verdict Server::check_recipient(const net::ConnectionInfo& c, const smtp::action::CheckRecipient& q) {
  Impl& s = *impl_;
  const auto refusal = s.policy->at_rcpt(q.path, !c.auth_identity.empty(), [&s](const std::string& d) { return s.routable(d); });
  if (!refusal) return smtp::Verdict::accept();
  log(c, "rcpt", {{"rcpt", q.path.to_string()}, {"verdict", refusal->one_line()}});
  return smtp::Verdict::reject(*refusal);
}

smtp::Verdict Server::check_auth(const net::ConnectionInfo&, const smtp::action::CheckAuth& q) {
  // RFC 4616 §2: an authorization identity other than the authentication identity is refused.
  const bool ok = impl_->credentials && (q.authzid.empty() || q.authzid == q.authcid) &&
                  impl_->credentials->verify(q.authcid, q.password);
  if (ok) return smtp::Verdict::accept();
  return smtp::Verdict::reject(smtp::make_reply(535, 5, 7, 8, "Authentication credentials invalid"));  // RFC 4954 §6
}

smtp::Verdict Server::message(const net::ConnectionInfo& c, const smtp::Envelope& envelope, std::string_view body) {
  Impl& s = *impl_;
  if (s.capture) {
    std::string name;
    if (const std::error_code err = s.capture->store(envelope, body, s.opt.clock(), name)) {
      log(c, "message", {{"from", envelope.reverse_path.to_string()}, {"size", std::to_string(body.size())},
                         {"error", err.message()}, {"verdict", "451"}});
      return smtp::Verdict::reject(smtp::make_reply(451, 4, 3, 0, "Could not capture the message"));
    }
    log(c, "message", {{"from", envelope.reverse_path.to_string()}, {"rcpts", std::to_string(envelope.recipients.size())},
                       {"size", std::to_string(body.size())}, {"captured", name}, {"verdict", "250"}});
    return smtp::Verdict::accept(smtp::make_reply(250, 2, 0, 0, "OK captured as " + name));
  }
  queue::ClientInfo ci{envelope.helo, c.client_address, envelope.esmtp, c.tls, !c.auth_identity.empty()};
  // Queue::accept is thread-safe and writes outside its lock: concurrent connections share the
  // spool's group commit.
  const queue::AcceptResult r = s.queue->accept(s.policy->expand_aliases(envelope), body, ci, s.opt.clock());
  net::LogFields fields{{"queue_id", r.id.value_or("")}, {"from", envelope.reverse_path.to_string()},
                        {"rcpts", std::to_string(envelope.recipients.size())}, {"size", std::to_string(body.size())}};
  if (envelope.params.auth) fields.emplace_back("auth", *envelope.params.auth);  // RFC 4954 §5
  fields.emplace_back("verdict", r.reply.one_line());
  log(c, "message", fields);
  if (!r.id) return smtp::Verdict::reject(r.reply);
  s.delivery->request();  // deliver soon, outside this call
  return smtp::Verdict::accept(r.reply);
}

void Server::log(const net::ConnectionInfo& c, std::string_view event, const net::LogFields& fields) {
  net::LogFields all{{"conn", std::to_string(c.id)}, {"role", c.role}, {"client", c.client_address}};
  if (c.tls) all.emplace_back("tls", "1");
  all.insert(all.end(), fields.begin(), fields.end());
  impl_->log.write(event, all);
}

}  // namespace refsmtp::server
