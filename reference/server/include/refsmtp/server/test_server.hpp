#pragma once
// An SMTP server for other projects' integration tests, in-process:
//
//   refsmtp::TestServer smtp;                        // listening on 127.0.0.1:<free port>
//   my_app.set_smtp("127.0.0.1", smtp.port());
//   my_app.send_welcome_mail("bob@example.test");
//   ASSERT_TRUE(smtp.wait_for(1, std::chrono::seconds(5)));  // blocks, no polling loop
//   EXPECT_EQ(smtp.messages()[0].rcpt_to, std::vector<std::string>{"<bob@example.test>"});
//   smtp.reset();                                    // between tests
//
// It runs the same protocol core as refsmtpd (strict RFC 5321 behaviour included: a client that
// sends bare LFs will see them refused), keeps messages in memory, and can be told to refuse
// recipients to exercise a client's error paths.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "refsmtp/smtp/reply.hpp"

namespace refsmtp {

struct CapturedMessage {
  std::string mail_from;             // "<a@example.com>", or "<>"
  std::vector<std::string> rcpt_to;  // "<b@example.org>", in order
  std::string body;                  // the message as received: CRLF lines, dot-unstuffed
  std::string helo;
  bool tls = false;
};

struct TestServerOptions {
  std::string hostname = "refsmtp.test";
  std::uint64_t max_message_size = 10 * 1024 * 1024;
  std::string tls_cert, tls_key;  // PEM files: when both are set, STARTTLS is offered
  // Decides each recipient: nothing to accept, or the reply to refuse with (e.g. 550 5.1.1).
  std::function<std::optional<smtp::Reply>(const std::string& rcpt)> recipient_policy;
};

class TestServer {
 public:
  explicit TestServer(TestServerOptions options = {});
  ~TestServer();  // stops the server and joins its thread
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  std::uint16_t port() const;
  std::vector<CapturedMessage> messages() const;
  // Blocks until at least `count` messages have been received (and answered 250) or the
  // timeout passes; returns whether they arrived.
  bool wait_for(std::size_t count, std::chrono::milliseconds timeout) const;
  void reset();  // forgets the messages received so far

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace refsmtp
