// How another project uses refsmtp::TestServer in its GoogleTest suite (and a test of it).
// The "application" here sends with refsmtp's own blocking client; yours would use its mailer.
#include <gtest/gtest.h>

#include "refsmtp/delivery/lmtp.hpp"
#include "refsmtp/server/test_server.hpp"

namespace {

using namespace std::chrono_literals;

// Stands in for the application under test: sends one mail through the given SMTP server.
std::vector<refsmtp::smtp::RecipientResult> app_sends_welcome(std::uint16_t port, std::vector<std::string> to) {
  refsmtp::smtp::OutgoingMessage m;
  m.reverse_path.mailbox = refsmtp::smtp::Mailbox{"noreply", "app.test", false};
  for (const auto& local : to) {
    refsmtp::smtp::Path p;
    p.mailbox = refsmtp::smtp::Mailbox{local, "example.test", false};
    m.recipients.push_back(p);
  }
  m.body = "From: noreply@app.test\r\nSubject: Welcome\r\n\r\nWelcome aboard!\r\n.\r\n";
  refsmtp::smtp::ClientConfig cfg;
  cfg.helo_name = "app.test";
  cfg.tls = refsmtp::smtp::TlsPolicy::none;
  return refsmtp::delivery::send_blocking({"127.0.0.1", port, ""}, cfg, m, 5s).results;
}

}  // namespace

TEST(TestServerExample, CapturesWhatTheApplicationSends) {
  refsmtp::TestServer smtp;
  app_sends_welcome(smtp.port(), {"bob"});
  ASSERT_TRUE(smtp.wait_for(1, 5s));
  const auto messages = smtp.messages();
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].mail_from, "<noreply@app.test>");
  EXPECT_EQ(messages[0].rcpt_to, std::vector<std::string>{"<bob@example.test>"});
  EXPECT_EQ(messages[0].body, "From: noreply@app.test\r\nSubject: Welcome\r\n\r\nWelcome aboard!\r\n.\r\n");
  EXPECT_EQ(messages[0].helo, "app.test");
  smtp.reset();
  EXPECT_TRUE(smtp.messages().empty());
}

TEST(TestServerExample, SimulatesRefusedRecipients) {
  refsmtp::TestServerOptions opt;
  opt.recipient_policy = [](const std::string& rcpt) -> std::optional<refsmtp::smtp::Reply> {
    if (rcpt == "<nobody@example.test>") return refsmtp::smtp::make_reply(550, 5, 1, 1, "No such user");
    return std::nullopt;
  };
  refsmtp::TestServer smtp(opt);
  const auto results = app_sends_welcome(smtp.port(), {"bob", "nobody"});
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].status, refsmtp::smtp::DeliveryStatus::delivered);
  EXPECT_EQ(results[1].status, refsmtp::smtp::DeliveryStatus::failed);
  EXPECT_EQ(results[1].reply.code, 550);
  ASSERT_TRUE(smtp.wait_for(1, 5s));
  EXPECT_EQ(smtp.messages()[0].rcpt_to, std::vector<std::string>{"<bob@example.test>"});
}

TEST(TestServerExample, WaitForTimesOutWhenNothingArrives) {
  refsmtp::TestServer smtp;
  EXPECT_FALSE(smtp.wait_for(1, 50ms));
}

TEST(TestServerExample, SeveralServersAtOnce) {
  refsmtp::TestServer a, b;
  EXPECT_NE(a.port(), b.port());
  app_sends_welcome(b.port(), {"carol"});
  ASSERT_TRUE(b.wait_for(1, 5s));
  EXPECT_TRUE(a.messages().empty());
}
