#include "connections.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace refsmtp::server {

namespace asio = boost::asio;
using asio::ip::tcp;

Connections::Connections(asio::io_context& io, Strand strand, std::vector<asio::io_context*> contexts, Limits limits,
                         std::string hostname, const EventLog& log, Serve serve)
    : io_(io), strand_(std::move(strand)), contexts_(std::move(contexts)), limits_(limits), hostname_(std::move(hostname)),
      log_(log), serve_(std::move(serve)) {}

asio::awaitable<void> Connections::accept_loop(tcp::acceptor& acceptor, Role role) {
  while (!stopping_) {
    // The connection's own executor: its socket and timers live on it.
    const asio::any_io_executor conn_strand =
        contexts_.empty() ? asio::any_io_executor(asio::make_strand(io_))
                          : asio::any_io_executor(contexts_[next_context_++ % contexts_.size()]->get_executor());
    auto [ec, socket] = co_await acceptor.async_accept(conn_strand, asio::as_tuple(asio::use_awaitable));
    if (ec) {
      if (stopping_ || ec == asio::error::operation_aborted) co_return;
      continue;
    }
    boost::system::error_code pec;
    const auto peer = socket.remote_endpoint(pec);
    const std::string client = pec ? std::string("unknown") : peer.address().to_string();
    bool over = false;
    {
      std::lock_guard lock(m_);
      over = active_ >= limits_.max_connections || per_client_[client] >= limits_.max_per_client;
    }
    if (over) {
      // Over a limit: one 421 and close, without starting a session (RFC 5321 §3.8).
      log_.write("refused", {{"role", std::string(role_name(role))}, {"client", client}, {"verdict", "421 4.7.0 too many connections"}});
      asio::co_spawn(conn_strand, refuse(std::move(socket)), asio::detached);
      continue;
    }
    auto control = std::make_shared<net::ConnectionControl>();
    bool stress = false;
    {
      std::lock_guard lock(m_);
      ++active_;
      ++per_client_[client];
      controls_.push_back(control);
      stress = update_stress();
    }
    asio::co_spawn(conn_strand, tracked(serve_(std::move(socket), role, next_conn_++, control, stress), client, control),
                   asio::detached);
  }
}

asio::awaitable<void> Connections::tracked(asio::awaitable<void> conn, std::string client,
                                           std::shared_ptr<net::ConnectionControl> control) {
  co_await std::move(conn);
  std::function<void()> done;
  {
    std::lock_guard lock(m_);
    --active_;
    if (--per_client_[client] == 0) per_client_.erase(client);
    update_stress();
    controls_.remove(control);
    if (active_ == 0 && on_drained_) {
      done = std::move(on_drained_);
      on_drained_ = nullptr;
    }
  }
  if (done) {
    asio::post(strand_, [this] {
      if (drain_timer_) drain_timer_->cancel();
    });
    done();
  }
}

asio::awaitable<void> Connections::refuse(tcp::socket socket) {
  const std::string msg = "421 4.7.0 " + hostname_ + " Too many connections, try again later\r\n";
  co_await asio::async_write(socket, asio::buffer(msg), asio::as_tuple(asio::use_awaitable));
  boost::system::error_code ec;
  socket.shutdown(tcp::socket::shutdown_both, ec);
  socket.close(ec);
}

bool Connections::update_stress() {
  const std::size_t on = limits_.max_connections * limits_.stress_percent / 100;
  const std::size_t off = on * 2 / 3;
  const bool was = stress_;
  if (!stress_ && active_ >= on && on > 0) stress_ = true;
  if (stress_ && active_ < off) stress_ = false;
  if (stress_ != was) {
    log_.write("stress", {{"state", stress_ ? "on" : "off"}, {"connections", std::to_string(active_)},
                          {"max_connections", std::to_string(limits_.max_connections)}});
  }
  return stress_;
}

std::size_t Connections::active() const {
  std::lock_guard lock(m_);
  return active_;
}

void Connections::drain(std::function<void()> done) {
  stopping_ = true;
  std::list<std::shared_ptr<net::ConnectionControl>> controls;
  {
    std::lock_guard lock(m_);
    if (active_ == 0) {
      done();
      return;
    }
    on_drained_ = std::move(done);
    controls = controls_;
  }
  for (auto& c : controls) {
    c->draining = true;
    c->wake();
  }
  drain_timer_ = std::make_unique<asio::steady_timer>(strand_, limits_.drain_timeout);
  drain_timer_->async_wait([this](boost::system::error_code timer_ec) {
    if (timer_ec) return;
    std::list<std::shared_ptr<net::ConnectionControl>> left;
    {
      std::lock_guard lock(m_);
      left = controls_;
    }
    for (auto& c : left) {  // time is up: close what is left
      c->force = true;
      c->wake();
    }
  });
}

}  // namespace refsmtp::server
