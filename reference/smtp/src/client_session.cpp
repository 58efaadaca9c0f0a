#include "refsmtp/smtp/client_session.hpp"

#include <algorithm>
#include <utility>

#include "refsmtp/core/ascii.hpp"
#include "refsmtp/core/base64.hpp"
#include "refsmtp/smtp/command.hpp"  // is_xtext
#include "refsmtp/smtp/dot_codec.hpp"

namespace refsmtp::smtp {

using core::is_digit;
using core::to_upper;
using core::iequals;
using core::base64_encode;

namespace {

bool has_non_ascii(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
}

DeliveryStatus classify(const Reply& r, bool final_reply) {
  if (r.klass() == 5) return DeliveryStatus::failed;
  if (r.klass() == 2 && final_reply) return DeliveryStatus::delivered;
  return DeliveryStatus::deferred;
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = to_upper(c);
  return out;
}

}  // namespace

void ClientSession::enter(State s) {
  if (s == state_) return;
  const State old = state_;
  state_ = s;
  if (trace_) trace_(old, s);
}

ClientSession::ClientSession(ClientConfig config, Millis now)
    : cfg_(std::move(config)), tls_active_(cfg_.tls_active), now_(now) {
  deadline_ = now_ + cfg_.greeting_timeout;  // §4.5.3.2.1
}

void ClientSession::push(ClientAction a) {
  if (!out_.empty()) {
    actions_.emplace_back(client_action::Send{std::move(out_)});
    out_.clear();
  }
  actions_.push_back(std::move(a));
}

std::optional<ClientAction> ClientSession::next_action() {
  if (actions_.empty() && !out_.empty()) {
    actions_.emplace_back(client_action::Send{std::move(out_)});
    out_.clear();
  }
  if (actions_.empty()) return std::nullopt;
  ClientAction a = std::move(actions_.front());
  actions_.pop_front();
  return a;
}

void ClientSession::send(std::string_view bytes, Millis timeout) {
  out_.append(bytes);
  deadline_ = now_ + timeout;
}

void ClientSession::receive(std::string_view bytes) {
  if (state_ == State::closed) return;
  if (state_ == State::tls_handshake) return;  // cleartext during the handshake is never read
  reader_.feed(bytes);
  // Stop at the 220 to STARTTLS: whatever follows it in the clear is injected, not a reply
  // (RFC 3207 §4.2; the client side of CVE-2011-0411). tls_started() discards it.
  while (state_ != State::closed && state_ != State::tls_handshake) {
    auto item = reader_.next();
    if (!item) break;
    if (item->error) {
      fail_connection(make_reply(451, 4, 4, 0, "Malformed reply from server"), false,
                      "malformed reply: " + item->raw, false);
      break;
    }
    deadline_.reset();
    on_reply(*item->reply);
    if (!deadline_ && state_ != State::ready && state_ != State::closed && state_ != State::tls_handshake) {
      deadline_ = now_ + cfg_.command_timeout;  // still owed replies to what was sent before
    }
  }
}

void ClientSession::on_reply(const Reply& r) {
  if (r.code == 421 && state_ != State::quit) {  // §3.8: the server is closing the channel
    fail_connection(r, false, "server closing connection", false);
    return;
  }
  switch (state_) {
    case State::greeting:
      // §3.1: a 554 greeting (or anything not 2xx) means this server will not take mail now.
      if (r.klass() == 2) {
        send_hello();
      } else {
        fail_connection(r, r.klass() == 5, "greeting refused", true);
      }
      return;
    case State::hello:
      if (r.klass() == 2) {
        esmtp_ = true;
        ext_.clear();
        for (std::size_t i = 1; i < r.lines.size(); ++i) {
          const std::string& line = r.lines[i];
          const std::size_t sp = line.find(' ');
          ext_[upper(line.substr(0, sp))] = sp == std::string::npos ? "" : line.substr(sp + 1);
        }
        after_hello();
      } else if (!cfg_.lmtp && r.klass() == 5) {
        enter(State::helo_fallback);  // §4.1.4: an old server may not know EHLO
        send("HELO " + cfg_.helo_name + "\r\n", cfg_.command_timeout);
      } else {
        fail_connection(r, r.klass() == 5, cfg_.lmtp ? "LHLO refused" : "EHLO refused", true);
      }
      return;
    case State::helo_fallback:
      if (r.klass() == 2) {
        esmtp_ = false;
        ext_.clear();
        after_hello();
      } else {
        fail_connection(r, r.klass() == 5, "HELO refused", true);
      }
      return;
    case State::starttls:
      if (r.code == 220) {  // RFC 3207 §4
        enter(State::tls_handshake);
        deadline_.reset();
        push(client_action::StartTls{});
      } else if (cfg_.tls == TlsPolicy::required) {
        fail_connection(r, false, "STARTTLS refused", true);
      } else {
        tls_declined_ = true;
        after_hello();
      }
      return;
    case State::auth:
      if (r.code == 235) {  // RFC 4954 §4
        authenticated_ = true;
        become_ready();
      } else {
        // Never permanent: a wrong or expired relay password, or the server's own auth backend
        // failing, is for the operator to fix; the mail waits instead of bouncing.
        fail_connection(r, false, "authentication failed", true);
      }
      return;
    case State::transaction:
      on_transaction_reply(r);
      return;
    case State::rset:
      if (r.klass() == 2) {
        become_ready();
      } else {
        fail_connection(r, false, "RSET refused", true);
      }
      return;
    case State::quit:
      push(client_action::Close{});
      enter(State::closed);
      deadline_.reset();
      return;
    case State::ready:
    case State::tls_handshake:
    case State::closed:
      fail_connection(make_reply(451, 4, 5, 0, "Unexpected reply from server"), false,
                      "unexpected reply " + std::to_string(r.code), false);
      return;
  }
}

void ClientSession::send_hello() {
  enter(State::hello);
  send((cfg_.lmtp ? "LHLO " : "EHLO ") + cfg_.helo_name + "\r\n", cfg_.command_timeout);
}

void ClientSession::after_hello() {
  if (!tls_active_ && cfg_.tls != TlsPolicy::none && !tls_declined_) {
    if (offered("STARTTLS")) {
      enter(State::starttls);
      send("STARTTLS\r\n", cfg_.command_timeout);
      return;
    }
    if (cfg_.tls == TlsPolicy::required) {
      fail_connection(make_reply(451, 4, 7, 10, "STARTTLS required but not offered"), false,
                      "STARTTLS required but not offered", true);
      return;
    }
  }
  if (cfg_.auth_user) {
    if (cfg_.auth_requires_tls && !tls_active_) {
      fail_connection(make_reply(451, 4, 7, 10, "Will not authenticate without TLS"), false,
                      "authentication needs TLS", true);
      return;
    }
    const auto auth = ext_.find("AUTH");
    bool plain = false;
    if (auth != ext_.end()) {
      std::string_view mechs = auth->second;
      while (!mechs.empty()) {
        const std::size_t sp = mechs.find(' ');
        if (iequals(mechs.substr(0, sp), "PLAIN")) plain = true;
        mechs = sp == std::string_view::npos ? std::string_view() : mechs.substr(sp + 1);
      }
    }
    if (!plain) {
      fail_connection(make_reply(451, 4, 7, 0, "Server does not offer AUTH PLAIN"), false,
                      "AUTH PLAIN not offered", true);
      return;
    }
    enter(State::auth);
    const std::string msg = std::string(1, '\0') + *cfg_.auth_user + std::string(1, '\0') + cfg_.auth_password.value_or("");
    send("AUTH PLAIN " + base64_encode(msg) + "\r\n", cfg_.command_timeout);
    return;
  }
  become_ready();
}

void ClientSession::become_ready() {
  enter(State::ready);
  deadline_.reset();
  push(client_action::Ready{ext_});
}

Fault ClientSession::tls_started() {
  if (state_ != State::tls_handshake) return Fault::not_in_handshake;
  tls_active_ = true;
  // RFC 3207 §4.2: discard what was learnt in the clear, including anything already buffered.
  ext_.clear();
  reader_ = ReplyReader{};
  send_hello();
  return Fault::none;
}

void ClientSession::tls_failed() {
  if (state_ == State::closed) return;
  fail_connection(make_reply(451, 4, 7, 5, "TLS handshake failed"), false, "TLS handshake failed", false);
}

Fault ClientSession::send_message(OutgoingMessage msg) {
  if (state_ != State::ready) return Fault::not_ready;
  msg_ = std::move(msg);
  results_.clear();
  for (const auto& r : msg_.recipients) results_.push_back(RecipientResult{r, DeliveryStatus::deferred, Reply{}});
  resolved_.assign(msg_.recipients.size(), false);
  expected_.clear();
  mail_refusal_.reset();
  next_rcpt_ = 0;
  accepted_ = 0;
  data_sent_ = false;
  aborting_ = false;
  final_seen_ = false;

  // Checks before anything is sent: what this server cannot take fails now, permanently.
  std::optional<Reply> refusal;
  bool utf8 = has_non_ascii(msg_.reverse_path.to_string());
  for (const auto& r : msg_.recipients) utf8 = utf8 || has_non_ascii(r.to_string());
  bool utf8_headers = false;
  if (msg_.smtputf8 && !utf8) {
    const std::size_t end = msg_.body.find("\r\n\r\n");
    utf8_headers = has_non_ascii(std::string_view(msg_.body).substr(0, end == std::string::npos ? msg_.body.size() : end));
  }
  const bool eight_bit = has_non_ascii(msg_.body);
  std::uint64_t limit = 0;
  if (auto s = ext_.find("SIZE"); s != ext_.end()) {
    for (char c : s->second) {
      if (!is_digit(static_cast<unsigned char>(c)) || limit > (UINT64_MAX - 9) / 10) break;
      limit = limit * 10 + static_cast<std::uint64_t>(c - '0');
    }
  }
  if (utf8 && !offered("SMTPUTF8")) {
    refusal = make_reply(553, 5, 6, 7, "Non-ASCII address and the server lacks SMTPUTF8");  // RFC 6531 §3.2
  } else if (utf8_headers && !offered("SMTPUTF8")) {
    refusal = make_reply(554, 5, 6, 7, "UTF-8 header fields and the server lacks SMTPUTF8");  // RFC 6531 §3.2, RFC 6532
  } else if (eight_bit && !offered("8BITMIME")) {
    refusal = make_reply(554, 5, 6, 3, "8-bit message and the server lacks 8BITMIME");  // RFC 6152 §3
  } else if (limit > 0 && msg_.body.size() > limit) {
    refusal = make_reply(552, 5, 3, 4, "Message larger than the server's SIZE " + std::to_string(limit));  // RFC 1870
  }
  if (msg_.recipients.empty() || refusal) {
    for (std::size_t i = 0; i < results_.size(); ++i) resolve(i, *refusal, false);
    push(client_action::MessageResult{results_});
    return Fault::none;
  }

  enter(State::transaction);
  pipelined_ = cfg_.use_pipelining && offered("PIPELINING");
  chunking_ = cfg_.use_chunking && offered("CHUNKING");
  std::string mail = "MAIL FROM:" + msg_.reverse_path.to_string();
  if (offered("SIZE")) mail += " SIZE=" + std::to_string(msg_.body.size());
  if (eight_bit) mail += " BODY=8BITMIME";
  if (utf8 || utf8_headers) mail += " SMTPUTF8";
  // Only a well-formed value goes out: it may come from a spool file, which is untrusted.
  if (msg_.auth && offered("AUTH") && (*msg_.auth == "<>" || (!msg_.auth->empty() && is_xtext(*msg_.auth)))) {
    mail += " AUTH=" + *msg_.auth;
  } else if (authenticated_) {
    // RFC 4954 §5: a message whose submitter is not vouched for (no AUTH= of its own, or one
    // that is not well formed) "MUST supply the AUTH=<> parameter when relaying the message to
    // any server which it has authenticated to".
    mail += " AUTH=<>";
  }
  mail += "\r\n";
  expected_.emplace_back(Expect::mail, 0);
  if (pipelined_) {
    // RFC 2920 §3.1: MAIL, every RCPT and (without BDAT) DATA in one group.
    for (std::size_t i = 0; i < msg_.recipients.size(); ++i) {
      mail += "RCPT TO:" + msg_.recipients[i].to_string() + "\r\n";
      expected_.emplace_back(Expect::rcpt, i);
    }
    next_rcpt_ = msg_.recipients.size();
    if (!chunking_) {
      mail += "DATA\r\n";
      expected_.emplace_back(Expect::data, 0);
      data_sent_ = true;
    }
  }
  send(mail, cfg_.command_timeout);
  return Fault::none;
}

void ClientSession::resolve(std::size_t i, const Reply& r, bool final_reply) {
  if (resolved_[i]) return;
  resolved_[i] = true;
  results_[i].status = classify(r, final_reply);
  results_[i].reply = r;
}

void ClientSession::resolve_all_pending(const Reply& r) {
  for (std::size_t i = 0; i < results_.size(); ++i) resolve(i, r, false);
}

void ClientSession::on_transaction_reply(const Reply& r) {
  if (expected_.empty()) {
    fail_connection(make_reply(451, 4, 5, 0, "Unexpected reply from server"), false, "unexpected reply", false);
    return;
  }
  const auto [kind, index] = expected_.front();
  expected_.pop_front();
  switch (kind) {
    case Expect::mail:
      if (!r.positive()) {
        mail_refusal_ = r;
        resolve_all_pending(r);
      }
      if (!pipelined_) {
        if (mail_refusal_) {
          finish_message();
        } else {
          expected_.emplace_back(Expect::rcpt, next_rcpt_);
          send("RCPT TO:" + msg_.recipients[next_rcpt_++].to_string() + "\r\n", cfg_.command_timeout);
        }
      }
      return;
    case Expect::rcpt:
      if (!mail_refusal_) {
        if (r.code == 250 || r.code == 251) {
          ++accepted_;  // resolved by the reply to the data
        } else {
          resolve(index, r, false);
        }
      }
      if (!pipelined_ && next_rcpt_ < msg_.recipients.size()) {
        expected_.emplace_back(Expect::rcpt, next_rcpt_);
        send("RCPT TO:" + msg_.recipients[next_rcpt_++].to_string() + "\r\n", cfg_.command_timeout);
        return;
      }
      if (index + 1 == msg_.recipients.size()) after_recipients();
      return;
    case Expect::data:
      if (r.code == 354) {
        if (accepted_ == 0 || mail_refusal_) {
          // RFC 2920 §3.1: DATA went in the group but no recipient was accepted; end the empty
          // message and ignore its reply.
          aborting_ = true;
          expected_.emplace_back(Expect::data_end, 0);
          send(".\r\n", cfg_.data_end_timeout);
        } else {
          const std::size_t replies = cfg_.lmtp ? accepted_ : 1;  // RFC 2033 §4.2
          for (std::size_t k = 0; k < replies; ++k) expected_.emplace_back(Expect::data_end, 0);
          send(dot_stuff(msg_.body), cfg_.data_end_timeout);
        }
      } else {
        resolve_all_pending(r);
        finish_message();
      }
      return;
    case Expect::data_end:
    case Expect::bdat:
      final_seen_ = true;  // the server ended the transaction, whatever it said
      if (!aborting_) {
        // SMTP: one reply for every accepted recipient; LMTP: one reply each, in RCPT order.
        for (std::size_t i = 0; i < results_.size(); ++i) {
          if (resolved_[i]) continue;
          resolve(i, r, true);
          if (cfg_.lmtp) break;
        }
      }
      if (expected_.empty()) finish_message();
      return;
  }
}

void ClientSession::after_recipients() {
  if (mail_refusal_ || accepted_ == 0) {
    if (data_sent_) return;  // the reply to the pipelined DATA decides
    finish_message();
    return;
  }
  if (chunking_) {
    // RFC 3030 §2: the whole body as one last chunk; no dot-stuffing.
    const std::size_t replies = cfg_.lmtp ? accepted_ : 1;
    for (std::size_t k = 0; k < replies; ++k) expected_.emplace_back(Expect::bdat, 0);
    data_sent_ = true;
    send("BDAT " + std::to_string(msg_.body.size()) + " LAST\r\n" + msg_.body, cfg_.data_end_timeout);
  } else if (!data_sent_) {
    expected_.emplace_back(Expect::data, 0);
    data_sent_ = true;
    send("DATA\r\n", cfg_.data_init_timeout);
  }
}

void ClientSession::finish_message() {
  // Anything not decided by now had no decisive reply: try again later.
  resolve_all_pending(make_reply(451, 4, 5, 0, "No reply for this recipient"));
  push(client_action::MessageResult{results_});
  if (!final_seen_ && !mail_refusal_) {
    // MAIL was accepted but the message never completed (no recipient, or DATA refused): clear
    // the transaction on the server before the next one (§4.1.1.5).
    enter(State::rset);
    send("RSET\r\n", cfg_.command_timeout);
    return;
  }
  become_ready();
}

void ClientSession::quit() {
  if (state_ == State::closed) return;
  if (state_ == State::ready) {
    enter(State::quit);
    send("QUIT\r\n", cfg_.command_timeout);
    return;
  }
  fail_connection(make_reply(451, 4, 4, 0, "Connection closed by the client"), false, "quit before ready", false);
}

void ClientSession::connection_lost() {
  if (state_ == State::closed) return;
  if (state_ == State::quit) {
    enter(State::closed);
    push(client_action::Close{});
    return;
  }
  fail_connection(make_reply(451, 4, 4, 2, "Connection lost"), false, "connection lost", false);
}

void ClientSession::fail_connection(Reply r, bool permanent, std::string reason, bool say_quit) {
  if (state_ == State::closed) return;
  if (state_ == State::transaction) {
    resolve_all_pending(r);
    push(client_action::MessageResult{results_});
  } else {
    push(client_action::ConnectionFailed{r, permanent, std::move(reason)});
  }
  if (say_quit) out_ += "QUIT\r\n";  // §4.1.1.10: end politely when the server is still talking
  push(client_action::Close{});
  enter(State::closed);
  deadline_.reset();
}

std::optional<Millis> ClientSession::deadline() const { return deadline_; }

void ClientSession::on_time(Millis now) {
  now_ = now;
  if (deadline_ && now >= *deadline_) {
    fail_connection(make_reply(451, 4, 4, 2, "Timeout waiting for the server"), false, "timeout", false);
  }
}

}  // namespace refsmtp::smtp
