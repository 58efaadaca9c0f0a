#pragma once
// The server side of an SMTP connection as a sans-IO state machine: bytes in, actions out.
//
//   ServerSession s(config);                 // queues the greeting
//   s.receive(bytes);                        // any chunking; returns how much it took
//   while (auto a = s.next_action()) ...     // Send / StartTls / Close / host questions / body
//   s.answer(Verdict::accept());             // when a question (sender, recipient, auth,
//                                            // message stored) is pending, input is held
//   s.on_time(now);                          // time is an input; s.deadline() says when
//
// It never touches sockets, files or clocks, so the same object runs under Asio, in unit tests,
// in a fuzzer and in the conformance runner's in-process target.
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "refsmtp/core/fault.hpp"
#include "refsmtp/core/line_framer.hpp"
#include "refsmtp/core/sasl.hpp"
#include "refsmtp/core/millis.hpp"
#include "refsmtp/smtp/address.hpp"
#include "refsmtp/smtp/command.hpp"
#include "refsmtp/smtp/dot_codec.hpp"
#include "refsmtp/smtp/limits.hpp"
#include "refsmtp/smtp/replies.hpp"
#include "refsmtp/smtp/reply.hpp"

namespace refsmtp::smtp {

using core::Fault;   // host misuse, apart from peer faults (which become replies)
using core::Millis;  // time is an input, since an epoch the host chooses

struct ServerConfig {
  std::string hostname = "localhost";
  std::string greeting = "ESMTP refsmtp";
  Limits limits{};

  // EHLO keywords offered (RFC 5321 §4.1.1.1). SIZE is offered when limits.message_size > 0.
  bool pipelining = true;             // RFC 2920
  bool eightbitmime = true;           // RFC 6152
  bool enhanced_status_codes = true;  // RFC 2034
  bool smtputf8 = true;               // RFC 6531
  bool chunking = true;               // RFC 3030 (BDAT)
  bool binarymime = true;             // RFC 3030 §3, only with chunking
  bool starttls = false;              // RFC 3207: offered while TLS is not active
  bool tls_active = false;            // implicit TLS (RFC 8314) from the first byte
  std::vector<std::string> auth_mechanisms;  // "PLAIN", "LOGIN"; empty: no AUTH (RFC 4954)
  bool auth_requires_tls = true;      // RFC 4954 §4: no plaintext passwords in the clear
  bool auth_required = false;         // submission (RFC 6409 §4.3): MAIL needs AUTH first
  bool tls_required = false;          // MAIL needs TLS first (RFC 3207 §4: never on a public MX)

  // Refuse at the greeting (§3.1): 421 closes at once; 554 then answers 503 to all but QUIT.
  std::optional<Reply> refuse;

  Millis command_timeout = std::chrono::minutes(5);  // §4.5.3.2.7 server timeout
  Millis data_timeout = std::chrono::minutes(5);     // between data blocks, same rule

  // Named leniencies, all off. Each says what it risks.
  // Accept bare LF inside DATA as data. Risk: a message with bare LF relayed to a receiver that
  // treats LF.LF as end of data can be split into two (SMTP smuggling). It is never a line end here.
  bool lenient_bare_lf_in_data = false;
  // Accept bare CR inside DATA as data. Risk: as above, for receivers that end data at CR.CR.
  bool lenient_bare_cr_in_data = false;
  // Accept command lines ending in LF alone. Risk: masks broken clients; harmless to framing.
  bool lenient_command_lf = false;
  // Accept "MAIL FROM: <a@b>". Risk: masks broken clients.
  bool lenient_space_after_colon = false;
};

// Visible protocol state (RFC 5321 §4.1.4, §4.3.2).
enum class State {
  refused,        // greeted with 554: only QUIT is honoured (§3.1)
  initial,        // no EHLO/HELO yet, or just after STARTTLS (RFC 3207 §4.2)
  ready,          // greeted, no transaction
  mail,           // MAIL accepted, no recipient accepted yet
  rcpt,           // at least one recipient accepted
  data,           // reading the DATA body
  bdat,           // reading the bytes of a BDAT chunk
  chunking,       // between BDAT chunks of one transaction
  auth,           // SASL exchange: the next line is a response, not a command
  tls_handshake,  // 220 sent to STARTTLS; the host is doing the handshake
  closed,
};
std::string_view state_name(State s);

struct Recipient {
  Path path;
  RcptParams params;
};

struct Envelope {
  std::string helo;
  bool esmtp = false;
  Path reverse_path;
  MailParams params;
  std::vector<Recipient> recipients;
  std::uint64_t size = 0;  // body octets, known at MessageComplete
};

// Questions for the host; the session holds further input until answer() is called.
enum class Question { none, sender, recipient, auth, message };

namespace action {
struct Send {                 // write these bytes: one or more replies, grouped (RFC 2920)
  std::string bytes;
};
struct StartTls {};           // begin the TLS handshake now; then tls_started() or tls_failed()
struct Close {};              // close after writing everything before this action
struct CheckSender {          // Question::sender
  Path path;
  MailParams params;
};
struct CheckRecipient {       // Question::recipient
  Path path;
  RcptParams params;
};
struct CheckAuth {            // Question::auth
  std::string mechanism;
  std::string authzid, authcid, password;
};
struct MessageStart {         // the body follows; the envelope is final
  Envelope envelope;
};
struct BodyChunk {            // unstuffed body octets, in order
  std::string data;
};
struct MessageComplete {      // Question::message: answer only once the message is durable
  Envelope envelope;
};
struct MessageAborted {       // discard what was received of this message
  std::string reason;
};
struct Refused {              // for the host's log: the session itself refused a command
  std::string command;        // its verb as sent (upper case), "DATA" for the data, "" for a bad line
  Reply reply;                // the 4yz/5yz reply it got
};
}  // namespace action

using Action = std::variant<action::Send, action::StartTls, action::Close, action::CheckSender,
                            action::CheckRecipient, action::CheckAuth, action::MessageStart,
                            action::BodyChunk, action::MessageComplete, action::MessageAborted, action::Refused>;

struct Verdict {
  bool accepted = true;
  std::optional<Reply> reply;  // replaces the default reply; its class must match `accepted`
  static Verdict accept(std::optional<Reply> r = std::nullopt) { return {true, std::move(r)}; }
  static Verdict reject(Reply r) { return {false, std::move(r)}; }
};

class ServerSession {
 public:
  explicit ServerSession(ServerConfig config, Millis now = Millis{0});

  // Feeds bytes from the peer. Returns how many were taken: fewer than given only when input is
  // held (a question is pending) and the hold buffer (limits.buffered_input) is full; the host
  // must offer the rest again later and should stop reading meanwhile.
  std::size_t receive(std::string_view bytes);
  std::optional<Action> next_action();

  Question pending() const { return question_; }
  // Answers the pending question. `now`, when given, is the current time (else the last time
  // passed to on_time); the idle timer restarts from it. A 421 reply closes the connection.
  Fault answer(Verdict v, std::optional<Millis> now = std::nullopt);

  Fault tls_started();  // handshake done: session is back at `initial` with TLS active
  void tls_failed();    // handshake failed: the connection is closed (RFC 3207 §4.1)

  // Host-initiated end, e.g. shutdown: sends `reply` (421 by default) and closes.
  void shutdown(std::optional<Reply> reply = std::nullopt);

  void on_time(Millis now);
  std::optional<Millis> deadline() const;

  State state() const { return state_; }
  bool closed() const { return state_ == State::closed; }
  bool tls_active() const { return tls_active_; }
  bool authenticated() const { return !auth_identity_.empty(); }
  const std::string& auth_identity() const { return auth_identity_; }
  const Envelope& envelope() const { return env_; }
  std::uint64_t discarded_at_starttls() const { return discarded_at_starttls_; }
  std::vector<std::string> ehlo_keywords() const;

  // Called on every state change (old, new); for tracing and tests.
  void set_trace(std::function<void(State, State)> trace) { trace_ = std::move(trace); }

 private:
  struct CommandSpec;
  static const CommandSpec* find_spec(Verb v);

  void enter(State s);
  void process();
  void process_line(std::string_view line);
  void process_command(std::string_view line);
  void sasl_step(const core::SaslServer::Step& step);
  void process_data();
  void process_bdat();

  void reply(const Reply& r);
  // A catalogue reply; a client error counts toward Limits::errors. `detail` follows ": ".
  void say(const NamedReply& r, std::string_view detail = {});
  void flush();
  void push(Action a);
  void ask(Question q, Action a);
  void reset_transaction(std::string_view why = "transaction reset");
  void close_with(const Reply& r);

  // The table's checks: a refusal for a command in a state where it is allowed, or null.
  const NamedReply* check_mail(const Command& c) const;
  const NamedReply* check_rcpt(const Command& c) const;
  const NamedReply* check_data(const Command& c) const;
  const NamedReply* check_starttls(const Command& c) const;
  const NamedReply* check_auth(const Command& c) const;

  void do_helo(const Command& c);
  void do_mail(const Command& c);
  void do_rcpt(const Command& c);
  void do_data(const Command& c);
  void do_bdat(const Command& c);
  void do_rset(const Command& c);
  void do_vrfy(const Command& c);
  void do_expn(const Command& c);
  void do_help(const Command& c);
  void do_noop(const Command& c);
  void do_quit(const Command& c);
  void do_starttls(const Command& c);
  void do_auth(const Command& c);
  void finish_message_body(bool too_large, bool line_too_long, bool bare);
  std::size_t line_limit(std::string_view partial) const;
  void line_error(const NamedReply& r);

  ServerConfig cfg_;
  State state_ = State::initial;
  Question question_ = Question::none;
  std::function<void(State, State)> trace_;
  std::deque<Action> actions_;
  std::string out_;     // replies not yet handed out as a Send
  std::string in_;      // input not yet processed
  std::size_t in_pos_ = 0;
  core::LineFramer framer_;  // command lines and SASL responses

  Millis now_{0};
  Millis last_activity_{0};

  bool tls_active_ = false;
  bool esmtp_ = false;
  std::string auth_identity_;
  std::size_t errors_ = 0;
  std::uint64_t discarded_at_starttls_ = 0;

  Envelope env_;
  bool message_started_ = false;  // MessageStart sent, no Complete/Aborted yet
  DataDecoder decoder_;
  std::string body_;
  std::uint64_t bdat_remaining_ = 0;
  bool bdat_last_ = false;
  const NamedReply* bdat_error_ = nullptr;  // reply owed after swallowing a refused chunk
  State bdat_return_ = State::ready;  // state after a refused chunk

  core::SaslServer sasl_;  // the AUTH exchange (State::auth)
  std::string verb_;       // the command being answered, for action::Refused
};

}  // namespace refsmtp::smtp
