#include "refsmtp/server/server.hpp"

#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <algorithm>
#include <atomic>
#include <mutex>
#include <ctime>
#include <nlohmann/json.hpp>
#include <list>
#include <map>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "refsmtp/delivery/lmtp.hpp"
#include "refsmtp/delivery/mailbox.hpp"

namespace refsmtp::server {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

}  // namespace

std::optional<ListenerSpec> parse_listen(const std::string& text, std::string& error) {
  const std::size_t eq = text.find('=');
  const std::size_t colon = text.rfind(':');
  if (eq == std::string::npos || colon == std::string::npos || colon < eq) {
    error = "--listen '" + text + "': expected ROLE=ADDRESS:PORT, e.g. mx=127.0.0.1:2525";
    return std::nullopt;
  }
  ListenerSpec l;
  l.role = text.substr(0, eq);
  l.address = text.substr(eq + 1, colon - eq - 1);
  if (l.address.size() >= 2 && l.address.front() == '[' && l.address.back() == ']') l.address = l.address.substr(1, l.address.size() - 2);
  const std::string port = text.substr(colon + 1);
  char* end = nullptr;
  const long p = std::strtol(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || p < 0 || p > 65535) {
    error = "--listen '" + text + "': bad port '" + port + "'";
    return std::nullopt;
  }
  l.port = static_cast<std::uint16_t>(p);
  if (l.role != "mx" && l.role != "submission" && l.role != "submissions") {
    error = "--listen '" + text + "': unknown role '" + l.role + "' (mx, submission, submissions)";
    return std::nullopt;
  }
  boost::system::error_code ec;
  asio::ip::make_address(l.address, ec);
  if (ec) {
    error = "--listen '" + text + "': '" + l.address + "' is not a numeric IP address";
    return std::nullopt;
  }
  return l;
}

struct Server::Impl {
  asio::io_context& io;
  ServerOptions opt;
  std::unique_ptr<queue::PosixStorage> spool_storage, mail_storage;
  std::unique_ptr<queue::Queue> queue;
  std::optional<delivery::LocalRecipients> recipients;
  std::optional<Credentials> credentials;
  // Threads: connections run on strands of their own; the acceptors, the delivery timer and
  // shutdown run on this strand; the queue and the connection table are guarded by mutexes.
  asio::strand<asio::io_context::executor_type> strand{asio::make_strand(io)};
  std::mutex tls_m;
  std::shared_ptr<asio::ssl::context> tls;
  mutable std::mutex state_m;
  std::map<std::string, std::size_t> per_client;
  std::size_t active = 0;
  std::list<std::shared_ptr<net::ConnectionControl>> controls;
  std::function<void()> on_drained;
  std::unique_ptr<asio::steady_timer> drain_timer;
  std::mutex queue_m;  // one delivery pass at a time (accepts do not take it)
  std::atomic<std::uint64_t> captured_count{0};
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  std::vector<ListenerSpec> bound;
  std::unique_ptr<asio::steady_timer> delivery_timer;
  std::atomic<std::uint64_t> next_conn{1};
  std::uint64_t maildir_seq = 0;  // under queue_m
  std::atomic<bool> stopping{false};

  Impl(asio::io_context& i, ServerOptions o) : io(i), opt(std::move(o)) {}

  // One line per event on stderr: "refsmtpd event=NAME k=v ..." or a JSON object.
  void write_log(std::string_view event, const net::LogFields& fields) const {
    std::string line;
    if (opt.log_json) {
      nlohmann::ordered_json j;
      j["ts"] = rfc3339_now();
      j["event"] = event;
      for (const auto& [k, v] : fields) j[k] = v;
      line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    } else {
      line = "refsmtpd event=" + std::string(event);
      for (const auto& [k, v] : fields) {
        const bool quote = v.empty() || v.find_first_of(" \"=") != std::string::npos;
        line += " " + k + "=";
        if (!quote) {
          line += v;
          continue;
        }
        line += '"';
        for (char ch : v) {
          if (ch == '"' || ch == '\\') line += '\\';
          line += (static_cast<unsigned char>(ch) < 32) ? '?' : ch;
        }
        line += '"';
      }
    }
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stderr);
  }

  static std::string rfc3339_now() {
    const auto now = std::chrono::system_clock::now();
    const std::time_t t = std::chrono::system_clock::to_time_t(now);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    char out[80];
    std::snprintf(out, sizeof out, "%s.%03lldZ", buf, static_cast<long long>(ms));
    return out;
  }

  // The domain to name a mailbox with at the LMTP server: the recipient's own, else the first
  // local domain (for the domainless <Postmaster>).
  std::string primary_domain(const core::Path& p) const {
    if (p.mailbox && !p.mailbox->domain.empty()) return lower(p.mailbox->domain);
    return opt.domains.empty() ? opt.hostname : opt.domains.front();
  }

  // Local mailboxes for a recipient, or nothing if it is not ours.
  std::optional<delivery::Resolution> resolve(const core::Path& p) const {
    if (recipients) return recipients->resolve(p);
    if (!p.mailbox) return std::nullopt;
    const std::string local = lower(p.mailbox->local_part);
    const bool ours = p.mailbox->domain.empty()
                          ? local == "postmaster"
                          : std::find(opt.domains.begin(), opt.domains.end(), lower(p.mailbox->domain)) != opt.domains.end();
    if (!ours || !delivery::LocalRecipients::safe_mailbox_name(local)) return std::nullopt;
    return delivery::Resolution{{local}, {}};
  }

  asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, std::string role, Server& server) {
    while (!stopping) {
      auto conn_strand = asio::make_strand(io);  // the connection's own: its socket and timers live on it
      auto [ec, socket] = co_await acceptor.async_accept(conn_strand, asio::as_tuple(asio::use_awaitable));
      if (ec) {
        if (stopping || ec == asio::error::operation_aborted) co_return;
        continue;
      }
      boost::system::error_code pec;
      const auto peer = socket.remote_endpoint(pec);
      const std::string client = pec ? std::string("unknown") : peer.address().to_string();
      bool over = false;
      {
        std::lock_guard lock(state_m);
        over = active >= opt.max_connections || per_client[client] >= opt.max_connections_per_client;
      }
      if (over) {
        // Over a limit: one 421 and close, without starting a session (RFC 5321 §3.8).
        write_log("refused", {{"role", role}, {"client", client}, {"verdict", "421 4.7.0 too many connections"}});
        asio::co_spawn(conn_strand, refuse(std::move(socket)), asio::detached);
        continue;
      }
      net::ConnectionOptions copt;
      copt.role = role;
      copt.session.hostname = opt.hostname;
      copt.session.limits.message_size = opt.max_message_size;
      copt.session.command_timeout = std::chrono::seconds(opt.command_timeout_s);
      copt.session.data_timeout = std::chrono::seconds(opt.data_timeout_s);
      copt.max_duration = std::chrono::seconds(opt.max_connection_time_s);
      {
        std::lock_guard lock(tls_m);
        copt.tls = tls;
      }
      copt.session.starttls = copt.tls != nullptr;
      copt.control = std::make_shared<net::ConnectionControl>();
      if (role != "mx") {
        // RFC 6409 §4.3, RFC 8314: submission needs AUTH before MAIL, and AUTH only over TLS.
        copt.session.auth_mechanisms = {"PLAIN", "LOGIN"};
        copt.session.auth_requires_tls = true;
        copt.session.auth_required = true;
        copt.implicit_tls = role == "submissions";
      }
      {
        std::lock_guard lock(state_m);
        ++active;
        ++per_client[client];
        controls.push_back(copt.control);
      }
      auto control = copt.control;
      asio::co_spawn(conn_strand, tracked(net::serve_connection(std::move(socket), std::move(copt), server, next_conn++), client, control),
                     asio::detached);
    }
  }

  asio::awaitable<void> tracked(asio::awaitable<void> conn, std::string client, std::shared_ptr<net::ConnectionControl> control) {
    co_await std::move(conn);
    std::function<void()> done;
    {
      std::lock_guard lock(state_m);
      --active;
      if (--per_client[client] == 0) per_client.erase(client);
      controls.remove(control);
      if (active == 0 && on_drained) {
        done = std::move(on_drained);
        on_drained = nullptr;
      }
    }
    if (done) {
      asio::post(strand, [this] {
        if (drain_timer) drain_timer->cancel();
      });
      done();
    }
  }

  asio::awaitable<void> refuse(tcp::socket socket) {
    const std::string msg = "421 4.7.0 " + opt.hostname + " Too many connections, try again later\r\n";
    co_await asio::async_write(socket, asio::buffer(msg), asio::as_tuple(asio::use_awaitable));
    boost::system::error_code ec;
    socket.shutdown(tcp::socket::shutdown_both, ec);
    socket.close(ec);
  }

  bool load_tls(std::string& error) {
    auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
    ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                     asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
    boost::system::error_code ec;
    ctx->use_certificate_chain_file(opt.tls_cert, ec);
    if (!ec) ctx->use_private_key_file(opt.tls_key, asio::ssl::context::pem, ec);
    if (!ec && !SSL_CTX_check_private_key(ctx->native_handle())) ec = asio::error::invalid_argument;
    if (ec) {
      error = "TLS certificate/key (" + opt.tls_cert + ", " + opt.tls_key + "): " + ec.message();
      return false;
    }
    std::lock_guard lock(tls_m);
    tls = std::move(ctx);
    return true;
  }

  // Delivers what is due into local Maildirs; runs every second and after each accepted message.
  void deliver_due() {
    if (!queue) return;
    std::lock_guard lock(queue_m);
    const std::int64_t now = wall_ms();
    for (const auto& id : queue->due(now)) {
      const queue::StoredEnvelope* e = queue->find(id);
      if (!e) continue;
      std::string body;
      if (auto err = queue->read_body(id, body)) {
        write_log("queue", {{"queue_id", id}, {"error", "cannot read body: " + err.message()}});
        continue;
      }
      const std::string copy = delivery::local_copy(e->reverse_path, body);
      std::vector<queue::DeliveryOutcome> outcomes;
      // LMTP: every local recipient of the message in one transaction (RFC 2033), one reply each.
      core::OutgoingMessage lmtp_msg;
      std::vector<std::size_t> lmtp_index;
      for (std::size_t i = 0; i < e->recipients.size(); ++i) {
        if (e->recipients[i].state != queue::RecipientState::pending) continue;
        const auto where = resolve(e->recipients[i].path);
        if (!where) {
          outcomes.push_back({i, queue::RecipientState::failed, "550 5.1.1 No such local mailbox"});
          continue;
        }
        if (!where->forwards.empty()) {
          // Aliases to remote addresses need the relay (issue 6); until then they wait.
          outcomes.push_back({i, queue::RecipientState::pending, "451 4.4.0 Forwarding to remote addresses is not available yet"});
          continue;
        }
        if (opt.delivery == Delivery::lmtp) {
          for (const auto& box : where->mailboxes) {
            core::Path p;
            p.mailbox = core::Mailbox{box, primary_domain(e->recipients[i].path), false};
            lmtp_msg.recipients.push_back(p);
            lmtp_index.push_back(i);
          }
          continue;
        }
        std::string problem;
        for (const auto& box : where->mailboxes) {
          std::error_code err;
          if (opt.delivery == Delivery::mbox) {
            // mbox cannot tell a repeated append after a crash: at least once, not exactly once.
            err = delivery::deliver_mbox(opt.mail_root + "/" + box + ".mbox", e->reverse_path, now, copy);
          } else {
            delivery::MaildirTarget t{box + "/Maildir", opt.hostname, e->arrival_ms, ++maildir_seq,
                                      static_cast<long>(::getpid()), id + "-" + std::to_string(i)};
            std::string name;
            err = delivery::deliver_maildir(*mail_storage, t, copy, name);
          }
          if (err) problem = box + ": " + err.message();
        }
        if (problem.empty()) {
          outcomes.push_back({i, queue::RecipientState::delivered,
                              opt.delivery == Delivery::mbox ? "250 2.0.0 Delivered to mbox" : "250 2.0.0 Delivered to Maildir"});
        } else {
          outcomes.push_back({i, queue::RecipientState::pending, "451 4.3.0 " + problem});
        }
      }
      if (!lmtp_msg.recipients.empty()) {
        lmtp_msg.reverse_path = e->reverse_path;
        lmtp_msg.body = body;
        delivery::LmtpOptions lo;
        lo.lhlo_name = opt.hostname;
        const auto res = delivery::lmtp_deliver(opt.lmtp, lmtp_msg, lo);
        // A recipient expanded to several mailboxes is delivered only when all of them are.
        std::map<std::size_t, queue::DeliveryOutcome> merged;
        for (std::size_t k = 0; k < res.results.size() && k < lmtp_index.size(); ++k) {
          const auto& r = res.results[k];
          const auto state = r.status == core::DeliveryStatus::delivered ? queue::RecipientState::delivered
                             : r.status == core::DeliveryStatus::failed  ? queue::RecipientState::failed
                                                                         : queue::RecipientState::pending;
          std::string text = r.reply.format();
          text.resize(text.size() - 2);
          auto [it, fresh] = merged.try_emplace(lmtp_index[k], queue::DeliveryOutcome{lmtp_index[k], state, text});
          if (!fresh && state != queue::RecipientState::delivered && it->second.state == queue::RecipientState::delivered) {
            it->second = {lmtp_index[k], state, text};
          }
        }
        for (auto& [i, o] : merged) outcomes.push_back(o);
      }
      if (auto err = queue->record(id, outcomes, now)) {
        write_log("queue", {{"queue_id", id}, {"error", "could not record delivery: " + err.message()}});
      }
    }
    for (const auto& ev : queue->take_events()) {
      if (ev.what.starts_with("accepted")) continue;  // said by the connection's message line
      write_log("queue", {{"queue_id", ev.id}, {"what", ev.what}});
    }
  }

  void schedule_delivery() {
    if (stopping || !delivery_timer) return;
    delivery_timer->expires_after(std::chrono::seconds(1));  // on `strand`
    delivery_timer->async_wait([this](boost::system::error_code ec) {
      if (ec || stopping) return;
      deliver_due();
      schedule_delivery();
    });
  }
};

Server::Server(asio::io_context& io, ServerOptions options) : impl_(std::make_unique<Impl>(io, std::move(options))) {}
Server::~Server() = default;

bool Server::start(std::string& error) {
  Impl& s = *impl_;
  if (s.opt.listeners.empty()) {
    error = "no --listen given";
    return false;
  }
  if (!s.opt.recipients_file.empty()) {
    std::ifstream in(s.opt.recipients_file);
    if (!in) {
      error = "cannot read recipients file " + s.opt.recipients_file;
      return false;
    }
    std::stringstream text;
    text << in.rdbuf();
    s.recipients = delivery::LocalRecipients::parse(text.str(), s.opt.recipients_file, error);
    if (!s.recipients) return false;
  } else if (s.opt.domains.empty()) {
    error = "give the local domains: --domain DOMAIN (repeatable) or --recipients FILE";
    return false;
  }
  for (auto& d : s.opt.domains) d = lower(d);
  const bool submission = std::any_of(s.opt.listeners.begin(), s.opt.listeners.end(), [](const ListenerSpec& l) { return l.role != "mx"; });
  if (submission) {
    if (s.opt.tls_cert.empty() || s.opt.tls_key.empty()) {
      error = "the submission roles need TLS: give --tls-cert and --tls-key";
      return false;
    }
    if (s.opt.credentials_file.empty()) {
      error = "the submission roles need --credentials FILE (make entries with: refsmtpd passwd USER --credentials FILE)";
      return false;
    }
    std::ifstream in(s.opt.credentials_file);
    if (!in) {
      error = "cannot read credentials file " + s.opt.credentials_file;
      return false;
    }
    std::stringstream text;
    text << in.rdbuf();
    s.credentials = Credentials::parse(text.str(), s.opt.credentials_file, error);
    if (!s.credentials) return false;
  }
  if (s.opt.test_mode) {
    if (s.opt.capture_dir.empty()) {
      error = "--test-mode needs --capture-dir DIR";
      return false;
    }
  } else {
    if (s.opt.spool_dir.empty() || (s.opt.mail_root.empty() && s.opt.delivery != Delivery::lmtp)) {
      error = "--spool DIR and --mail-root DIR are required (or --test-mode --capture-dir DIR; with --lmtp no --mail-root)";
      return false;
    }
    if (s.opt.mail_root.empty()) s.opt.mail_root = s.opt.spool_dir + "/unused-mail-root";
    for (const auto& dir : {s.opt.spool_dir, s.opt.mail_root}) {
      std::error_code ec;
      std::filesystem::create_directories(dir, ec);
      if (ec) {
        error = "cannot create " + dir + ": " + ec.message();
        return false;
      }
    }
  }
  if (!s.opt.tls_cert.empty() || !s.opt.tls_key.empty()) {
    if (!s.load_tls(error)) return false;
  }
  for (const auto& l : s.opt.listeners) {
    boost::system::error_code ec;
    auto acceptor = std::make_unique<tcp::acceptor>(s.io);
    const tcp::endpoint ep(asio::ip::make_address(l.address), l.port);
    acceptor->open(ep.protocol(), ec);
    if (!ec) acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor->bind(ep, ec);
    if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      error = "cannot listen on " + l.address + ":" + std::to_string(l.port) + " (" + l.role + "): " + ec.message();
      return false;
    }
    ListenerSpec b = l;
    b.port = acceptor->local_endpoint().port();
    s.bound.push_back(b);
    asio::co_spawn(s.strand, s.accept_loop(*acceptor, l.role, *this), asio::detached);
    s.acceptors.push_back(std::move(acceptor));
  }
  // Privileges may be dropped here (refsmtpd --user): after binding, before touching the spool.
  if (s.opt.after_bind && !s.opt.after_bind(error)) return false;
  if (!s.opt.test_mode) {
    s.spool_storage = std::make_unique<queue::PosixStorage>(s.opt.spool_dir);
    s.mail_storage = std::make_unique<queue::PosixStorage>(s.opt.mail_root);
    queue::QueueConfig qc;
    qc.hostname = s.opt.hostname;
    s.queue = std::make_unique<queue::Queue>(*s.spool_storage, qc);
    queue::RecoveryReport report;
    if (auto err = s.queue->open(wall_ms(), &report)) {
      error = "cannot open the spool in " + s.opt.spool_dir + ": " + err.message();
      return false;
    }
    for (const auto& q : report.quarantined) s.write_log("recovery", {{"quarantined", q}});
    s.write_log("recovery", {{"queued", std::to_string(report.messages.size())}});
  }
  if (s.queue) {
    s.delivery_timer = std::make_unique<asio::steady_timer>(s.strand);
    s.deliver_due();
    s.schedule_delivery();
  }
  return true;
}

std::vector<ListenerSpec> Server::bound() const { return impl_->bound; }

std::size_t Server::connections() const {
  std::lock_guard lock(impl_->state_m);
  return impl_->active;
}

void Server::note(std::string_view event, const net::LogFields& fields) const { impl_->write_log(event, fields); }

bool Server::reload_tls(std::string& error) {
  if (!impl_->tls) {
    error = "TLS is not configured";
    return false;
  }
  return impl_->load_tls(error);
}

void Server::drain(std::function<void()> done) {
  // On the server strand, where the acceptors and timers live.
  asio::post(impl_->strand, [this, done = std::move(done)]() mutable {
    Impl& s = *impl_;
    s.stopping = true;
    boost::system::error_code ec;
    for (auto& a : s.acceptors) a->close(ec);
    if (s.delivery_timer) s.delivery_timer->cancel();
    std::list<std::shared_ptr<net::ConnectionControl>> controls;
    {
      std::lock_guard lock(s.state_m);
      if (s.active == 0) {
        done();
        return;
      }
      s.on_drained = std::move(done);
      controls = s.controls;
    }
    for (auto& c : controls) {
      c->draining = true;
      c->wake();
    }
    s.drain_timer = std::make_unique<asio::steady_timer>(s.strand, std::chrono::seconds(s.opt.drain_timeout_s));
    s.drain_timer->async_wait([&s](boost::system::error_code timer_ec) {
      if (timer_ec) return;
      std::list<std::shared_ptr<net::ConnectionControl>> left;
      {
        std::lock_guard lock(s.state_m);
        left = s.controls;
      }
      for (auto& c : left) {  // time is up: close what is left
        c->force = true;
        c->wake();
      }
    });
  });
}

core::Verdict Server::check_sender(const net::ConnectionInfo&, const core::action::CheckSender&) {
  return core::Verdict::accept();  // an MX takes mail from anyone (sender checks are policy, later)
}

core::Verdict Server::check_recipient(const net::ConnectionInfo& c, const core::action::CheckRecipient& q) {
  if (impl_->resolve(q.path)) return core::Verdict::accept();
  if (c.role != "mx" && q.path.mailbox && !q.path.mailbox->domain.empty()) {
    const std::string domain = lower(q.path.mailbox->domain);
    const bool local_domain = impl_->recipients ? impl_->recipients->is_local_domain(domain)
                                                : std::find(impl_->opt.domains.begin(), impl_->opt.domains.end(), domain) !=
                                                      impl_->opt.domains.end();
    if (!local_domain) {
      // Authenticated users may send anywhere once the relay exists; until then, say so.
      return core::Verdict::reject(core::make_reply(550, 5, 7, 1, "Delivery to other domains is not supported by this server yet"));
    }
  }
  if (q.path.mailbox && !q.path.mailbox->domain.empty()) {
    const std::string domain = lower(q.path.mailbox->domain);
    const bool local_domain = impl_->recipients ? impl_->recipients->is_local_domain(domain)
                                                : std::find(impl_->opt.domains.begin(), impl_->opt.domains.end(), domain) !=
                                                      impl_->opt.domains.end();
    if (!local_domain) {
      log(c, "rcpt", {{"rcpt", q.path.to_string()}, {"verdict", "554 5.7.1 relay denied"}});
      return core::Verdict::reject(core::make_reply(554, 5, 7, 1, "Relay access denied"));  // RFC 5321 §3.6.2
    }
  }
  return core::Verdict::reject(core::make_reply(550, 5, 1, 1, "No such user here"));
}

core::Verdict Server::check_auth(const net::ConnectionInfo&, const core::action::CheckAuth& q) {
  // RFC 4616 §2: an authorization identity other than the authentication identity is refused.
  const bool ok = impl_->credentials && (q.authzid.empty() || q.authzid == q.authcid) &&
                  impl_->credentials->verify(q.authcid, q.password);
  if (ok) return core::Verdict::accept();
  return core::Verdict::reject(core::make_reply(535, 5, 7, 8, "Authentication credentials invalid"));  // RFC 4954 §6
}

core::Verdict Server::message(const net::ConnectionInfo& c, const core::Envelope& envelope, std::string_view body) {
  Impl& s = *impl_;
  if (s.opt.test_mode) {
    // One file per message: the envelope in headers a test can read, then the body as received.
    std::string text = "X-Refsmtp-Mail-From: " + envelope.reverse_path.to_string() + "\r\n";
    for (const auto& r : envelope.recipients) text += "X-Refsmtp-Rcpt-To: " + r.path.to_string() + "\r\n";
    text += "\r\n";
    text += body;
    char name[64];
    std::snprintf(name, sizeof name, "%013lld-%06llu.eml", static_cast<long long>(wall_ms()),
                  static_cast<unsigned long long>(++s.captured_count));
    const std::string path = s.opt.capture_dir + "/" + name;
    std::ofstream out(path + ".tmp", std::ios::binary);
    out << text;
    out.close();
    if (!out || std::rename((path + ".tmp").c_str(), path.c_str()) != 0) {
      return core::Verdict::reject(core::make_reply(451, 4, 3, 0, "Could not capture the message"));
    }
    log(c, "message", {{"from", envelope.reverse_path.to_string()}, {"rcpts", std::to_string(envelope.recipients.size())},
                       {"size", std::to_string(body.size())}, {"captured", name}, {"verdict", "250"}});
    return core::Verdict::accept(core::make_reply(250, 2, 0, 0, std::string("OK captured as ") + name));
  }
  queue::ClientInfo ci{envelope.helo, c.client_address, envelope.esmtp, c.tls, !c.auth_identity.empty()};
  // Queue::accept is thread-safe and writes outside its lock: concurrent connections share the
  // spool's group commit.
  const queue::AcceptResult r = s.queue->accept(envelope, body, ci, wall_ms());
  log(c, "message", {{"queue_id", r.id.value_or("")}, {"from", envelope.reverse_path.to_string()},
                     {"rcpts", std::to_string(envelope.recipients.size())}, {"size", std::to_string(body.size())},
                     {"verdict", r.reply.format().substr(0, r.reply.format().size() - 2)}});
  if (!r.id) return core::Verdict::reject(r.reply);
  // Deliver soon, outside this call.
  asio::post(s.strand, [&s] { s.deliver_due(); });
  return core::Verdict::accept(r.reply);
}

void Server::log(const net::ConnectionInfo& c, std::string_view event, const net::LogFields& fields) {
  net::LogFields all{{"conn", std::to_string(c.id)}, {"role", c.role}, {"client", c.client_address}};
  if (c.tls) all.emplace_back("tls", "1");
  all.insert(all.end(), fields.begin(), fields.end());
  impl_->write_log(event, all);
}

}  // namespace refsmtp::server
