#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "refsmtp/conform/transport.hpp"

namespace refsmtp::conform {

namespace {

// The runner's own small connection and reply reader: it shares nothing with the server core
// it may be judging.
class TcpTransport final : public Transport {
 public:
  ~TcpTransport() override {
    if (ssl_) SSL_free(ssl_);
    if (ctx_) SSL_CTX_free(ctx_);
    if (fd_ >= 0) ::close(fd_);
  }
  bool open(const std::string& host, std::uint16_t port, std::chrono::milliseconds timeout, std::string& error) {
    timeout_ = timeout;
    addrinfo hints{};
    hints.ai_flags = AI_NUMERICSERV;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || !res) {
      error = "cannot resolve " + host;
      return false;
    }
    fd_ = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    // No Nagle: each write leaves as its own segment, so SPLIT: really splits.
    const int one = 1;
    if (fd_ >= 0) ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const bool ok = fd_ >= 0 && ::connect(fd_, res->ai_addr, res->ai_addrlen) == 0;
    ::freeaddrinfo(res);
    if (!ok) error = std::string("connect: ") + std::strerror(errno);
    return ok;
  }
  void close() override {
    if (ssl_) {
      SSL_free(ssl_);
      ssl_ = nullptr;
    }
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  bool start_tls(std::string& error) override {
    if (!ctx_) ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);  // conformance, not trust: any certificate
    if (ssl_) SSL_free(ssl_);
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    // A server that says 220 and then nothing must not hang the run: the handshake gets the
    // same limit as a reply.
    const timeval tv{static_cast<time_t>(timeout_.count() / 1000), static_cast<suseconds_t>((timeout_.count() % 1000) * 1000)};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (SSL_connect(ssl_) != 1) {
      error = "TLS handshake failed (or no answer within " + std::to_string(timeout_.count()) + " ms)";
      return false;
    }
    buf_.clear();  // nothing read in the clear may be used after the handshake
    // Non-blocking from here: TLS 1.3 servers send records after the handshake (session
    // tickets) that make the socket readable without any application data, and a blocking
    // SSL_read would then wait for the server instead of honouring our deadline.
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
    return true;
  }
  bool send(std::string_view data) override {
    while (!data.empty()) {
      const ssize_t n = ssl_ ? SSL_write(ssl_, data.data(), static_cast<int>(data.size()))
                             : ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) {
        if (!ssl_) return false;
        const int e = SSL_get_error(ssl_, static_cast<int>(n));
        if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ) return false;
        pollfd p{fd_, static_cast<short>(e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN), 0};
        if (::poll(&p, 1, 10000) <= 0) return false;
        continue;
      }
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }
  ReadResult read_reply(std::chrono::milliseconds timeout) override {
    ReadResult out;
    auto& lines = out.lines;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      const std::size_t lf = buf_.find('\n');
      if (lf != std::string::npos) {
        std::string line = buf_.substr(0, lf);
        buf_.erase(0, lf + 1);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        lines.push_back(line);
        if (line.size() < 4 || line[3] != '-') return out;
        // A reply without end: what came so far is returned, and the matchers judge it
        // malformed (its last line says more follows).
        if (lines.size() >= 1000) return out;
        continue;
      }
      if (buf_.size() > 65536) {
        // A runaway line: returned as it is (the matchers judge it), and not read again.
        lines.push_back(buf_.substr(0, 65536));
        buf_.clear();
        return out;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        out.timed_out = true;
        return out;
      }
      if (!ssl_ || SSL_pending(ssl_) == 0) {
        pollfd p{fd_, POLLIN, 0};
        const int rc = ::poll(&p, 1, static_cast<int>(left.count()));
        if (rc == 0) {
          out.timed_out = true;
          return out;
        }
      }
      char tmp[4096];
      const ssize_t n = ssl_ ? SSL_read(ssl_, tmp, sizeof tmp) : ::recv(fd_, tmp, sizeof tmp, 0);
      if (n <= 0) {
        if (ssl_) {
          const int e = SSL_get_error(ssl_, static_cast<int>(n));
          if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) continue;  // a record with no data yet
        }
        out.closed = true;
        return out;
      }
      buf_.append(tmp, static_cast<std::size_t>(n));
    }
  }

 private:
  int fd_ = -1;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  std::chrono::milliseconds timeout_{10000};  // connect and handshake
  std::string buf_;
};

}  // namespace

std::unique_ptr<Transport> connect_tcp(const std::string& host, std::uint16_t port, std::chrono::milliseconds timeout, std::string& error) {
  auto t = std::make_unique<TcpTransport>();
  if (!t->open(host, port, timeout, error)) return nullptr;
  return t;
}

}  // namespace refsmtp::conform
