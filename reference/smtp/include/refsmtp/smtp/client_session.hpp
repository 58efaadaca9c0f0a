#pragma once
// The client side of SMTP (RFC 5321) and LMTP (RFC 2033) as a sans-IO state machine: the mirror
// of ServerSession, for relaying and for handing mail to an LMTP server.
//
//   ClientSession c(config);
//   c.receive(bytes_from_server);            // any chunking
//   while (auto a = c.next_action()) ...     // Send / StartTls / Close / Ready / MessageResult /
//                                            // ConnectionFailed
//   if (c.ready()) c.send_message(msg);      // then more messages on the same connection, or
//   c.quit();
//
// It greets with EHLO (LHLO for LMTP) and falls back to HELO; upgrades with STARTTLS per policy;
// authenticates with AUTH PLAIN when given credentials; uses PIPELINING (RFC 2920) and CHUNKING
// (RFC 3030) when offered; checks SIZE, 8BITMIME and SMTPUTF8 before sending; and reports one
// result per recipient. Untrusted replies are read with ReplyReader; anything it cannot make sense
// of ends the connection with a temporary failure for what is unresolved.
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "refsmtp/core/fault.hpp"
#include "refsmtp/core/millis.hpp"
#include "refsmtp/smtp/address.hpp"
#include "refsmtp/smtp/reply.hpp"

namespace refsmtp::smtp {

using core::Fault;
using core::Millis;

enum class TlsPolicy {
  none,           // never STARTTLS
  opportunistic,  // STARTTLS when offered; carry on in the clear otherwise (RFC 3207 §4)
  required,       // fail (temporarily) when STARTTLS is not offered or refused
};

struct ClientConfig {
  std::string helo_name = "localhost";  // our name in EHLO/HELO/LHLO
  bool lmtp = false;                    // RFC 2033: LHLO, no HELO fallback, a reply per recipient
  TlsPolicy tls = TlsPolicy::opportunistic;
  bool tls_active = false;              // implicit TLS (RFC 8314): already encrypted
  bool use_pipelining = true;           // when the server offers PIPELINING
  bool use_chunking = true;             // BDAT when the server offers CHUNKING
  std::optional<std::string> auth_user, auth_password;  // AUTH PLAIN (RFC 4954, RFC 4616)
  bool auth_requires_tls = true;        // never send a password in the clear
  // RFC 5321 §4.5.3.2 client timeouts.
  Millis greeting_timeout = std::chrono::minutes(5);   // §4.5.3.2.1 initial 220
  Millis command_timeout = std::chrono::minutes(5);    // §4.5.3.2.2/.3 MAIL, RCPT (and EHLO etc.)
  Millis data_init_timeout = std::chrono::minutes(2);  // §4.5.3.2.4 DATA initiation
  Millis data_block_timeout = std::chrono::minutes(3); // §4.5.3.2.5 (applied to the whole body)
  Millis data_end_timeout = std::chrono::minutes(10);  // §4.5.3.2.6 DATA termination
};

struct OutgoingMessage {
  Path reverse_path;
  std::vector<Path> recipients;
  std::string body;  // the message as CRLF-terminated lines (dot-stuffing is done here)
  // The sender declared SMTPUTF8 (RFC 6531). Then a header section with UTF-8 needs the
  // extension at the next hop too, as a non-ASCII address always does (5.6.7 without it).
  bool smtputf8 = false;
  // RFC 4954 §5: the AUTH= value to give in MAIL when the server offers AUTH (an xtext mailbox,
  // or "<>"); nothing sends none.
  std::optional<std::string> auth;
};

enum class DeliveryStatus { delivered, deferred, failed };

struct RecipientResult {
  Path recipient;
  DeliveryStatus status = DeliveryStatus::deferred;
  Reply reply;  // the server's reply that decided it (or a synthetic one, e.g. for a timeout)
};

namespace client_action {
struct Send {
  std::string bytes;
};
struct StartTls {};  // begin the TLS handshake; then tls_started() or tls_failed()
struct Close {};
struct Ready {  // the session can take a message (after the greeting, and after each message)
  std::map<std::string, std::string> extensions;  // EHLO keyword (upper case) -> parameters
};
struct MessageResult {
  std::vector<RecipientResult> results;  // one per recipient, in the order given
};
struct ConnectionFailed {  // no message can be sent on this connection
  Reply reply;             // the server's reply, or a synthetic one
  bool permanent = false;  // 5xx from the server, or a policy failure that will not change
  std::string reason;
};
}  // namespace client_action

using ClientAction = std::variant<client_action::Send, client_action::StartTls, client_action::Close,
                                  client_action::Ready, client_action::MessageResult,
                                  client_action::ConnectionFailed>;

class ClientSession {
 public:
  // Where the dialog stands (RFC 5321 §3, §4.1.4; RFC 3207; RFC 4954).
  enum class State { greeting, hello, helo_fallback, starttls, tls_handshake, auth, ready, transaction, rset, quit, closed };

  explicit ClientSession(ClientConfig config, Millis now = Millis{0});

  void receive(std::string_view bytes);
  std::optional<ClientAction> next_action();

  bool ready() const { return state_ == State::ready; }
  bool closed() const { return state_ == State::closed; }
  Fault send_message(OutgoingMessage msg);  // only when ready()
  void quit();
  void connection_lost();  // the peer closed or the network failed
  Fault tls_started();
  void tls_failed();

  void on_time(Millis now);
  std::optional<Millis> deadline() const;

  const std::map<std::string, std::string>& extensions() const { return ext_; }
  bool tls_active() const { return tls_active_; }
  State state() const { return state_; }
  // Called on every state change (old, new); for tracing and tests.
  void set_trace(std::function<void(State, State)> trace) { trace_ = std::move(trace); }

 private:
  enum class Expect { mail, rcpt, data, data_end, bdat };

  void enter(State s);  // the one place state_ changes
  void on_reply(const Reply& r);
  void on_transaction_reply(const Reply& r);
  void send(std::string_view bytes, Millis timeout);
  void send_hello();
  void after_hello();
  void fail_connection(Reply r, bool permanent, std::string reason, bool say_quit);
  void push(ClientAction a);
  void become_ready();
  void after_recipients();
  void resolve(std::size_t i, const Reply& r, bool final_reply);
  void start_transaction();
  void send_body();
  void finish_message();
  void resolve_all_pending(const Reply& r);
  bool offered(std::string_view keyword) const { return ext_.count(std::string(keyword)) != 0; }

  ClientConfig cfg_;
  State state_ = State::greeting;
  std::function<void(State, State)> trace_;
  ReplyReader reader_;
  std::deque<ClientAction> actions_;
  std::string out_;
  std::map<std::string, std::string> ext_;
  bool esmtp_ = false;
  bool tls_active_ = false;
  bool authenticated_ = false;  // AUTH succeeded on this connection
  bool tls_declined_ = false;  // opportunistic STARTTLS was refused: carry on in the clear

  Millis now_{0};
  std::optional<Millis> deadline_;

  // The message in flight.
  OutgoingMessage msg_;
  std::vector<RecipientResult> results_;
  std::vector<bool> resolved_;
  std::deque<std::pair<Expect, std::size_t>> expected_;  // replies still owed, in order
  std::optional<Reply> mail_refusal_;
  std::size_t next_rcpt_ = 0;   // without pipelining: the next RCPT to send
  bool pipelined_ = false;
  bool data_sent_ = false;      // DATA or BDAT is on its way (or was)
  bool chunking_ = false;       // this message goes with BDAT
  bool aborting_ = false;       // 354 came with no valid recipient: a lone "." ends it
  bool final_seen_ = false;     // the reply to the end of the data arrived
  std::size_t accepted_ = 0;
};

}  // namespace refsmtp::smtp
