#include "refsmtp/conform/delivery.hpp"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace refsmtp::conform {

namespace fs = std::filesystem;

std::string message_body(const std::string& message) {
  const std::size_t crlf = message.find("\r\n\r\n");
  const std::size_t lf = message.find("\n\n");
  if (crlf != std::string::npos && (lf == std::string::npos || crlf < lf)) return message.substr(crlf + 4);
  if (lf != std::string::npos) return message.substr(lf + 2);
  return "";
}

std::string normalize_newlines(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') continue;
    out += s[i];
  }
  return out;
}

std::string canonical_address(std::string address) {
  if (address.size() > 1 && address.front() == '<' && address.back() == '>') address = address.substr(1, address.size() - 2);
  const std::size_t at = address.rfind('@');
  if (at != std::string::npos) {
    std::transform(address.begin() + static_cast<std::ptrdiff_t>(at), address.end(), address.begin() + static_cast<std::ptrdiff_t>(at),
                   [](unsigned char c) { return std::tolower(c); });
  }
  return address;
}

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// Calls `take(maildir, text)` for every message file (in a new/ or cur/ folder) below `root`
// that holds `token`; `maildir` is the folder holding that new/ or cur/. `keep(maildir)` is asked
// first, so a caller can pass over whole mailboxes before any file is read.
template <typename Keep, typename Take>
void each_message(const std::string& root, const std::string& token, Keep keep, Take take) {
  std::error_code ec;
  constexpr std::uintmax_t max_message = 64u << 20;  // a check, not an archive reader
  for (fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec), end; !ec && it != end;
       it.increment(ec)) {
    const fs::path& p = it->path();
    const std::string folder = p.parent_path().filename().string();
    if ((folder != "new" && folder != "cur") || !it->is_regular_file(ec)) continue;
    if (!keep(p.parent_path().parent_path()) || it->file_size(ec) > max_message) continue;
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    if (text.find(token) != std::string::npos) take(std::move(text));
  }
}

}  // namespace

std::optional<std::vector<std::string>> MaildirStore::find_for(const std::string& token, const std::string& address, std::string& why) {
  const std::string whole = lower(address), local = lower(address.substr(0, address.rfind('@')));
  // The components between the root and new/ or cur/ name the mailbox.
  auto mine = [&](const fs::path& maildir) {
    std::error_code ec;
    for (const auto& part : fs::relative(maildir, root_, ec)) {
      const std::string name = lower(part.string());
      if (name == local || name == whole) return true;
    }
    return false;
  };
  // The layout shows recipients when a Maildir is named for this one, or when the root holds
  // Maildirs of several mailboxes (then one missing for it means nothing reached it). One
  // Maildir for all recipients shows nothing.
  bool named = false;
  std::set<fs::path> maildirs;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(root_, fs::directory_options::skip_permission_denied, ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if ((name != "new" && name != "cur") || !it->is_directory(ec)) continue;
    maildirs.insert(it->path().parent_path());
    if (mine(it->path().parent_path())) named = true;
  }
  if (maildirs.size() >= 2) named = true;
  std::vector<std::string> found;
  each_message(root_, token, mine, [&](std::string text) { found.push_back(std::move(text)); });
  if (!named) {
    why = "below " + root_ + " there is one Maildir, not named for " + address + ", so this layout does not show which recipient got a message";
    return std::nullopt;
  }
  return found;
}

std::vector<std::string> MaildirStore::find(const std::string& token) {
  std::vector<std::string> found;
  each_message(root_, token, [](const fs::path&) { return true; }, [&](std::string text) { found.push_back(std::move(text)); });
  return found;
}

SinkServer::~SinkServer() {
  stop_ = true;
  if (listen_fd_ >= 0) ::shutdown(listen_fd_, SHUT_RDWR);
  if (acceptor_.joinable()) acceptor_.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  std::vector<std::thread> sessions;
  {
    std::lock_guard lock(m_);
    sessions.swap(sessions_);
  }
  for (auto& t : sessions) t.join();
}

bool SinkServer::start(const std::string& host, std::uint16_t port, std::string& error) {
  addrinfo hints{};
  hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || !res) {
    error = "sink: cannot resolve " + host;
    return false;
  }
  listen_fd_ = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  if (listen_fd_ >= 0) ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  const bool ok = listen_fd_ >= 0 && ::bind(listen_fd_, res->ai_addr, res->ai_addrlen) == 0 && ::listen(listen_fd_, 64) == 0;
  ::freeaddrinfo(res);
  if (!ok) {
    error = "sink: cannot listen on " + host + ":" + std::to_string(port) + ": " + std::strerror(errno);
    return false;
  }
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port
                                           : reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
  return true;
}

std::vector<std::string> SinkServer::find(const std::string& token) {
  std::lock_guard lock(m_);
  std::vector<std::string> found;
  for (const auto& m : messages_) {
    if (m.message.find(token) != std::string::npos) found.push_back(m.message);
  }
  return found;
}

std::optional<std::vector<std::string>> SinkServer::find_for(const std::string& token, const std::string& address, std::string&) {
  std::lock_guard lock(m_);
  const std::string want = canonical_address(address);
  std::vector<std::string> found;
  for (const auto& m : messages_) {
    if (m.message.find(token) == std::string::npos) continue;
    if (std::any_of(m.recipients.begin(), m.recipients.end(), [&](const std::string& r) { return canonical_address(r) == want; })) {
      found.push_back(m.message);
    }
  }
  return found;
}

std::size_t SinkServer::received() const {
  std::lock_guard lock(m_);
  return messages_.size();
}

void SinkServer::accept_loop() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::lock_guard lock(m_);
    sessions_.emplace_back([this, fd] { serve(fd); });
  }
}

// A deliberately small SMTP receiver: it accepts every envelope and keeps every message, so
// the check sees exactly what the target relayed -- including a smuggled second message.
void SinkServer::serve(int fd) {
  constexpr std::size_t max_line = 64 * 1024, max_message = 64u << 20;
  constexpr auto idle = std::chrono::seconds(60);
  std::string buf;
  auto say = [&](std::string_view s) { return ::send(fd, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size()); };
  // One line with its ending; empty at EOF, timeout or stop.
  auto read_line = [&](std::string& line) {
    auto deadline = std::chrono::steady_clock::now() + idle;
    while (true) {
      const std::size_t lf = buf.find('\n');
      if (lf != std::string::npos) {
        line = buf.substr(0, lf + 1);
        buf.erase(0, lf + 1);
        return true;
      }
      if (buf.size() > max_line || stop_ || std::chrono::steady_clock::now() > deadline) return false;
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) continue;
      char tmp[16384];
      const ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
      if (n <= 0) return false;
      buf.append(tmp, static_cast<std::size_t>(n));
    }
  };
  say("220 smtpconform-sink ESMTP\r\n");
  std::string line;
  bool have_mail = false, have_rcpt = false;
  std::vector<std::string> recipients;
  while (read_line(line)) {
    std::string verb = line.substr(0, line.find_first_of(" \r\n"));
    std::transform(verb.begin(), verb.end(), verb.begin(), [](unsigned char c) { return std::toupper(c); });
    if (verb == "EHLO") {
      say("250-smtpconform-sink\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-PIPELINING\r\n250 SIZE 67108864\r\n");
    } else if (verb == "HELO" || verb == "NOOP") {
      say("250 OK\r\n");
    } else if (verb == "RSET") {
      have_mail = have_rcpt = false;
      recipients.clear();
      say("250 OK\r\n");
    } else if (verb == "MAIL") {
      have_mail = true;
      have_rcpt = false;
      recipients.clear();
      say("250 OK\r\n");
    } else if (verb == "RCPT") {
      have_rcpt = have_mail;
      // RCPT TO:<address> [parameters]
      const std::size_t open = line.find('<'), close = line.find('>', open == std::string::npos ? 0 : open);
      if (have_mail && open != std::string::npos && close != std::string::npos) recipients.push_back(line.substr(open + 1, close - open - 1));
      say(have_mail ? "250 OK\r\n" : "503 MAIL first\r\n");
    } else if (verb == "DATA") {
      if (!have_rcpt) {
        say("503 RCPT first\r\n");
        continue;
      }
      say("354 go ahead\r\n");
      std::string message;
      bool ended = false, too_big = false;
      while (read_line(line)) {
        if (line == ".\r\n" || line == ".\n") {
          ended = true;
          break;
        }
        if (line.starts_with("..")) line.erase(0, 1);
        if (message.size() + line.size() > max_message) too_big = true;
        if (!too_big) message += line;
      }
      if (!ended) break;
      if (too_big) {
        say("552 message too big for the sink\r\n");
      } else {
        {
          std::lock_guard lock(m_);
          messages_.push_back({std::move(message), recipients});
        }
        say("250 OK kept\r\n");
      }
      have_mail = have_rcpt = false;
      recipients.clear();
    } else if (verb == "QUIT") {
      say("221 bye\r\n");
      break;
    } else {
      say("502 not implemented by the sink\r\n");
    }
  }
  ::close(fd);
}

}  // namespace refsmtp::conform
