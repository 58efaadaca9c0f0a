#include "refsmtp/server/server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <ctime>
#include <nlohmann/json.hpp>
#include <list>
#include <map>
#include <set>
#include <thread>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "refsmtp/delivery/lmtp.hpp"
#include "refsmtp/delivery/mailbox.hpp"
#include "refsmtp/delivery/relay.hpp"
#include "refsmtp/core/text.hpp"

namespace refsmtp::server {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

using core::ascii_lower;

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

// Where this server takes connections on `port`, for the relay's self-MX rule: the listeners'
// addresses; a wildcard listener (0.0.0.0, ::) stands for every address of this host's
// interfaces (of its family; :: takes IPv4 too) and for every loopback address. An error
// listing the interfaces goes to `error` (the rule then knows fewer addresses).
static void add_addresses_listening_on(const std::vector<ListenerSpec>& listeners, std::uint16_t port, RelayConfig& rc,
                                       std::string& error) {
  for (const auto& l : listeners) {
    if (l.port != port) continue;
    boost::system::error_code ec;
    const auto a = asio::ip::make_address(l.address, ec);
    if (ec) continue;
    if (!a.is_unspecified()) {
      rc.local_addresses.push_back(a.to_string());
      continue;
    }
    rc.local_loopback = true;
    ifaddrs* list = nullptr;
    if (::getifaddrs(&list) != 0) {
      error = std::string("cannot list the interface addresses: ") + std::strerror(errno);
      continue;
    }
    for (const ifaddrs* i = list; i; i = i->ifa_next) {
      if (!i->ifa_addr) continue;
      char buf[INET6_ADDRSTRLEN] = {0};
      if (i->ifa_addr->sa_family == AF_INET) {
        ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr, buf, sizeof buf);
      } else if (i->ifa_addr->sa_family == AF_INET6 && a.is_v6()) {
        ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(i->ifa_addr)->sin6_addr, buf, sizeof buf);
      } else {
        continue;
      }
      rc.local_addresses.push_back(buf);
    }
    ::freeifaddrs(list);
  }
}

struct Server::Impl {
  asio::io_context& io;
  ServerOptions opt;
  std::unique_ptr<queue::PosixStorage> spool_storage, mail_storage;
  std::unique_ptr<queue::Queue> queue;
  std::optional<delivery::LocalRecipients> recipients;
  std::optional<Credentials> credentials;
  // Threads: connections run on strands of their own, or on the single-threaded io_contexts in
  // opt.connection_contexts; the acceptors, the delivery timer and shutdown run on this strand;
  // deliveries on delivery_pool's thread; relay jobs on strands of their own; the queue and the
  // connection table are guarded by mutexes.
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
  // --capture-mbox: the file, open for appending; an entry is written whole under capture_m.
  struct CaptureFile {
    int fd = -1;
    bool broken = false;  // a failed append could not be cut back off
    ~CaptureFile() {
      if (fd >= 0) ::close(fd);
    }
  } capture_mbox;
  std::mutex capture_m;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  std::vector<ListenerSpec> bound;
  std::unique_ptr<asio::steady_timer> delivery_timer;
  std::atomic<std::uint64_t> next_conn{1};
  std::size_t next_context = 0;  // on `strand`: the accept loops run there
  std::uint64_t maildir_seq = 0;  // under queue_m
  std::unique_ptr<Relayer> relayer;
  std::set<std::string> in_flight;  // under queue_m: messages with relay jobs still running
  std::atomic<bool> stopping{false};
  // Deliveries block on disk (fsync) and on LMTP: they run on a thread of their own, so the io
  // threads keep serving SMTP. Requests coalesce: at most one pass waits to run.
  std::atomic<bool> delivery_pending{false};
  std::atomic<std::uint64_t> delivery_passes{0};  // changed under passes_m, which passes_cv waits on
  mutable std::mutex passes_m;
  mutable std::condition_variable passes_cv;
  std::unique_ptr<asio::thread_pool> delivery_pool;  // last: joined first when Impl goes

  Impl(asio::io_context& i, ServerOptions o) : io(i), opt(std::move(o)) {
    if (!opt.clock) opt.clock = wall_ms;
  }

  std::int64_t now() const { return opt.clock(); }

  bool open_capture_mbox(std::string& error) {
    // O_NOFOLLOW and a regular file only, as for mbox delivery.
    const int fd = ::open(opt.capture_mbox.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    struct stat st{};
    const char* why = nullptr;
    if (fd < 0 || ::fstat(fd, &st) != 0) why = std::strerror(errno);
    else if (!S_ISREG(st.st_mode)) why = "not a regular file";
    if (why) {
      error = "cannot open --capture-mbox " + opt.capture_mbox + ": " + why;
      if (fd >= 0) ::close(fd);
      return false;
    }
    capture_mbox.fd = fd;
    return true;
  }

  // --capture-dir: NAME.tmp written, then renamed to NAME.eml, so a reader never sees a part.
  bool capture_to_file(const std::string& text, std::string& name) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%013lld-%06llu.eml", static_cast<long long>(wall_ms()),
                  static_cast<unsigned long long>(++captured_count));
    name = buf;
    const std::string path = opt.capture_dir + "/" + name;
    const std::string tmp = path + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return false;
    bool ok = write_all(fd, text);
    int saved = errno;
    if (::close(fd) != 0 && ok) {
      ok = false;
      saved = errno;
    }
    if (ok && std::rename(tmp.c_str(), path.c_str()) == 0) return true;
    if (ok) saved = errno;
    ::unlink(tmp.c_str());
    errno = saved;
    return false;
  }

  // --capture-mbox: one mboxrd entry (RFC 4155) per message, LF line ends, appended whole under
  // an fcntl lock (what mbox readers take), waited for briefly. A failed write is cut back off,
  // so the next entry starts on a "From " line of its own; if even that fails the file is left
  // alone and every later message gets 451. Not fsynced: test mode promises no durability.
  bool capture_to_mbox(const smtp::Path& sender, const std::string& text, std::string& name) {
    const std::string entry = delivery::mbox_entry(sender, wall_ms(), delivery::to_lf(text));
    std::lock_guard<std::mutex> lock(capture_m);
    if (capture_mbox.broken) {
      errno = EIO;
      return false;
    }
    struct flock fl{};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    for (int tries = 0; ::fcntl(capture_mbox.fd, F_SETLK, &fl) != 0; ++tries) {
      if ((errno != EACCES && errno != EAGAIN) || tries == 20) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));  // a reader holds it: 100 ms at most
    }
    struct stat st{};
    const bool sized = ::fstat(capture_mbox.fd, &st) == 0;
    const bool ok = sized && write_all(capture_mbox.fd, entry);
    const int saved = errno;
    if (!ok && sized && ::ftruncate(capture_mbox.fd, st.st_size) != 0) capture_mbox.broken = true;
    fl.l_type = F_UNLCK;
    ::fcntl(capture_mbox.fd, F_SETLK, &fl);
    errno = saved;
    if (ok) name = "offset " + std::to_string(st.st_size) + " of " + opt.capture_mbox;
    return ok;
  }

  static bool write_all(int fd, std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::write(fd, data.data(), data.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return false;
      }
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  bool is_local_domain(const std::string& domain) const {
    return recipients ? recipients->is_local_domain(domain)
                      : std::find(opt.domains.begin(), opt.domains.end(), domain) != opt.domains.end();
  }

  void request_delivery() {
    if (!delivery_pool || stopping) return;
    if (delivery_pending.exchange(true)) return;
    asio::post(*delivery_pool, [this] {
      delivery_pending = false;
      deliver_due();
    });
  }

  // One line per event on stderr: "refsmtpd event=NAME k=v ..." or a JSON object.
  void write_log(std::string_view event, const net::LogFields& fields) const {
    if (opt.log_hook) {
      opt.log_hook(event, fields);
      return;
    }
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
  std::string primary_domain(const smtp::Path& p) const {
    if (p.mailbox && !p.mailbox->domain.empty()) return ascii_lower(p.mailbox->domain);
    return opt.domains.empty() ? opt.hostname : opt.domains.front();
  }

  // Local mailboxes for a recipient, or nothing if it is not ours.
  std::optional<delivery::Resolution> resolve(const smtp::Path& p) const {
    if (recipients) return recipients->resolve(p);
    if (!p.mailbox) return std::nullopt;
    const std::string local = ascii_lower(p.mailbox->local_part);
    const bool ours = p.mailbox->domain.empty()
                          ? local == "postmaster"
                          : std::find(opt.domains.begin(), opt.domains.end(), ascii_lower(p.mailbox->domain)) != opt.domains.end();
    if (!ours || !delivery::LocalRecipients::safe_mailbox_name(local)) return std::nullopt;
    return delivery::Resolution{{local}, {}};
  }

  asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, std::string role, Server& server) {
    while (!stopping) {
      // The connection's own executor: its socket and timers live on it.
      const auto& contexts = opt.connection_contexts;
      const asio::any_io_executor conn_strand =
          contexts.empty() ? asio::any_io_executor(asio::make_strand(io))
                           : asio::any_io_executor(contexts[next_context++ % contexts.size()]->get_executor());
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

  // Local mailbox names for a recipient: nothing when it is not ours. (Split out of deliver_due
  // so that both local delivery and the relay see one decision.)
  struct Targets {
    std::vector<std::string> mailboxes;
    std::vector<smtp::Path> remote;  // relayed: the recipient itself, or an alias's remote targets
    std::optional<std::string> failure;  // decided without delivering, e.g. "550 5.1.1 ..."
  };
  Targets targets_of(const smtp::Path& p) const {
    Targets t;
    if (auto where = resolve(p)) {
      t.mailboxes = where->mailboxes;
      t.remote = where->forwards;
    } else if (p.mailbox && !p.mailbox->domain.empty() && !is_local_domain(ascii_lower(p.mailbox->domain))) {
      t.remote.push_back(p);
    } else {
      t.failure = "550 5.1.1 No such local mailbox";
    }
    for (const auto& r : t.remote) {
      if (!relayer || !relayer->routable(ascii_lower(r.mailbox->domain))) {
        t.failure = "550 5.7.1 Mail to " + ascii_lower(r.mailbox->domain) + " is not relayed by this server (no --relay mx or --route)";
        t.remote.clear();
        break;
      }
    }
    return t;
  }

  // Aliases with several targets become one queue recipient per target, so each target has its
  // own delivery state: a target that was delivered is never sent again when another one is
  // retried, and a bounce names the address that failed. Targets are deduplicated.
  smtp::Envelope expand_aliases(const smtp::Envelope& in) const {
    smtp::Envelope out = in;
    out.recipients.clear();
    std::set<std::string> seen;
    auto add = [&](smtp::Path p, const smtp::RcptParams& params) {
      if (seen.insert(ascii_lower(p.to_string())).second) out.recipients.push_back(smtp::Recipient{std::move(p), params});
    };
    for (const auto& r : in.recipients) {
      const auto where = resolve(r.path);
      const bool domainless = !r.path.mailbox || r.path.mailbox->domain.empty();  // <Postmaster>: kept as it is
      if (!where || domainless || where->mailboxes.size() + where->forwards.size() <= 1) {
        add(r.path, r.params);
        continue;
      }
      for (const auto& box : where->mailboxes) {
        smtp::Path p;
        p.mailbox = smtp::Mailbox{box, primary_domain(r.path), false};
        add(std::move(p), r.params);
      }
      for (const auto& f : where->forwards) add(f, r.params);
    }
    return out;
  }

  // One delivery attempt of one message: what was decided so far, and the relay jobs still out.
  // Recorded in the queue once, when the last job reports, so an attempt counts once.
  struct Attempt {
    std::string id;
    std::vector<queue::DeliveryOutcome> outcomes;
    std::size_t jobs_left = 0;
    // Maildir deliveries whose new/ is not yet fsynced: (index into outcomes, that new/).
    std::vector<std::pair<std::size_t, std::string>> unsynced;
  };

  // Makes the Maildir deliveries of these attempts durable: each new/ they renamed into is
  // fsynced once, however many messages went there. A delivery whose new/ could not be synced
  // is deferred (it may not survive a crash; a retry finds it there and does not copy it again).
  void sync_maildirs(const std::vector<std::shared_ptr<Attempt>>& attempts) {
    std::map<std::string, std::error_code> synced;
    for (const auto& a : attempts) {
      for (const auto& [k, dir] : a->unsynced) {
        if (!synced.count(dir)) synced[dir] = mail_storage->fsync_dir(dir);
      }
    }
    for (const auto& a : attempts) {
      for (const auto& [k, dir] : a->unsynced) {
        if (const std::error_code err = synced[dir]) {
          a->outcomes[k].state = queue::RecipientState::pending;
          a->outcomes[k].reply = "451 4.3.0 " + dir + ": " + err.message();
        }
      }
      a->unsynced.clear();
    }
  }

  // Merges the outcomes of several targets of one queue recipient (an alias): delivered only
  // when every target is; otherwise the first non-delivery decides.
  static std::vector<queue::DeliveryOutcome> merge(const std::vector<queue::DeliveryOutcome>& all) {
    std::map<std::size_t, queue::DeliveryOutcome> merged;
    for (const auto& o : all) {
      auto [it, fresh] = merged.try_emplace(o.recipient, o);
      if (!fresh && it->second.state == queue::RecipientState::delivered && o.state != queue::RecipientState::delivered) {
        it->second = o;
      } else if (!fresh && it->second.state == queue::RecipientState::failed && o.state == queue::RecipientState::pending) {
        it->second = o;  // a later retry may still fail it; do not bounce what is only deferred
      }
    }
    std::vector<queue::DeliveryOutcome> out;
    for (auto& [i, o] : merged) out.push_back(o);
    return out;
  }

  // Under queue_m.
  void record_attempt(const Attempt& a) {
    if (auto err = queue->record(a.id, merge(a.outcomes), now())) {
      write_log("queue", {{"queue_id", a.id}, {"error", "could not record delivery: " + err.message()}});
    }
    for (const auto& ev : queue->take_events()) {
      if (ev.what.starts_with("accepted")) continue;  // said by the connection's message line
      write_log("queue", {{"queue_id", ev.id}, {"what", ev.what}});
    }
  }

  // Delivers what is due: local recipients at once (Maildir, mbox or LMTP), other domains through
  // the relay in the background. Runs every second and after each accepted message.
  void deliver_due() {
    if (!queue || stopping) return;
    std::lock_guard lock(queue_m);
    struct CountPass {
      Impl& s;
      ~CountPass() {
        {
          std::lock_guard lock(s.passes_m);
          ++s.delivery_passes;
        }
        s.passes_cv.notify_all();
      }
    } count{*this};
    const std::int64_t now_ms = now();
    std::map<std::string, std::vector<std::pair<std::shared_ptr<Attempt>, RelayJob>>> by_domain;
    // Maildir deliveries are made durable in batches: one fsync per new/ for up to kBatch
    // messages, then those messages are recorded. (Attempts with relay jobs are synced with the
    // batch too, and recorded when their jobs report; attempts with nothing to sync -- mbox,
    // LMTP, failures -- are recorded at once, so a crash repeats as few deliveries as can be.)
    constexpr std::size_t kBatch = 64;
    std::vector<std::shared_ptr<Attempt>> unsynced;  // the batch
    std::size_t to_record = 0;                        // of which local-only, to record after the sync
    const auto settle = [&] {
      sync_maildirs(unsynced);
      for (const auto& a : unsynced) {
        if (a->jobs_left == 0) record_attempt(*a);
      }
      unsynced.clear();
      to_record = 0;
    };
    for (const auto& id : queue->due(now_ms)) {
      if (in_flight.count(id)) continue;
      const queue::StoredEnvelope* e = queue->find(id);
      if (!e) continue;
      std::vector<Targets> targets(e->recipients.size());
      std::set<std::string> domains;
      for (std::size_t i = 0; i < e->recipients.size(); ++i) {
        if (e->recipients[i].state != queue::RecipientState::pending) continue;
        targets[i] = targets_of(e->recipients[i].path);
        for (const auto& r : targets[i].remote) domains.insert(ascii_lower(r.mailbox->domain));
      }
      // Bounded connections per destination: a message waits for its turn as a whole.
      if (std::any_of(domains.begin(), domains.end(), [&](const std::string& d) { return !relayer->has_capacity(d); })) continue;
      std::string body;
      if (auto err = queue->read_body(id, body)) {
        write_log("queue", {{"queue_id", id}, {"error", "cannot read body: " + err.message()}});
        continue;
      }
      auto attempt = std::make_shared<Attempt>();
      attempt->id = id;
      deliver_local(*e, body, targets, now_ms, *attempt);
      // Relay jobs: one per destination domain. A message that has looped (too many Received:
      // headers, RFC 5321 §6.3) is not sent anywhere again.
      const bool looping = !domains.empty() && delivery::count_received_headers(body) > opt.max_received;
      std::map<std::string, RelayJob> jobs;
      for (std::size_t i = 0; i < targets.size(); ++i) {
        if (e->recipients[i].state != queue::RecipientState::pending) continue;
        for (const auto& r : targets[i].remote) {
          if (looping) {
            attempt->outcomes.push_back({i, queue::RecipientState::failed,
                                         "554 5.4.6 Too many Received: headers (more than " + std::to_string(opt.max_received) +
                                             "): mail loop"});
            continue;
          }
          RelayJob& job = jobs[ascii_lower(r.mailbox->domain)];
          job.msg.recipients.push_back(r);
          job.index.push_back(i);
        }
      }
      attempt->jobs_left = jobs.size();
      if (jobs.empty() && attempt->unsynced.empty()) {
        record_attempt(*attempt);
        continue;
      }
      if (!attempt->unsynced.empty()) {
        unsynced.push_back(attempt);
        if (jobs.empty() && ++to_record >= kBatch) settle();
      }
      if (jobs.empty()) continue;
      in_flight.insert(id);
      for (auto& [domain, job] : jobs) {
        job.msg.reverse_path = e->reverse_path;
        job.msg.body = body;
        job.msg.smtputf8 = e->smtputf8;
        job.msg.auth = e->auth;
        by_domain[domain].emplace_back(attempt, std::move(job));
      }
    }
    settle();
    for (const auto& ev : queue->take_events()) {
      if (ev.what.starts_with("accepted")) continue;
      write_log("queue", {{"queue_id", ev.id}, {"what", ev.what}});
    }
    // One connection per destination per pass, carrying all its messages (connection reuse).
    for (auto& [domain, list] : by_domain) {
      std::vector<std::shared_ptr<Attempt>> attempts;
      std::vector<RelayJob> jobs;
      for (auto& [a, j] : list) {
        attempts.push_back(a);
        jobs.push_back(std::move(j));
      }
      // Each message is recorded as soon as its last job reports: a shutdown or crash later in
      // the connection repeats at most the message in flight. The recording runs on the delivery
      // thread, in the order the results came: the relay's io thread (which also serves SMTP
      // connections) never waits for queue_m, held through whole delivery passes, or for a disk.
      relayer->send(domain, std::move(jobs), [this, attempts](std::size_t j, std::vector<queue::DeliveryOutcome> results) {
        asio::post(*delivery_pool, [this, attempts, j, results = std::move(results)] {
          {
            std::lock_guard relay_lock(queue_m);
            Attempt& a = *attempts.at(j);
            a.outcomes.insert(a.outcomes.end(), results.begin(), results.end());
            if (--a.jobs_left != 0) return;
            record_attempt(a);
            in_flight.erase(a.id);
          }
          // Bounces and newly due messages go out soon, not a timer tick later.
          request_delivery();
        });
      });
    }
  }

  // Local delivery of one message's local recipients; outcomes are appended to the attempt's.
  // Maildir deliveries are left for sync_maildirs to make durable.
  void deliver_local(const queue::StoredEnvelope& e, const std::string& body, const std::vector<Targets>& targets,
                     std::int64_t now_ms, Attempt& attempt) {
    std::vector<queue::DeliveryOutcome>& outcomes = attempt.outcomes;
    const std::string& id = e.id;
    const std::string copy = delivery::local_copy(e.reverse_path, body);
    // LMTP: every local recipient of the message in one transaction (RFC 2033), one reply each.
    smtp::OutgoingMessage lmtp_msg;
    std::vector<std::size_t> lmtp_index;
    for (std::size_t i = 0; i < e.recipients.size(); ++i) {
      if (e.recipients[i].state != queue::RecipientState::pending) continue;
      const Targets& t = targets[i];
      if (t.failure) {
        outcomes.push_back({i, queue::RecipientState::failed, *t.failure});
        continue;
      }
      if (opt.delivery == Delivery::lmtp) {
        for (const auto& box : t.mailboxes) {
          smtp::Path p;
          p.mailbox = smtp::Mailbox{box, primary_domain(e.recipients[i].path), false};
          lmtp_msg.recipients.push_back(p);
          lmtp_index.push_back(i);
        }
        continue;
      }
      for (const auto& box : t.mailboxes) {
        std::error_code err;
        if (opt.delivery == Delivery::mbox) {
          // mbox cannot tell a repeated append after a crash: at least once, not exactly once.
          err = delivery::deliver_mbox(opt.mail_root + "/" + box + ".mbox", e.reverse_path, now_ms, copy);
        } else {
          delivery::MaildirTarget target{box + "/Maildir", opt.hostname, e.arrival_ms, ++maildir_seq,
                                         static_cast<long>(::getpid()), id + "-" + std::to_string(i)};
          target.sync_dir = false;
          std::string name;
          err = delivery::deliver_maildir(*mail_storage, target, copy, name);
          if (!err) attempt.unsynced.emplace_back(outcomes.size(), target.dir + "/new");
        }
        outcomes.push_back({i, err ? queue::RecipientState::pending : queue::RecipientState::delivered,
                            err ? "451 4.3.0 " + box + ": " + err.message()
                                : (opt.delivery == Delivery::mbox ? "250 2.0.0 Delivered to mbox" : "250 2.0.0 Delivered to Maildir")});
      }
    }
    if (!lmtp_msg.recipients.empty()) {
      lmtp_msg.reverse_path = e.reverse_path;
      lmtp_msg.body = body;
      delivery::LmtpOptions lo;
      lo.lhlo_name = opt.hostname;
      const auto res = delivery::lmtp_deliver(opt.lmtp, lmtp_msg, lo);
      for (std::size_t k = 0; k < res.results.size() && k < lmtp_index.size(); ++k) {
        // The LMTP server's replies name it as the remote MTA (when it is reached over TCP).
        outcomes.push_back(delivery::to_outcome(lmtp_index[k], res.results[k], opt.lmtp.unix_path.empty() ? opt.lmtp.host : ""));
      }
    }
  }

  void schedule_delivery() {
    if (stopping || !delivery_timer) return;
    delivery_timer->expires_after(std::chrono::seconds(1));  // on `strand`
    delivery_timer->async_wait([this](boost::system::error_code ec) {
      if (ec || stopping) return;
      request_delivery();
      schedule_delivery();
    });
  }
};

Server::Server(asio::io_context& io, ServerOptions options) : impl_(std::make_unique<Impl>(io, std::move(options))) {}
Server::~Server() {
  // Relay results already handed to the delivery thread are recorded before the queue goes, so
  // a message the next hop took is not sent again after a restart. (No new pass starts.)
  if (impl_->delivery_pool) {
    impl_->stopping = true;
    impl_->delivery_pool->join();
  }
}

bool Server::start(std::string& error) {
  Impl& s = *impl_;
  if (s.opt.listeners.empty()) {
    error = "no --listen given";
    return false;
  }
  if (!s.opt.recipients_file.empty()) {
    std::string text;
    if (!read_text_file(s.opt.recipients_file, text)) {
      error = "cannot read recipients file " + s.opt.recipients_file;
      return false;
    }
    s.recipients = delivery::LocalRecipients::parse(text, s.opt.recipients_file, error);
    if (!s.recipients) return false;
  } else if (s.opt.domains.empty()) {
    error = "give the local domains: --domain DOMAIN (repeatable) or --recipients FILE";
    return false;
  }
  for (auto& d : s.opt.domains) d = ascii_lower(d);
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
    std::string text;
    if (!read_text_file(s.opt.credentials_file, text)) {
      error = "cannot read credentials file " + s.opt.credentials_file;
      return false;
    }
    s.credentials = Credentials::parse(text, s.opt.credentials_file, error);
    if (!s.credentials) return false;
  }
  if (s.opt.test_mode) {
    if (s.opt.capture_dir.empty() == s.opt.capture_mbox.empty()) {
      error = "--test-mode needs one of --capture-dir DIR and --capture-mbox FILE";
      return false;
    }
  } else if (!s.opt.capture_dir.empty() || !s.opt.capture_mbox.empty()) {
    error = "--capture-dir and --capture-mbox are for --test-mode only";
    return false;
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
    s.acceptors.push_back(std::move(acceptor));
  }
  // The relay (before privileges go: it reads the routes' auth files). It knows where this
  // server takes mail, so that an exchanger there counts as this host (RFC 5321 §5.1).
  RelayConfig rc = s.opt.relay;
  if (rc.helo_name == "localhost") rc.helo_name = s.opt.hostname;
  std::string interfaces_error;
  add_addresses_listening_on(s.bound, rc.mx_port, rc, interfaces_error);
  if (!interfaces_error.empty()) s.write_log("relay", {{"warning", interfaces_error}});
  s.relayer = std::make_unique<Relayer>(s.io, rc, [&s](std::string_view event, const net::LogFields& fields) {
    s.write_log(event, fields);
  });
  if (!s.relayer->start(error)) return false;
  // Connections are taken only now that everything they use exists.
  for (std::size_t i = 0; i < s.acceptors.size(); ++i) {
    asio::co_spawn(s.strand, s.accept_loop(*s.acceptors[i], s.bound[i].role, *this), asio::detached);
  }
  // Privileges may be dropped here (refsmtpd --user): after binding, before touching the spool.
  if (s.opt.after_bind && !s.opt.after_bind(error)) return false;
  if (!s.opt.capture_mbox.empty() && !s.open_capture_mbox(error)) return false;
  if (!s.opt.test_mode) {
    s.spool_storage = std::make_unique<queue::PosixStorage>(s.opt.spool_dir);
    s.mail_storage = std::make_unique<queue::PosixStorage>(s.opt.mail_root);
    queue::QueueConfig qc;
    qc.hostname = s.opt.hostname;
    qc.retry = s.opt.retry;
    s.queue = std::make_unique<queue::Queue>(*s.spool_storage, qc);
    queue::RecoveryReport report;
    if (auto err = s.queue->open(s.now(), &report)) {
      error = "cannot open the spool in " + s.opt.spool_dir + ": " + err.message();
      return false;
    }
    for (const auto& q : report.quarantined) s.write_log("recovery", {{"quarantined", q}});
    s.write_log("recovery", {{"queued", std::to_string(report.messages.size())}});
  }
  if (s.queue) {
    s.delivery_timer = std::make_unique<asio::steady_timer>(s.strand);
    s.delivery_pool = std::make_unique<asio::thread_pool>(1);
    s.request_delivery();
    s.schedule_delivery();
  }
  return true;
}

std::vector<ListenerSpec> Server::bound() const { return impl_->bound; }

void Server::stop() {
  // Stops accepting and delivering; running connections and relay jobs end with the
  // io_contexts they run on.
  asio::post(impl_->strand, [&s = *impl_] {
    s.stopping = true;
    boost::system::error_code ec;
    for (auto& a : s.acceptors) a->close(ec);
    if (s.delivery_timer) s.delivery_timer->cancel();
  });
}

std::uint64_t Server::delivery_passes() const { return impl_->delivery_passes; }

bool Server::wait_for_delivery_passes(std::uint64_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(impl_->passes_m);
  return impl_->passes_cv.wait_for(lock, timeout, [&] { return impl_->delivery_passes >= n; });
}

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

smtp::Verdict Server::check_sender(const net::ConnectionInfo&, const smtp::action::CheckSender&) {
  return smtp::Verdict::accept();  // an MX takes mail from anyone (sender checks are policy, later)
}

smtp::Verdict Server::check_recipient(const net::ConnectionInfo& c, const smtp::action::CheckRecipient& q) {
  Impl& s = *impl_;
  if (s.resolve(q.path)) return smtp::Verdict::accept();
  if (q.path.mailbox && !q.path.mailbox->domain.empty()) {
    const std::string domain = ascii_lower(q.path.mailbox->domain);
    if (!s.is_local_domain(domain)) {
      // Another domain: relayed only for authenticated clients (RFC 6409 §4.3; an MX is not an
      // open relay, RFC 5321 §3.6.2), and only when this server has a way out for it.
      if (c.auth_identity.empty()) {
        log(c, "rcpt", {{"rcpt", q.path.to_string()}, {"verdict", "554 5.7.1 relay denied"}});
        return smtp::Verdict::reject(smtp::make_reply(554, 5, 7, 1, "Relay access denied"));
      }
      // (--test-mode captures whatever it accepts: nothing leaves the server.)
      if (s.opt.test_mode || (s.relayer && s.relayer->routable(domain))) return smtp::Verdict::accept();
      return smtp::Verdict::reject(smtp::make_reply(550, 5, 7, 1, "This server does not relay to " + domain +
                                                                      " (no --relay mx or --route for it)"));
    }
  }
  return smtp::Verdict::reject(smtp::make_reply(550, 5, 1, 1, "No such user here"));
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
  if (s.opt.test_mode) {
    // The envelope in header fields a test can read. A capture file holds them, a blank line,
    // then the message exactly as received; an mbox entry has them as its first header fields
    // (as Return-Path: and Delivered-To: are added), so that mail readers see the message's own.
    const bool to_mbox = s.capture_mbox.fd >= 0;
    std::string text = "X-Refsmtp-Mail-From: " + envelope.reverse_path.to_string() + "\r\n";
    for (const auto& r : envelope.recipients) text += "X-Refsmtp-Rcpt-To: " + r.path.to_string() + "\r\n";
    if (!to_mbox) text += "\r\n";
    text += body;
    std::string name;
    if (!(to_mbox ? s.capture_to_mbox(envelope.reverse_path, text, name) : s.capture_to_file(text, name))) {
      log(c, "message", {{"from", envelope.reverse_path.to_string()}, {"size", std::to_string(body.size())},
                         {"error", std::strerror(errno)}, {"verdict", "451"}});
      return smtp::Verdict::reject(smtp::make_reply(451, 4, 3, 0, "Could not capture the message"));
    }
    log(c, "message", {{"from", envelope.reverse_path.to_string()}, {"rcpts", std::to_string(envelope.recipients.size())},
                       {"size", std::to_string(body.size())}, {"captured", name}, {"verdict", "250"}});
    return smtp::Verdict::accept(smtp::make_reply(250, 2, 0, 0, "OK captured as " + name));
  }
  queue::ClientInfo ci{envelope.helo, c.client_address, envelope.esmtp, c.tls, !c.auth_identity.empty()};
  // Queue::accept is thread-safe and writes outside its lock: concurrent connections share the
  // spool's group commit.
  const queue::AcceptResult r = s.queue->accept(s.expand_aliases(envelope), body, ci, s.now());
  net::LogFields fields{{"queue_id", r.id.value_or("")}, {"from", envelope.reverse_path.to_string()},
                        {"rcpts", std::to_string(envelope.recipients.size())}, {"size", std::to_string(body.size())}};
  if (envelope.params.auth) fields.emplace_back("auth", *envelope.params.auth);  // RFC 4954 §5
  fields.emplace_back("verdict", r.reply.format().substr(0, r.reply.format().size() - 2));
  log(c, "message", fields);
  if (!r.id) return smtp::Verdict::reject(r.reply);
  // Deliver soon, outside this call.
  s.request_delivery();
  return smtp::Verdict::accept(r.reply);
}

void Server::log(const net::ConnectionInfo& c, std::string_view event, const net::LogFields& fields) {
  net::LogFields all{{"conn", std::to_string(c.id)}, {"role", c.role}, {"client", c.client_address}};
  if (c.tls) all.emplace_back("tls", "1");
  all.insert(all.end(), fields.begin(), fields.end());
  impl_->write_log(event, all);
}

}  // namespace refsmtp::server
