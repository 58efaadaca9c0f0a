// Verdicts against scripted receivers, without sockets: run_case reaches a small in-process SMTP
// receiver through the Transport interface. Each oracle is shown on a server that has the
// property and on one that lacks it, and setup that goes wrong is inconclusive, never a failure.
#include <gtest/gtest.h>

#include <deque>
#include <fstream>
#include <sstream>

#include "refsmtp/conform/runner.hpp"

using namespace refsmtp::conform;

namespace {

// How the scripted receiver behaves; the defaults are a strict, correct server.
struct Behaviour {
  bool lf_ends_data = false;       // LF.LF ends DATA (the CVE-2023-51764 smuggling leniency)
  bool refuse_bare_lf = false;     // a bare LF in DATA: 500 and close (the safest answer)
  bool lf_ends_command = false;    // a bare LF ends a command line
  bool accept_all = false;         // every recipient is taken, unknown ones too
  bool nested_mail_250 = false;    // a second MAIL in a transaction is answered 250
  bool close_421_on_rcpt = false;  // every RCPT is answered 421, then the connection closes
  std::string auth = "PLAIN LOGIN";
  std::size_t size_limit = 0;      // announced with SIZE and enforced after the data (0: none)
  bool stop_reading_at_limit = false;  // refuses at the limit and takes the rest for commands
  bool store_oversized = false;    // refuses an oversized message with 552 but delivers it anyway
  bool first_recipient_only = false;  // delivers each message to its first recipient only
  bool one_store_for_all = false;  // cannot tell recipients apart
  bool mail_needs_auth = false;    // MAIL before a successful AUTH: 530 (a submission server)
  bool auth_param_authenticates = false;  // MAIL ... AUTH=<mailbox> counts as having logged in
  std::string received = "Received: from client by scripted; today\r\n";  // trace field added
};

class Receiver : public DeliveryStore {
 public:
  explicit Receiver(Behaviour b) : b_(std::move(b)) {}
  std::vector<std::string> find(const std::string& token) override {
    std::vector<std::string> out;
    for (const auto& m : messages) {
      if (m.find(token) != std::string::npos) out.push_back(m);
    }
    return out;
  }
  std::optional<std::vector<std::string>> find_for(const std::string& token, const std::string& address, std::string& why) override {
    if (b_.one_store_for_all) {
      why = "one mailbox for every recipient";
      return std::nullopt;
    }
    std::vector<std::string> out;
    for (std::size_t i = 0; i < messages.size(); ++i) {
      if (messages[i].find(token) != std::string::npos && std::count(recipients_of[i].begin(), recipients_of[i].end(), address)) {
        out.push_back(messages[i]);
      }
    }
    return out;
  }
  std::string describe() const override { return "scripted receiver"; }

  void connect() {
    buf_.clear();
    out_.clear();
    closed_ = in_data_ = in_mail_ = authenticated_ = trusted_mail_ = false;
    auth_step_ = 0;
    reply("220 scripted.test ESMTP");
  }
  void receive(std::string_view bytes) {
    if (closed_) return;
    buf_ += bytes;
    while (!closed_) {
      if (in_data_) {
        if (!data_step()) return;
        continue;
      }
      const std::size_t lf = buf_.find('\n');
      if (lf == std::string::npos) return;
      const bool crlf = lf > 0 && buf_[lf - 1] == '\r';
      if (!crlf && !b_.lf_ends_command) {
        reply("500 5.5.2 bare LF in a command");
        closed_ = true;
        return;
      }
      const std::string line = buf_.substr(0, crlf ? lf - 1 : lf);
      buf_.erase(0, lf + 1);
      command(line);
    }
  }
  ReadResult read() {
    ReadResult r;
    if (out_.empty()) {
      (closed_ ? r.closed : r.timed_out) = true;
      return r;
    }
    r.lines = out_.front();
    out_.pop_front();
    return r;
  }

  std::vector<std::string> messages;
  std::vector<std::vector<std::string>> recipients_of;  // per message

 private:
  void reply(const std::string& lines) {
    std::vector<std::string> r;
    std::size_t pos = 0;
    while (pos <= lines.size()) {
      const std::size_t nl = lines.find('\n', pos);
      r.push_back(lines.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos));
      if (nl == std::string::npos) break;
      pos = nl + 1;
    }
    out_.push_back(r);
  }
  void command(const std::string& line) {
    std::string verb = line.substr(0, line.find(' '));
    for (auto& c : verb) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (auth_step_ == 1) {  // AUTH LOGIN: the user name
      auth_step_ = 2;
      return reply("334 UGFzc3dvcmQ6");
    }
    if (auth_step_ == 2) {
      auth_step_ = 0;
      authenticated_ = line == "Y29uZm9ybS1wYXNzd29yZA==";
      return reply(authenticated_ ? "235 2.7.0 ok" : "535 5.7.8 no");
    }
    if (verb == "EHLO") {
      return reply("250-scripted.test\n250-PIPELINING\n" + (b_.size_limit ? "250-SIZE " + std::to_string(b_.size_limit) + "\n" : "") +
                   "250-AUTH " + b_.auth + "\n250 8BITMIME");
    }
    if (verb == "NOOP" || verb == "RSET") {
      if (verb == "RSET") in_mail_ = false;
      return reply("250 2.0.0 ok");
    }
    if (verb == "STARTTLS") return reply("220 2.0.0 go ahead (the scripted transport's TLS is a no-op)");
    if (verb == "QUIT") {
      reply("221 2.0.0 bye");
      closed_ = true;
      return;
    }
    if (verb == "AUTH") {
      if (line.starts_with("AUTH PLAIN ")) {
        if (b_.auth.find("PLAIN") == std::string::npos) return reply("504 5.5.4 not offered");
        // base64 of NUL conform NUL conform-password
        authenticated_ = line.substr(11) == "AGNvbmZvcm0AY29uZm9ybS1wYXNzd29yZA==";
        return reply(authenticated_ ? "235 2.7.0 ok" : "535 5.7.8 no");
      }
      if (line == "AUTH LOGIN") {
        auth_step_ = 1;
        return reply("334 VXNlcm5hbWU6");
      }
      return reply("504 5.5.4 no such mechanism");
    }
    if (verb == "MAIL") {
      if (in_mail_ && !b_.nested_mail_250) return reply("503 5.5.1 nested MAIL");
      const std::size_t auth_param = line.find(" AUTH=");
      trusted_mail_ = authenticated_ ||
                      (b_.auth_param_authenticates && auth_param != std::string::npos && line.compare(auth_param, 8, " AUTH=<>") != 0);
      if (b_.mail_needs_auth && !trusted_mail_) return reply("530 5.7.0 authentication required");
      in_mail_ = true;
      rcpts_ = 0;
      rcpt_list_.clear();
      return reply("250 2.1.0 ok");
    }
    if (verb == "RCPT") {
      if (b_.close_421_on_rcpt) {
        reply("421 4.3.2 shutting down");
        closed_ = true;
        return;
      }
      if (!in_mail_) return reply("503 5.5.1 MAIL first");
      if (!b_.accept_all && !trusted_mail_ && line.find("unknown") != std::string::npos) return reply("550 5.1.1 no such user");
      ++rcpts_;
      if (line.find('<') != std::string::npos) {
        rcpt_list_.push_back(line.substr(line.find('<') + 1, line.find('>') - line.find('<') - 1));
      }
      return reply("250 2.1.5 ok");
    }
    if (verb == "DATA") {
      if (!rcpts_) return reply("503 5.5.1 RCPT first");
      in_data_ = true;
      message_.clear();
      return reply("354 go ahead");
    }
    reply("500 5.5.2 unknown command");
  }
  // Takes one line of data; false when more octets are needed.
  bool data_step() {
    const std::size_t lf = buf_.find('\n');
    if (lf == std::string::npos) return false;
    const bool crlf = lf > 0 && buf_[lf - 1] == '\r';
    if (!crlf && b_.refuse_bare_lf) {
      reply("500 5.5.2 bare LF in data");
      closed_ = true;
      return false;
    }
    std::string line = buf_.substr(0, crlf ? lf - 1 : lf);
    buf_.erase(0, lf + 1);
    if (line == "." && (crlf || b_.lf_ends_data)) {
      in_data_ = in_mail_ = false;
      if (b_.size_limit && message_.size() > b_.size_limit) {
        if (b_.store_oversized) {
          messages.push_back(b_.received + message_);
          recipients_of.push_back(rcpt_list_);
        }
        reply("552 5.3.4 message too big");
        return true;
      }
      messages.push_back(b_.received + message_);
      if (b_.first_recipient_only && rcpt_list_.size() > 1) rcpt_list_.resize(1);
      recipients_of.push_back(rcpt_list_);
      reply("250 2.0.0 queued");
      return true;
    }
    if (b_.size_limit && b_.stop_reading_at_limit && message_.size() > b_.size_limit) {
      in_data_ = in_mail_ = false;  // the rest of the data will be read as commands
      reply("552 5.3.4 message too big");
      return true;
    }
    if (line.starts_with(".")) line.erase(0, 1);
    message_ += line + "\r\n";
    return true;
  }

  Behaviour b_;
  std::string buf_, message_;
  std::deque<std::vector<std::string>> out_;
  std::vector<std::string> rcpt_list_;
  bool closed_ = false, in_data_ = false, in_mail_ = false;
  bool authenticated_ = false, trusted_mail_ = false;  // trusted_mail_: this MAIL may relay
  int rcpts_ = 0, auth_step_ = 0;
};

class ScriptedTransport : public Transport {
 public:
  explicit ScriptedTransport(Receiver& r) : r_(r) { r_.connect(); }
  bool send(std::string_view data) override {
    r_.receive(data);
    return true;
  }
  ReadResult read_reply(std::chrono::milliseconds) override { return r_.read(); }
  bool start_tls(std::string&) override { return true; }  // nothing to encrypt in process
  void close() override {}

 private:
  Receiver& r_;
};

Script parse(const std::string& text) {
  ParseError error;
  auto s = parse_script(text, "t.smtp", error);
  EXPECT_TRUE(s) << error.message;
  return s ? *s : Script{};
}

// A target that is `receiver`, reached without sockets; the receiver is its delivery store too.
Target scripted_target(Receiver& receiver) {
  Target target;
  target.profile = default_profile();
  target.profile["deliver_rcpt"] = target.profile["rcpt"];
  target.delivery = &receiver;
  target.settle = std::chrono::milliseconds(0);
  target.step_timeout = std::chrono::milliseconds(50);
  target.connector = [&receiver](const std::string&, std::uint16_t, std::chrono::milliseconds, std::string&) {
    return std::make_unique<ScriptedTransport>(receiver);
  };
  return target;
}

// A case from conformance/suites, as the runner reads it.
Script suite_case(const std::string& path) {
  std::ifstream in(std::string(REFSMTP_SUITES_DIR) + "/" + path);
  std::stringstream text;
  text << in.rdbuf();
  return parse(text.str());
}

CaseResult run(const std::string& script, Behaviour b) {
  static std::deque<Script> keep;  // results point at their scripts (a deque never moves them)
  Receiver receiver(std::move(b));
  keep.push_back(parse(script));
  return run_case(keep.back(), scripted_target(receiver));
}

const std::string must = "# case: t\n# rfc: RFC 5321 §4.1.1.4\n# level: MUST\n# quote: The server MUST hold.\n# title: t\n";
const std::string note = "# case: t\n# rfc: RFC 5321 §4.1.2\n# level: NOTE\n# quote: Mail-parameters = esmtp-param\n# title: t\n";
const std::string transaction = "S: 220\nC: EHLO client.test\nS: 250\nC: MAIL FROM:<${sender}>\nS: 250\nC: RCPT TO:<${deliver_rcpt}>\nS: 250|251\n";

// The smuggling case as the suites write it: the property is that no smuggled DATA runs (no 354
// after the payload) and at most one message arrives.
const std::string smuggling = must + transaction +
                              "C: DATA\nS: 354\n"
                              "RAW: Subject: ${token}\\r\\n\\r\\nfirst\\n.\\nMAIL FROM:<${sender}>\\r\\nRCPT TO:<${deliver_rcpt}>\\r\\n"
                              "DATA\\r\\nSubject: ${token} smuggled\\r\\n\\r\\nsmuggled\\r\\n.\\r\\n\n"
                              "!S*: 2xx|4xx|5xx\n!DELIVERED: 0|1\nC: QUIT\nS: 221|closed\n";

}  // namespace

TEST(Oracle, SmugglingFailsOnlyTheServerThatRunsTheSmuggledTransaction) {
  Behaviour vulnerable;
  vulnerable.lf_ends_data = true;
  auto r = run(smuggling, vulnerable);
  EXPECT_EQ(r.outcome, Outcome::fail) << r.transcript;
  EXPECT_NE(r.reason.find("got: 354"), std::string::npos) << r.reason;

  Behaviour refusing;  // 500 and close at the bare LF: the safest answer, and a pass
  refusing.refuse_bare_lf = true;
  r = run(smuggling, refusing);
  EXPECT_EQ(r.outcome, Outcome::pass) << r.reason << "\n" << r.transcript;

  r = run(smuggling, Behaviour{});  // takes the bare LF as data: one message, a pass
  EXPECT_EQ(r.outcome, Outcome::pass) << r.reason << "\n" << r.transcript;
}

TEST(Oracle, DeliveryCountCatchesTheSecondMessageEvenWithoutTheReplyCheck) {
  Behaviour vulnerable;
  vulnerable.lf_ends_data = true;
  std::string only_delivery = smuggling;
  only_delivery.replace(only_delivery.find("!S*: 2xx|4xx|5xx"), 16, "S*: 2xx|3xx|4xx|5xx");
  const auto r = run(only_delivery, vulnerable);
  EXPECT_EQ(r.outcome, Outcome::fail) << r.transcript;
  EXPECT_NE(r.reason.find("found 2"), std::string::npos) << r.reason;
}

TEST(Oracle, BareLfInACommandLine) {
  // One reply (or a refusal and close) passes; a server that runs two NOOPs gives two replies.
  const std::string two_replies = must + "S: 220\nRAW: NOOP\\nNOOP\\r\\n\nS: 250|500|501\n!S: none 100\n";
  auto r = run(two_replies, Behaviour{});
  EXPECT_EQ(r.outcome, Outcome::pass) << r.reason << r.transcript;  // refused and closed: "none" holds
  Behaviour lenient;
  lenient.lf_ends_command = true;
  r = run(two_replies, lenient);
  EXPECT_EQ(r.outcome, Outcome::fail) << r.transcript;
  EXPECT_NE(r.reason.find("expected no reply"), std::string::npos) << r.reason;
}

TEST(Verdict, SetupThatGoesWrongIsInconclusiveNotAFailure) {
  // The recipient is refused, so DATA never runs: the rule under test was not exercised.
  const std::string c = must + "S: 220\nC: EHLO c\nS: 250\nC: MAIL FROM:<a@b>\nS: 250\nC: RCPT TO:<unknown@x>\nS: 250|251\nC: DATA\n!S: 354\n";
  const auto r = run(c, Behaviour{});
  EXPECT_EQ(r.outcome, Outcome::inconclusive);
  EXPECT_NE(r.reason.find("setup did not go as the case needs"), std::string::npos) << r.reason;
  EXPECT_NE(r.reason.find("550"), std::string::npos) << r.reason;
  // The same case with the refusal where the rule is asserted fails.
  const std::string asserted = must + "S: 220\nC: EHLO c\nS: 250\nC: MAIL FROM:<a@b>\nS: 250\nC: RCPT TO:<unknown@x>\n!S: 250|251\n";
  EXPECT_EQ(run(asserted, Behaviour{}).outcome, Outcome::fail);
}

TEST(Verdict, A421CloseIsReportedAsSuch) {
  Behaviour b;
  b.close_421_on_rcpt = true;
  auto r = run(must + transaction + "C: DATA\n!S: 354\n", b);
  EXPECT_EQ(r.outcome, Outcome::inconclusive);
  EXPECT_NE(r.reason.find("ended the session with 421"), std::string::npos) << r.reason;
  // Also at an asserting step: a server shutting down has not broken the rule.
  r = run(must + "S: 220\nC: EHLO c\nS: 250\nC: MAIL FROM:<a@b>\nS: 250\nC: RCPT TO:<x@y>\n!S: 550\n", b);
  EXPECT_EQ(r.outcome, Outcome::inconclusive) << r.reason;
  // Unless the step allows it.
  r = run(must + "S: 220\nC: EHLO c\nS: 250\nC: MAIL FROM:<a@b>\nS: 250\nC: RCPT TO:<x@y>\n!S: 4xx\n", b);
  EXPECT_EQ(r.outcome, Outcome::pass) << r.reason;
}

TEST(Verdict, ANoteCaseThatDoesNotHoldIsADeviationNotAFailure) {
  Behaviour b;
  b.nested_mail_250 = true;
  const std::string c = "S: 220\nC: EHLO c\nS: 250\nC: MAIL FROM:<a@b>\nS: 250\nC: MAIL FROM:<a@b>\n!S: 503\n";
  EXPECT_EQ(run(note + c, b).outcome, Outcome::deviation);
  EXPECT_EQ(run(must + c, b).outcome, Outcome::fail);
  EXPECT_EQ(run(note + c, Behaviour{}).outcome, Outcome::pass);
}

TEST(Verdict, UnderStartTlsTheGreetingReadFirstIsJudgedByTheCase) {
  Receiver receiver(Behaviour{});
  Target target = scripted_target(receiver);
  target.tls = TlsMode::starttls;
  const Script names_server = parse(must + "!S: 220 /^scripted\\.test /\nC: EHLO c\nS: 250\n");
  auto r = run_case(names_server, target);
  EXPECT_EQ(r.outcome, Outcome::pass) << r.reason << r.transcript;
  const Script wrong_name = parse(must + "!S: 220 /^other\\.test /\nC: EHLO c\nS: 250\n");
  r = run_case(wrong_name, target);
  EXPECT_EQ(r.outcome, Outcome::fail) << r.transcript;
  EXPECT_NE(r.reason.find("does not match"), std::string::npos) << r.reason;
}

TEST(Verdict, TeardownAfterTheLastAssertionIsOnlyNoted) {
  // QUIT expects 250 here (wrong), but it comes after the asserted step: the case passes.
  const auto r = run(must + "S: 220\nC: EHLO c\n!S: 250\nC: QUIT\nS: 250\n", Behaviour{});
  EXPECT_EQ(r.outcome, Outcome::pass) << r.reason;
  EXPECT_NE(r.transcript.find("teardown did not go as written"), std::string::npos) << r.transcript;
}

TEST(Verdict, ReplyOrClosedAlternative) {
  EXPECT_EQ(run(must + "S: 220\nC: QUIT\nS: 221\n!S: 250|closed\n", Behaviour{}).outcome, Outcome::pass);
  EXPECT_EQ(run(must + "S: 220\nC: NOOP\n!S: 221|closed\n", Behaviour{}).outcome, Outcome::fail);
}

TEST(Oracle, AuthUsesAMechanismTheServerOffers) {
  const std::string c = must + "S: 220\nC: EHLO c\nS: 250\n!AUTH\n";
  Behaviour login_only;
  login_only.auth = "LOGIN";
  auto r = run(c, login_only);
  EXPECT_EQ(r.outcome, Outcome::pass) << r.reason << r.transcript;
  EXPECT_NE(r.transcript.find("C: AUTH LOGIN"), std::string::npos) << r.transcript;
  r = run(c, Behaviour{});
  EXPECT_EQ(r.outcome, Outcome::pass) << r.reason << r.transcript;
  EXPECT_NE(r.transcript.find("C: AUTH PLAIN"), std::string::npos) << r.transcript;
  // A wrong password must be refused; the scripted receiver does, so AUTH WRONG passes, and
  // AUTH expecting 235 with no mechanism offered is inconclusive.
  EXPECT_EQ(run(must + "S: 220\nC: EHLO c\nS: 250\n!AUTH WRONG\n", Behaviour{}).outcome, Outcome::pass);
  Behaviour none;
  none.auth = "CRAM-MD5";
  EXPECT_EQ(run(c, none).outcome, Outcome::inconclusive);
}

TEST(Oracle, HeaderCheckReadsTheDeliveredMessage) {
  const std::string send = transaction + "C: DATA\nS: 354\nC: Subject: ${token}\nC:\nC: hi\nC: .\nS: 250\n";
  EXPECT_EQ(run(must + send + "!HEADER: received /scripted/\n", Behaviour{}).outcome, Outcome::pass);
  Behaviour no_trace;
  no_trace.received = "";
  const auto r = run(must + send + "!HEADER: Received\n", no_trace);
  EXPECT_EQ(r.outcome, Outcome::fail);
  EXPECT_NE(r.reason.find("has no Received header field"), std::string::npos) << r.reason;
  // ${...} in the pattern is the profile's value taken literally ("." is not "any character").
  EXPECT_EQ(run(must + send + "!HEADER: Subject /^${token}$/\n", Behaviour{}).outcome, Outcome::pass);
  EXPECT_EQ(run(must + send + "!HEADER: Subject /^${sender}$/\n", Behaviour{}).outcome, Outcome::fail);
}

TEST(Oracle, FillGoesOverTheAnnouncedSizeLimit) {
  const std::string c = must + "# needs: SIZE\n" + transaction +
                        "C: DATA\nS: 354\nC: Subject: ${token}\nC:\nFILL: SIZE+100\nC: .\n!S: 5xx\nC: RSET\n!S: 250\n!DELIVERED: 0\n";
  Behaviour strict;
  strict.size_limit = 2000;
  auto r = run(c, strict);
  EXPECT_EQ(r.outcome, Outcome::pass) << r.reason << r.transcript;
  // 2000 + 2000/77 + 1 + 100 = 2126 octets, rounded up to whole lines of 78: 28 lines.
  EXPECT_NE(r.transcript.find("C(fill): 2184 octets"), std::string::npos) << r.transcript;
  Behaviour lazy = strict;  // stops reading at the limit: the filler's lines become commands
  lazy.stop_reading_at_limit = true;
  r = run(c, lazy);
  EXPECT_EQ(r.outcome, Outcome::fail) << r.transcript;
  EXPECT_NE(r.reason.find("expected 250, got: 500"), std::string::npos) << r.reason;
  Behaviour leaky = strict;  // says 552 but delivers
  leaky.store_oversized = true;
  r = run(c, leaky);
  EXPECT_EQ(r.outcome, Outcome::fail);
  EXPECT_NE(r.reason.find("expected 0 delivered message(s)"), std::string::npos) << r.reason;
  // No limit announced: nothing to go over, so the rule cannot be tested.
  r = run(c, Behaviour{});
  EXPECT_EQ(r.outcome, Outcome::inconclusive);
  EXPECT_NE(r.reason.find("gives none"), std::string::npos) << r.reason;
}

TEST(Oracle, DeliveredToCountsPerRecipient) {
  const std::string c = must + "S: 220\nC: EHLO c\nS: 250\nC: MAIL FROM:<a@b>\nS: 250\nC: RCPT TO:<one@example.test>\nS: 250\n"
                               "C: RCPT TO:<two@example.test>\nS: 250\nC: DATA\nS: 354\nC: Subject: ${token}\nC:\nC: x\nC: .\nS: 250\n"
                               "!DELIVERED TO one@example.test: 1\n!DELIVERED TO two@example.test: 1\n";
  auto r = run(c, Behaviour{});
  EXPECT_EQ(r.outcome, Outcome::pass) << r.reason << r.transcript;
  Behaviour lazy;  // the whole-store count would still be 1: only the per-recipient check sees it
  lazy.first_recipient_only = true;
  r = run(c, lazy);
  EXPECT_EQ(r.outcome, Outcome::fail);
  EXPECT_NE(r.reason.find("for two@example.test, found 0"), std::string::npos) << r.reason;
  Behaviour one_store;
  one_store.one_store_for_all = true;
  r = run(c, one_store);
  EXPECT_EQ(r.outcome, Outcome::inconclusive);
  EXPECT_NE(r.reason.find("cannot check delivery per recipient"), std::string::npos) << r.reason;
}

TEST(Oracle, TheRelayCasePassesAServerThatRefusesTheForeignRecipient) {
  Receiver receiver(Behaviour{});  // refuses "unknown" addresses with 550
  Target target = scripted_target(receiver);
  target.profile["deliver_rcpt"] = "b@example.test";
  target.profile["remote"] = "unknown@remote.test";
  target.profile["remote_via_sink"] = "yes";
  const Script s = suite_case("rfc5321/relay-not-performed.smtp");
  const auto r = run_case(s, target);
  EXPECT_EQ(r.outcome, Outcome::pass) << r.reason << r.transcript;
}

// RFC 4954 §5: an unauthenticated client's AUTH=<mailbox> must grant what AUTH=<> grants, nothing.
TEST(Oracle, TheAuthParameterCasesFailAServerThatTakesItForALogin) {
  const Script relay = suite_case("rfc4954/auth-parameter-grants-no-relay.smtp");
  const Script submission = suite_case("rfc4954/submission-auth-parameter-not-authentication.smtp");
  for (const bool vulnerable : {false, true}) {
    Behaviour mx;
    mx.auth_param_authenticates = vulnerable;
    Receiver mx_receiver(mx);
    Target target = scripted_target(mx_receiver);
    target.profile["remote"] = "unknown@remote.test";  // the receiver refuses it unless trusted
    auto r = run_case(relay, target);
    EXPECT_EQ(r.outcome, vulnerable ? Outcome::fail : Outcome::pass) << r.reason << r.transcript;

    Behaviour msa = mx;
    msa.mail_needs_auth = true;
    Receiver msa_receiver(msa);
    Target msa_target = scripted_target(msa_receiver);
    msa_target.submission = {"127.0.0.1", 587};  // the connector ignores where it is sent
    r = run_case(submission, msa_target);
    EXPECT_EQ(r.outcome, vulnerable ? Outcome::fail : Outcome::pass) << r.reason << r.transcript;
  }
  // A server that relays for anyone, AUTH=<> or not, leaves the relay case without a baseline.
  Behaviour open;
  open.accept_all = true;
  Receiver open_receiver(open);
  Target target = scripted_target(open_receiver);
  target.profile["remote"] = "unknown@remote.test";
  EXPECT_EQ(run_case(relay, target).outcome, Outcome::inconclusive);
}

TEST(Oracle, NoHeaderFailsWhenAnyFieldMatches) {
  const std::string send = transaction + "C: DATA\nS: 354\nC: Subject: ${token}\nC:\nC: hi\nC: .\nS: 250\n";
  EXPECT_EQ(run(must + send + "!NOHEADER: Received /pretls/\n", Behaviour{}).outcome, Outcome::pass);
  Behaviour two;
  two.received = "Received: from a by b\r\nReceived: from pretls.client by scripted\r\n";
  const auto r = run(must + send + "!NOHEADER: Received /pretls/\n", two);
  EXPECT_EQ(r.outcome, Outcome::fail);
  EXPECT_NE(r.reason.find("has a Received field matching /pretls/"), std::string::npos) << r.reason;
}

TEST(Profile, AcceptAllSkipsCasesThatNeedARefusal) {
  const std::string c = must + "# skip-when: accept_all\n" + "S: 220\nC: EHLO c\nS: 250\nC: MAIL FROM:<a@b>\nS: 250\nC: RCPT TO:<${unknown}>\n!S: 550\n";
  Receiver receiver(Behaviour{});
  Target target = scripted_target(receiver);
  target.profile["unknown"] = "unknown@example.test";
  const Script s = parse(c);
  EXPECT_EQ(run_case(s, target).outcome, Outcome::pass);
  target.profile["accept_all"] = "yes";
  const auto r = run_case(s, target);
  EXPECT_EQ(r.outcome, Outcome::skip);
  EXPECT_NE(r.reason.find("accept_all"), std::string::npos);
  // A server that trusts the runner's address may relay for it: relay refusals skip too.
  const Script relay = parse(must + "# skip-when: trusted_client\n" + "S: 220\nC: EHLO c\nS: 250\nC: MAIL FROM:<a@b>\nS: 250\nC: RCPT TO:<${remote}>\n!S: 5xx\n");
  target.profile["trusted_client"] = "yes";
  EXPECT_NE(unavailable(relay, target).find("trusts this client"), std::string::npos);
  target.profile["trusted_client"] = "no";
  EXPECT_EQ(unavailable(relay, target), "");
}

TEST(Profile, IdleCasesNeedTheCommandTimeout) {
  const Script s = parse(note + "S: 220\nIDLE\n!S: 421\n");
  Target target;
  target.profile = default_profile();
  const std::string why = unavailable(s, target);
  EXPECT_NE(why.find("command_timeout"), std::string::npos) << why;
  target.profile["command_timeout"] = "5";
  EXPECT_EQ(unavailable(s, target), "");
  auto p = default_profile();
  std::string error;
  EXPECT_TRUE(parse_profile("command_timeout = 300\n", "p", p, error)) << error;
  EXPECT_FALSE(parse_profile("command_timeout = 0\n", "p", p, error));
  EXPECT_FALSE(parse_profile("command_timeout = 5m\n", "p", p, error));
}

TEST(Profile, UnknownKeysNameFileAndLine) {
  auto p = default_profile();
  std::string error;
  EXPECT_TRUE(parse_profile("domain = a.test\n# c\n\naccept_all = yes\n", "p", p, error)) << error;
  EXPECT_EQ(p["accept_all"], "yes");
  EXPECT_FALSE(parse_profile("domain = a.test\nrcpt_to = x@a.test\n", "my.profile", p, error));
  EXPECT_NE(error.find("my.profile:2: unknown profile key 'rcpt_to'"), std::string::npos) << error;
  EXPECT_FALSE(parse_profile("accept_all = maybe\n", "p", p, error));
  EXPECT_FALSE(parse_profile("just words\n", "p", p, error));
}

TEST(Baseline, ParsesAndReportsEveryKindOfDrift) {
  Baseline b;
  std::string error;
  ASSERT_TRUE(parse_baseline("# known\na fail: breaks it\nb deviation: takes it\nc inconclusive: setup\n", "base.txt", b, error)) << error;
  EXPECT_FALSE(parse_baseline("a: no outcome\n", "base.txt", b, error));
  EXPECT_FALSE(parse_baseline("a pass: not a failure\n", "base.txt", b, error));
  EXPECT_FALSE(parse_baseline("a fail:\n", "base.txt", b, error));
  EXPECT_NE(error.find("base.txt:1:"), std::string::npos);
  Script sa, sb, sc, sd;
  sa.name = "a";
  sb.name = "b";
  sc.name = "c";
  sd.name = "d";
  std::vector<CaseResult> same = {{&sa, Outcome::fail, "x", "", "", 0}, {&sb, Outcome::deviation, "y", "", "", 0},
                                  {&sc, Outcome::inconclusive, "z", "", "", 0}, {&sd, Outcome::pass, "", "", "", 0}};
  EXPECT_EQ(compare_with_baseline(same, b, true), "");
  auto changed = same;
  changed[0].outcome = Outcome::pass;  // an expected failure that now passes
  changed[3].outcome = Outcome::fail;  // a new failure
  const std::string drift = compare_with_baseline(changed, b, true);
  EXPECT_NE(drift.find("was fail, now pass: a"), std::string::npos) << drift;
  EXPECT_NE(drift.find("new fail: d"), std::string::npos) << drift;
  same.pop_back();
  same.pop_back();
  EXPECT_NE(compare_with_baseline(same, b, true).find("listed but not run: c"), std::string::npos);
  EXPECT_EQ(compare_with_baseline(same, b, false), "");
}

TEST(FailOn, SkipsAndLowerLevelsFailTheRunOnlyWhenAsked) {
  Script must_s, should_s, note_s;
  must_s.level = Level::must;
  should_s.level = Level::should;
  note_s.level = Level::note;
  must_s.name = "m";
  should_s.name = "s";
  note_s.name = "n";
  FailOn none, all;
  std::string error;
  ASSERT_TRUE(parse_fail_on("all", all, error));
  EXPECT_FALSE(parse_fail_on("should,sometimes", none, error));
  EXPECT_NE(error.find("'sometimes'"), std::string::npos) << error;
  FailOn skip_only;
  ASSERT_TRUE(parse_fail_on("skip", skip_only, error));
  EXPECT_TRUE(skip_only.skip);
  EXPECT_FALSE(skip_only.should);
  const std::vector<CaseResult> should_failed = {{&should_s, Outcome::fail, "x", "", "", 0}, {&must_s, Outcome::pass, "", "", "", 0}};
  EXPECT_FALSE(run_failed(should_failed, FailOn{}));
  FailOn should_on;
  should_on.should = true;
  EXPECT_TRUE(run_failed(should_failed, should_on));
  const std::vector<CaseResult> skipped = {{&must_s, Outcome::skip, "not advertised: PIPELINING", "", "", 0}};
  EXPECT_FALSE(run_failed(skipped, FailOn{}));
  EXPECT_TRUE(run_failed(skipped, skip_only));
  EXPECT_TRUE(run_failed({{&must_s, Outcome::fail, "x", "", "", 0}}, FailOn{}));
  EXPECT_TRUE(run_failed({{&note_s, Outcome::error, "x", "", "", 0}}, FailOn{}));  // an error always fails
  EXPECT_FALSE(run_failed({{&note_s, Outcome::deviation, "x", "", "", 0}}, FailOn{}));
  EXPECT_TRUE(run_failed({{&note_s, Outcome::deviation, "x", "", "", 0}}, all));
  // With a baseline, --fail-on skip makes an unlisted skip a difference; a listed one is fine.
  Baseline b;
  ASSERT_TRUE(parse_baseline("s skip: no AUTH on this port\n", "b.txt", b, error)) << error;
  const std::vector<CaseResult> two_skips = {{&must_s, Outcome::skip, "not advertised: PIPELINING", "", "", 0},
                                             {&should_s, Outcome::skip, "not advertised: AUTH", "", "", 0}};
  EXPECT_EQ(compare_with_baseline(two_skips, b, false, false), "");
  EXPECT_EQ(compare_with_baseline(two_skips, b, false, true), "new skip: m: not advertised: PIPELINING\n");
}

TEST(Report, TextReportHasTotalsReasonsAndRawBytes) {
  Behaviour vulnerable;
  vulnerable.lf_ends_data = true;
  std::vector<CaseResult> results = {run(smuggling, vulnerable), run(must + "S: 220\nC: EHLO c\nS: 251\n!S: 250\n", Behaviour{})};
  Script skipped = parse(must + "!S: 220\n");
  results.push_back({&skipped, Outcome::skip, "not advertised: CHUNKING", "", "", 0});
  Target target;
  const std::string text = report(results, "text", target);
  EXPECT_NE(text.find("Totals: 3 cases: 0 pass, 1 fail (1 MUST), 0 deviation, 1 inconclusive, 1 skip, 0 error"), std::string::npos) << text;
  EXPECT_NE(text.find("RFC: \"The server MUST hold.\""), std::string::npos) << text;
  EXPECT_NE(text.find("C(raw): Subject: t-"), std::string::npos) << text;
  EXPECT_NE(text.find("first\\n.\\nMAIL FROM:"), std::string::npos) << "RAW bytes shown escaped\n" << text;
  EXPECT_NE(text.find("INCONCLUSIVE [MUST]"), std::string::npos) << text;
  EXPECT_NE(text.find("not advertised: CHUNKING"), std::string::npos) << text;
  const std::string json = report(results, "json", target);
  EXPECT_NE(json.find("\"transcript\": \"S: 220"), std::string::npos) << json;
  EXPECT_NE(json.find("\"inconclusive\": 1"), std::string::npos) << json;
}
