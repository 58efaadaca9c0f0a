#pragma once
// Delivery checks: where the runner looks for the messages a target delivered.
//
//   MaildirStore   a local target's Maildir tree: every file in a new/ or cur/ folder below the
//                  root (so one root can hold many mailboxes).
//   SinkServer     the runner itself listens as an SMTP next hop; the target is configured to
//                  relay the test domain to it, and every message it receives is kept in memory.
//
// Cases find their messages by the unique ${token} they put in them, so parallel cases and old
// messages in the same mailbox never confuse each other.
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace refsmtp::conform {

class DeliveryStore {
 public:
  virtual ~DeliveryStore() = default;
  // Every delivered message (whole, as stored) that contains `token`.
  virtual std::vector<std::string> find(const std::string& token) = 0;
  // ... of those, the ones delivered to `address`; nothing when this store cannot tell
  // recipients apart (`why` says so).
  virtual std::optional<std::vector<std::string>> find_for(const std::string& token, const std::string& address, std::string& why) = 0;
  virtual std::string describe() const = 0;
  // True when the messages found are the target's final deliveries (a mailbox it wrote), not
  // what it relayed on: only then is a Return-Path owed (RFC 5321 §4.4).
  virtual bool final_delivery() const { return false; }
};

class MaildirStore : public DeliveryStore {
 public:
  explicit MaildirStore(std::string root) : root_(std::move(root)) {}
  std::vector<std::string> find(const std::string& token) override;
  // The Maildirs (folders holding new/ or cur/) below the root with a path component named
  // like the address's local part, or the whole address, any case: root/conform/Maildir is
  // conform@example.test's. With one Maildir under the root, not named for the address, the
  // layout does not show recipients; with several, a missing one means nothing reached it.
  std::optional<std::vector<std::string>> find_for(const std::string& token, const std::string& address, std::string& why) override;
  std::string describe() const override { return "Maildir " + root_; }
  bool final_delivery() const override { return true; }

 private:
  std::string root_;
};

class SinkServer : public DeliveryStore {
 public:
  SinkServer() = default;
  ~SinkServer() override;
  SinkServer(const SinkServer&) = delete;
  SinkServer& operator=(const SinkServer&) = delete;
  // Binds HOST:PORT (port 0 picks one; see port()) and starts accepting.
  bool start(const std::string& host, std::uint16_t port, std::string& error);
  std::uint16_t port() const { return port_; }
  std::vector<std::string> find(const std::string& token) override;
  // The messages whose envelope named `address` in a RCPT (the domain compared in any case).
  std::optional<std::vector<std::string>> find_for(const std::string& token, const std::string& address, std::string& why) override;
  std::string describe() const override { return "sink on port " + std::to_string(port_); }
  std::size_t received() const;

 private:
  void accept_loop();
  void serve(int fd);

  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  mutable std::mutex m_;
  std::vector<std::thread> sessions_;
  struct Kept {
    std::string message;
    std::vector<std::string> recipients;  // as the RCPT commands gave them
  };
  std::vector<Kept> messages_;
};

// "User@Example.TEST" -> "User@example.test": the form in which addresses are compared (a
// local part may be case-sensitive, RFC 5321 §2.4; a domain is not).
std::string canonical_address(std::string address);

// The body of a stored message: what follows the first empty line (CRLF CRLF or LF LF).
std::string message_body(const std::string& message);
// CRLF -> LF, so a body compares equal whichever line ending the mailbox stores.
std::string normalize_newlines(const std::string& s);

}  // namespace refsmtp::conform
