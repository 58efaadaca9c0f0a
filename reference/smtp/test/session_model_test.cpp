// Model-based test (rc::state): random command sequences against ServerSession. Two oracles:
//   - the test's own Model predicts the next abstract state from the command and the host's
//     verdict (the session is deterministic given both);
//   - conformance/model, the RFC transcription, must allow the reply code the session sent and
//     lead to the same state.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <rapidcheck/state.h>

#include "refsmtp/core/base64.hpp"
#include "refsmtp/testing/model_mapping.hpp"
#include "refsmtp/model/smtp_model.hpp"
#include "session_driver.hpp"

using namespace refsmtp::smtp;
using refsmtp::core::base64_encode;
using namespace refsmtp::smtp::testing;
namespace m = refsmtp::model;

namespace {

using refsmtp::testing::to_model;

struct Model {
  m::State state = m::State::initial;
  bool tls = false;
  bool authed = false;
  bool esmtp = false;
  int recipients = 0;
};

struct Sut {
  Driver driver{config()};
  bool accept_next = true;  // the host's verdict for the next question
  static ServerConfig config() {
    ServerConfig c = test_config();
    c.limits.errors = 100000;  // error-limit closing is tested elsewhere
    c.limits.recipients = 5;
    return c;
  }
  Sut() {
    driver.policy = [this](const Action&) {
      // Rejections use the session's default reply for the question at hand.
      return accept_next ? Verdict::accept() : Verdict{false, std::nullopt};
    };
  }
};

using Cmd = rc::state::Command<Model, Sut>;

// Feeds `bytes`, then checks the session's single reply against conformance/model.
void check_step(const Model& before, Sut& sut, const std::string& bytes, m::Input input, m::State predicted) {
  sut.driver.feed(bytes);
  const auto codes = sut.driver.new_codes();
  RC_ASSERT(codes.size() == 1u);
  const int code = codes[0];
  const auto allowed = m::allowed(before.state, input);
  RC_LOG() << m::name(input) << " in " << m::name(before.state) << " -> " << code << "\n";
  RC_ASSERT(allowed.contains(code));
  RC_ASSERT(m::next(before.state, input, code) == predicted);
  RC_ASSERT(to_model(sut.driver.session.state()) == predicted);
}

struct SimpleCommand : Cmd {
  m::Input input;
  std::string line;
  explicit SimpleCommand(m::Input i, std::string l) : input(i), line(std::move(l)) {}
  void checkPreconditions(const Model& s) const override { RC_PRE(s.state != m::State::closed); }
  void apply(Model& s) const override {
    switch (input) {
      case m::Input::ehlo:
      case m::Input::helo:
        s.state = m::State::ready;
        s.recipients = 0;
        s.esmtp = input == m::Input::ehlo;
        break;
      case m::Input::rset: if (s.state != m::State::initial) s.state = m::State::ready; s.recipients = 0; break;
      case m::Input::quit: s.state = m::State::closed; break;
      default: break;  // noop, help, vrfy, expn, unknown, bad syntax: no change
    }
  }
  void run(const Model& s, Sut& sut) const override {
    Model next = s;
    apply(next);
    check_step(s, sut, line, input, next.state);
  }
  void show(std::ostream& os) const override { os << m::name(input) << " " << line.substr(0, line.size() - 2); }
};

struct Mail : Cmd {
  bool accept = *rc::gen::arbitrary<bool>();
  void checkPreconditions(const Model& s) const override { RC_PRE(s.state != m::State::closed); }
  void apply(Model& s) const override {
    if (s.state == m::State::ready && accept) s.state = m::State::mail;
  }
  void run(const Model& s, Sut& sut) const override {
    sut.accept_next = accept;
    Model next = s;
    apply(next);
    check_step(s, sut, "MAIL FROM:<a@b.test>\r\n", m::Input::mail, next.state);
  }
  void show(std::ostream& os) const override { os << "MAIL (host " << (accept ? "accepts" : "rejects") << ")"; }
};

struct Rcpt : Cmd {
  bool accept = *rc::gen::arbitrary<bool>();
  void checkPreconditions(const Model& s) const override { RC_PRE(s.state != m::State::closed); }
  void apply(Model& s) const override {
    if ((s.state == m::State::mail || s.state == m::State::rcpt) && accept && s.recipients < 5) {
      s.state = m::State::rcpt;
      ++s.recipients;
    }
  }
  void run(const Model& s, Sut& sut) const override {
    sut.accept_next = accept;
    Model next = s;
    apply(next);
    check_step(s, sut, "RCPT TO:<r@mx.test>\r\n", m::Input::rcpt, next.state);
  }
  void show(std::ostream& os) const override { os << "RCPT (host " << (accept ? "accepts" : "rejects") << ")"; }
};

struct Data : Cmd {
  bool store = *rc::gen::arbitrary<bool>();
  std::string body = *rc::gen::element<std::string>("", "x\r\n", "..a\r\nb\r\n", "bare\nlf\r\n");
  void checkPreconditions(const Model& s) const override { RC_PRE(s.state != m::State::closed); }
  void apply(Model& s) const override {
    if (s.state == m::State::rcpt) {
      s.state = m::State::ready;
      s.recipients = 0;
    }
  }
  void run(const Model& s, Sut& sut) const override {
    sut.accept_next = store;
    if (s.state != m::State::rcpt) {
      check_step(s, sut, "DATA\r\n", m::Input::data, s.state);
      return;
    }
    check_step(s, sut, "DATA\r\n", m::Input::data, m::State::data);
    Model in_data = s;
    in_data.state = m::State::data;
    check_step(in_data, sut, body + ".\r\n", m::Input::end_of_data, m::State::ready);
  }
  void show(std::ostream& os) const override { os << "DATA (" << body.size() << " octets, host " << (store ? "stores" : "fails") << ")"; }
};

struct Bdat : Cmd {
  bool last = *rc::gen::arbitrary<bool>();
  bool store = *rc::gen::arbitrary<bool>();
  std::string chunk = *rc::gen::element<std::string>("", "abc", ".\r\n", "\r\n.\r\nQUIT\r\n");
  void checkPreconditions(const Model& s) const override { RC_PRE(s.state != m::State::closed); }
  void apply(Model& s) const override {
    if (s.esmtp && (s.state == m::State::rcpt || s.state == m::State::chunking)) {
      s.state = last ? m::State::ready : m::State::chunking;
      if (last) s.recipients = 0;
    }
  }
  void run(const Model& s, Sut& sut) const override {
    sut.accept_next = store;
    Model next = s;
    apply(next);
    const std::string cmd = "BDAT " + std::to_string(chunk.size()) + (last ? " LAST" : "") + "\r\n" + chunk;
    check_step(s, sut, cmd, last ? m::Input::bdat_last : m::Input::bdat, next.state);
  }
  void show(std::ostream& os) const override { os << "BDAT " << chunk.size() << (last ? " LAST" : ""); }
};

struct Starttls : Cmd {
  void checkPreconditions(const Model& s) const override { RC_PRE(s.state != m::State::closed); }
  void apply(Model& s) const override {
    if (s.state == m::State::ready && s.esmtp && !s.tls) {
      s.state = m::State::initial;  // the driver completes the handshake at once
      s.tls = true;
      s.authed = false;
      s.esmtp = false;
      s.recipients = 0;
    }
  }
  void run(const Model& s, Sut& sut) const override {
    Model next = s;
    apply(next);
    sut.driver.feed("STARTTLS\r\n");
    const auto codes = sut.driver.new_codes();
    RC_ASSERT(codes.size() == 1u);
    RC_ASSERT(m::allowed(s.state, m::Input::starttls).contains(codes[0]));
    const m::State after = m::next(s.state, m::Input::starttls, codes[0]);
    RC_ASSERT(after == (codes[0] == 220 ? m::State::tls_handshake : next.state));
    if (after == m::State::tls_handshake) RC_ASSERT(m::next(after, m::Input::tls_done, 0) == next.state);
    RC_ASSERT(to_model(sut.driver.session.state()) == next.state);
  }
  void show(std::ostream& os) const override { os << "STARTTLS"; }
};

struct Auth : Cmd {
  bool accept = *rc::gen::arbitrary<bool>();
  void checkPreconditions(const Model& s) const override { RC_PRE(s.state != m::State::closed); }
  void apply(Model& s) const override {
    if (s.state == m::State::ready && s.esmtp && s.tls && !s.authed && accept) s.authed = true;
  }
  void run(const Model& s, Sut& sut) const override {
    sut.accept_next = accept;
    Model next = s;
    apply(next);
    check_step(s, sut, "AUTH PLAIN " + base64_encode(std::string("\0u\0p", 4)) + "\r\n", m::Input::auth, next.state);
    RC_ASSERT(sut.driver.session.authenticated() == next.authed);
  }
  void show(std::ostream& os) const override { os << "AUTH PLAIN (host " << (accept ? "accepts" : "rejects") << ")"; }
};

template <m::Input I>
struct Simple : SimpleCommand {
  static std::string pick() {
    switch (I) {
      case m::Input::ehlo: return "EHLO client.test\r\n";
      case m::Input::helo: return "HELO client.test\r\n";
      case m::Input::rset: return "RSET\r\n";
      case m::Input::noop: return "NOOP\r\n";
      case m::Input::help: return "HELP\r\n";
      case m::Input::vrfy: return "VRFY someone\r\n";
      case m::Input::expn: return "EXPN list\r\n";
      case m::Input::quit: return "QUIT\r\n";
      case m::Input::unknown: return *rc::gen::element<std::string>("FOO\r\n", "MAILX\r\n", "X\r\n");
      case m::Input::mail_bad: return *rc::gen::element<std::string>("MAIL FROM:<bad>\r\n", "MAIL FROM:<a@b.test> X=1\r\n", "MAIL\r\n");
      case m::Input::rcpt_bad: return *rc::gen::element<std::string>("RCPT TO:<>\r\n", "RCPT TO:x\r\n", "RCPT\r\n");
      default: return "NOOP\r\n";
    }
  }
  Simple() : SimpleCommand(I, pick()) {}
};

}  // namespace

RC_GTEST_PROP(SessionModel, RepliesAndStatesAgreeWithTheRfcModel, ()) {
  Model model;
  Sut sut;
  sut.driver.new_codes();  // the greeting
  rc::state::check(model, sut,
                   rc::state::gen::execOneOfWithArgs<
                       Simple<m::Input::ehlo>, Simple<m::Input::helo>, Simple<m::Input::rset>, Simple<m::Input::noop>,
                       Simple<m::Input::help>, Simple<m::Input::vrfy>, Simple<m::Input::expn>, Simple<m::Input::quit>,
                       Simple<m::Input::unknown>, Simple<m::Input::mail_bad>, Simple<m::Input::rcpt_bad>, Mail, Mail,
                       Rcpt, Rcpt, Rcpt, Data, Data, Bdat, Bdat, Starttls, Auth>());
}
