// Whole-session harness: the fuzzer chooses the configuration, the bytes and how they are split,
// the host's verdicts, the passage of time and the outcome of TLS handshakes.
//
// Input: one configuration byte, then operations:
//   0-4  feed: a length byte n, then n+1 bytes (fewer at the end of input)
//   5    answer the pending question: next byte even = accept, odd = reject
//   6    advance the clock by (next byte) * 10 s
//   7    finish a STARTTLS handshake: next byte even = success, odd = failure
//
// Oracles: every reply is well-formed; every state change is one the RFC model allows (so no 2xx
// to a command out of sequence moves the session on); nothing is acted on between STARTTLS and the
// handshake; body events only inside a message; receive() never claims more than it was given.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "fuzz_check.hpp"

#include "refsmtp/smtp/reply.hpp"
#include "refsmtp/smtp/server_session.hpp"
#include "refsmtp/testing/model_mapping.hpp"
#include "refsmtp/model/smtp_model.hpp"

namespace {

using namespace refsmtp::smtp;
namespace m = refsmtp::model;

using refsmtp::testing::to_model;


struct Harness {
  ServerSession session;
  bool in_message = false;
  bool awaiting_tls = false;
  m::State bdat_from = m::State::initial;

  explicit Harness(ServerConfig cfg) : session(std::move(cfg)) {
    session.set_trace([this](State from, State to) {
      const m::State a = to_model(from), b = to_model(to);
      bool ok = m::legal_transition(a, b);
      // Through a BDAT chunk, judge the whole step: the state before the chunk against the
      // state after it, as BDAT or BDAT LAST in that state allows.
      if (b == m::State::bdat) bdat_from = a;
      if (a == m::State::bdat) ok = m::legal_bdat_outcome(bdat_from, b);
      if (!ok) {
        std::fprintf(stderr, "illegal transition %s -> %s\n", state_name(from).data(), state_name(to).data());
        std::abort();
      }
    });
    drain();
  }

  void drain() {
    while (auto a = session.next_action()) {
      if (auto* s = std::get_if<action::Send>(&*a)) {
        check_replies(s->bytes);
      } else if (std::holds_alternative<action::StartTls>(*a)) {
        awaiting_tls = true;
      } else if (std::holds_alternative<action::Close>(*a)) {
        check(session.closed());
      } else {
        check(!awaiting_tls);  // nothing but writes while the handshake is pending
        if (std::holds_alternative<action::MessageStart>(*a)) {
          check(!in_message);
          in_message = true;
        } else if (std::holds_alternative<action::BodyChunk>(*a)) {
          check(in_message);
        } else if (std::holds_alternative<action::MessageComplete>(*a)) {
          check(in_message);
          in_message = false;
          check(session.pending() == Question::message);
        } else if (std::holds_alternative<action::MessageAborted>(*a)) {
          check(in_message);
          in_message = false;
        }
      }
    }
  }

  ReplyReader reader;  // reused: every Send holds whole replies, so it ends each check empty

  void check_replies(std::string_view bytes) {
    reader.feed(bytes);
    std::size_t count = 0;
    while (auto item = reader.next()) {
      check(item->reply.has_value() && !item->bare_lf && !item->inconsistent_codes);
      // §4.2: first digit 2-5, second digit 0-5.
      const int code = item->reply->code;
      check(code / 100 >= 2 && code / 100 <= 5 && (code / 10) % 10 <= 5);
      ++count;
    }
    check(count > 0 && reader.buffered() == 0 && !reader.mid_reply());
    // §4.5.3.1.5: a reply line is at most 512 octets including CRLF.
    std::size_t line_start = 0;
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      if (bytes[i] == '\n') {
        check(i + 1 - line_start <= 512);
        line_start = i + 1;
      }
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t c = data[0];
  ServerConfig cfg;
  cfg.hostname = "mx.test";
  cfg.limits.message_size = 2000;
  cfg.limits.recipients = 4;
  cfg.limits.errors = 20;
  cfg.limits.buffered_input = 4096;
  cfg.starttls = c & 1;
  cfg.tls_active = c & 2;
  if (c & 4) cfg.auth_mechanisms = {"PLAIN", "LOGIN"};
  cfg.chunking = !(c & 8);
  cfg.lenient_bare_lf_in_data = c & 16;
  cfg.lenient_command_lf = c & 32;
  cfg.auth_required = c & 64;
  if (c & 128) cfg.refuse = make_reply(554, std::nullopt, "no service");

  Harness h(cfg);
  std::int64_t now = 0;
  std::size_t i = 1;
  while (i < size && !h.session.closed()) {
    const std::uint8_t op = data[i++] % 8;
    const std::uint8_t arg = i < size ? data[i++] : 0;
    if (op <= 4) {
      const std::size_t n = std::min<std::size_t>(static_cast<std::size_t>(arg) + 1, size - i);
      const std::string_view bytes(reinterpret_cast<const char*>(data + i), n);
      i += n;
      const bool handshake = h.session.state() == State::tls_handshake;
      const std::size_t taken = h.session.receive(bytes);
      check(taken <= bytes.size());
      if (handshake) check(h.session.state() == State::tls_handshake);
      h.drain();
    } else if (op == 5) {
      if (h.session.pending() != Question::none) {
        const Verdict v = (arg & 1) ? Verdict::reject(make_reply(550, 5, 7, 1, "no")) : Verdict::accept();
        check(h.session.answer(v) == Fault::none);
        h.drain();
      } else {
        check(h.session.answer(Verdict::accept()) == Fault::no_question_pending);
      }
    } else if (op == 6) {
      now += static_cast<std::int64_t>(arg) * 10'000;
      h.session.on_time(Millis(now));
      h.drain();
    } else {
      if (!h.awaiting_tls) {
        check(h.session.tls_started() == Fault::not_in_handshake);
        continue;
      }
      h.awaiting_tls = false;
      if (arg & 1) {
        h.session.tls_failed();
      } else {
        check(h.session.tls_started() == Fault::none);
      }
      h.drain();
    }
  }
  return 0;
}
