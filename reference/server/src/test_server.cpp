#include "refsmtp/server/test_server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "refsmtp/net/connection.hpp"

namespace refsmtp {

namespace asio = boost::asio;
using asio::ip::tcp;

struct TestServer::Impl final : net::SessionHost {
  TestServerOptions opt;
  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::shared_ptr<asio::ssl::context> tls;
  std::thread thread;
  std::uint16_t port = 0;
  std::uint64_t next_conn = 1;

  mutable std::mutex m;
  mutable std::condition_variable cv;
  std::vector<CapturedMessage> messages;

  smtp::Verdict check_sender(const net::ConnectionInfo&, const smtp::action::CheckSender&) override {
    return smtp::Verdict::accept();
  }
  smtp::Verdict check_recipient(const net::ConnectionInfo&, const smtp::action::CheckRecipient& q) override {
    if (opt.recipient_policy) {
      if (auto refusal = opt.recipient_policy(q.path.to_string())) return smtp::Verdict::reject(*refusal);
    }
    return smtp::Verdict::accept();
  }
  smtp::Verdict check_auth(const net::ConnectionInfo&, const smtp::action::CheckAuth&) override {
    return smtp::Verdict::reject(smtp::make_reply(535, 5, 7, 8, "Authentication credentials invalid"));
  }
  smtp::Verdict message(const net::ConnectionInfo& c, const smtp::Envelope& e, std::string_view body) override {
    CapturedMessage msg;
    msg.mail_from = e.reverse_path.to_string();
    for (const auto& r : e.recipients) msg.rcpt_to.push_back(r.path.to_string());
    msg.body = std::string(body);
    msg.helo = e.helo;
    msg.tls = c.tls;
    {
      std::lock_guard lock(m);
      messages.push_back(std::move(msg));
    }
    cv.notify_all();
    return smtp::Verdict::accept();
  }
  void log(const net::ConnectionInfo&, std::string_view, const net::LogFields&) override {}

  asio::awaitable<void> accept_loop() {
    while (true) {
      auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;  // closed by the destructor
      net::ConnectionOptions copt;
      copt.role = "test";
      copt.session.hostname = opt.hostname;
      copt.session.limits.message_size = opt.max_message_size;
      copt.tls = tls;
      asio::co_spawn(io, net::serve_connection(std::move(socket), std::move(copt), *this, next_conn++), asio::detached);
    }
  }
};

TestServer::TestServer(TestServerOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.opt = std::move(options);
  if (!s.opt.tls_cert.empty() && !s.opt.tls_key.empty()) {
    s.tls = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
    s.tls->use_certificate_chain_file(s.opt.tls_cert);
    s.tls->use_private_key_file(s.opt.tls_key, asio::ssl::context::pem);
  }
  const tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
  s.acceptor.open(ep.protocol());
  s.acceptor.bind(ep);
  s.acceptor.listen();
  s.port = s.acceptor.local_endpoint().port();
  asio::co_spawn(s.io, s.accept_loop(), asio::detached);
  s.thread = std::thread([&s] { s.io.run(); });
}

TestServer::~TestServer() {
  asio::post(impl_->io, [this] {
    boost::system::error_code ec;
    impl_->acceptor.close(ec);
    impl_->io.stop();
  });
  impl_->thread.join();
}

std::uint16_t TestServer::port() const { return impl_->port; }

std::vector<CapturedMessage> TestServer::messages() const {
  std::lock_guard lock(impl_->m);
  return impl_->messages;
}

bool TestServer::wait_for(std::size_t count, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(impl_->m);
  return impl_->cv.wait_for(lock, timeout, [&] { return impl_->messages.size() >= count; });
}

void TestServer::reset() {
  std::lock_guard lock(impl_->m);
  impl_->messages.clear();
}

}  // namespace refsmtp
