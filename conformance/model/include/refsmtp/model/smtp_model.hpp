#pragma once
// An executable specification of an SMTP server's command/reply state machine, written from
// RFC 5321 §4.1.4 (order of commands) and §4.3.2 (command-reply sequences), with the extensions
// STARTTLS (RFC 3207), AUTH (RFC 4954) and CHUNKING (RFC 3030).
//
// It is deliberately independent of reference/smtp: it shares no code with the session it judges.
// The session tests and the session fuzz harness use it as their oracle. It answers two questions:
//   allowed(state, input)     which reply codes a conforming server may give
//   next(state, input, code)  where the dialog stands after that reply
#include <set>
#include <string_view>
#include <vector>

namespace refsmtp::model {

enum class State {
  refused,        // greeted with 554; only QUIT is honoured (§3.1)
  initial,        // before EHLO/HELO (also after STARTTLS, RFC 3207 §4.2)
  ready,          // greeted, no mail transaction
  mail,           // MAIL accepted
  rcpt,           // one or more RCPT accepted
  data,           // 354 sent; reading the message
  bdat,           // reading a BDAT chunk
  chunking,       // between BDAT chunks
  auth,           // SASL exchange
  tls_handshake,  // 220 to STARTTLS sent
  closed,
};
std::string_view name(State s);

// What the client does, abstracted to what decides the reply.
enum class Input {
  ehlo, helo,
  mail,           // syntactically valid MAIL FROM
  mail_bad,       // MAIL with a syntax error in path or parameters
  rcpt,           // syntactically valid RCPT TO
  rcpt_bad,
  data,
  end_of_data,    // the message and <CRLF>.<CRLF>, in state data
  bdat,           // BDAT n and its octets
  bdat_last,      // BDAT n LAST and its octets
  rset, noop, help, vrfy, expn, quit,
  starttls,
  tls_done,       // the handshake completed
  auth,           // AUTH with a mechanism the server offers
  sasl_response,  // a line answering a 334 challenge
  unknown,        // an unrecognised verb
};
std::string_view name(Input i);
inline constexpr Input kAllInputs[] = {
    Input::ehlo, Input::helo, Input::mail, Input::mail_bad, Input::rcpt, Input::rcpt_bad,
    Input::data, Input::end_of_data, Input::bdat, Input::bdat_last, Input::rset, Input::noop,
    Input::help, Input::vrfy, Input::expn, Input::quit, Input::starttls, Input::tls_done,
    Input::auth, Input::sasl_response, Input::unknown};
inline constexpr State kAllStates[] = {
    State::refused, State::initial, State::ready, State::mail, State::rcpt, State::data, State::bdat,
    State::chunking, State::auth, State::tls_handshake, State::closed};

// Reply codes a conforming server may send for `input` in `state`. Empty means the input cannot
// occur there (e.g. end_of_data outside DATA). 421 (service closing, §3.8) is always allowed and
// not listed.
std::set<int> allowed(State state, Input input);

// The state after the server answered `input` with `code` (a code from allowed()).
State next(State state, Input input, int code);

// True if some input and allowed code leads from `from` to `to`, counting the transient states
// (data, bdat, auth, tls_handshake) a server passes through. The fuzz harness checks every
// transition the session makes against this.
bool legal_transition(State from, State to);

// For a server that passes through `bdat` while it reads a chunk: whether leaving it for `to`
// is a possible outcome of BDAT or BDAT LAST sent in `from` (the state before the chunk).
bool legal_bdat_outcome(State from, State to);

}  // namespace refsmtp::model
