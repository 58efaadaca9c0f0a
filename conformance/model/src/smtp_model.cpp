#include "refsmtp/model/smtp_model.hpp"

#include <array>
#include <iterator>

namespace refsmtp::model {

std::string_view name(State s) {
  switch (s) {
    case State::refused: return "refused";
    case State::initial: return "initial";
    case State::ready: return "ready";
    case State::mail: return "mail";
    case State::rcpt: return "rcpt";
    case State::data: return "data";
    case State::bdat: return "bdat";
    case State::chunking: return "chunking";
    case State::auth: return "auth";
    case State::tls_handshake: return "tls_handshake";
    case State::closed: return "closed";
  }
  return "?";
}

std::string_view name(Input i) {
  switch (i) {
    case Input::ehlo: return "EHLO";
    case Input::helo: return "HELO";
    case Input::mail: return "MAIL";
    case Input::mail_bad: return "MAIL(bad)";
    case Input::rcpt: return "RCPT";
    case Input::rcpt_bad: return "RCPT(bad)";
    case Input::data: return "DATA";
    case Input::end_of_data: return "<CRLF>.<CRLF>";
    case Input::bdat: return "BDAT";
    case Input::bdat_last: return "BDAT LAST";
    case Input::rset: return "RSET";
    case Input::noop: return "NOOP";
    case Input::help: return "HELP";
    case Input::vrfy: return "VRFY";
    case Input::expn: return "EXPN";
    case Input::quit: return "QUIT";
    case Input::starttls: return "STARTTLS";
    case Input::tls_done: return "(TLS handshake)";
    case Input::auth: return "AUTH";
    case Input::sasl_response: return "(SASL response)";
    case Input::unknown: return "(unknown verb)";
  }
  return "?";
}

namespace {

bool is_command_state(State s) {
  return s == State::initial || s == State::ready || s == State::mail || s == State::rcpt || s == State::chunking;
}

}  // namespace

std::set<int> allowed(State state, Input input) {
  if (state == State::closed || state == State::bdat) return {};  // bdat is atomic in this model
  if (state == State::tls_handshake) return input == Input::tls_done ? std::set<int>{0} : std::set<int>{};
  if (input == Input::tls_done) return {};
  if (state == State::data) {
    // §4.3.2 DATA: after the data, S: 250; E: 552, 554, 451, 452, 450, 550. 500 "Line too long"
    // (§4.5.3.1.10) may also end the data.
    return input == Input::end_of_data ? std::set<int>{250, 450, 451, 452, 500, 550, 552, 554} : std::set<int>{};
  }
  if (input == Input::end_of_data) return {};
  if (state == State::auth) {
    // RFC 4954 §4: 334 continues, 235 succeeds, 535/454 fail, 501 cancels or rejects the encoding.
    return input == Input::sasl_response ? std::set<int>{235, 334, 454, 501, 535, 534, 538} : std::set<int>{};
  }
  if (input == Input::sasl_response) return {};
  if (state == State::refused) {
    // §3.1: after a 554 greeting, the server MUST wait for QUIT and answer 503 to all else.
    return input == Input::quit ? std::set<int>{221} : std::set<int>{503};
  }

  // The five command states. §4.3.2 lists the replies; 500/501 may answer any command line that
  // is not understood; 503 answers commands out of order (§4.1.4).
  switch (input) {
    case Input::ehlo:
    case Input::helo:
      return {250, 501, 504, 550};
    case Input::mail:
      if (state != State::ready) return {503};
      // 530: AUTH or STARTTLS required first (RFC 4954 §6, RFC 3207 §4)
      return {250, 451, 452, 455, 503, 530, 550, 552, 553, 555};
    case Input::mail_bad:
      if (state != State::ready) return {501, 503, 553, 555};
      return {501, 530, 553, 555};
    case Input::rcpt:
      if (state != State::mail && state != State::rcpt) return {503};
      return {250, 251, 450, 451, 452, 455, 550, 551, 552, 553, 555};
    case Input::rcpt_bad:
      if (state != State::mail && state != State::rcpt) return {501, 503, 553, 555};
      return {501, 553, 555};
    case Input::data:
      if (state == State::rcpt) return {354, 451, 452, 503, 554};
      if (state == State::mail) return {503, 554};  // §3.3: no valid recipients
      return {503};
    case Input::bdat:
    case Input::bdat_last:
      // RFC 3030 §2; 502 when CHUNKING is not offered.
      if (state == State::rcpt || state == State::chunking) return {250, 451, 452, 502, 552, 554};
      if (state == State::mail) return {502, 503, 554};
      return {502, 503};
    case Input::rset:
    case Input::noop:
      return {250};
    case Input::help:
      return {211, 214, 502, 504};
    case Input::vrfy:
      return {250, 251, 252, 502, 504, 550, 551, 553};
    case Input::expn:
      return {250, 252, 500, 502, 504, 550};
    case Input::quit:
      return {221};
    case Input::starttls:
      // RFC 3207 §4: 220 ready, 454 TLS not available, 501 syntax; 502/503 when not offered.
      if (state != State::ready) return {502, 503};
      return {220, 454, 501, 502, 503};
    case Input::auth:
      // RFC 4954 §4, §6
      if (state != State::ready) return {502, 503};
      return {235, 334, 454, 501, 502, 503, 504, 530, 534, 535, 538};
    case Input::unknown:
      return {500};
    case Input::end_of_data:
    case Input::sasl_response:
    case Input::tls_done:
      return {};
  }
  return {};
}

State next(State state, Input input, int code) {
  if (code == 421) return State::closed;  // §3.8
  switch (input) {
    case Input::quit:
      return code == 221 ? State::closed : state;
    case Input::ehlo:
    case Input::helo:
      // §4.1.4: a successful EHLO/HELO clears the transaction (it acts as RSET).
      return code == 250 ? State::ready : state;
    case Input::mail:
      return code == 250 ? State::mail : state;
    case Input::rcpt:
      return (code == 250 || code == 251) ? State::rcpt : state;
    case Input::data:
      return code == 354 ? State::data : state;
    case Input::end_of_data:
      return State::ready;  // success or failure, the transaction is over
    case Input::bdat:
      if (code == 250) return State::chunking;
      return (state == State::rcpt || state == State::chunking) && code != 502 ? State::ready : state;
    case Input::bdat_last:
      if (code == 250) return State::ready;
      return (state == State::rcpt || state == State::chunking) && code != 502 ? State::ready : state;
    case Input::rset:
      // §4.1.1.5: RSET clears the transaction but not the EHLO (and a refused session stays so).
      if (code != 250) return state;
      return state == State::initial ? State::initial : State::ready;
    case Input::starttls:
      return code == 220 ? State::tls_handshake : state;
    case Input::tls_done:
      return State::initial;  // RFC 3207 §4.2: back to the initial state
    case Input::auth:
      return code == 334 ? State::auth : state;
    case Input::sasl_response:
      return code == 334 ? State::auth : State::ready;
    case Input::mail_bad:
    case Input::rcpt_bad:
    case Input::noop:
    case Input::help:
    case Input::vrfy:
    case Input::expn:
    case Input::unknown:
      return state;
  }
  return state;
}

namespace {

bool derive_transition(State from, State to) {
  if (from == to || to == State::closed) return true;
  // Transient states a server passes through inside one atomic model step.
  // BDAT octets are always read, even after a 554 greeting (§3.1), to keep the framing.
  if (to == State::bdat) return is_command_state(from) || from == State::refused;
  if (from == State::bdat) return is_command_state(to) || to == State::refused;
  for (Input in : kAllInputs) {
    for (int code : allowed(from, in)) {
      if (next(from, in, code) == to) return true;
    }
  }
  return false;
}

constexpr std::size_t kStates = std::size(kAllStates);

bool reaches(State from, Input in, State to) {
  for (int code : allowed(from, in)) {
    if (next(from, in, code) == to) return true;
  }
  return false;
}

}  // namespace

bool legal_bdat_outcome(State from, State to) {
  return from == to || to == State::closed || reaches(from, Input::bdat, to) || reaches(from, Input::bdat_last, to);
}

bool legal_transition(State from, State to) {
  // Derived once from allowed()/next(), so the table cannot drift from them; the fuzz harness asks
  // this on every state change.
  static const auto table = [] {
    std::array<std::array<bool, kStates>, kStates> t{};
    for (State a : kAllStates) {
      for (State b : kAllStates) t[static_cast<std::size_t>(a)][static_cast<std::size_t>(b)] = derive_transition(a, b);
    }
    return t;
  }();
  return table[static_cast<std::size_t>(from)][static_cast<std::size_t>(to)];
}

}  // namespace refsmtp::model
