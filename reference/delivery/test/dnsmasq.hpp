#pragma once
// A real DNS server for tests: Debian's dnsmasq on a free loopback port, answering only the test
// zones it is given (--local=/test/: other names under .test get NXDOMAIN; it asks no upstream
// server). Stopped (SIGTERM, then SIGKILL) when the object goes away.
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "refsmtp/delivery/dns.hpp"

extern char** environ;

namespace refsmtp::delivery::test {

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
      posix_spawn_file_actions_t fa;
      posix_spawn_file_actions_init(&fa);
      posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
      posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
      const int rc = posix_spawn(&pid_, bin.c_str(), &fa, nullptr, argv.data(), environ);
      posix_spawn_file_actions_destroy(&fa);
      if (rc != 0) {
        error = "cannot start dnsmasq";
        pid_ = -1;
        return false;
      }
      CaresResolver probe_dns(DnsOptions{{server()}, std::chrono::milliseconds(200), 1});
      for (int i = 0; i < 50; ++i) {
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {  // exited: most likely the port was taken
          pid_ = -1;
          break;
        }
        if (probe_dns.addresses(probe).status == DnsStatus::ok) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      stop();
    }
    error = "dnsmasq did not answer on a loopback port";
    return false;
  }
  std::string server() const { return "127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 50; ++i) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  ~Dnsmasq() { stop(); }

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
  int port_ = 0;
};

}  // namespace refsmtp::delivery::test
