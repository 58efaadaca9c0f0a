#include "refsmtp/net/connection.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <algorithm>
#include <chrono>
#include <optional>
#include <tuple>
#include <variant>

namespace refsmtp::net {

namespace asio = boost::asio;
using asio::use_awaitable;
using namespace asio::experimental::awaitable_operators;

namespace {

smtp::Millis now_ms() {
  return std::chrono::duration_cast<smtp::Millis>(std::chrono::steady_clock::now().time_since_epoch());
}

}  // namespace

namespace {
constexpr std::size_t kReadSize = 16384;
thread_local char thread_buf[kReadSize];
}  // namespace

void ConnectionControl::wake() {
  std::lock_guard lock(m);
  if (waker) waker();
}

asio::awaitable<void> serve_connection(asio::ip::tcp::socket socket, ConnectionOptions options, SessionHost& host,
                                       std::uint64_t id) {
  ConnectionInfo info;
  info.id = id;
  info.role = options.role;
  boost::system::error_code ec;
  const auto remote = socket.remote_endpoint(ec);
  info.client_address = ec ? "unknown" : remote.address().to_string();
  if (options.tls == nullptr) options.session.starttls = false;
  if (options.implicit_tls) {
    options.session.tls_active = true;
    options.session.starttls = false;
  }

  // The TLS stream (OpenSSL state and ~34 KiB of record buffers) exists only once TLS starts:
  // an idle plain-text connection costs a few KiB, not tens.
  asio::ip::tcp::socket sock(std::move(socket));
  sock.non_blocking(true);  // reads happen only after a readiness wait
  std::optional<asio::ssl::stream<asio::ip::tcp::socket&>> stream;
  auto make_tls = [&] { stream.emplace(sock, *options.tls); };
  bool tls = false;
  smtp::ServerSession session(options.session, now_ms());
  // Shared, so a wake-up posted from another thread can never outlive it.
  auto timer_ptr = std::make_shared<asio::steady_timer>(sock.get_executor());
  asio::steady_timer& timer = *timer_ptr;
  std::string body;
  std::unique_ptr<char[]> tls_buf;  // only for TLS connections
  host.log(info, "connect", {});

  // One line when TLS is up: the protocol and cipher the client got (Postfix's "TLS connection
  // established" line).
  auto log_tls = [&] {
    SSL* ssl = stream->native_handle();
    host.log(info, "tls", {{"version", SSL_get_version(ssl)}, {"cipher", SSL_get_cipher_name(ssl)}});
  };
  auto write = [&](std::string bytes) -> asio::awaitable<void> {
    if (tls) {
      co_await asio::async_write(*stream, asio::buffer(bytes), use_awaitable);
    } else {
      co_await asio::async_write(sock, asio::buffer(bytes), use_awaitable);
    }
  };

  bool closed = false;
  int auth_failures = 0;
  const smtp::Millis started = now_ms();
  const std::shared_ptr<ConnectionControl> control = options.control;
  if (control) {
    std::lock_guard lock(control->m);
    control->waker = [timer_ptr, ex = sock.get_executor()] { asio::post(ex, [timer_ptr] { timer_ptr->cancel(); }); };
  }
  // Does everything the session asks, in order. Host verdicts are immediate, so a pending
  // question never outlives one call.
  auto drain = [&]() -> asio::awaitable<void> {
    while (auto a = session.next_action()) {
      if (auto* send = std::get_if<smtp::action::Send>(&*a)) {
        co_await write(send->bytes);
      } else if (std::holds_alternative<smtp::action::StartTls>(*a)) {
        make_tls();
        auto [hs_ec] = co_await stream->async_handshake(asio::ssl::stream_base::server, asio::as_tuple(use_awaitable));
        if (hs_ec) {
          host.log(info, "tls_failed", {{"error", hs_ec.message()}});
          session.tls_failed();
        } else {
          tls = true;
          info.tls = true;
          log_tls();
          session.tls_started();
        }
      } else if (std::holds_alternative<smtp::action::Close>(*a)) {
        closed = true;
      } else if (auto* sender = std::get_if<smtp::action::CheckSender>(&*a)) {
        info.helo = session.envelope().helo;
        session.answer(host.check_sender(info, *sender), now_ms());
      } else if (auto* rcpt = std::get_if<smtp::action::CheckRecipient>(&*a)) {
        session.answer(host.check_recipient(info, *rcpt), now_ms());
      } else if (auto* auth = std::get_if<smtp::action::CheckAuth>(&*a)) {
        smtp::Verdict v = host.check_auth(info, *auth);
        if (!v.accepted) {
          host.log(info, "auth", {{"user", auth->authcid}, {"result", "fail"}});
          if (++auth_failures >= options.max_auth_failures) {
            v = smtp::Verdict::reject(smtp::make_reply(421, 4, 7, 0, "Too many authentication failures"));
          } else {
            timer.expires_after(options.auth_failure_delay * auth_failures);
            co_await timer.async_wait(use_awaitable);
          }
        }
        session.answer(v, now_ms());
        info.auth_identity = session.auth_identity();
        if (!info.auth_identity.empty()) host.log(info, "auth", {{"user", info.auth_identity}, {"result", "ok"}});
      } else if (std::holds_alternative<smtp::action::MessageStart>(*a)) {
        body.clear();
      } else if (auto* chunk = std::get_if<smtp::action::BodyChunk>(&*a)) {
        body += chunk->data;
      } else if (auto* done = std::get_if<smtp::action::MessageComplete>(&*a)) {
        session.answer(host.message(info, done->envelope, body), now_ms());
        body.clear();
        body.shrink_to_fit();
      } else if (auto* aborted = std::get_if<smtp::action::MessageAborted>(&*a)) {
        host.log(info, "message_aborted", {{"reason", aborted->reason}});
        body.clear();
      } else if (auto* refused = std::get_if<smtp::action::Refused>(&*a)) {
        host.log(info, "refused", {{"command", refused->command}, {"verdict", refused->reply.one_line()}});
      }
    }
  };

  try {
    if (options.implicit_tls && !options.tls) throw boost::system::system_error(asio::error::invalid_argument);
    if (options.implicit_tls) {  // RFC 8314 §3: TLS from the first byte, then the greeting
      timer.expires_after(std::chrono::seconds(30));
      make_tls();
      auto hs = co_await (stream->async_handshake(asio::ssl::stream_base::server, use_awaitable) ||
                          timer.async_wait(use_awaitable));
      if (hs.index() == 1) throw boost::system::system_error(asio::error::timed_out);
      tls = true;
      info.tls = true;
      log_tls();
    }
    co_await drain();  // the greeting
    while (!closed) {
      // Shutdown: an idle session is told 421 now; a transaction may finish unless forced.
      const bool idle = session.envelope().recipients.empty() && session.state() != smtp::State::mail &&
                        session.state() != smtp::State::data && session.state() != smtp::State::bdat;
      if (control && (control->force || (control->draining && idle))) {
        session.shutdown();
        co_await drain();
        continue;
      }
      if (now_ms() >= started + options.max_duration) {
        session.shutdown(smtp::make_reply(421, 4, 4, 2, options.session.hostname + " Connection time limit reached"));
        co_await drain();
        continue;
      }
      // Read, racing the session's deadline (time is an input to the session) and the
      // connection's time limit; a server shutdown wakes the wait too.
      auto deadline = session.deadline().value_or(now_ms() + std::chrono::hours(24));
      deadline = std::min(deadline, started + smtp::Millis(options.max_duration.count()));
      timer.expires_after(std::chrono::milliseconds(std::max<std::int64_t>(0, (deadline - now_ms()).count())));
      // In the clear, an idle connection waits for readability without a buffer of its own and
      // then reads into this thread's buffer; over TLS the stream needs one to read into.
      std::variant<std::tuple<boost::system::error_code, std::size_t>, std::tuple<boost::system::error_code>> got;
      std::string_view fresh;
      if (tls) {
        if (!tls_buf) tls_buf = std::make_unique<char[]>(kReadSize);
        got = co_await (stream->async_read_some(asio::buffer(tls_buf.get(), kReadSize), asio::as_tuple(use_awaitable)) ||
                        timer.async_wait(asio::as_tuple(use_awaitable)));
        if (got.index() == 0 && !std::get<0>(std::get<0>(got))) fresh = std::string_view(tls_buf.get(), std::get<1>(std::get<0>(got)));
      } else {
        auto ready = co_await (sock.async_wait(asio::ip::tcp::socket::wait_read, asio::as_tuple(use_awaitable)) ||
                               timer.async_wait(asio::as_tuple(use_awaitable)));
        if (ready.index() == 0) {
          boost::system::error_code read_ec = std::get<0>(std::get<0>(ready));
          std::size_t n = 0;
          if (!read_ec) n = sock.read_some(asio::buffer(thread_buf, kReadSize), read_ec);
          if (read_ec == asio::error::would_block || read_ec == asio::error::try_again) {
            read_ec = {};
            n = 0;
          }
          got = std::make_tuple(read_ec, n);  // the peer closing shows as asio::error::eof
          fresh = std::string_view(thread_buf, n);
        } else {
          got = std::make_tuple(boost::system::error_code());
        }
      }
      session.on_time(now_ms());
      if (got.index() == 0) {
        const auto read_ec = std::get<0>(std::get<0>(got));
        if (read_ec) throw boost::system::system_error(read_ec);
        // thread_buf belongs to this thread: whatever the session did not take is copied before
        // any co_await, after which this coroutine may resume elsewhere.
        std::string held;
        std::string_view rest = fresh;
        while (!rest.empty() && !closed) {
          const std::size_t took = session.receive(rest);
          rest.remove_prefix(took);
          if (!rest.empty() && held.empty()) {
            held.assign(rest);
            rest = held;
          }
          const bool waiting = session.pending() != smtp::Question::none;
          co_await drain();
          if (took == 0 && !waiting) break;  // nothing more will be taken: never spin
        }
      }
      co_await drain();
    }
  } catch (const boost::system::system_error& e) {
    // Peer reset or went away: a message in flight was never acknowledged.
    host.log(info, "connection_error", {{"error", e.code().message()}});
  }
  if (control) {
    std::lock_guard lock(control->m);
    control->waker = nullptr;
  }
  boost::system::error_code ignored;
  sock.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  sock.close(ignored);
  host.log(info, "disconnect", {});
}

}  // namespace refsmtp::net
