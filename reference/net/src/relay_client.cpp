#include "refsmtp/net/relay_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <algorithm>
#include <deque>
#include <optional>
#include <variant>

namespace refsmtp::net {

namespace asio = boost::asio;
using asio::ip::tcp;
using asio::use_awaitable;
using namespace asio::experimental::awaitable_operators;

namespace {

smtp::Millis now_ms() {
  return std::chrono::duration_cast<smtp::Millis>(std::chrono::steady_clock::now().time_since_epoch());
}

std::string hop_name(const RelayHop& h) {
  return h.host + "[" + h.address + "]:" + std::to_string(h.port);
}

bool is_address(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

std::string text_of(const smtp::Reply& r) {
  std::string s = r.format();
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  for (char& c : s) {
    if (c == '\r' || c == '\n') c = ' ';
  }
  return s;
}

}  // namespace

std::shared_ptr<asio::ssl::context> make_client_tls(const std::string& ca_file, std::string& error) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 |
                   asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
  boost::system::error_code ec;
  if (ca_file.empty()) {
    ctx->set_default_verify_paths(ec);
  } else {
    ctx->load_verify_file(ca_file, ec);
  }
  if (ec) {
    error = "TLS trust store" + (ca_file.empty() ? std::string() : " " + ca_file) + ": " + ec.message();
    return nullptr;
  }
  return ctx;
}

asio::awaitable<RelayResult> relay_messages(std::vector<RelayHop> hops, std::vector<smtp::OutgoingMessage> messages,
                                            RelayOptions options, MessageDone on_message) {
  auto ex = co_await asio::this_coro::executor;
  RelayResult out;
  std::vector<std::optional<std::vector<smtp::RecipientResult>>> done(messages.size());
  smtp::Reply last = smtp::make_reply(451, 4, 4, 1, "No mail exchanger could be reached");
  // Permanent only when every hop tried refused for good (a 5xx greeting, EHLO and HELO refused).
  bool any_permanent = false, all_permanent = true;
  const auto unresolved = [&] {
    return static_cast<std::size_t>(std::find_if(done.begin(), done.end(), [](const auto& d) { return !d.has_value(); }) -
                                    done.begin());
  };

  // Each hop once; a hop whose opportunistic TLS handshake failed once more in the clear
  // (RFC 7435: opportunistic security must not make delivery worse than no security).
  struct Try {
    std::size_t hop;
    bool plain;
  };
  std::deque<Try> tries;
  for (std::size_t i = 0; i < hops.size(); ++i) tries.push_back({i, false});
  while (!tries.empty() && unresolved() < done.size()) {
    const Try attempt = tries.front();
    tries.pop_front();
    const RelayHop& hop = hops[attempt.hop];
    const std::string name = hop_name(hop) + (attempt.plain ? " (without TLS)" : "");
    boost::system::error_code ec;
    const auto address = asio::ip::make_address(hop.address, ec);
    if (ec) {
      out.log.push_back(name + " bad address: " + ec.message());
      all_permanent = false;
      continue;
    }
    tcp::socket sock(ex);
    asio::steady_timer timer(ex);
    timer.expires_after(options.connect_timeout);
    auto connected = co_await (sock.async_connect(tcp::endpoint(address, hop.port), asio::as_tuple(use_awaitable)) ||
                               timer.async_wait(asio::as_tuple(use_awaitable)));
    if (connected.index() == 1 || std::get<0>(std::get<0>(connected))) {
      const std::string why = connected.index() == 1 ? std::string("timed out") : std::get<0>(std::get<0>(connected)).message();
      out.log.push_back(name + " connect: " + why);
      last = smtp::make_reply(451, 4, 4, 1, "Cannot connect to " + name + ": " + why);
      all_permanent = false;
      continue;
    }
    boost::system::error_code nodelay_ec;
    sock.set_option(tcp::no_delay(true), nodelay_ec);

    smtp::ClientConfig cfg = options.client;
    if (attempt.plain || (!options.tls && cfg.tls == smtp::TlsPolicy::opportunistic)) cfg.tls = smtp::TlsPolicy::none;
    smtp::ClientSession session(cfg, now_ms());
    std::optional<asio::ssl::stream<tcp::socket&>> stream;
    bool tls = false, closed = false, tls_broken = false, permanent_here = false;
    std::size_t current = done.size();  // the message in flight
    std::size_t sent_here = 0;
    std::string hop_result;
    std::string detail;  // what the transport saw (a TLS or socket error), added to the reply

    // Every wait is bounded by the session's deadline (RFC 5321 §4.5.3.2), writes included: a
    // receiver that stops reading must not hold the connection forever.
    const auto until_deadline = [&] {
      const auto deadline = session.deadline().value_or(now_ms() + options.client.command_timeout);
      return std::chrono::milliseconds(std::max<std::int64_t>(0, (deadline - now_ms()).count()));
    };
    auto write = [&](const std::string& bytes) -> asio::awaitable<boost::system::error_code> {
      timer.expires_after(std::max(until_deadline(), std::chrono::milliseconds(options.client.command_timeout)));
      std::variant<std::tuple<boost::system::error_code, std::size_t>, std::tuple<boost::system::error_code>> w;
      if (tls) {
        w = co_await (asio::async_write(*stream, asio::buffer(bytes), asio::as_tuple(use_awaitable)) ||
                      timer.async_wait(asio::as_tuple(use_awaitable)));
      } else {
        w = co_await (asio::async_write(sock, asio::buffer(bytes), asio::as_tuple(use_awaitable)) ||
                      timer.async_wait(asio::as_tuple(use_awaitable)));
      }
      if (w.index() == 1) co_return asio::error::timed_out;
      co_return std::get<0>(std::get<0>(w));
    };

    char buf[16384];
    while (!closed) {
      // Everything the session asks for, in order.
      while (auto a = session.next_action()) {
        if (auto* send = std::get_if<smtp::client_action::Send>(&*a)) {
          if (auto wec = co_await write(send->bytes)) {
            detail = "write: " + wec.message();
            session.connection_lost();
          }
        } else if (std::holds_alternative<smtp::client_action::StartTls>(*a)) {
          if (!options.tls) {
            session.tls_failed();
            continue;
          }
          stream.emplace(sock, *options.tls);
          // SNI names the host (never an address, RFC 6066 §3); with a required policy the
          // chain must verify and its name match the hop.
          if (!is_address(hop.host)) SSL_set_tlsext_host_name(stream->native_handle(), hop.host.c_str());
          if (cfg.tls == smtp::TlsPolicy::required) {
            stream->set_verify_mode(asio::ssl::verify_peer);
            stream->set_verify_callback(asio::ssl::host_name_verification(hop.host));
          } else {
            stream->set_verify_mode(asio::ssl::verify_none);
          }
          timer.expires_after(options.client.command_timeout);
          auto hs = co_await (stream->async_handshake(asio::ssl::stream_base::client, asio::as_tuple(use_awaitable)) ||
                              timer.async_wait(asio::as_tuple(use_awaitable)));
          const bool ok = hs.index() == 0 && !std::get<0>(std::get<0>(hs));
          if (ok) {
            tls = true;
            session.tls_started();
          } else {
            detail = hs.index() == 1 ? std::string("timed out") : std::get<0>(std::get<0>(hs)).message();
            tls_broken = cfg.tls == smtp::TlsPolicy::opportunistic;
            session.tls_failed();
          }
        } else if (std::holds_alternative<smtp::client_action::Close>(*a)) {
          closed = true;
        } else if (std::holds_alternative<smtp::client_action::Ready>(*a)) {
          const std::size_t next = unresolved();
          if (next < done.size()) {
            current = next;
            session.send_message(messages[current]);
          } else {
            session.quit();
          }
        } else if (auto* result = std::get_if<smtp::client_action::MessageResult>(&*a)) {
          if (current < done.size()) {
            done[current] = result->results;
            ++sent_here;
            if (on_message) on_message(current, result->results, hop.host);
          }
          current = done.size();
        } else if (auto* failed = std::get_if<smtp::client_action::ConnectionFailed>(&*a)) {
          last = failed->reply;
          if (!detail.empty() && !last.lines.empty()) last.lines.back() += " (" + detail + ")";
          permanent_here = failed->permanent;
          hop_result = failed->reason + ": " + text_of(last);
        }
      }
      if (closed) break;
      // Wait for replies, racing the session's deadline (time is an input to the session).
      timer.expires_after(until_deadline());
      std::variant<std::tuple<boost::system::error_code, std::size_t>, std::tuple<boost::system::error_code>> got;
      if (tls) {
        got = co_await (stream->async_read_some(asio::buffer(buf), asio::as_tuple(use_awaitable)) ||
                        timer.async_wait(asio::as_tuple(use_awaitable)));
      } else {
        got = co_await (sock.async_read_some(asio::buffer(buf), asio::as_tuple(use_awaitable)) ||
                        timer.async_wait(asio::as_tuple(use_awaitable)));
      }
      session.on_time(now_ms());
      if (got.index() == 0) {
        const auto [rec, n] = std::get<0>(got);
        if (rec) {
          if (detail.empty()) detail = "read: " + rec.message();
          session.connection_lost();
        } else {
          session.receive(std::string_view(buf, n));
        }
      }
    }
    if (hop_result.empty()) hop_result = detail;
    if (permanent_here) {
      any_permanent = true;
    } else {
      all_permanent = false;
    }
    if (tls_broken && sent_here == 0) tries.push_front({attempt.hop, true});
    boost::system::error_code ignored;
    sock.shutdown(tcp::socket::shutdown_both, ignored);
    sock.close(ignored);
    out.log.push_back(name + " " + (sent_here ? std::to_string(sent_here) + " message(s)" : std::string("no message")) +
                      (hop_result.empty() ? std::string() : "; " + hop_result));
  }

  // What no hop took: deferred with the last failure, or failed if every hop refused for good.
  const bool permanent = any_permanent && all_permanent && last.klass() == 5;
  out.messages.reserve(messages.size());
  for (std::size_t i = 0; i < messages.size(); ++i) {
    if (done[i]) {
      out.messages.push_back(std::move(*done[i]));
      continue;
    }
    std::vector<smtp::RecipientResult> rs;
    for (const auto& r : messages[i].recipients) {
      rs.push_back(smtp::RecipientResult{r, permanent ? smtp::DeliveryStatus::failed : smtp::DeliveryStatus::deferred, last});
    }
    if (on_message) on_message(i, rs, std::string());
    out.messages.push_back(std::move(rs));
  }
  co_return out;
}

}  // namespace refsmtp::net
