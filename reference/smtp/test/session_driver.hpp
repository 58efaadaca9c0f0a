#pragma once
// Test driver for ServerSession: feeds bytes, drains actions, answers host questions by a policy,
// and records everything observable so tests can compare whole transcripts.
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "refsmtp/smtp/reply.hpp"
#include "refsmtp/smtp/server_session.hpp"

namespace refsmtp::smtp::testing {

inline ServerConfig test_config() {
  ServerConfig c;
  c.hostname = "mx.test";
  c.limits.message_size = 10000;
  c.starttls = true;
  c.auth_mechanisms = {"PLAIN", "LOGIN"};
  return c;
}

struct Transcript {
  std::string output;                 // every byte the session asked to send
  std::vector<std::string> events;    // host-visible events in order
  std::vector<std::string> messages;  // bodies of messages the host was asked to store
  std::string body;                   // body of the message being received
  std::vector<std::string> refused;   // "VERB CODE" of each command the session refused itself
  bool operator==(const Transcript&) const = default;
};

class Driver {
 public:
  // The answer to each host question; the default accepts everything. Without a policy, questions
  // stay pending for the test to answer.
  std::function<Verdict(const Action&)> policy = [](const Action&) { return Verdict::accept(); };
  bool auto_tls = true;  // complete STARTTLS handshakes at once

  explicit Driver(ServerConfig cfg = test_config()) : session(std::move(cfg)) { drain(); }

  void feed(std::string_view bytes) {
    for (int guard = 0; !bytes.empty() && guard < 1000000; ++guard) {
      const std::size_t n = session.receive(bytes);
      drain();
      bytes.remove_prefix(n);
      if (n == 0 && session.pending() == Question::none) break;
    }
  }

  void drain() {
    while (auto a = session.next_action()) {
      std::visit([&](auto& x) { handle(x, *a); }, *a);
    }
  }

  std::vector<Reply> replies() const {
    ReplyReader reader;
    reader.feed(t.output);
    std::vector<Reply> out;
    while (auto item = reader.next()) {
      if (item->reply) out.push_back(*item->reply);
    }
    return out;
  }
  std::vector<int> codes() const {
    std::vector<int> out;
    for (const auto& r : replies()) out.push_back(r.code);
    return out;
  }
  int last_code() const {
    auto c = codes();
    return c.empty() ? 0 : c.back();
  }
  // Codes of replies produced since the last call.
  std::vector<int> new_codes() {
    auto all = codes();
    std::vector<int> out(all.begin() + static_cast<std::ptrdiff_t>(seen_), all.end());
    seen_ = all.size();
    return out;
  }

  ServerSession session;
  Transcript t;

 private:
  std::size_t seen_ = 0;
  void handle(action::Send& s, const Action&) { t.output += s.bytes; }
  void handle(action::StartTls&, const Action&) {
    t.events.emplace_back("starttls");
    if (auto_tls) session.tls_started();
  }
  void handle(action::Close&, const Action&) { t.events.emplace_back("close"); }
  void handle(action::CheckSender& c, const Action& a) {
    t.events.push_back("sender " + c.path.to_string());
    if (policy) session.answer(policy(a));
  }
  void handle(action::CheckRecipient& c, const Action& a) {
    t.events.push_back("recipient " + c.path.to_string());
    if (policy) session.answer(policy(a));
  }
  void handle(action::CheckAuth& c, const Action& a) {
    t.events.push_back("auth " + c.mechanism + " " + c.authcid + " " + c.password);
    if (policy) session.answer(policy(a));
  }
  void handle(action::MessageStart&, const Action&) {
    t.events.emplace_back("start");
    t.body.clear();
  }
  void handle(action::BodyChunk& b, const Action&) { t.body += b.data; }
  void handle(action::MessageComplete& m, const Action& a) {
    t.events.push_back("complete " + std::to_string(m.envelope.size));
    t.messages.push_back(t.body);
    t.body.clear();
    if (policy) session.answer(policy(a));
  }
  void handle(action::MessageAborted& m, const Action&) {
    t.events.push_back("aborted " + m.reason);
    t.body.clear();
  }
  void handle(action::Refused& r, const Action&) { t.refused.push_back(r.command + " " + std::to_string(r.reply.code)); }
};

// A greeted session: EHLO done, ready for MAIL.
inline Driver greeted(ServerConfig cfg = test_config()) {
  Driver d(std::move(cfg));
  d.feed("EHLO client.test\r\n");
  d.new_codes();
  return d;
}

}  // namespace refsmtp::smtp::testing
