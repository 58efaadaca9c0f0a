#include "refsmtp/delivery/lmtp.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace refsmtp::delivery {

namespace {

using Clock = std::chrono::steady_clock;

smtp::Millis now_ms() {
  return std::chrono::duration_cast<smtp::Millis>(Clock::now().time_since_epoch());
}

// Connects with a timeout; returns the socket or -1 with `error` set.
int connect_to(const Endpoint& ep, std::chrono::milliseconds timeout, std::string& error) {
  sockaddr_storage addr{};
  socklen_t len = 0;
  int family;
  if (!ep.unix_path.empty()) {
    auto* un = reinterpret_cast<sockaddr_un*>(&addr);
    if (ep.unix_path.size() >= sizeof un->sun_path) {
      error = "socket path too long";
      return -1;
    }
    un->sun_family = AF_UNIX;
    std::memcpy(un->sun_path, ep.unix_path.c_str(), ep.unix_path.size() + 1);
    len = sizeof(sockaddr_un);
    family = AF_UNIX;
  } else {
    addrinfo hints{};
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    const std::string port = std::to_string(ep.port);
    if (const int rc = ::getaddrinfo(ep.host.c_str(), port.c_str(), &hints, &res); rc != 0) {
      error = "bad LMTP address " + ep.host + ": " + ::gai_strerror(rc);
      return -1;
    }
    std::memcpy(&addr, res->ai_addr, res->ai_addrlen);
    len = res->ai_addrlen;
    family = res->ai_family;
    ::freeaddrinfo(res);
  }
  const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    error = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 && errno != EINPROGRESS) {
    error = std::string("connect: ") + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  pollfd p{fd, POLLOUT, 0};
  const int rc = ::poll(&p, 1, static_cast<int>(timeout.count()));
  int so_error = 0;
  socklen_t so_len = sizeof so_error;
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &so_len);
  if (rc <= 0 || so_error != 0) {
    error = rc == 0 ? "connect: timed out" : std::string("connect: ") + std::strerror(so_error ? so_error : errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        pollfd p{fd, POLLOUT, 0};
        if (::poll(&p, 1, 60'000) <= 0) return false;
        continue;
      }
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

}  // namespace

SendOutcome lmtp_deliver(const Endpoint& endpoint, const smtp::OutgoingMessage& message, const LmtpOptions& options) {
  smtp::ClientConfig cfg;
  cfg.lmtp = true;
  cfg.tls = smtp::TlsPolicy::none;  // a local MDA socket
  cfg.helo_name = options.lhlo_name;
  return send_blocking(endpoint, cfg, message, options.connect_timeout);
}

SendOutcome send_blocking(const Endpoint& endpoint, const smtp::ClientConfig& cfg, const smtp::OutgoingMessage& message,
                         std::chrono::milliseconds connect_timeout) {
  SendOutcome out;
  auto defer_all = [&](const std::string& why) {
    out.error = why;
    out.results.clear();
    for (const auto& r : message.recipients) {
      out.results.push_back({r, smtp::DeliveryStatus::deferred, smtp::make_reply(451, 4, 4, 1, why)});
    }
    return out;
  };
  std::string error;
  const int fd = connect_to(endpoint, connect_timeout, error);
  if (fd < 0) return defer_all(error);

  smtp::ClientSession session(cfg, now_ms());
  bool sent = false, have_result = false, closed = false;
  char buf[16384];
  while (!closed) {
    while (auto a = session.next_action()) {
      if (auto* s = std::get_if<smtp::client_action::Send>(&*a)) {
        if (!write_all(fd, s->bytes)) session.connection_lost();
      } else if (std::holds_alternative<smtp::client_action::StartTls>(*a)) {
        session.tls_failed();  // no TLS on this path
      } else if (std::holds_alternative<smtp::client_action::Ready>(*a)) {
        if (!sent) {
          sent = true;
          session.send_message(message);
        } else {
          session.quit();
        }
      } else if (auto* r = std::get_if<smtp::client_action::MessageResult>(&*a)) {
        out.results = r->results;
        have_result = true;
      } else if (auto* f = std::get_if<smtp::client_action::ConnectionFailed>(&*a)) {
        error = f->reason + ": " + f->reply.text();
      } else if (std::holds_alternative<smtp::client_action::Close>(*a)) {
        closed = true;
      }
    }
    if (closed) break;
    // Every turn, not only on a quiet poll: a server trickling bytes must still hit the
    // §4.5.3.2 deadlines.
    session.on_time(now_ms());
    if (session.closed()) continue;  // its last actions are handled at the top
    const auto deadline = session.deadline();
    const auto wait = deadline ? std::max<std::int64_t>(0, (*deadline - now_ms()).count()) : 60'000;
    pollfd p{fd, POLLIN, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(wait, 60'000)));
    if (rc < 0 && errno == EINTR) continue;
    if (rc == 0) continue;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      session.receive(std::string_view(buf, static_cast<std::size_t>(n)));
    } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
      session.connection_lost();
    }
  }
  ::close(fd);
  if (!have_result) return defer_all(error.empty() ? "connection closed before the message was delivered" : error);
  return out;
}

}  // namespace refsmtp::delivery
