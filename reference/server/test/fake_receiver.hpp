#pragma once
// A scripted SMTP receiver for relay tests: the faults a real next hop can have, on demand -- a
// 4xx or 5xx greeting, per-recipient 4xx/5xx, a dropped connection after the data, no reply at
// all -- and a record of what it was sent. One connection at a time, on a loopback address;
// plain blocking sockets, its own thread, every wait bounded.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace refsmtp::server::test {

struct Behaviour {
  std::string greeting = "220 fake.b.test ESMTP";
  std::string ehlo = "250-fake.b.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 10000000";
  std::map<std::string, std::string> rcpt;  // local part -> reply; others get 250
  enum class AfterData { reply, drop, silent };
  AfterData after_data = AfterData::reply;
  std::string data_reply = "250 2.0.0 queued as FAKE";
  // Offer STARTTLS, say 220 to it, then answer the handshake with plain text: a broken TLS setup.
  bool broken_starttls = false;
};

struct ReceivedMessage {
  std::string mail_from;
  std::vector<std::string> rcpts;  // accepted ones
  std::string data;                // as sent, dot-stuffed, without the final "."
  bool acknowledged = false;       // the receiver said 250 to it
};

class FakeReceiver {
 public:
  // Binds address:port (0: a free one); false if it cannot.
  bool start(const std::string& address, std::uint16_t port = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    ::inet_pton(AF_INET, address.c_str(), &a.sin_addr);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 16) != 0) {
      ::close(fd_);
      fd_ = -1;
      return false;
    }
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
    return true;
  }
  ~FakeReceiver() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) ::close(fd_);
  }
  std::uint16_t port() const { return port_; }
  void set(Behaviour b) {
    std::lock_guard lock(m_);
    behaviour_ = std::move(b);
  }
  // Called (on the receiver's thread) after each message it takes: what a test waits on.
  void on_message(std::function<void()> f) {
    std::lock_guard lock(m_);
    on_message_ = std::move(f);
  }
  std::size_t connections() const { return connections_; }
  std::vector<ReceivedMessage> messages() const {
    std::lock_guard lock(m_);
    return messages_;
  }
  std::vector<std::string> commands() const {  // every command line received, in order
    std::lock_guard lock(m_);
    return commands_;
  }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      ++connections_;
      handle(c);
      ::close(c);
    }
  }

  // Reads one line (CRLF removed) with a bounded wait; false on close, stop or timeout.
  bool read_line(int c, std::string& buf, std::string& line) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (;;) {
      const std::size_t eol = buf.find("\r\n");
      if (eol != std::string::npos) {
        line = buf.substr(0, eol);
        buf.erase(0, eol + 2);
        return true;
      }
      if (stop_ || std::chrono::steady_clock::now() > until) return false;
      pollfd p{c, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      char tmp[4096];
      const ssize_t n = ::read(c, tmp, sizeof tmp);
      if (n <= 0) return false;
      buf.append(tmp, static_cast<std::size_t>(n));
    }
  }
  static void say(int c, const std::string& reply) {
    const std::string out = reply + "\r\n";
    (void)!::write(c, out.data(), out.size());
  }
  static std::string local_part(const std::string& cmd) {
    const std::size_t lt = cmd.find('<'), at = cmd.find('@');
    if (lt == std::string::npos || at == std::string::npos || at < lt) return "";
    return cmd.substr(lt + 1, at - lt - 1);
  }

  void handle(int c) {
    Behaviour b;
    {
      std::lock_guard lock(m_);
      b = behaviour_;
    }
    say(c, b.greeting);
    std::string buf, line;
    ReceivedMessage msg;
    while (read_line(c, buf, line)) {
      {
        std::lock_guard lock(m_);
        commands_.push_back(line);
      }
      std::string verb = line.substr(0, line.find(' '));
      for (char& ch : verb) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      if (verb == "QUIT") {
        say(c, "221 2.0.0 bye");
        return;
      }
      if (b.greeting[0] != '2') {
        say(c, "503 5.5.1 not now");
      } else if (verb == "EHLO" || verb == "HELO") {
        if (verb == "EHLO" && b.broken_starttls) {
          say(c, "250-fake.b.test\r\n250 STARTTLS");
        } else {
          say(c, verb == "EHLO" ? b.ehlo : "250 fake.b.test");
        }
      } else if (verb == "STARTTLS" && b.broken_starttls) {
        say(c, "220 2.0.0 go ahead");
        say(c, "this is not a TLS server hello");
        return;
      } else if (verb == "MAIL") {
        msg = ReceivedMessage{};
        msg.mail_from = line;
        say(c, "250 2.1.0 OK");
      } else if (verb == "RCPT") {
        auto it = b.rcpt.find(local_part(line));
        const std::string reply = it == b.rcpt.end() ? "250 2.1.5 OK" : it->second;
        if (reply[0] == '2') msg.rcpts.push_back(local_part(line));
        say(c, reply);
      } else if (verb == "RSET" || verb == "NOOP") {
        say(c, "250 2.0.0 OK");
      } else if (verb == "DATA") {
        if (msg.rcpts.empty()) {
          say(c, "554 5.5.1 no valid recipients");
          continue;
        }
        say(c, "354 go ahead");
        std::string data_line;
        while (read_line(c, buf, data_line) && data_line != ".") msg.data += data_line + "\r\n";
        if (b.after_data == Behaviour::AfterData::drop) {
          record(msg);
          return;
        }
        if (b.after_data == Behaviour::AfterData::silent) {
          record(msg);
          std::string ignored;
          while (read_line(c, buf, ignored)) {
          }
          return;
        }
        msg.acknowledged = b.data_reply[0] == '2';
        record(msg);
        say(c, b.data_reply);
      } else {
        say(c, "502 5.5.2 not implemented");
      }
    }
  }
  void record(const ReceivedMessage& m) {
    std::function<void()> notify;
    {
      std::lock_guard lock(m_);
      messages_.push_back(m);
      notify = on_message_;
    }
    if (notify) notify();
  }

  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<std::size_t> connections_{0};
  mutable std::mutex m_;
  Behaviour behaviour_;
  std::function<void()> on_message_;
  std::vector<ReceivedMessage> messages_;
  std::vector<std::string> commands_;
};

}  // namespace refsmtp::server::test
