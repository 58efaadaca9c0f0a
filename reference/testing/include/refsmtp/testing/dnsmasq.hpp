#pragma once
// A real DNS server for tests: Debian's dnsmasq on a free loopback port, answering only the test
// zones it is given (--local=/test/: other names under .test get NXDOMAIN; it asks no upstream
// server). Stopped (SIGTERM, then SIGKILL) when the object goes away. It probes the server with
// reference/delivery's resolver, so its users link refsmtp_delivery.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

#include "refsmtp/delivery/dns.hpp"

extern char** environ;

namespace refsmtp::testing {

inline std::string find_dnsmasq() {
  for (const char* dir : {"/usr/sbin", "/usr/bin", "/sbin", "/bin"}) {
    const std::string p = std::string(dir) + "/dnsmasq";
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return {};
}

class Dnsmasq {
 public:
  // `records` are dnsmasq options such as "--mx-host=example.test,mx.example.test,10" and
  // "--host-record=mx.example.test,127.0.0.2". `probe` is a name under them that has an A
  // record: the server counts as started once it answers for it.
  bool start(const std::vector<std::string>& records, const std::string& probe, std::string& error) {
    const std::string bin = find_dnsmasq();
    if (bin.empty()) {
      error = "dnsmasq is not installed (scripts/deps installs dnsmasq-base)";
      return false;
    }
    for (int attempt = 0; attempt < 5; ++attempt) {
      port_ = free_udp_port();
      std::vector<std::string> args = {bin, "--no-daemon", "--port=" + std::to_string(port_), "--listen-address=127.0.0.1",
                                       "--bind-interfaces", "--no-resolv", "--no-hosts", "--local=/test/",
                                       "--pid-file=", "--user=root", "--log-facility=-", "--conf-file=/dev/null"};
      args.insert(args.end(), records.begin(), records.end());
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      // Its log (stderr) comes to us: "started" is logged once its sockets are bound.
      int log[2];
      if (::pipe2(log, O_CLOEXEC) != 0) {
        error = "cannot make a pipe for dnsmasq's log";
        return false;
      }
      posix_spawn_file_actions_t fa;
      posix_spawn_file_actions_init(&fa);
      posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
      posix_spawn_file_actions_adddup2(&fa, log[1], STDERR_FILENO);
      const int rc = posix_spawn(&pid_, bin.c_str(), &fa, nullptr, argv.data(), environ);
      posix_spawn_file_actions_destroy(&fa);
      ::close(log[1]);
      log_fd_ = log[0];
      if (rc != 0) {
        error = "cannot start dnsmasq";
        pid_ = -1;
        stop();
        return false;
      }
      if (logged_started(std::chrono::seconds(10))) {
        // Bound and running; one query (with its own timeout) shows it answers for the zones.
        delivery::CaresResolver probe_dns(delivery::DnsOptions{{server()}, std::chrono::seconds(2), 2});
        if (probe_dns.addresses(probe).status == delivery::DnsStatus::ok) return true;
      }
      stop();  // it exited (most likely the port was taken), or does not answer: try another port
    }
    error = "dnsmasq did not answer on a loopback port";
    return false;
  }
  std::string server() const { return "127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  // SIGTERM, waiting (up to a second) for it to exit; then SIGKILL.
  void stop() {
    if (pid_ > 0) {
      const int exited = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));  // readable once it exits
      ::kill(pid_, SIGTERM);
      pollfd p{exited, POLLIN, 0};
      if (exited < 0 || ::poll(&p, 1, 1000) != 1) ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      if (exited >= 0) ::close(exited);
      pid_ = -1;
    }
    if (log_fd_ >= 0) ::close(log_fd_);  // after it is gone: it never writes to a closed pipe
    log_fd_ = -1;
  }
  ~Dnsmasq() { stop(); }

  // Reads dnsmasq's log until it says "started" (true), or it ends -- dnsmasq exited -- or time
  // is up (false). Each wait is a poll() on the pipe, bounded by the deadline.
  bool logged_started(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string text;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      pollfd p{log_fd_, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1) return false;
      char buf[1024];
      const ssize_t n = ::read(log_fd_, buf, sizeof buf);
      if (n <= 0) return false;
      text.append(buf, static_cast<std::size_t>(n));
      if (text.find("started, version") != std::string::npos) return true;
    }
  }

  static int free_udp_port() {
    const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
  }

 private:
  pid_t pid_ = -1;
  int log_fd_ = -1;  // dnsmasq's stderr, read until it has started
  int port_ = 0;
};

}  // namespace refsmtp::testing
