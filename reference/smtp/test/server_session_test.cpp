// ServerSession behaviour, each case citing the rule it pins. Most dialogs are also replayed
// with the input split at every offset and must give the same transcript (parsegrind).
#include "refsmtp/smtp/server_session.hpp"

#include <gtest/gtest.h>

#include "refsmtp/core/base64.hpp"
#include "session_driver.hpp"

using namespace refsmtp::smtp;
using refsmtp::core::base64_encode;
using namespace refsmtp::smtp::testing;
using Codes = std::vector<int>;

namespace {

// Runs `input` through a fresh session whole, then split at every offset; all transcripts must
// agree. Returns the codes of every reply after the greeting.
Codes dialog(std::string_view input, ServerConfig cfg = test_config()) {
  Driver whole(cfg);
  whole.feed(input);
  for (std::size_t i = 1; i < input.size(); ++i) {
    Driver split(cfg);
    split.feed(input.substr(0, i));
    split.feed(input.substr(i));
    EXPECT_EQ(split.t, whole.t) << "split at " << i << " of " << input;
  }
  Codes c = whole.codes();
  c.erase(c.begin());
  return c;
}

const std::string kEhlo = "EHLO client.test\r\n";
const std::string kTx = kEhlo + "MAIL FROM:<a@client.test>\r\nRCPT TO:<b@mx.test>\r\n";

}  // namespace

TEST(Greeting, Is220WithHostname) {  // §4.3.1
  Driver d;
  EXPECT_EQ(d.t.output, "220 mx.test ESMTP refsmtp\r\n");
  EXPECT_EQ(d.session.state(), State::initial);
}

TEST(Greeting, Refusal421Closes) {  // §3.8
  ServerConfig cfg = test_config();
  cfg.refuse = make_reply(421, 4, 3, 2, "mx.test busy");
  Driver d(cfg);
  EXPECT_EQ(d.codes(), Codes{421});
  EXPECT_EQ(d.t.events, std::vector<std::string>{"close"});
  EXPECT_TRUE(d.session.closed());
}

TEST(Greeting, Refusal554ThenOnly503UntilQuit) {  // §3.1
  ServerConfig cfg = test_config();
  cfg.refuse = make_reply(554, std::nullopt, "mx.test no service");
  EXPECT_EQ(dialog(kEhlo + "MAIL FROM:<a@b.test>\r\nNOOP\r\nQUIT\r\n", cfg), (Codes{503, 503, 503, 221}));
}

TEST(Ehlo, ListsCapabilitiesFromConfig) {  // §4.1.1.1 and each extension's RFC
  Driver d;
  d.feed(kEhlo);
  auto r = d.replies().back();
  EXPECT_EQ(r.code, 250);
  EXPECT_EQ(r.lines, (std::vector<std::string>{"mx.test Hello client.test", "SIZE 10000", "8BITMIME",
                                               "PIPELINING", "ENHANCEDSTATUSCODES", "STARTTLS", "SMTPUTF8",
                                               "CHUNKING", "BINARYMIME"}));
  // AUTH appears only over TLS by default (RFC 4954 §4).
  ServerConfig cfg = test_config();
  cfg.tls_active = true;
  cfg.pipelining = cfg.smtputf8 = cfg.chunking = false;
  cfg.limits.message_size = 0;
  Driver t(cfg);
  t.feed(kEhlo);
  EXPECT_EQ(t.replies().back().lines,
            (std::vector<std::string>{"mx.test Hello client.test", "8BITMIME", "ENHANCEDSTATUSCODES", "AUTH PLAIN LOGIN"}));
}

TEST(Ehlo, HeloIsOneLineAndAllowsNoParameters) {  // §4.1.1.1, RFC 1869
  Driver d;
  d.feed("HELO client.test\r\n");
  EXPECT_EQ(d.replies().back().lines, std::vector<std::string>{"mx.test Hello client.test"});
  d.feed("MAIL FROM:<a@b.test> SIZE=10\r\nMAIL FROM:<a@b.test>\r\n");
  EXPECT_EQ(d.codes(), (Codes{220, 250, 555, 250}));
}

TEST(Ehlo, SyntaxErrors) {  // §4.1.1.1 -> 501
  EXPECT_EQ(dialog("EHLO\r\nEHLO bad..name\r\nHELO\r\n"), (Codes{501, 501, 501}));
}

TEST(Ehlo, ResetsTheTransaction) {  // §4.1.4
  EXPECT_EQ(dialog(kTx + kEhlo + "DATA\r\nRCPT TO:<b@mx.test>\r\n"), (Codes{250, 250, 250, 250, 503, 503}));
}

TEST(Sequencing, MailNeedsEhlo) {  // §4.1.4
  EXPECT_EQ(dialog("MAIL FROM:<a@b.test>\r\n"), Codes{503});
}

TEST(Sequencing, RcptNeedsMailDataNeedsRcpt) {  // §4.1.4, §3.3
  EXPECT_EQ(dialog(kEhlo + "RCPT TO:<b@mx.test>\r\nDATA\r\nMAIL FROM:<a@b.test>\r\nDATA\r\n"),
            (Codes{250, 503, 503, 250, 554}));
}

TEST(Sequencing, NestedMailIsRefused) {  // §4.1.4
  EXPECT_EQ(dialog(kEhlo + "MAIL FROM:<a@b.test>\r\nMAIL FROM:<a@b.test>\r\n"), (Codes{250, 250, 503}));
}

TEST(Commands, RsetNoopVrfyExpnHelpQuit) {  // §4.1.1.5 - §4.1.1.10, §3.5.3
  Driver d;
  d.feed(kTx + "RSET\r\nRCPT TO:<b@mx.test>\r\nNOOP\r\nVRFY joe\r\nEXPN list\r\nHELP\r\nQUIT\r\nNOOP\r\n");
  EXPECT_EQ(d.codes(), (Codes{220, 250, 250, 250, 250, 503, 250, 252, 502, 214, 221}));
  EXPECT_EQ(d.t.events.back(), "close");
  EXPECT_TRUE(d.session.closed());
}

TEST(Commands, UnknownAndSyntaxErrors) {  // §4.2.4, §4.2.2, §4.1.1.11
  EXPECT_EQ(dialog(kEhlo + "FOO\r\nMAIL FROM:a@b.test\r\nMAIL FROM:<a@b.test> XFOO=1\r\nQUIT now\r\n"),
            (Codes{250, 500, 501, 555, 501}));
}

TEST(Commands, RsetBeforeEhloKeepsInitial) {
  Driver d;
  d.feed("RSET\r\n");
  EXPECT_EQ(d.session.state(), State::initial);
}

TEST(Mail, EnhancedCodesForAddressErrors) {  // RFC 3463 X.1.7 / X.1.3
  Driver d = greeted();
  d.feed("MAIL FROM:<bad>\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<bad>\r\n");
  auto r = d.replies();
  EXPECT_EQ(r[2].enhanced, (EnhancedStatus{5, 1, 7}));
  EXPECT_EQ(r[4].enhanced, (EnhancedStatus{5, 1, 3}));
}

TEST(Mail, DeclaredSizeAtLimit) {  // RFC 1870 §6.2 -> 552
  EXPECT_EQ(dialog(kEhlo + "MAIL FROM:<a@b.test> SIZE=9999\r\nRSET\r\nMAIL FROM:<a@b.test> SIZE=10000\r\nRSET\r\n"
                           "MAIL FROM:<a@b.test> SIZE=10001\r\n"),
            (Codes{250, 250, 250, 250, 250, 552}));
}

TEST(Mail, UnofferedExtensionsAre555) {  // §4.1.1.11
  ServerConfig cfg = test_config();
  cfg.smtputf8 = false;
  cfg.eightbitmime = false;
  EXPECT_EQ(dialog(kEhlo + "MAIL FROM:<a@b.test> SMTPUTF8\r\nMAIL FROM:<a@b.test> BODY=8BITMIME\r\n"
                           "MAIL FROM:<a@b.test> RET=FULL\r\nMAIL FROM:<a@b.test> BODY=7BIT\r\n", cfg),
            (Codes{250, 555, 555, 555, 250}));
}

TEST(Mail, Utf8AddressNeedsSmtputf8Parameter) {  // RFC 6531 §3.4; §3.5: 550 for MAIL, 553 for RCPT
  const std::string u = "<j\xC3\xB6rg@b\xC3\xBC" "cher.test>";
  EXPECT_EQ(dialog(kEhlo + "MAIL FROM:" + u + "\r\nMAIL FROM:" + u + " SMTPUTF8\r\nRCPT TO:" + u + "\r\n"),
            (Codes{250, 550, 250, 250}));
  // Without SMTPUTF8 on MAIL, a UTF-8 RCPT is refused too.
  EXPECT_EQ(dialog(kEhlo + "MAIL FROM:<a@b.test>\r\nRCPT TO:" + u + "\r\n"), (Codes{250, 250, 553}));
}

TEST(Mail, HostVerdictsAreAsynchronous) {  // input is held until the host answers
  Driver d = greeted();
  d.policy = nullptr;
  ServerSession& s = d.session;
  const std::string input = "MAIL FROM:<a@b.test>\r\nRCPT TO:<b@mx.test>\r\nNOOP\r\n";
  EXPECT_EQ(s.receive(input), input.size());  // all taken into the hold buffer
  std::vector<std::string> kinds;
  while (auto a = s.next_action()) {
    if (std::holds_alternative<action::CheckSender>(*a)) kinds.emplace_back("sender");
    if (std::holds_alternative<action::Send>(*a)) kinds.emplace_back("send");
  }
  EXPECT_EQ(kinds, std::vector<std::string>{"sender"});
  EXPECT_EQ(s.pending(), Question::sender);
  EXPECT_EQ(s.answer(Verdict::reject(make_reply(550, 5, 7, 1, "no"))), Fault::none);
  // Rejected sender: the held RCPT now fails with 503, NOOP succeeds; no recipient question.
  std::string out;
  int sends = 0;
  while (auto a = s.next_action()) {
    if (std::holds_alternative<action::Refused>(*a)) continue;  // the 503, for the host's log
    ASSERT_TRUE(std::holds_alternative<action::Send>(*a));
    out += std::get<action::Send>(*a).bytes;
    ++sends;
  }
  EXPECT_EQ(sends, 1);  // the replies to the held group go out together (RFC 2920 §3.2)
  EXPECT_EQ(out, "550 5.7.1 no\r\n503 5.5.1 Bad sequence of commands: Need MAIL before RCPT\r\n250 2.0.0 OK\r\n");
  EXPECT_EQ(s.answer(Verdict::accept()), Fault::no_question_pending);
}

TEST(Mail, VerdictClassMustMatch) {
  Driver d = greeted();
  d.policy = nullptr;
  d.session.receive("MAIL FROM:<a@b.test>\r\n");
  EXPECT_EQ(d.session.answer(Verdict::accept(make_reply(550, 5, 0, 0, "x"))), Fault::reply_class_mismatch);
  EXPECT_EQ(d.session.answer(Verdict::reject(make_reply(250, 2, 0, 0, "x"))), Fault::reply_class_mismatch);
  EXPECT_EQ(d.session.pending(), Question::sender);
  EXPECT_EQ(d.session.answer(Verdict{false, std::nullopt}), Fault::none);  // default rejection
  d.drain();
  EXPECT_EQ(d.last_code(), 550);
}

TEST(Mail, HoldBufferGivesBackPressure) {
  ServerConfig cfg = test_config();
  cfg.limits.buffered_input = 1024;
  Driver d = greeted(cfg);
  d.policy = nullptr;
  const std::string big = "MAIL FROM:<a@b.test>\r\n" + std::string(3000, 'N');
  const std::size_t n = d.session.receive(big);
  EXPECT_LE(n, 1024u);
  EXPECT_GT(n, 0u);
}

TEST(Rcpt, OneHundredRecipientsAccepted) {  // §4.5.3.1.8, §4.5.3.1.10
  std::string in = kEhlo + "MAIL FROM:<a@b.test>\r\n";
  for (int i = 0; i < 101; ++i) in += "RCPT TO:<u" + std::to_string(i) + "@mx.test>\r\n";
  Driver d;
  d.feed(in);
  Codes c = d.codes();
  ASSERT_EQ(c.size(), 104u);
  EXPECT_EQ(c[102], 250);  // the 100th
  EXPECT_EQ(c[103], 452);  // the 101st
  EXPECT_EQ(d.session.envelope().recipients.size(), 100u);
}

TEST(Rcpt, RejectedRecipientsAreNotKept) {
  Driver d = greeted();
  d.policy = [](const Action& a) {
    if (auto* r = std::get_if<action::CheckRecipient>(&a); r && r->path.mailbox->local_part == "nobody") {
      return Verdict::reject(make_reply(550, 5, 1, 1, "No such user"));
    }
    return Verdict::accept();
  };
  d.feed("MAIL FROM:<a@b.test>\r\nRCPT TO:<nobody@mx.test>\r\nDATA\r\nRCPT TO:<b@mx.test>\r\n");
  EXPECT_EQ(d.new_codes(), (Codes{250, 550, 554, 250}));
  EXPECT_EQ(d.session.envelope().recipients.size(), 1u);
}

TEST(Rcpt, DsnParametersNotOffered) {  // RFC 3461 not advertised -> 555
  EXPECT_EQ(dialog(kTx + "RCPT TO:<c@mx.test> NOTIFY=NEVER\r\n"), (Codes{250, 250, 250, 555}));
}

TEST(Rcpt, Postmaster) {  // §4.5.1
  EXPECT_EQ(dialog(kEhlo + "MAIL FROM:<a@b.test>\r\nRCPT TO:<Postmaster>\r\n"), (Codes{250, 250, 250}));
}

TEST(Data, DeliversUnstuffedBodyAndWaitsForStorage) {  // §4.5.2, §6.1
  Driver d;
  d.policy = nullptr;
  d.feed(kTx);
  // Answer the two pending questions by hand.
  d.session.answer(Verdict::accept());
  d.drain();
  d.session.answer(Verdict::accept());
  d.drain();
  d.feed("DATA\r\n");
  d.feed("Subject: t\r\n\r\n..dot\r\n.\r\nNOOP\r\n");
  EXPECT_EQ(d.session.pending(), Question::message);
  EXPECT_EQ(d.last_code(), 354);  // no 250 until the host says the message is stored
  EXPECT_EQ(d.t.messages, std::vector<std::string>{"Subject: t\r\n\r\n.dot\r\n"});
  d.session.answer(Verdict::accept(make_reply(250, 2, 0, 0, "OK queued as Q1")));
  d.drain();
  EXPECT_EQ(d.replies()[5].text(), "OK queued as Q1");
  EXPECT_EQ(d.last_code(), 250);  // then the held NOOP
  EXPECT_EQ(d.session.state(), State::ready);
}

TEST(Data, SplitEverywhere) {
  EXPECT_EQ(dialog(kTx + "DATA\r\nline one\r\n..\r\n.\r\nQUIT\r\n"), (Codes{250, 250, 250, 354, 250, 221}));
}

TEST(Data, StorageFailureIs451) {  // §4.2.5 / RFC 3463 4.3.0
  Driver d;
  d.policy = [](const Action& a) {
    if (std::holds_alternative<action::MessageComplete>(a)) return Verdict::reject(make_reply(452, 4, 3, 1, "disk full"));
    return Verdict::accept();
  };
  d.feed(kTx + "DATA\r\nx\r\n.\r\nMAIL FROM:<a@b.test>\r\n");
  EXPECT_EQ(d.codes(), (Codes{220, 250, 250, 250, 354, 452, 250}));
}

TEST(Data, BareLfAndBareCrRefused) {  // §2.3.8, CVE-2023-51764..51766
  for (const char* bad : {"a\nb\r\n", "a\rb\r\n", "x\n.\nMAIL FROM:<e@vil.test>\r\n"}) {
    Driver d;
    d.feed(kTx + "DATA\r\n" + bad + ".\r\nNOOP\r\n");
    EXPECT_EQ(d.codes(), (Codes{220, 250, 250, 250, 354, 554, 250})) << bad;
    EXPECT_TRUE(d.t.messages.empty());
    EXPECT_NE(std::find(d.t.events.begin(), d.t.events.end(), "aborted Bare CR or LF in message data"), d.t.events.end());
  }
}

TEST(Data, LenientBareLfKeepsItAsData) {
  ServerConfig cfg = test_config();
  cfg.lenient_bare_lf_in_data = true;
  Driver d(cfg);
  d.feed(kTx + "DATA\r\nx\n.\nstill body\r\n.\r\n");
  EXPECT_EQ(d.last_code(), 250);
  EXPECT_EQ(d.t.messages, std::vector<std::string>{"x\n.\nstill body\r\n"});  // one message, not two
}

TEST(Data, LineLimit) {  // §4.5.3.1.6
  Driver ok;
  ok.feed(kTx + "DATA\r\n" + std::string(998, 'x') + "\r\n.\r\n");
  EXPECT_EQ(ok.last_code(), 250);
  Driver bad;
  bad.feed(kTx + "DATA\r\n" + std::string(999, 'x') + "\r\n.\r\n");
  EXPECT_EQ(bad.last_code(), 500);
}

TEST(Data, OversizeReadToEndThen552) {  // RFC 1870 §6.3
  for (std::size_t n : {9999u, 10000u, 10001u}) {
    // n octets of body: lines of 98 + CRLF, padded.
    std::string body;
    while (body.size() + 102 <= n) body += std::string(98, 'y') + "\r\n";
    body += std::string(n - body.size() - 2, 'z') + "\r\n";
    ASSERT_EQ(body.size(), n);
    Driver d;
    d.feed(kTx + "DATA\r\n" + body + ".\r\nNOOP\r\n");
    Codes c = d.codes();
    EXPECT_EQ(c[c.size() - 2], n <= 10000 ? 250 : 552) << n;
    EXPECT_EQ(c.back(), 250);  // the stream stays in sync
  }
}

TEST(Bdat, ChunksWithoutDotProcessing) {  // RFC 3030 §2
  Driver d;
  d.feed(kTx + "BDAT 5\r\n.\r\nx\rBDAT 4\r\n\n.\n\nBDAT 0 LAST\r\n");
  EXPECT_EQ(d.new_codes(), (Codes{220, 250, 250, 250, 250, 250, 250}));
  EXPECT_EQ(d.t.messages, std::vector<std::string>{".\r\nx\r\n.\n\n"});
}

TEST(Bdat, SplitEverywhere) {
  EXPECT_EQ(dialog(kTx + "BDAT 3\r\nabcBDAT 2 LAST\r\ndeNOOP\r\n"), (Codes{250, 250, 250, 250, 250, 250}));
}

TEST(Bdat, ZeroLastIsAnEmptyMessage) {  // RFC 3030 §2
  Driver d;
  d.feed(kTx + "BDAT 0 LAST\r\n");
  EXPECT_EQ(d.last_code(), 250);
  EXPECT_EQ(d.t.messages, std::vector<std::string>{""});
}

TEST(Bdat, OutOfSequenceChunkIsSwallowed) {  // framing kept whatever the reply
  EXPECT_EQ(dialog(kEhlo + "BDAT 12\r\nRSET\r\nQUIT\r\nNOOP\r\n"), (Codes{250, 503, 250}));
  EXPECT_EQ(dialog(kEhlo + "MAIL FROM:<a@b.test>\r\nBDAT 6 LAST\r\nQUIT\r\nNOOP\r\n"), (Codes{250, 250, 554, 250}));
}

TEST(Bdat, DataAfterBdatAndBinaryMimeWithData) {  // RFC 3030 §2, §3
  EXPECT_EQ(dialog(kTx + "BDAT 1\r\nxDATA\r\n"), (Codes{250, 250, 250, 250, 503}));
  EXPECT_EQ(dialog(kEhlo + "MAIL FROM:<a@b.test> BODY=BINARYMIME\r\nRCPT TO:<b@mx.test>\r\nDATA\r\n"),
            (Codes{250, 250, 250, 503}));
}

TEST(Bdat, OversizeIs552AndEndsTheTransaction) {  // RFC 3030 §2, RFC 1870
  Driver d;
  d.feed(kTx + "BDAT 6000\r\n" + std::string(6000, 'a') + "BDAT 6000\r\n" + std::string(6000, 'b') +
         "BDAT 1 LAST\r\nc");
  EXPECT_EQ(d.new_codes(), (Codes{220, 250, 250, 250, 250, 552, 503}));
  EXPECT_TRUE(d.t.messages.empty());
}

TEST(Bdat, NotOfferedIs502) {
  ServerConfig cfg = test_config();
  cfg.chunking = false;
  EXPECT_EQ(dialog(kTx + "BDAT 4 LAST\r\nQUITNOOP\r\n", cfg), (Codes{250, 250, 250, 502, 250}));
}

TEST(Pipelining, RepliesGroupedInOneWrite) {  // RFC 2920 §3.2
  Driver d = greeted();
  d.session.receive("MAIL FROM:<a@b.test>\r\nRCPT TO:<b@mx.test>\r\nRCPT TO:<c@mx.test>\r\nDATA\r\n");
  // A host that answers while draining gets the four replies in one Send.
  std::vector<std::string> sends;
  while (auto a = d.session.next_action()) {
    if (auto* s = std::get_if<action::Send>(&*a)) sends.push_back(s->bytes);
    if (d.session.pending() != Question::none) d.session.answer(Verdict::accept());
  }
  ASSERT_EQ(sends.size(), 1u);
  EXPECT_EQ(sends[0], "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n250 2.1.5 Recipient OK\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
  EXPECT_EQ(d.session.state(), State::data);
}

TEST(Pipelining, RepliesOwedAreHandedOutBeforeTheHostWaits) {  // RFC 2920 §3.2: flush before blocking
  Driver d = greeted();
  d.session.receive("NOOP\r\nMAIL FROM:<a@b.test>\r\nNOOP\r\n");
  auto first = d.session.next_action();
  ASSERT_TRUE(first && std::holds_alternative<action::CheckSender>(*first));
  auto second = d.session.next_action();  // the host drains before going off to decide
  ASSERT_TRUE(second && std::holds_alternative<action::Send>(*second));
  EXPECT_EQ(std::get<action::Send>(*second).bytes, "250 2.0.0 OK\r\n");
  EXPECT_FALSE(d.session.next_action().has_value());
  d.session.answer(Verdict::accept());
  auto third = d.session.next_action();
  ASSERT_TRUE(third && std::holds_alternative<action::Send>(*third));
  EXPECT_EQ(std::get<action::Send>(*third).bytes, "250 2.1.0 Sender OK\r\n250 2.0.0 OK\r\n");
}

TEST(Pipelining, RepliesPrecedeStartTlsAndClose) {
  Driver d = greeted();
  d.auto_tls = false;
  d.session.receive("NOOP\r\nSTARTTLS\r\n");
  auto a = d.session.next_action();
  ASSERT_TRUE(a && std::holds_alternative<action::Send>(*a));
  EXPECT_EQ(std::get<action::Send>(*a).bytes, "250 2.0.0 OK\r\n220 2.0.0 Ready to start TLS\r\n");
  auto b = d.session.next_action();
  EXPECT_TRUE(b && std::holds_alternative<action::StartTls>(*b));
}

TEST(Starttls, DiscardsPipelinedInputAndResets) {  // RFC 3207 §4.2, CVE-2011-0411
  Driver d;
  d.auto_tls = false;
  d.feed(kEhlo + "STARTTLS\r\nMAIL FROM:<inject@evil.test>\r\n");
  EXPECT_EQ(d.session.state(), State::tls_handshake);
  EXPECT_EQ(d.session.discarded_at_starttls(), std::string("MAIL FROM:<inject@evil.test>\r\n").size());
  // Bytes offered during the handshake are thrown away too.
  EXPECT_EQ(d.session.receive("RCPT TO:<x@y.test>\r\n"), 20u);
  EXPECT_EQ(d.session.tls_started(), Fault::none);
  d.drain();
  EXPECT_TRUE(d.session.tls_active());
  EXPECT_EQ(d.session.state(), State::initial);
  d.feed("MAIL FROM:<a@b.test>\r\n" + kEhlo);
  EXPECT_EQ(d.codes(), (Codes{220, 250, 220, 503, 250}));
  // STARTTLS is no longer offered; AUTH now is.
  auto lines = d.replies().back().lines;
  EXPECT_EQ(std::count(lines.begin(), lines.end(), "STARTTLS"), 0);
  EXPECT_EQ(std::count(lines.begin(), lines.end(), "AUTH PLAIN LOGIN"), 1);
  EXPECT_EQ(std::count(d.t.events.begin(), d.t.events.end(), std::string("sender <inject@evil.test>")), 0);
}

TEST(Starttls, Refusals) {  // RFC 3207 §4
  EXPECT_EQ(dialog("STARTTLS\r\n" + kEhlo + "STARTTLS now\r\n"), (Codes{503, 250, 501}));
  ServerConfig no = test_config();
  no.starttls = false;
  EXPECT_EQ(dialog(kEhlo + "STARTTLS\r\n", no), (Codes{250, 502}));
  EXPECT_EQ(dialog(kTx + "STARTTLS\r\n"), (Codes{250, 250, 250, 503}));
}

TEST(Starttls, HandshakeFailureCloses) {
  Driver d;
  d.auto_tls = false;
  d.feed(kEhlo + "STARTTLS\r\n");
  d.session.tls_failed();
  d.drain();
  EXPECT_TRUE(d.session.closed());
}

TEST(Auth, NeedsTlsByDefault) {  // RFC 4954 §4, §6
  EXPECT_EQ(dialog(kEhlo + "AUTH PLAIN AHUAcA==\r\n"), (Codes{250, 504}));  // RFC 4954 §4 (538 is historical)
}

namespace {
ServerConfig tls_config() {
  ServerConfig c = test_config();
  c.tls_active = true;
  return c;
}
}  // namespace

TEST(Auth, PlainWithInitialResponse) {  // RFC 4954 §4, RFC 4616
  Driver d(tls_config());
  d.feed(kEhlo + "AUTH PLAIN " + base64_encode(std::string("\0user\0secret", 12)) + "\r\n");
  EXPECT_EQ(d.last_code(), 235);
  EXPECT_EQ(d.t.events.back(), "auth PLAIN user secret");
  EXPECT_TRUE(d.session.authenticated());
  d.feed("AUTH PLAIN =\r\n");
  EXPECT_EQ(d.last_code(), 503);  // RFC 4954 §4: no second AUTH
}

TEST(Auth, PlainAndLoginChallenges) {  // RFC 4954 §4
  EXPECT_EQ(dialog(kEhlo + "AUTH PLAIN\r\n" + base64_encode(std::string("\0u\0p", 4)) + "\r\n", tls_config()),
            (Codes{250, 334, 235}));
  Driver d(tls_config());
  d.feed(kEhlo + "AUTH LOGIN\r\n" + base64_encode("joe") + "\r\n" + base64_encode("pw") + "\r\n");
  EXPECT_EQ(d.codes(), (Codes{220, 250, 334, 334, 235}));
  EXPECT_EQ(d.replies()[2].lines[0], "VXNlcm5hbWU6");
  EXPECT_EQ(d.t.events.back(), "auth LOGIN joe pw");
}

TEST(Auth, FailuresAndCancel) {  // RFC 4954 §4, §6
  Driver d(tls_config());
  d.policy = [](const Action&) { return Verdict{false, std::nullopt}; };
  d.feed(kEhlo + "AUTH PLAIN AHUAcA==\r\nAUTH PLAIN\r\n*\r\nAUTH PLAIN\r\n!!!!\r\nAUTH CRAM-MD5\r\n"
                 "AUTH PLAIN " + base64_encode("nonul") + "\r\n");
  EXPECT_EQ(d.codes(), (Codes{220, 250, 535, 334, 501, 334, 501, 504, 501}));
  EXPECT_EQ(d.replies()[2].enhanced, (EnhancedStatus{5, 7, 8}));
  EXPECT_FALSE(d.session.authenticated());
}

TEST(Auth, RequiredForMailOnSubmission) {  // RFC 6409 §4.3, RFC 4954 §6
  ServerConfig cfg = tls_config();
  cfg.auth_required = true;
  Driver d(cfg);
  d.feed(kEhlo + "MAIL FROM:<a@b.test>\r\nAUTH PLAIN AHUAcA==\r\nMAIL FROM:<a@b.test> AUTH=<>\r\n");
  EXPECT_EQ(d.codes(), (Codes{220, 250, 530, 235, 250}));
}

TEST(Auth, LongResponseLineAllowed) {  // RFC 4954 §4: 12288 octets
  Driver d(tls_config());
  const std::string pw(6000, 'p');
  d.feed(kEhlo + "AUTH PLAIN " + base64_encode(std::string("\0u\0", 3) + pw) + "\r\n");
  EXPECT_EQ(d.last_code(), 235);
}

TEST(Limits, CommandLineAt511_512_513) {  // §4.5.3.1.4: 512 including CRLF
  for (std::size_t total : {511u, 512u, 513u}) {
    const std::string line = "NOOP " + std::string(total - 7, 'x') + "\r\n";
    ASSERT_EQ(line.size(), total);
    Driver d = greeted();
    d.feed(line + "NOOP\r\n");
    EXPECT_EQ(d.new_codes(), (Codes{total <= 512 ? 250 : 500, 250})) << total;
  }
}

TEST(Limits, OverlongLineWithoutEndIsBounded) {
  Driver d = greeted();
  d.feed(std::string(100000, 'A'));
  EXPECT_EQ(d.new_codes(), Codes{500});
  d.feed("\r\nNOOP\r\n");
  EXPECT_EQ(d.new_codes(), Codes{250});
}

TEST(Limits, BareLfCommandRefusedUnlessLenient) {  // §2.3.8
  // Only CRLF ends a line: "NOOP<LF>NOOP<CRLF>" is one bad line, one reply -- never a second
  // command a front end that keeps the line whole would not have seen.
  EXPECT_EQ(dialog("NOOP\nNOOP\r\n"), (Codes{500}));
  EXPECT_EQ(dialog("NOOP\nRSET\nQUIT\r\nNOOP\r\n"), (Codes{500, 250}));
  EXPECT_EQ(dialog("NOOP\rNOOP\r\n"), (Codes{500}));
  ServerConfig cfg = test_config();
  cfg.lenient_command_lf = true;
  EXPECT_EQ(dialog("NOOP\nNOOP\r\n", cfg), (Codes{250, 250}));
}

TEST(Limits, ErrorLimitCloses) {
  ServerConfig cfg = test_config();
  cfg.limits.errors = 3;
  Driver d(cfg);
  d.feed("FOO\r\nBAR\r\nBAZ\r\nNOOP\r\n");
  EXPECT_EQ(d.codes(), (Codes{220, 500, 500, 421}));
  EXPECT_TRUE(d.session.closed());
}

TEST(Time, IdleTimeoutSends421) {  // §4.5.3.2.7
  Driver d;
  ASSERT_TRUE(d.session.deadline().has_value());
  EXPECT_EQ(*d.session.deadline(), Millis(5 * 60 * 1000));
  d.session.on_time(Millis(299'999));
  d.drain();
  EXPECT_FALSE(d.session.closed());
  d.session.on_time(Millis(300'000));
  d.drain();
  EXPECT_EQ(d.last_code(), 421);
  EXPECT_TRUE(d.session.closed());
  EXPECT_FALSE(d.session.deadline().has_value());
}

TEST(Time, ActivityMovesTheDeadlineAndPendingQuestionsStopIt) {
  Driver d;
  d.policy = nullptr;
  d.session.on_time(Millis(1000));
  d.session.receive("EHLO a.test\r\n");
  EXPECT_EQ(*d.session.deadline(), Millis(1000 + 300'000));
  d.session.receive("MAIL FROM:<a@b.test>\r\n");
  EXPECT_FALSE(d.session.deadline().has_value());
}

TEST(Shutdown, Sends421AndAbortsMessage) {  // §3.8
  Driver d;
  d.feed(kTx + "DATA\r\npartial");
  d.session.shutdown();
  d.drain();
  EXPECT_EQ(d.last_code(), 421);
  EXPECT_EQ(d.t.events[d.t.events.size() - 2], "aborted connection closed");
}

TEST(EnhancedCodes, CanBeTurnedOff) {  // RFC 2034: only when offered
  ServerConfig cfg = test_config();
  cfg.enhanced_status_codes = false;
  Driver d(cfg);
  d.feed("NOOP\r\n");
  EXPECT_EQ(d.t.output.substr(d.t.output.find("250")), "250 OK\r\n");
}

TEST(Trace, EveryTransitionIsReported) {
  Driver d;
  std::vector<std::string> seen;
  d.session.set_trace([&](State a, State b) { seen.push_back(std::string(state_name(a)) + ">" + std::string(state_name(b))); });
  d.feed(kTx + "DATA\r\n.\r\n");
  EXPECT_EQ(seen, (std::vector<std::string>{"initial>ready", "ready>mail", "mail>rcpt", "rcpt>data", "data>ready"}));
}

// ---- Regressions from review ----

TEST(Regression, FirstBdatChunkTooLargeEndsTheTransaction) {  // RFC 3030 §2, §4.1.1.2
  ServerConfig cfg = test_config();
  cfg.limits.message_size = 100;
  Driver d(cfg);
  d.feed(kEhlo + "MAIL FROM:<a@b.test>\r\nRCPT TO:<old@mx.test>\r\nBDAT 200\r\n" + std::string(200, 'x') +
         "MAIL FROM:<a@b.test>\r\nRCPT TO:<new@mx.test>\r\nBDAT 3 LAST\r\nabc");
  EXPECT_EQ(d.codes(), (Codes{220, 250, 250, 250, 552, 250, 250, 250}));
  ASSERT_EQ(d.t.messages.size(), 1u);
  // The stored envelope holds only the new recipient.
  EXPECT_EQ(std::count(d.t.events.begin(), d.t.events.end(), std::string("recipient <new@mx.test>")), 1);
  EXPECT_EQ(d.session.envelope().recipients.size(), 0u);  // reset after the message
}

TEST(Regression, MailStartsWithNoRecipients) {  // §4.1.1.2
  Driver d = greeted();
  d.policy = [](const Action& a) {
    if (std::holds_alternative<action::MessageComplete>(a)) {
      EXPECT_EQ(std::get<action::MessageComplete>(a).envelope.recipients.size(), 1u);
    }
    return Verdict::accept();
  };
  d.feed("MAIL FROM:<a@b.test>\r\nRCPT TO:<x@mx.test>\r\nRSET\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<y@mx.test>\r\nBDAT 0 LAST\r\n");
  EXPECT_EQ(d.last_code(), 250);
}

// The session tells the host about every command it refused itself, for the log (Postfix's
// NOQUEUE lines); refusals the host decided are the host's to log.
TEST(Host, SelfRefusedCommandsAreReportedWithTheirReply) {
  Driver d = greeted();
  d.feed("FROB x\r\nMAIL FROM:<a@b.test>\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@mx.test>\r\nDATA\r\n");
  d.feed("Subject: t\r\n\r\nbare\nlf\r\n.\r\n");
  EXPECT_EQ(d.t.refused, (std::vector<std::string>{"FROB 500", "MAIL 503", "DATA 554"}));
  // The abandoned message says why it was abandoned.
  EXPECT_EQ(d.t.events.back(), "aborted Bare CR or LF in message data");
}

TEST(Regression, BadSaslLineEndsTheExchange) {  // RFC 4954 §4: 500 5.5.6 too long, 501 5.5.2 undecodable
  Driver d(tls_config());
  d.feed(kEhlo + "AUTH PLAIN\r\n" + std::string(13000, 'A') + "\r\nNOOP\r\nAUTH LOGIN\r\nx\nNOOP\r\nNOOP\r\n");
  // "x<LF>NOOP" is one (bad) response line: only CRLF ends a line (§2.3.8).
  EXPECT_EQ(d.codes(), (Codes{220, 250, 334, 500, 250, 334, 501, 250}));
  EXPECT_EQ(d.replies()[3].enhanced, (EnhancedStatus{5, 5, 6}));
  EXPECT_EQ(d.replies()[6].enhanced, (EnhancedStatus{5, 5, 2}));
}

TEST(Regression, MailLineLongerWithOfferedExtensions) {  // §4.5.3.1.4, RFC 1870, 4954, 6531
  Driver d(tls_config());
  d.feed(kEhlo + "AUTH PLAIN AHUAcA==\r\n");
  const std::string path = "<" + std::string(64, 'l') + "@" + std::string(50, 'd') + "." + std::string(50, 'd') + ".test>";
  const std::string line = "MAIL FROM:" + path + " SIZE=100 SMTPUTF8 AUTH=" + std::string(400, 'x') + "\r\n";
  ASSERT_GT(line.size(), 512u);
  d.feed(line);
  EXPECT_EQ(d.last_code(), 250);
  ServerConfig plain = test_config();
  plain.auth_mechanisms.clear();
  Driver p(plain);  // without AUTH offered, the same line is too long
  p.feed(kEhlo + line);
  EXPECT_EQ(p.last_code(), 500);
}

TEST(Regression, SlowHostAnswerDoesNotTimeTheClientOut) {  // §4.5.3.2.7
  Driver d = greeted();
  d.policy = nullptr;
  d.session.receive("MAIL FROM:<a@b.test>\r\n");
  d.drain();
  d.session.answer(Verdict::accept(), Millis(400'000));  // the host took 400 s
  d.drain();
  d.session.on_time(Millis(400'001));
  d.drain();
  EXPECT_FALSE(d.session.closed());
  EXPECT_EQ(*d.session.deadline(), Millis(400'000 + 300'000));
}

TEST(Regression, BdatAfterRefusedGreetingIsSwallowed) {  // §3.1, RFC 3030 §2
  ServerConfig cfg = test_config();
  cfg.refuse = make_reply(554, std::nullopt, "no service");
  EXPECT_EQ(dialog("BDAT 6\r\nQUIT\r\nNOOP\r\n", cfg), (Codes{503, 503}));
}

TEST(Regression, HostReply421Closes) {  // §3.8
  Driver d = greeted();
  d.policy = [](const Action&) { return Verdict::reject(make_reply(421, 4, 3, 0, "shutting down")); };
  d.feed("MAIL FROM:<a@b.test>\r\nNOOP\r\n");
  EXPECT_EQ(d.new_codes(), Codes{421});
  EXPECT_TRUE(d.session.closed());
}

TEST(Regression, StarttlsNotAfterHelo) {  // RFC 3207 §4
  EXPECT_EQ(dialog("HELO client.test\r\nSTARTTLS\r\n"), (Codes{250, 502}));
}

TEST(Regression, TwentyDigitSizeIs552) {  // RFC 1870: size-value = 1*20DIGIT
  EXPECT_EQ(dialog(kEhlo + "MAIL FROM:<a@b.test> SIZE=99999999999999999999\r\n"), (Codes{250, 552}));
}
