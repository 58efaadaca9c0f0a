// refsmtpd's relay in-process against scripted receivers on loopback, with the queue's clock in
// the test's hands: each fault of the next hop must end in the right delivery, deferral, retry
// or bounce, and every bounce must reach the sender's mailbox quoting the remote reply.
//
// Mail enters server A (domain a.test) on its MX port addressed to local aliases that forward to
// b.test, whose route points at the fake receiver. The sender, alice@a.test, is local to A, so
// her bounces land in A's Maildir.
#include <gtest/gtest.h>

#include <condition_variable>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "refsmtp/testing/dnsmasq.hpp"
#include "fake_receiver.hpp"
#include "refsmtp/delivery/lmtp.hpp"
#include "refsmtp/server/server.hpp"
#include "refsmtp/testing/temp_dir.hpp"

namespace refsmtp::server {
namespace {

using namespace std::chrono_literals;
using test::Behaviour;
using test::FakeReceiver;


std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class Relay : public ::testing::Test {
 protected:
  Relay() { fake_.on_message([this] { changed(); }); }
  // Starts server A with `routes` (default: b.test to the fake receiver, no TLS).
  void start_a(std::vector<std::string> routes = {}, bool relay_mx = false, std::vector<std::string> dns = {},
               std::uint16_t mx_port = 25) {
    {
      std::ofstream r(dir_.path() + "/recipients");
      r << "domains a.test\nalice\n"
           "ok: ok@b.test\nrefused: refused@b.test\nlater: later@b.test\n"
           "carol\nmixed: carol, later@b.test\ntwo: ok@b.test, later@b.test\n";
    }
    ServerOptions o;
    o.listeners = {{Role::mx, "127.0.0.1", 0}};
    o.hostname = "a.test";
    o.spool_dir = dir_.path() + "/spool";
    o.mail_root = dir_.path() + "/mail";
    o.recipients_file = dir_.path() + "/recipients";
    o.relay.routes = routes.empty() ? std::vector<std::string>{"b.test=127.0.0.1:" + std::to_string(fake_.port()) + ";tls=none"}
                                    : routes;
    o.relay.mx = relay_mx;
    o.relay.dns.servers = dns;
    o.relay.mx_port = mx_port;
    o.relay.command_timeout = 1s;
    o.relay.data_timeout = 1s;
    o.relay.connect_timeout = 2s;
    // Retries a minute apart, giving up after three minutes (test clock).
    o.retry.first = {60s};
    o.retry.later = 60s;
    o.retry.max_interval = 60s;
    o.retry.give_up_after = 180s;
    o.retry.delay_warning.reset();
    o.clock = [this] { return clock_.load(); };
    o.log_hook = [this](std::string_view event, const net::LogFields& fields) {
      std::string line(event);
      for (const auto& [k, v] : fields) line += " " + k + "=" + v;
      {
        std::lock_guard lock(log_m_);
        log_.push_back(line);
      }
      changed();
    };
    server_ = std::make_unique<Server>(io_, o);
    std::string error;
    ASSERT_TRUE(server_->start(error)) << error;
    port_ = server_->bound().front().port;
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    io_.stop();
    if (thread_.joinable()) thread_.join();
    server_.reset();
  }

  // alice@a.test sends one message to the given local parts of a.test; returns the replies' codes.
  std::vector<int> send(std::vector<std::string> to, const std::string& subject = "relay test") {
    smtp::OutgoingMessage m;
    m.reverse_path.mailbox = smtp::Mailbox{"alice", "a.test", false};
    for (const auto& local : to) {
      smtp::Path p;
      p.mailbox = smtp::Mailbox{local, "a.test", false};
      m.recipients.push_back(p);
    }
    m.body = "From: alice@a.test\r\nSubject: " + subject + "\r\n\r\nHello over there.\r\n";
    smtp::ClientConfig cfg;
    cfg.helo_name = "client.test";
    cfg.tls = smtp::TlsPolicy::none;
    std::vector<int> codes;
    for (const auto& r : delivery::send_blocking({"127.0.0.1", port_, ""}, cfg, m, 5s).results) codes.push_back(r.reply.code);
    return codes;
  }
  std::vector<std::string> bounces() const { return files_in(dir_.path() + "/mail/alice/Maildir/new"); }
  // Log lines of queue events so far that contain `text`.
  std::size_t logged(const std::string& text) {
    std::lock_guard lock(log_m_);
    return static_cast<std::size_t>(std::count_if(log_.begin(), log_.end(), [&](const std::string& l) {
      return l.find(text) != std::string::npos;
    }));
  }
  // A receiver that takes the data but never says 250 (it drops the connection, or says nothing
  // until the relay's reply timeout, 1 s here): the message is deferred, not lost, and the next
  // attempt delivers it -- with no report to the sender.
  void deferred_then_delivered(Behaviour::AfterData fault) {
    ASSERT_TRUE(fake_.start("127.0.0.1"));
    Behaviour b;
    b.after_data = fault;
    fake_.set(b);
    start_a();
    ASSERT_EQ(send({"ok"}), std::vector<int>{250});
    ASSERT_TRUE(wait_until([&] { return logged("what=deferred until") == 1; }));
    ASSERT_EQ(fake_.messages().size(), 1u);
    EXPECT_FALSE(fake_.messages()[0].acknowledged);
    fake_.set(Behaviour{});
    advance(61s);
    ASSERT_TRUE(wait_until([&] { return logged("what=done") == 1; }));
    ASSERT_EQ(fake_.messages().size(), 2u);
    EXPECT_TRUE(fake_.messages()[1].acknowledged);
    EXPECT_EQ(logged("what=bounce"), 0u);
  }

  // Moves the clock on a minute at a time, waiting each time for the attempt that makes, until
  // the message is given up and its bounce queued (at most `attempts` times).
  void retry_until_given_up(int attempts) {
    for (int i = 0; i < attempts && logged("what=bounce") == 0; ++i) {
      const std::size_t before = logged("what=deferred until");
      advance(60s);
      ASSERT_TRUE(wait_until([&] { return logged("what=deferred until") > before || logged("what=bounce") > 0; }));
    }
  }

  // Waits until the queue has run `n` more delivery passes (with the clock as it is now).
  bool passes(std::uint64_t n) { return server_->wait_for_delivery_passes(server_->delivery_passes() + n, 10s); }

  // Something a test may wait for has happened: a log line, or a message taken by a receiver.
  void changed() {
    {
      std::lock_guard lock(changed_m_);
      ++changes_;
    }
    changed_cv_.notify_all();
  }
  // Waits for `cond` with a deadline, looking again after each change (never polling on a timer).
  template <class F>
  bool wait_until(F cond, std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      std::unique_lock lock(changed_m_);
      const std::uint64_t seen = changes_;
      lock.unlock();
      if (cond()) return true;
      lock.lock();
      if (!changed_cv_.wait_until(lock, deadline, [&] { return changes_ != seen; })) {
        lock.unlock();
        return cond();
      }
    }
  }
  void advance(std::chrono::seconds s) { clock_ += std::chrono::duration_cast<std::chrono::milliseconds>(s).count(); }

  refsmtp::testing::TempDir dir_;
  // What wait_until() blocks on (declared before the receivers that signal it).
  std::mutex changed_m_;
  std::condition_variable changed_cv_;
  std::uint64_t changes_ = 0;
  FakeReceiver fake_;
  boost::asio::io_context io_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
  std::uint16_t port_ = 0;
  std::mutex log_m_;
  std::vector<std::string> log_;
  std::atomic<std::int64_t> clock_{std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count()};
};

TEST_F(Relay, DeliversAndReportsEachRecipientAsTheNextHopDecided) {
  ASSERT_TRUE(fake_.start("127.0.0.1"));
  Behaviour b;
  b.rcpt["refused"] = "550 5.1.1 <refused@b.test>: no such user here";
  b.rcpt["later"] = "451 4.3.0 try again later";
  fake_.set(b);
  start_a();
  ASSERT_EQ(send({"ok", "refused", "later"}), (std::vector<int>{250, 250, 250}));
  ASSERT_TRUE(wait_until([&] { return fake_.messages().size() == 1 && bounces().size() == 1; }));
  const auto m = fake_.messages().front();
  EXPECT_EQ(m.rcpts, std::vector<std::string>{"ok"});
  EXPECT_TRUE(m.acknowledged);
  EXPECT_EQ(m.mail_from.substr(0, 23), "MAIL FROM:<alice@a.test");
  EXPECT_NE(m.data.find("by a.test"), std::string::npos);  // A's Received: header went along
  EXPECT_NE(m.data.find("Hello over there."), std::string::npos);
  // The 550 bounces at once, quoting the next hop; the 451 is only deferred.
  const std::string dsn = read_file(bounces().front());
  // The queue's recipient is the alias at A; the DSN names it, with the remote reply.
  EXPECT_NE(dsn.find("Final-Recipient: rfc822; refused@a.test"), std::string::npos) << dsn;
  EXPECT_NE(dsn.find("550 5.1.1 <refused@b.test>: no such user here"), std::string::npos) << dsn;
  EXPECT_EQ(dsn.find("later@a.test"), std::string::npos) << dsn;

  // The next attempt, a minute later, sends only the deferred recipient.
  fake_.set(Behaviour{});
  advance(61s);
  ASSERT_TRUE(wait_until([&] { return fake_.messages().size() == 2; }));
  EXPECT_EQ(fake_.messages()[1].rcpts, std::vector<std::string>{"later"});
  // The message and its bounce are done: nothing is left to send, however late it gets.
  ASSERT_TRUE(wait_until([&] { return logged("what=done") == 2; }));
  advance(120s);
  ASSERT_TRUE(passes(2));
  EXPECT_EQ(fake_.messages().size(), 2u);
  EXPECT_EQ(bounces().size(), 1u);
}

TEST_F(Relay, TemporaryGreetingIsRetriedOnTheScheduleThenBounced) {
  ASSERT_TRUE(fake_.start("127.0.0.1"));
  Behaviour b;
  b.greeting = "421 4.3.2 fake.b.test is busy";
  fake_.set(b);
  start_a();
  ASSERT_EQ(send({"ok"}), std::vector<int>{250});
  ASSERT_TRUE(wait_until([&] { return logged("what=deferred until") == 1; }));  // the attempt is recorded
  EXPECT_EQ(fake_.connections(), 1u);
  // Not before the retry interval...
  advance(30s);
  ASSERT_TRUE(passes(2));
  EXPECT_EQ(fake_.connections(), 1u);
  EXPECT_TRUE(bounces().empty());
  // ...but at it.
  advance(31s);
  ASSERT_TRUE(wait_until([&] { return logged("what=deferred until") == 2; }));
  EXPECT_EQ(fake_.connections(), 2u);
  EXPECT_TRUE(bounces().empty());
  // Each later attempt a minute apart, until the give-up time (3 minutes after arrival).
  retry_until_given_up(4);
  ASSERT_TRUE(wait_until([&] { return bounces().size() == 1; }));
  EXPECT_LE(fake_.connections(), 4u);
  const std::string dsn = read_file(bounces().front());
  EXPECT_NE(dsn.find("Status: 5.4.7"), std::string::npos) << dsn;  // delivery time expired
  EXPECT_NE(dsn.find("421 4.3.2 fake.b.test is busy"), std::string::npos) << dsn;
  EXPECT_TRUE(fake_.messages().empty());
}

TEST_F(Relay, PermanentGreetingBouncesAtOnce) {
  ASSERT_TRUE(fake_.start("127.0.0.1"));
  Behaviour b;
  b.greeting = "554 5.7.1 fake.b.test takes no mail from you";
  fake_.set(b);
  start_a();
  ASSERT_EQ(send({"ok"}), std::vector<int>{250});
  ASSERT_TRUE(wait_until([&] { return bounces().size() == 1; }));
  const std::string dsn = read_file(bounces().front());
  EXPECT_NE(dsn.find("554 5.7.1 fake.b.test takes no mail from you"), std::string::npos) << dsn;
  EXPECT_EQ(fake_.connections(), 1u);
}

TEST_F(Relay, ConnectionDroppedAfterDataIsRetried) { deferred_then_delivered(Behaviour::AfterData::drop); }

TEST_F(Relay, NoReplyAfterDataTimesOutAndIsRetried) { deferred_then_delivered(Behaviour::AfterData::silent); }

TEST_F(Relay, RequiredTlsWithoutStarttlsIsDeferredNeverSentInTheClear) {
  ASSERT_TRUE(fake_.start("127.0.0.1"));
  start_a({"b.test=127.0.0.1:" + std::to_string(fake_.port()) + ";tls=required"});
  ASSERT_EQ(send({"ok"}), std::vector<int>{250});
  ASSERT_TRUE(wait_until([&] { return logged("what=deferred until") == 1; }));  // the attempt is over
  EXPECT_EQ(fake_.connections(), 1u);
  for (const auto& c : fake_.commands()) EXPECT_NE(c.substr(0, 4), "MAIL") << c;
  EXPECT_TRUE(bounces().empty());
  // Each later attempt likewise, until the give-up time bounces it.
  retry_until_given_up(5);
  ASSERT_TRUE(wait_until([&] { return bounces().size() == 1; }));
  const std::string dsn = read_file(bounces().front());
  EXPECT_NE(dsn.find("STARTTLS required but not offered"), std::string::npos) << dsn;
  EXPECT_TRUE(fake_.messages().empty());
}

TEST_F(Relay, OpportunisticTlsThatBreaksFallsBackToPlainText) {  // RFC 7435
  ASSERT_TRUE(fake_.start("127.0.0.1"));
  Behaviour b;
  b.broken_starttls = true;
  fake_.set(b);
  start_a({"b.test=127.0.0.1:" + std::to_string(fake_.port()) + ";tls=opportunistic"});
  ASSERT_EQ(send({"ok"}), std::vector<int>{250});
  ASSERT_TRUE(wait_until([&] { return fake_.messages().size() == 1; }));
  EXPECT_EQ(fake_.connections(), 2u);  // the broken handshake, then the same hop in the clear
  EXPECT_TRUE(fake_.messages()[0].acknowledged);
  const auto cmds = fake_.commands();
  EXPECT_EQ(std::count(cmds.begin(), cmds.end(), "STARTTLS"), 1);
  EXPECT_TRUE(bounces().empty());
}

TEST_F(Relay, AliasTargetsKeepTheirOwnStateAcrossRetries) {
  ASSERT_TRUE(fake_.start("127.0.0.1"));
  Behaviour b;
  b.rcpt["later"] = "451 4.3.0 try again later";
  fake_.set(b);
  start_a();
  // "two" expands to ok@b.test and later@b.test, "mixed" to the local carol and later@b.test.
  ASSERT_EQ(send({"two", "mixed"}), (std::vector<int>{250, 250}));
  ASSERT_TRUE(wait_until([&] { return logged("what=deferred until") == 1; }));
  ASSERT_EQ(fake_.messages().size(), 1u);
  EXPECT_EQ(fake_.messages()[0].rcpts, std::vector<std::string>{"ok"});  // later@b.test once, deduplicated
  EXPECT_EQ(files_in(dir_.path() + "/mail/carol/Maildir/new").size(), 1u);
  fake_.set(Behaviour{});
  advance(61s);
  ASSERT_TRUE(wait_until([&] { return fake_.messages().size() == 2; }));
  // Only the deferred target is sent again; ok@b.test and carol are not.
  EXPECT_EQ(fake_.messages()[1].rcpts, std::vector<std::string>{"later"});
  ASSERT_TRUE(wait_until([&] { return logged("what=done") == 1; }));
  EXPECT_EQ(files_in(dir_.path() + "/mail/carol/Maildir/new").size(), 1u);
  EXPECT_EQ(logged("what=bounce"), 0u);
}

TEST_F(Relay, MailLoopIsBouncedNotSent) {
  ASSERT_TRUE(fake_.start("127.0.0.1"));
  start_a();
  std::string headers;
  for (int i = 0; i < 100; ++i) headers += "Received: from hop" + std::to_string(i) + " by somewhere\r\n";
  // With A's own Received: header the message has 101.
  smtp::OutgoingMessage m;
  m.reverse_path.mailbox = smtp::Mailbox{"alice", "a.test", false};
  smtp::Path p;
  p.mailbox = smtp::Mailbox{"ok", "a.test", false};
  m.recipients.push_back(p);
  m.body = headers + "Subject: loop\r\n\r\nround and round\r\n";
  smtp::ClientConfig cfg;
  cfg.tls = smtp::TlsPolicy::none;
  ASSERT_EQ(delivery::send_blocking({"127.0.0.1", port_, ""}, cfg, m, 5s).results.at(0).reply.code, 250);
  ASSERT_TRUE(wait_until([&] { return bounces().size() == 1; }));
  EXPECT_NE(read_file(bounces().front()).find("5.4.6"), std::string::npos);
  EXPECT_EQ(fake_.connections(), 0u);
}

TEST_F(Relay, SeveralMessagesShareOneConnection) {
  ASSERT_TRUE(fake_.start("127.0.0.1"));
  Behaviour b;
  b.greeting = "421 4.3.2 not yet";
  fake_.set(b);
  start_a();
  for (int i = 0; i < 3; ++i) ASSERT_EQ(send({"ok"}, "message " + std::to_string(i)), std::vector<int>{250});
  ASSERT_TRUE(wait_until([&] { return logged("what=deferred until") == 3; }));
  const std::size_t refused = fake_.connections();
  fake_.set(Behaviour{});
  advance(61s);  // all three are due again at once: one pass, one connection
  ASSERT_TRUE(wait_until([&] { return fake_.messages().size() == 3; }));
  EXPECT_EQ(fake_.connections(), refused + 1);
}

TEST_F(Relay, NextMxIsTriedAfterATemporaryGreeting) {
  // Two exchangers on one port: 127.0.0.2 (preference 10) answers 421, 127.0.0.3 (20) takes it.
  FakeReceiver second;
  second.on_message([this] { changed(); });
  ASSERT_TRUE(fake_.start("127.0.0.2"));
  if (!second.start("127.0.0.3", fake_.port())) GTEST_SKIP() << "port taken on 127.0.0.3";
  Behaviour busy;
  busy.greeting = "421 4.3.2 busy";
  fake_.set(busy);
  refsmtp::testing::Dnsmasq dns;
  std::string error;
  ASSERT_TRUE(dns.start({"--mx-host=b.test,mx1.b.test,10", "--mx-host=b.test,mx2.b.test,20",
                         "--host-record=mx1.b.test,127.0.0.2", "--host-record=mx2.b.test,127.0.0.3"},
                        "mx1.b.test", error))
      << error;
  start_a({"unused.test=127.0.0.1:1"}, true, {dns.server()}, fake_.port());
  ASSERT_EQ(send({"ok"}), std::vector<int>{250});
  ASSERT_TRUE(wait_until([&] { return second.messages().size() == 1; }));
  EXPECT_EQ(fake_.connections(), 1u);
  EXPECT_TRUE(fake_.messages().empty());
  EXPECT_TRUE(second.messages()[0].acknowledged);
  EXPECT_TRUE(bounces().empty());
}

}  // namespace
}  // namespace refsmtp::server
