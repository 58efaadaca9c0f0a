// ClientSession: against scripted replies (each case citing its rule), and against the real
// ServerSession in memory, where what the server stores must be exactly what the client sent.
#include "refsmtp/smtp/client_session.hpp"


#include <gtest/gtest.h>

#include "refsmtp/core/base64.hpp"
#include "session_driver.hpp"

using refsmtp::smtp::make_path;

using namespace refsmtp::smtp;
using refsmtp::core::base64_encode;
using namespace refsmtp::smtp::testing;

namespace {


OutgoingMessage message(std::vector<std::string> rcpts, std::string body = "Subject: t\r\n\r\nhi\r\n") {
  OutgoingMessage m;
  m.reverse_path = make_path("sender", "client.test");
  for (auto& r : rcpts) m.recipients.push_back(make_path(r, "mx.test"));
  m.body = std::move(body);
  return m;
}

// Drives a ClientSession with scripted server replies and records what it does.
struct Scripted {
  ClientSession c;
  std::string sent;
  std::vector<std::string> events;
  std::vector<RecipientResult> results;
  std::optional<client_action::ConnectionFailed> failure;

  explicit Scripted(ClientConfig cfg = ClientConfig{}) : c(std::move(cfg)) {}

  void server(std::string_view replies) {
    c.receive(replies);
    drain();
  }
  void drain() {
    while (auto a = c.next_action()) {
      if (auto* s = std::get_if<client_action::Send>(&*a)) sent += s->bytes;
      if (std::holds_alternative<client_action::StartTls>(*a)) events.emplace_back("starttls");
      if (std::holds_alternative<client_action::Close>(*a)) events.emplace_back("close");
      if (std::holds_alternative<client_action::Ready>(*a)) events.emplace_back("ready");
      if (auto* r = std::get_if<client_action::MessageResult>(&*a)) {
        events.emplace_back("result");
        results = r->results;
      }
      if (auto* f = std::get_if<client_action::ConnectionFailed>(&*a)) {
        events.emplace_back("failed");
        failure = *f;
      }
    }
  }
  std::string take() {
    std::string s = std::move(sent);
    sent.clear();
    return s;
  }
};

const char* kEhloReply = "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n";

Scripted ready_client(const char* ehlo = kEhloReply, ClientConfig cfg = ClientConfig{}) {
  Scripted s(std::move(cfg));
  s.server("220 mx.test ESMTP\r\n");
  s.server(ehlo);
  s.take();
  return s;
}

}  // namespace

TEST(Client, GreetsWithEhloAndReportsExtensions) {  // §4.1.1.1
  Scripted s;
  s.server("220 mx.test ESMTP\r\n");
  EXPECT_EQ(s.take(), "EHLO localhost\r\n");
  s.server(kEhloReply);
  EXPECT_EQ(s.events, std::vector<std::string>{"ready"});
  EXPECT_TRUE(s.c.ready());
  EXPECT_EQ(s.c.extensions().at("SIZE"), "1000");
  EXPECT_EQ(s.c.extensions().count("PIPELINING"), 1u);
}

TEST(Client, EveryStateChangeIsTraced) {  // greeting -> hello -> ready -> transaction -> ready -> quit -> closed
  using St = ClientSession::State;
  Scripted s;
  std::vector<std::pair<St, St>> seen;
  s.c.set_trace([&](St from, St to) { seen.emplace_back(from, to); });
  s.server("220 mx.test ESMTP\r\n");
  s.server("250-mx.test\r\n250 PIPELINING\r\n");
  ASSERT_EQ(s.c.send_message(message({"a"})), refsmtp::core::Fault::none);
  s.drain();
  s.server("250 ok\r\n250 ok\r\n354 go\r\n");
  s.server("250 queued\r\n");
  s.c.quit();
  s.drain();
  s.server("221 bye\r\n");
  const std::vector<std::pair<St, St>> expected = {{St::greeting, St::hello}, {St::hello, St::ready},
                                                   {St::ready, St::transaction}, {St::transaction, St::ready},
                                                   {St::ready, St::quit}, {St::quit, St::closed}};
  EXPECT_EQ(seen, expected);
  EXPECT_EQ(s.c.state(), St::closed);
}

TEST(Client, FallsBackToHelo) {  // §4.1.4, §4.1.1.1
  Scripted s;
  s.server("220 old.test\r\n502 5.5.1 what?\r\n");
  EXPECT_EQ(s.take(), "EHLO localhost\r\nHELO localhost\r\n");
  s.server("250 old.test\r\n");
  EXPECT_TRUE(s.c.ready());
  EXPECT_TRUE(s.c.extensions().empty());
}

TEST(Client, RefusedGreeting) {  // §3.1: 554 greeting, client says QUIT
  Scripted s;
  s.server("554 5.3.2 no mail here\r\n");
  ASSERT_TRUE(s.failure);
  EXPECT_TRUE(s.failure->permanent);
  EXPECT_EQ(s.failure->reply.code, 554);
  EXPECT_EQ(s.take(), "QUIT\r\n");
  EXPECT_EQ(s.events.back(), "close");
  Scripted t;
  t.server("421 4.3.2 busy\r\n");
  ASSERT_TRUE(t.failure);
  EXPECT_FALSE(t.failure->permanent);
}

TEST(Client, PipelinedGroupAndPerRecipientResults) {  // RFC 2920 §3.1, §4.3.2
  Scripted s = ready_client();
  ASSERT_EQ(s.c.send_message(message({"ok", "gone", "later"})), Fault::none);
  s.drain();
  EXPECT_EQ(s.take(),
            "MAIL FROM:<sender@client.test> SIZE=18\r\nRCPT TO:<ok@mx.test>\r\nRCPT TO:<gone@mx.test>\r\n"
            "RCPT TO:<later@mx.test>\r\nDATA\r\n");
  s.server("250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no such user\r\n450 4.2.1 try later\r\n354 go\r\n");
  EXPECT_EQ(s.take(), "Subject: t\r\n\r\nhi\r\n.\r\n");
  s.server("250 2.0.0 queued\r\n");
  ASSERT_EQ(s.results.size(), 3u);
  EXPECT_EQ(s.results[0].status, DeliveryStatus::delivered);
  EXPECT_EQ(s.results[1].status, DeliveryStatus::failed);
  EXPECT_EQ(s.results[1].reply.code, 550);
  EXPECT_EQ(s.results[2].status, DeliveryStatus::deferred);
  EXPECT_TRUE(s.c.ready());
}

TEST(Client, WithoutPipeliningOneCommandAtATime) {
  Scripted s = ready_client("250-mx.test\r\n250 8BITMIME\r\n");
  s.c.send_message(message({"a", "b"}));
  s.drain();
  EXPECT_EQ(s.take(), "MAIL FROM:<sender@client.test>\r\n");
  s.server("250 ok\r\n");
  EXPECT_EQ(s.take(), "RCPT TO:<a@mx.test>\r\n");
  s.server("250 ok\r\n");
  EXPECT_EQ(s.take(), "RCPT TO:<b@mx.test>\r\n");
  s.server("250 ok\r\n");
  EXPECT_EQ(s.take(), "DATA\r\n");
  s.server("354 go\r\n");
  s.take();
  s.server("250 ok\r\n");
  EXPECT_EQ(s.results[1].status, DeliveryStatus::delivered);
}

TEST(Client, NoRecipientAcceptedResetsTheTransaction) {  // RFC 2920 §3.1, §4.1.1.5
  Scripted s = ready_client();
  s.c.send_message(message({"x"}));
  s.drain();
  s.take();
  s.server("250 ok\r\n550 5.1.1 no\r\n554 5.5.1 no valid recipients\r\n");
  EXPECT_EQ(s.results[0].status, DeliveryStatus::failed);
  EXPECT_EQ(s.results[0].reply.code, 550);
  EXPECT_EQ(s.take(), "RSET\r\n");
  s.server("250 ok\r\n");
  EXPECT_TRUE(s.c.ready());
}

TEST(Client, PipelinedDataAcceptedWithNoRecipientsSendsALoneDot) {  // RFC 2920 §3.1
  Scripted s = ready_client();
  s.c.send_message(message({"x"}));
  s.drain();
  s.take();
  s.server("250 ok\r\n550 5.1.1 no\r\n354 go anyway\r\n");
  EXPECT_EQ(s.take(), ".\r\n");
  s.server("554 no recipients\r\n");
  EXPECT_EQ(s.results[0].reply.code, 550);
  EXPECT_TRUE(s.c.ready());
}

TEST(Client, MailRefusedFailsEveryRecipient) {
  Scripted s = ready_client();
  s.c.send_message(message({"a", "b"}));
  s.drain();
  s.server("553 5.1.8 bad sender\r\n503 5.5.1 no\r\n503 5.5.1 no\r\n503 5.5.1 no\r\n");
  ASSERT_EQ(s.results.size(), 2u);
  for (const auto& r : s.results) {
    EXPECT_EQ(r.status, DeliveryStatus::failed);
    EXPECT_EQ(r.reply.code, 553);
  }
  EXPECT_TRUE(s.c.ready());
}

TEST(Client, ChecksBeforeSending) {  // RFC 1870, RFC 6152 §3, RFC 6531 §3.2
  Scripted s = ready_client();
  s.c.send_message(message({"a"}, std::string(1001, 'x')));
  s.drain();
  EXPECT_EQ(s.results[0].status, DeliveryStatus::failed);
  EXPECT_EQ(s.results[0].reply.enhanced, (EnhancedStatus{5, 3, 4}));
  OutgoingMessage utf8 = message({"a"});
  utf8.recipients[0] = make_path("j\xC3\xB6rg", "mx.test");
  s.c.send_message(utf8);
  s.drain();
  EXPECT_EQ(s.results[0].reply.enhanced, (EnhancedStatus{5, 6, 7}));
  Scripted no8 = ready_client("250-mx.test\r\n250 PIPELINING\r\n");
  no8.c.send_message(message({"a"}, "caf\xC3\xA9\r\n"));
  no8.drain();
  EXPECT_EQ(no8.results[0].reply.enhanced, (EnhancedStatus{5, 6, 3}));
  EXPECT_EQ(s.take(), "");  // nothing was sent
}

TEST(Client, EightBitAndUtf8Parameters) {  // RFC 6152, RFC 6531 §3.4
  Scripted s = ready_client("250-mx.test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n");
  OutgoingMessage m = message({"j\xC3\xB6rg"}, "caf\xC3\xA9\r\n");
  s.c.send_message(m);
  s.drain();
  EXPECT_EQ(s.take(), "MAIL FROM:<sender@client.test> BODY=8BITMIME SMTPUTF8\r\n");
}

TEST(Client, DeclaredSmtputf8WithUtf8HeadersNeedsTheExtension) {  // RFC 6531 §3.2, RFC 6532
  const std::string headers = "Subject: gr\xC3\xBC\xC3\x9F""e\r\n\r\nbody\r\n";
  Scripted without = ready_client("250-mx.test\r\n250 8BITMIME\r\n");
  OutgoingMessage m = message({"a"}, headers);
  m.smtputf8 = true;
  without.c.send_message(m);
  without.drain();
  EXPECT_EQ(without.results[0].status, DeliveryStatus::failed);
  EXPECT_EQ(without.results[0].reply.enhanced, (EnhancedStatus{5, 6, 7}));
  EXPECT_EQ(without.take(), "");
  // Undeclared, the same message is only 8-bit; declared but ASCII headers, no SMTPUTF8 needed.
  Scripted plain = ready_client("250-mx.test\r\n250 8BITMIME\r\n");
  plain.c.send_message(message({"a"}, headers));
  plain.drain();
  EXPECT_EQ(plain.take(), "MAIL FROM:<sender@client.test> BODY=8BITMIME\r\n");
  Scripted ascii = ready_client("250-mx.test\r\n250 8BITMIME\r\n");
  OutgoingMessage a = message({"a"}, "Subject: plain\r\n\r\ncaf\xC3\xA9\r\n");
  a.smtputf8 = true;
  ascii.c.send_message(a);
  ascii.drain();
  EXPECT_EQ(ascii.take(), "MAIL FROM:<sender@client.test> BODY=8BITMIME\r\n");
  Scripted with = ready_client("250-mx.test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n");
  with.c.send_message(m);
  with.drain();
  EXPECT_EQ(with.take(), "MAIL FROM:<sender@client.test> BODY=8BITMIME SMTPUTF8\r\n");
}

TEST(Client, AuthParameterOnlyToServersOfferingAuth) {  // RFC 4954 §5
  OutgoingMessage m = message({"a"});
  m.auth = "alice+2Bsales@client.test";
  Scripted with = ready_client("250-mx.test\r\n250 AUTH PLAIN\r\n");
  with.c.send_message(m);
  with.drain();
  EXPECT_EQ(with.take(), "MAIL FROM:<sender@client.test> AUTH=alice+2Bsales@client.test\r\n");
  Scripted without = ready_client("250-mx.test\r\n250 8BITMIME\r\n");
  without.c.send_message(m);
  without.drain();
  EXPECT_EQ(without.take(), "MAIL FROM:<sender@client.test>\r\n");
  // A value that is not xtext (from a damaged spool file, say) is never sent.
  m.auth = "x\r\nRCPT TO:<evil@x.test>";
  Scripted bad = ready_client("250-mx.test\r\n250 AUTH PLAIN\r\n");
  bad.c.send_message(m);
  bad.drain();
  EXPECT_EQ(bad.take(), "MAIL FROM:<sender@client.test>\r\n");
}

TEST(Client, ServerClosingMidTransactionDefers) {  // §3.8
  Scripted s = ready_client();
  s.c.send_message(message({"a"}));
  s.drain();
  s.server("250 ok\r\n421 4.3.2 shutting down\r\n");
  EXPECT_EQ(s.results[0].status, DeliveryStatus::deferred);
  EXPECT_EQ(s.results[0].reply.code, 421);
  EXPECT_TRUE(s.c.closed());
}

TEST(Client, TimeoutDefers) {  // §4.5.3.2
  Scripted s = ready_client();
  s.c.send_message(message({"a"}));
  s.drain();
  ASSERT_TRUE(s.c.deadline());
  EXPECT_EQ(*s.c.deadline(), Millis(5 * 60 * 1000));
  s.c.on_time(Millis(5 * 60 * 1000));
  s.drain();
  EXPECT_EQ(s.results[0].status, DeliveryStatus::deferred);
  EXPECT_EQ(s.results[0].reply.enhanced, (EnhancedStatus{4, 4, 2}));
}

TEST(Client, GreetingTimeout) {  // §4.5.3.2.1
  Scripted s;
  s.c.on_time(Millis(299'999));
  s.drain();
  EXPECT_FALSE(s.failure);
  s.c.on_time(Millis(300'000));
  s.drain();
  ASSERT_TRUE(s.failure);
}

TEST(Client, MalformedReplyDefers) {
  Scripted s = ready_client();
  s.c.send_message(message({"a"}));
  s.drain();
  s.server("hello there\r\n");
  EXPECT_EQ(s.results[0].status, DeliveryStatus::deferred);
  EXPECT_TRUE(s.c.closed());
}

TEST(Client, StartTlsPolicy) {  // RFC 3207 §4, §4.2
  ClientConfig req;
  req.tls = TlsPolicy::required;
  Scripted none = ready_client(kEhloReply, req);
  ASSERT_TRUE(none.failure);
  EXPECT_FALSE(none.failure->permanent);
  EXPECT_EQ(none.failure->reply.enhanced, (EnhancedStatus{4, 7, 10}));

  Scripted s(req);
  s.server("220 mx.test\r\n250-mx.test\r\n250 STARTTLS\r\n");
  EXPECT_EQ(s.take(), "EHLO localhost\r\nSTARTTLS\r\n");
  s.server("220 2.0.0 go ahead\r\n250 injected\r\n");  // bytes after 220 must be ignored
  EXPECT_EQ(s.events.back(), "starttls");
  EXPECT_EQ(s.c.tls_started(), Fault::none);
  s.drain();
  EXPECT_EQ(s.take(), "EHLO localhost\r\n");
  s.server("250-mx.test\r\n250 PIPELINING\r\n");
  EXPECT_TRUE(s.c.ready());
  EXPECT_TRUE(s.c.tls_active());

  Scripted opp;  // opportunistic: a refused STARTTLS carries on in the clear
  opp.server("220 mx.test\r\n250-mx.test\r\n250 STARTTLS\r\n454 4.7.0 TLS not available\r\n");
  EXPECT_TRUE(opp.c.ready());
  EXPECT_FALSE(opp.c.tls_active());
}

TEST(Client, AuthPlain) {  // RFC 4954 §4, RFC 4616
  ClientConfig cfg;
  cfg.tls_active = true;
  cfg.auth_user = "user";
  cfg.auth_password = "secret";
  Scripted s(cfg);
  s.server("220 smarthost\r\n250-smarthost\r\n250 AUTH LOGIN PLAIN\r\n");
  EXPECT_EQ(s.take(), "EHLO localhost\r\nAUTH PLAIN " + base64_encode(std::string("\0user\0secret", 12)) + "\r\n");
  s.server("235 2.7.0 ok\r\n");
  EXPECT_TRUE(s.c.ready());
  Scripted bad(cfg);
  bad.server("220 smarthost\r\n250-smarthost\r\n250 AUTH PLAIN\r\n535 5.7.8 no\r\n");
  ASSERT_TRUE(bad.failure);
  // A refused password is the operator's to fix: the mail waits, it does not bounce.
  EXPECT_FALSE(bad.failure->permanent);
  EXPECT_EQ(bad.failure->reply.code, 535);
}

// RFC 4954 §5: "If an AUTH=<> parameter was supplied, either explicitly or due to the requirement
// in the previous paragraph [the client is not authenticated], then the server MUST supply the
// AUTH=<> parameter when relaying the message to any server which it has authenticated to".
TEST(Client, ToAServerItAuthenticatedToAMessageWithoutAVouchedSubmitterCarriesAuthEmpty) {
  ClientConfig cfg;
  cfg.tls_active = true;
  cfg.auth_user = "user";
  cfg.auth_password = "secret";
  for (const std::optional<std::string>& auth : {std::optional<std::string>{}, std::optional<std::string>{"<>"},
                                                 std::optional<std::string>{"x\r\nRCPT TO:<evil@x.test>"}}) {
    Scripted s(cfg);
    s.server("220 smarthost\r\n250-smarthost\r\n250 AUTH PLAIN\r\n235 2.7.0 ok\r\n");
    s.take();
    OutgoingMessage m = message({"a"});
    m.auth = auth;
    s.c.send_message(m);
    s.drain();
    EXPECT_EQ(s.take(), "MAIL FROM:<sender@client.test> AUTH=<>\r\n") << (auth ? *auth : "(none)");
  }
  // A submitter the server vouched for is passed on (§5 SHOULD).
  Scripted s(cfg);
  s.server("220 smarthost\r\n250-smarthost\r\n250 AUTH PLAIN\r\n235 2.7.0 ok\r\n");
  s.take();
  OutgoingMessage m = message({"a"});
  m.auth = "alice@client.test";
  s.c.send_message(m);
  s.drain();
  EXPECT_EQ(s.take(), "MAIL FROM:<sender@client.test> AUTH=alice@client.test\r\n");
}

TEST(Client, LmtpOneReplyPerRecipient) {  // RFC 2033 §4.2
  ClientConfig cfg;
  cfg.lmtp = true;
  Scripted s(cfg);
  s.server("220 lmtp.test LMTP\r\n");
  EXPECT_EQ(s.take(), "LHLO localhost\r\n");
  s.server("250-lmtp.test\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n");
  s.c.send_message(message({"a", "b", "c"}));
  s.drain();
  s.take();
  s.server("250 ok\r\n250 ok\r\n550 5.1.1 no\r\n250 ok\r\n354 go\r\n");
  s.take();
  s.server("250 2.0.0 a delivered\r\n");
  EXPECT_TRUE(s.results.empty());  // still owed a reply for c
  s.server("452 4.2.2 c over quota\r\n");
  ASSERT_EQ(s.results.size(), 3u);
  EXPECT_EQ(s.results[0].status, DeliveryStatus::delivered);
  EXPECT_EQ(s.results[1].status, DeliveryStatus::failed);
  EXPECT_EQ(s.results[2].status, DeliveryStatus::deferred);
  EXPECT_EQ(s.results[2].reply.code, 452);
}

TEST(Client, BdatWhenChunkingOffered) {  // RFC 3030 §2
  Scripted s = ready_client("250-mx.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n");
  s.c.send_message(message({"a"}, ".leading dot\r\n"));
  s.drain();
  EXPECT_EQ(s.take(), "MAIL FROM:<sender@client.test>\r\nRCPT TO:<a@mx.test>\r\n");
  s.server("250 ok\r\n250 ok\r\n");
  EXPECT_EQ(s.take(), "BDAT 14 LAST\r\n.leading dot\r\n");
  s.server("250 ok\r\n");
  EXPECT_EQ(s.results[0].status, DeliveryStatus::delivered);
}

TEST(Client, QuitAndReuse) {
  Scripted s = ready_client();
  s.c.send_message(message({"a"}));
  s.drain();
  s.server("250 ok\r\n250 ok\r\n354 go\r\n250 ok\r\n");
  ASSERT_TRUE(s.c.ready());
  EXPECT_EQ(s.c.send_message(message({"b"})), Fault::none);
  EXPECT_EQ(s.c.send_message(message({"c"})), Fault::not_ready);
  s.drain();
  s.server("250 ok\r\n250 ok\r\n354 go\r\n250 ok\r\n");
  s.take();
  s.c.quit();
  s.drain();
  EXPECT_EQ(s.take(), "QUIT\r\n");
  s.server("221 bye\r\n");
  EXPECT_TRUE(s.c.closed());
}

// ---- Against the real server session, in memory ----

namespace {

struct Loop {
  Driver server;
  ClientSession client;
  std::size_t server_seen = 0;
  std::vector<RecipientResult> results;
  int ready = 0;

  Loop(ServerConfig scfg, ClientConfig ccfg) : server(std::move(scfg)), client(std::move(ccfg)) { pump(); }

  void pump() {
    for (int guard = 0; guard < 1000; ++guard) {
      bool progress = false;
      if (server.t.output.size() > server_seen) {
        client.receive(std::string_view(server.t.output).substr(server_seen));
        server_seen = server.t.output.size();
        progress = true;
      }
      while (auto a = client.next_action()) {
        progress = true;
        if (auto* s = std::get_if<client_action::Send>(&*a)) server.feed(s->bytes);
        if (std::holds_alternative<client_action::StartTls>(*a)) client.tls_started();
        if (std::holds_alternative<client_action::Ready>(*a)) ++ready;
        if (auto* r = std::get_if<client_action::MessageResult>(&*a)) results = r->results;
      }
      if (!progress) return;
    }
  }
};

}  // namespace

TEST(ClientServer, DeliversExactBodiesOverEveryExtensionMix) {
  const std::string body = "Subject: dots\r\n\r\n.\r\n..\r\n.x\r\nend\r\n";
  for (bool pipelining : {false, true}) {
    for (bool chunking : {false, true}) {
      ServerConfig scfg = test_config();
      scfg.pipelining = pipelining;
      scfg.chunking = chunking;
      ClientConfig ccfg;
      ccfg.helo_name = "client.test";
      Loop loop(scfg, ccfg);
      ASSERT_TRUE(loop.client.ready());
      EXPECT_TRUE(loop.client.tls_active());  // STARTTLS was offered and taken
      loop.client.send_message(message({"a", "b"}, body));
      loop.pump();
      ASSERT_EQ(loop.results.size(), 2u);
      EXPECT_EQ(loop.results[0].status, DeliveryStatus::delivered);
      EXPECT_EQ(loop.server.t.messages, std::vector<std::string>{body}) << pipelining << chunking;
    }
  }
}
