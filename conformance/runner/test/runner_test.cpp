// The runner judging a real (tiny) server: the sink is an SMTP receiver, so it serves both as a
// target and as the delivery store. These tests show the delivery checks, SPLIT:, BDAT:,
// CLOSE and the AUTH helpers can fail as well as pass.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "refsmtp/conform/delivery.hpp"
#include "refsmtp/conform/runner.hpp"

using namespace refsmtp::conform;
namespace fs = std::filesystem;

namespace {

Script parse(const std::string& text) {
  ParseError error;
  auto s = parse_script(text, "t.smtp", error);
  EXPECT_TRUE(s) << error.message;
  return s ? *s : Script{};
}

const std::string head = "# case: t\n# rfc: RFC 5321 §4.5.2\n# level: MUST\n# quote: A test MUST hold.\n# title: t\n";
const std::string transaction =
    "S: 220\nC: EHLO client.test\nS: 250\nC: MAIL FROM:<a@client.test>\nS: 250\nC: RCPT TO:<b@sink.test>\nS: 250\n";

struct SinkTarget : ::testing::Test {
  SinkServer sink;
  Target target;
  void SetUp() override {
    std::string error;
    ASSERT_TRUE(sink.start("127.0.0.1", 0, error)) << error;
    target.host = "127.0.0.1";
    target.port = sink.port();
    target.step_timeout = std::chrono::milliseconds(3000);
    target.settle = std::chrono::milliseconds(50);
    target.delivery = &sink;
    target.profile = default_profile();
  }
};

}  // namespace

TEST(Delivery, BodyAndNewlines) {
  EXPECT_EQ(message_body("Subject: x\r\nTo: y\r\n\r\nbody\r\n"), "body\r\n");
  EXPECT_EQ(message_body("Subject: x\n\nbody\n"), "body\n");
  EXPECT_EQ(message_body("Subject: x\r\n"), "");
  EXPECT_EQ(normalize_newlines("a\r\nb\rc\n"), "a\nb\rc\n");  // a bare CR stays
}

TEST(Delivery, MaildirStoreReadsOnlyNewAndCurBelowTheRoot) {
  const fs::path root = fs::temp_directory_path() / ("conform-maildir-" + std::to_string(std::random_device{}()));
  for (const char* d : {"a/Maildir/new", "a/Maildir/cur", "a/Maildir/tmp", "b/deep/Maildir/new"}) fs::create_directories(root / d);
  auto put = [&](const char* path, const std::string& text) { std::ofstream(root / path, std::ios::binary) << text; };
  put("a/Maildir/new/1", "Subject: tok-1\r\n\r\none\r\n");
  put("a/Maildir/cur/2:2,S", "Subject: tok-1\r\n\r\ntwo\r\n");
  put("a/Maildir/tmp/3", "Subject: tok-1\r\n\r\nnot yet delivered\r\n");
  put("b/deep/Maildir/new/4", "Subject: tok-1\r\n\r\nfour\r\n");
  put("b/deep/Maildir/new/5", "Subject: other\r\n\r\nfive\r\n");
  MaildirStore store(root.string());
  EXPECT_EQ(store.find("tok-1").size(), 3u);
  EXPECT_EQ(store.find("other").size(), 1u);
  EXPECT_TRUE(store.find("absent").empty());
  fs::remove_all(root);
}

TEST_F(SinkTarget, DeliveredAndBodyPassOnTheRightMessage) {
  const auto r = run_case(parse(head + transaction +
                                "C: DATA\nS: 354\nC: Subject: ${token}\nC:\nC: ..dot\nC: .\nS: 250\nC: QUIT\nS: 221\n"
                                "!DELIVERED: 1\n!BODY: .dot\\r\\n\n"),
                          target);
  EXPECT_EQ(r.outcome, Outcome::pass) << r.reason << "\n" << r.transcript;
  EXPECT_EQ(sink.received(), 1u);
}

TEST_F(SinkTarget, BodyMismatchFailsAndSaysWhere) {
  const auto r = run_case(parse(head + transaction + "C: DATA\nS: 354\nC: Subject: ${token}\nC:\nC: hello\nC: .\nS: 250\n!BODY: help\\r\\n\n"),
                          target);
  EXPECT_EQ(r.outcome, Outcome::fail);
  EXPECT_NE(r.reason.find("differs at octet 3"), std::string::npos) << r.reason;
}

TEST_F(SinkTarget, WrongCountFails) {
  const auto r = run_case(parse(head + transaction + "C: DATA\nS: 354\nC: Subject: ${token}\nC:\nC: x\nC: .\nS: 250\n!DELIVERED: 2\n"), target);
  EXPECT_EQ(r.outcome, Outcome::fail);
  EXPECT_NE(r.reason.find("expected 2 delivered message(s) with the case's token, found 1"), std::string::npos) << r.reason;
}

TEST(Delivery, MaildirStorePerRecipientByFolderName) {
  const fs::path root = fs::temp_directory_path() / ("conform-maildir-rcpt-" + std::to_string(std::random_device{}()));
  for (const char* d : {"alice/Maildir/new", "Bob/Maildir/cur"}) fs::create_directories(root / d);
  std::ofstream(root / "alice/Maildir/new/1", std::ios::binary) << "Subject: tok-2\r\n\r\nfor alice\r\n";
  std::ofstream(root / "Bob/Maildir/cur/2:2,", std::ios::binary) << "Subject: tok-2\r\n\r\nfor bob\r\n";
  MaildirStore store(root.string());
  std::string why;
  auto a = store.find_for("tok-2", "alice@example.test", why);
  ASSERT_TRUE(a);
  ASSERT_EQ(a->size(), 1u);
  EXPECT_NE(a->front().find("for alice"), std::string::npos);
  auto b = store.find_for("tok-2", "bob@example.test", why);  // folder names compare in any case
  ASSERT_TRUE(b);
  EXPECT_EQ(b->size(), 1u);
  // Mailboxes are told apart here, so carol's missing Maildir means nothing reached her.
  auto c = store.find_for("tok-2", "carol@example.test", why);
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->empty());
  fs::remove_all(root);
  // One Maildir for everybody (as scripts/peers sets up) tells nothing about recipients.
  fs::create_directories(root / "example.test/new");
  std::ofstream(root / "example.test/new/1", std::ios::binary) << "Subject: tok-3\r\n\r\nfor all\r\n";
  EXPECT_FALSE(store.find_for("tok-3", "alice@example.test", why));
  EXPECT_NE(why.find("alice@example.test"), std::string::npos) << why;
  fs::remove_all(root);
}

TEST_F(SinkTarget, DeliveredToUsesTheEnvelopeRecipientsTheSinkSaw) {
  const std::string body = transaction + "C: DATA\nS: 354\nC: Subject: ${token}\nC:\nC: x\nC: .\nS: 250\n";
  EXPECT_EQ(run_case(parse(head + body + "!DELIVERED TO b@SINK.test: 1\n!DELIVERED TO c@sink.test: 0\n"), target).outcome, Outcome::pass);
  const auto r = run_case(parse(head + body + "!DELIVERED TO c@sink.test: 1\n"), target);
  EXPECT_EQ(r.outcome, Outcome::fail);
  EXPECT_NE(r.reason.find("for c@sink.test, found 0"), std::string::npos) << r.reason;
}

// relay-not-performed against a server that relays: the sink stands for both the server under
// test and the next hop, so the message it takes for the foreign address "left" for it.
TEST_F(SinkTarget, TheRelayCaseFailsAServerThatRelays) {
  std::ifstream in(std::string(REFSMTP_SUITES_DIR) + "/rfc5321/relay-not-performed.smtp");
  const Script relay = parse(std::string(std::istreambuf_iterator<char>(in), {}));
  target.profile["deliver_rcpt"] = "b@sink.test";
  target.profile["remote"] = "someone@remote.test";
  EXPECT_EQ(run_case(relay, target).outcome, Outcome::skip);  // no remote_via_sink: nothing to judge by
  target.profile["remote_via_sink"] = "yes";
  const auto r = run_case(relay, target);
  EXPECT_EQ(r.outcome, Outcome::fail) << r.transcript;
  EXPECT_NE(r.reason.find("for someone@remote.test, found 1"), std::string::npos) << r.reason;
}

TEST_F(SinkTarget, AtLeastCounts) {
  const std::string body = transaction + "C: DATA\nS: 354\nC: Subject: ${token}\nC:\nC: x\nC: .\nS: 250\n";
  EXPECT_EQ(run_case(parse(head + body + "!DELIVERED: 1+\n"), target).outcome, Outcome::pass);
  const auto r = run_case(parse(head + body + "!DELIVERED: 2+\n"), target);
  EXPECT_EQ(r.outcome, Outcome::fail);
  EXPECT_NE(r.reason.find("expected at least 2 delivered message(s)"), std::string::npos) << r.reason;
}

TEST_F(SinkTarget, ASmuggledSecondMessageIsCounted) {
  // The sink, like lenient receivers, ends data at LF.LF: the smuggled message is a second one.
  const auto r = run_case(parse(head + transaction +
                                "C: DATA\nS: 354\nRAW: Subject: ${token}\\r\\n\\r\\nfirst\\n.\\nMAIL FROM:<a@client.test>\\r\\n"
                                "RCPT TO:<b@sink.test>\\r\\nDATA\\r\\nSubject: ${token} smuggled\\r\\n\\r\\nx\\r\\n.\\r\\n\n"
                                "S: 250\nS: 250\nS: 250\nS: 354\nS: 250\n!DELIVERED: 1\n"),
                          target);
  EXPECT_EQ(r.outcome, Outcome::fail) << r.transcript;
  EXPECT_NE(r.reason.find("found 2 (a smuggled or duplicated message?)"), std::string::npos) << r.reason;
}

TEST_F(SinkTarget, ClosingInTheMiddleOfDataDeliversNothing) {
  const auto r = run_case(parse(head + transaction + "C: DATA\nS: 354\nRAW: Subject: ${token}\\r\\n\\r\\nhalf\\r\\n\nCLOSE\n!DELIVERED: 0\n"),
                          target);
  EXPECT_EQ(r.outcome, Outcome::pass) << r.reason;
  EXPECT_EQ(sink.received(), 0u);
}

TEST_F(SinkTarget, SplitWritesArriveWhole) {
  const auto r = run_case(parse(head + "S: 220\nC: EHLO client.test\nSPLIT: 2\nS: 250\nC: MAIL FROM:<a@client.test>\nC: RCPT TO:<b@sink.test>\n"
                                       "SPLIT: 1\nS: 250\nS: 250\nC: DATA\nS: 354\nRAW: Subject: ${token}\\r\\n\\r\\nab\\r\\n.\\r\\n\nSPLIT: 3\n"
                                       "S: 250\n!BODY: ab\\r\\n\n"),
                          target);
  EXPECT_EQ(r.outcome, Outcome::pass) << r.reason << "\n" << r.transcript;
  EXPECT_NE(r.transcript.find("in writes of 1"), std::string::npos);
}

TEST_F(SinkTarget, AuthHelpersAreComputedFromTheProfile) {
  target.profile["user"] = "conform";
  target.profile["password"] = "pw";
  const auto r = run_case(parse(head + "S: 220\nC: NOOP ${auth_plain} ${user_b64}\n!S: 250\n"), target);
  EXPECT_EQ(r.outcome, Outcome::pass) << r.reason;
  EXPECT_NE(r.transcript.find("C: NOOP AGNvbmZvcm0AcHc= Y29uZm9ybQ=="), std::string::npos) << r.transcript;
  EXPECT_EQ(r.sent.substr(0, 5), "NOOP ");
}

TEST_F(SinkTarget, DeliveryCasesSkipWithoutAStoreUnlessOptional) {
  target.delivery = nullptr;
  const std::string body = transaction + "C: DATA\nS: 354\nC: Subject: ${token}\nC:\nC: x\nC: .\nS: 250\n!DELIVERED: 1\n";
  auto r = run_case(parse(head + body), target);
  EXPECT_EQ(r.outcome, Outcome::skip);
  EXPECT_NE(r.reason.find("--maildir"), std::string::npos);
  r = run_case(parse(head + "# delivery: optional\n" + body), target);
  EXPECT_EQ(r.outcome, Outcome::pass) << r.reason;
  EXPECT_NE(r.transcript.find("delivery check not made"), std::string::npos);
}

TEST_F(SinkTarget, PortsThatAreNotGivenSkip) {
  auto r = run_case(parse(head + "# port: submission\n!S: 220\n"), target);
  EXPECT_EQ(r.outcome, Outcome::skip);
  EXPECT_NE(r.reason.find("--submission"), std::string::npos);
  target.submission = {"127.0.0.1", sink.port()};
  r = run_case(parse(head + "# port: submission\nS: 220\nC: QUIT\n!S: 221\n"), target);
  EXPECT_EQ(r.outcome, Outcome::pass) << r.reason;
}

TEST_F(SinkTarget, BdatStepComputesTheSize) {
  // The sink does not offer CHUNKING: it answers 502, and the case sees what it sent.
  const auto r = run_case(parse(head + "S: 220\nBDAT LAST: ${token}\\r\\n\n!S: 502\n"), target);
  EXPECT_EQ(r.outcome, Outcome::pass) << r.reason << r.transcript;
  const std::string token_line = r.sent.substr(r.sent.find("\r\n") + 2);
  EXPECT_EQ(r.sent.substr(0, r.sent.find("\r\n")), "BDAT " + std::to_string(token_line.size()) + " LAST");
}

TEST(Endpoint, Parsing) {
  Endpoint e;
  std::string error;
  EXPECT_TRUE(parse_endpoint("[::1]:2525", e, error));
  EXPECT_EQ(e.host, "::1");
  EXPECT_EQ(e.port, 2525);
  EXPECT_FALSE(parse_endpoint("localhost", e, error));
  EXPECT_FALSE(parse_endpoint("host:99999", e, error));
  EXPECT_FALSE(parse_endpoint("host:25x", e, error));
}

// The JUnit report validates against the schema (conformance/schema/junit.xsd) with every
// outcome and hostile text in it: markup, control characters and octets that are not UTF-8.
TEST(Report, JunitValidatesAgainstTheSchema) {
  Script a = parse(head + "!S: 220\n"), b = a, c = a, d = a, e = a, f = a;
  b.name = "b";
  c.name = "c";
  d.name = "d";
  d.rfc = "RFC 3207 §4";
  e.name = "e";
  e.level = Level::note;
  f.name = "f";
  std::vector<CaseResult> results(6);
  results[0].script = &a;
  results[1] = {&b, Outcome::fail, "expected 250, got: 554 <bad> & \"worse\" \x01\xff\xc3", "S: 554 \xe9t\xe9 \xc3\xa9\n", "", 0.5};
  results[2] = {&c, Outcome::skip, "not advertised: CHUNKING", "", "", 0};
  results[3] = {&d, Outcome::error, "connect: refused", "C: EHLO x\n\x1b[0m", "", 0.1};
  results[4] = {&e, Outcome::deviation, "accepted MAIL FROM:a@b", "C: MAIL FROM:a@b\nS: 250\n", "", 0.1};
  results[5] = {&f, Outcome::inconclusive, "setup: RCPT refused", "S: 550\n", "", 0.1};
  Target target;
  const std::string report_text = report(results, "junit", target);
  const fs::path dir = fs::temp_directory_path() / ("conform-junit-" + std::to_string(std::random_device{}()));
  fs::create_directories(dir);
  std::ofstream(dir / "report.xml") << report_text;
  const std::string schema = REFSMTP_SCHEMA_DIR "/junit.xsd";
  const std::string validate = "xmllint --noout --schema " + schema + " ";
  EXPECT_EQ(std::system((validate + (dir / "report.xml").string() + " 2>" + (dir / "err").string()).c_str()), 0)
      << report_text;
  EXPECT_NE(report_text.find("tests=\"6\" failures=\"1\" errors=\"1\" skipped=\"2\""), std::string::npos) << report_text;
  EXPECT_NE(report_text.find("S: 554 ?t? \xc3\xa9"), std::string::npos) << "bad octets replaced, valid UTF-8 kept";
  // The check can fail: a testcase with two outcomes is not JUnit.
  std::string broken = report_text;
  broken.replace(broken.find("<skipped "), 0, "<error message=\"x\"/>");
  std::ofstream(dir / "broken.xml") << broken;
  EXPECT_NE(std::system((validate + (dir / "broken.xml").string() + " 2>" + (dir / "err").string()).c_str()), 0);
  fs::remove_all(dir);
}

TEST_F(SinkTarget, TimeoutStepShortensTheWaitForAReply) {
  target.step_timeout = std::chrono::milliseconds(30000);
  // The sink sends nothing after its greeting unless asked: the S: below can only time out.
  const auto r = run_case(parse(head + "S: 220\nTIMEOUT: 200\n!S: 250\n"), target);
  EXPECT_EQ(r.outcome, Outcome::fail);
  // The case's own timeout applied, not the runner's 30 s (the reason names the one used).
  EXPECT_NE(r.reason.find("no reply within the step timeout (200 ms)"), std::string::npos) << r.reason;
}
