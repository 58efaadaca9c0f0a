// LMTP delivery into a real Dovecot (RFC 2033), started by scripts/peers with a private config on
// loopback; the result is checked in the Maildirs Dovecot wrote.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "refsmtp/delivery/lmtp.hpp"
#include "refsmtp/testing/temp_dir.hpp"

using namespace refsmtp;

namespace {

std::string run(const std::string& cmd, int& status) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  status = ::pclose(p);
  return out;
}

class DovecotPeer {
 public:
  DovecotPeer() {
    // As root, Dovecot stores mail as its own unprivileged user, which must reach the directory.
    std::filesystem::permissions(dir_.path(), std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
                                                  std::filesystem::perms::group_exec | std::filesystem::perms::others_read |
                                                  std::filesystem::perms::others_exec);
    int status = 0;
    const std::string out = run(std::string(REFSMTP_SOURCE_DIR) + "/scripts/peers start dovecot-lmtp " + dir_.path() + "/peer 2>&1", status);
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) {
      const auto eq = line.find('=');
      if (eq != std::string::npos) values_[line.substr(0, eq)] = line.substr(eq + 1);
    }
    started_ = status == 0 && values_.count("port");
    if (!started_) error_ = out;
  }
  ~DovecotPeer() {
    int status = 0;
    run(std::string(REFSMTP_SOURCE_DIR) + "/scripts/peers stop dovecot-lmtp " + dir_.path() + "/peer 2>&1", status);
  }
  bool started() const { return started_; }
  const std::string& error() const { return error_; }
  std::uint16_t port() const { return static_cast<std::uint16_t>(std::stoi(values_.at("port"))); }
  std::string maildir(const std::string& user) const { return values_.at("maildir_root") + "/" + user + "/Maildir/new"; }

 private:
  refsmtp::testing::TempDir dir_;
  std::map<std::string, std::string> values_;
  bool started_ = false;
  std::string error_;
};

std::vector<std::string> messages_in(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::ifstream in(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    out.push_back(ss.str());
  }
  return out;
}

}  // namespace

TEST(LmtpDovecot, DeliversToEachRecipientsMaildir) {
  DovecotPeer dovecot;
  ASSERT_TRUE(dovecot.started()) << dovecot.error();
  smtp::OutgoingMessage m;
  m.reverse_path.mailbox = smtp::Mailbox{"sender", "client.test", false};
  for (const char* r : {"alice", "bob"}) {
    smtp::Path p;
    p.mailbox = smtp::Mailbox{r, "example.test", false};
    m.recipients.push_back(p);
  }
  m.body = "Subject: lmtp test\r\nMessage-ID: <lmtp-1@client.test>\r\n\r\nHello Dovecot.\r\n.leading dot\r\n";
  delivery::LmtpOptions opt;
  opt.lhlo_name = "refsmtp.test";
  const auto out = delivery::lmtp_deliver({"127.0.0.1", dovecot.port(), ""}, m, opt);
  ASSERT_TRUE(out.error.empty()) << out.error;
  ASSERT_EQ(out.results.size(), 2u);
  for (const auto& r : out.results) {
    EXPECT_EQ(r.status, smtp::DeliveryStatus::delivered) << r.reply.text();
    EXPECT_EQ(r.reply.code, 250);
  }
  for (const char* user : {"alice", "bob"}) {
    const auto files = messages_in(dovecot.maildir(user));
    ASSERT_EQ(files.size(), 1u) << user;
    // Dovecot stores LF lines and adds its own headers; the message itself is there, dot intact.
    EXPECT_NE(files[0].find("Subject: lmtp test\n"), std::string::npos);
    EXPECT_NE(files[0].find("\n\nHello Dovecot.\n.leading dot\n"), std::string::npos) << files[0];
  }
}

TEST(LmtpDovecot, ConnectionRefusedDefersEveryRecipient) {
  // Nothing listens on this port once the peer is gone.
  std::uint16_t port;
  {
    DovecotPeer dovecot;
    ASSERT_TRUE(dovecot.started()) << dovecot.error();
    port = dovecot.port();
  }
  smtp::OutgoingMessage m;
  smtp::Path p;
  p.mailbox = smtp::Mailbox{"alice", "example.test", false};
  m.recipients = {p, p};
  m.body = "x\r\n";
  const auto out = delivery::lmtp_deliver({"127.0.0.1", port, ""}, m, {});
  EXPECT_FALSE(out.error.empty());
  ASSERT_EQ(out.results.size(), 2u);
  EXPECT_EQ(out.results[0].status, smtp::DeliveryStatus::deferred);
}
