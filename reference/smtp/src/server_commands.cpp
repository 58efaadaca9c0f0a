// The server session's commands: the command table (which states each verb may run in, and the
// check that may still refuse it), and one handler per verb. The session's loop, framing, body
// handling and host answers are in server_session.cpp.
#include <algorithm>
#include <array>

#include "refsmtp/core/base64.hpp"
#include "refsmtp/smtp/server_session.hpp"
#include "session_states.hpp"

namespace refsmtp::smtp {

using core::base64_encode;
using detail::bit;
using detail::kCommandStates;

// The command table (OpenSMTPD's commands[]): every rule on whether a command may run now. A
// verb outside its allowed states gets its out-of-sequence reply -- or, before EHLO/HELO, "Send
// EHLO or HELO first" when it needs the hello (§4.1.4), or 503 in the refused state (§3.1). In an
// allowed state its check may still refuse it (a requirement not met: TLS or AUTH first, an
// extension not offered, a limit). BDAT is allowed everywhere because its octets must always be
// swallowed to keep the framing; do_bdat decides what to reply after them (RFC 3030 §2).
struct ServerSession::CommandSpec {
  Verb verb;
  unsigned allowed;
  const NamedReply* out_of_sequence;
  bool needs_hello;
  const NamedReply* (ServerSession::*check)(const Command&) const;  // null: no check
  void (ServerSession::*handler)(const Command&);
};

namespace {
using S = ServerSession;
namespace R = replies;
}

const ServerSession::CommandSpec* ServerSession::find_spec(Verb v) {
  static const std::array<CommandSpec, 14> table{{
      {Verb::ehlo, kCommandStates, &R::bad_sequence, false, nullptr, &S::do_helo},
      {Verb::helo, kCommandStates, &R::bad_sequence, false, nullptr, &S::do_helo},
      {Verb::mail, bit(State::ready), &R::nested_mail, true, &S::check_mail, &S::do_mail},                      // §4.1.4
      {Verb::rcpt, bit(State::mail) | bit(State::rcpt), &R::rcpt_needs_mail, false, &S::check_rcpt, &S::do_rcpt},  // §4.1.4
      {Verb::data, bit(State::mail) | bit(State::rcpt), &R::data_needs_rcpt, false, &S::check_data, &S::do_data},  // §4.1.4
      {Verb::bdat, kCommandStates | bit(State::refused), &R::bad_sequence, false, nullptr, &S::do_bdat},
      {Verb::rset, kCommandStates, &R::bad_sequence, false, nullptr, &S::do_rset},
      {Verb::vrfy, kCommandStates, &R::bad_sequence, false, nullptr, &S::do_vrfy},
      {Verb::expn, kCommandStates, &R::bad_sequence, false, nullptr, &S::do_expn},
      {Verb::help, kCommandStates, &R::bad_sequence, false, nullptr, &S::do_help},
      {Verb::noop, kCommandStates, &R::bad_sequence, false, nullptr, &S::do_noop},
      {Verb::quit, kCommandStates | bit(State::refused), &R::bad_sequence, false, nullptr, &S::do_quit},
      {Verb::starttls, bit(State::ready), &R::starttls_out_of_sequence, true, &S::check_starttls, &S::do_starttls},
      {Verb::auth, bit(State::ready), &R::auth_out_of_sequence, true, &S::check_auth, &S::do_auth},
  }};
  for (const auto& e : table) {
    if (e.verb == v) return &e;
  }
  return nullptr;
}

void ServerSession::process_command(std::string_view line) {
  // The verb as sent, for the log of refused commands: its first word, upper case, at most 16.
  verb_.clear();
  for (char c : line.substr(0, std::min<std::size_t>(line.find(' '), 16))) {
    verb_ += static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : (static_cast<unsigned char>(c) < 32 || c == 127 ? '?' : c));
  }
  CommandOptions opt;
  opt.address.limits = cfg_.limits;
  // UTF-8 addresses are possible only when SMTPUTF8 is offered; RCPT only inside an SMTPUTF8
  // transaction (RFC 6531 §3.4). The parser checks MAIL's own SMTPUTF8 parameter.
  opt.address.utf8 = cfg_.smtputf8 && esmtp_ && (state_ == State::ready || env_.params.smtputf8);
  opt.lenient_space_after_colon = cfg_.lenient_space_after_colon;
  auto parsed = parse_command(line, opt);
  if (!parsed) {
    const CommandError& e = parsed.error();
    if (state_ == State::refused) {
      say(replies::bad_sequence);  // §3.1
      return;
    }
    switch (e.kind) {
      case CommandErrorKind::unknown_command:
        say(replies::command_unrecognized);
        return;
      case CommandErrorKind::syntax:
      case CommandErrorKind::bad_parameter_value:
        if (e.verb == Verb::bdat) {
          // Without a size the chunk cannot be skipped; what follows is read as commands.
          say(replies::bdat_syntax);
          return;
        }
        say(replies::syntax_error, e.detail);
        return;
      case CommandErrorKind::unknown_parameter:
        say(replies::unsupported_parameter);
        return;
      case CommandErrorKind::address:
        if (e.address == AddressError::utf8_not_allowed) {
          say(e.verb == Verb::mail ? replies::utf8_sender_needs_smtputf8 : replies::utf8_recipient_needs_smtputf8);
          return;
        }
        // §4.5.3.1.10 "501 Path too long" is among them.
        say(e.verb == Verb::mail ? replies::bad_sender_syntax : replies::bad_recipient_syntax, e.detail);
        return;
    }
    return;
  }
  const Command& cmd = *parsed;
  const CommandSpec* spec = find_spec(cmd.verb);
  if (!(spec->allowed & bit(state_))) {
    say(state_ == State::refused                        ? replies::bad_sequence
        : state_ == State::initial && spec->needs_hello ? replies::hello_first
                                                        : *spec->out_of_sequence);
    return;
  }
  if (spec->check) {
    if (const NamedReply* refusal = (this->*spec->check)(cmd)) {
      say(*refusal);
      return;
    }
  }
  (this->*spec->handler)(cmd);
}

std::vector<std::string> ServerSession::ehlo_keywords() const {
  std::vector<std::string> k;
  if (cfg_.limits.message_size > 0) k.push_back("SIZE " + std::to_string(cfg_.limits.message_size));
  if (cfg_.eightbitmime) k.emplace_back("8BITMIME");
  if (cfg_.pipelining) k.emplace_back("PIPELINING");
  if (cfg_.enhanced_status_codes) k.emplace_back("ENHANCEDSTATUSCODES");
  if (cfg_.starttls && !tls_active_) k.emplace_back("STARTTLS");
  if (!cfg_.auth_mechanisms.empty() && (tls_active_ || !cfg_.auth_requires_tls) && auth_identity_.empty()) {
    std::string a = "AUTH";
    for (const auto& m : cfg_.auth_mechanisms) a += " " + m;
    k.push_back(std::move(a));
  }
  if (cfg_.smtputf8) k.emplace_back("SMTPUTF8");
  if (cfg_.chunking) {
    k.emplace_back("CHUNKING");
    if (cfg_.binarymime) k.emplace_back("BINARYMIME");
  }
  return k;
}

void ServerSession::do_helo(const Command& c) {
  // §4.1.4: EHLO/HELO may be sent later in the session; it resets the transaction like RSET.
  reset_transaction();
  env_.helo = c.domain;
  esmtp_ = c.verb == Verb::ehlo;
  env_.esmtp = esmtp_;
  Reply r{250, std::nullopt, {cfg_.hostname + " Hello " + c.domain}};
  if (esmtp_) {
    for (auto& k : ehlo_keywords()) r.lines.push_back(std::move(k));
  }
  r.format_to(out_);  // §4.1.1.1: the EHLO reply carries no enhanced status (RFC 2034 §3)
  enter(State::ready);
}

const NamedReply* ServerSession::check_mail(const Command& c) const {
  if (cfg_.tls_required && !tls_active_) return &replies::starttls_required;  // RFC 3207 §4
  if (cfg_.auth_required && auth_identity_.empty()) return &replies::auth_required;  // RFC 6409 §4.3
  const MailParams& p = c.mail;
  if (!esmtp_ && !c.params.empty()) return &replies::parameters_need_ehlo;
  if ((p.smtputf8 && !cfg_.smtputf8) || (p.body == BodyType::eight_bit_mime && !cfg_.eightbitmime) ||
      (p.body == BodyType::binary_mime && !(cfg_.chunking && cfg_.binarymime)) ||
      (p.size && cfg_.limits.message_size == 0) || p.ret != DsnRet::unspecified || p.envid) {
    return &replies::unsupported_parameter;  // not offered in EHLO
  }
  if (p.size && cfg_.limits.message_size > 0 && *p.size > cfg_.limits.message_size) {
    return &replies::message_too_big;  // RFC 1870 §6.2: at MAIL
  }
  return nullptr;
}

void ServerSession::do_mail(const Command& c) {
  const MailParams& p = c.mail;
  env_.reverse_path = c.path;
  env_.params = p;
  env_.recipients.clear();  // §4.1.1.2: MAIL starts a transaction with clear buffers
  if (p.auth && auth_identity_.empty()) env_.params.auth = "<>";  // RFC 4954 §5
  ask(Question::sender, action::CheckSender{c.path, env_.params});
}

const NamedReply* ServerSession::check_rcpt(const Command& c) const {
  if (c.rcpt.notify != 0 || c.rcpt.orcpt) return &replies::unsupported_parameter;  // DSN is not offered
  if (env_.recipients.size() >= cfg_.limits.recipients) return &replies::too_many_recipients;
  return nullptr;
}

void ServerSession::do_rcpt(const Command& c) {
  env_.recipients.push_back(Recipient{c.path, c.rcpt});  // tentative until the host answers
  ask(Question::recipient, action::CheckRecipient{c.path, c.rcpt});
}

const NamedReply* ServerSession::check_data(const Command&) const {
  if (state_ == State::mail) return &replies::no_valid_recipients;  // §3.3: 503 or 554
  if (env_.params.body == BodyType::binary_mime) return &replies::binarymime_needs_bdat;
  return nullptr;
}

void ServerSession::do_data(const Command&) {
  say(replies::start_data);
  decoder_.reset();
  push(action::MessageStart{env_});
  message_started_ = true;
  enter(State::data);
}

void ServerSession::do_bdat(const Command& c) {
  // RFC 3030 §2: the chunk's octets follow the command whatever the reply will be, so they are
  // always swallowed; a refusal is sent after them.
  bdat_remaining_ = c.chunk_size;
  bdat_last_ = c.last;
  bdat_return_ = state_;
  if (state_ == State::refused) {
    bdat_error_ = &replies::bad_sequence;  // §3.1
  } else if (!cfg_.chunking || !esmtp_) {
    bdat_error_ = &replies::bdat_not_offered;
  } else if (state_ == State::mail) {
    bdat_error_ = &replies::no_valid_recipients;
  } else if (state_ != State::rcpt && state_ != State::chunking) {
    bdat_error_ = &replies::bdat_needs_rcpt;
  } else if (cfg_.limits.message_size > 0 && env_.size + c.chunk_size > cfg_.limits.message_size) {
    bdat_error_ = &replies::message_too_big;
    bdat_return_ = State::ready;  // the transaction is over
  } else {
    bdat_error_ = nullptr;
    if (!message_started_) {
      push(action::MessageStart{env_});
      message_started_ = true;
    }
  }
  enter(State::bdat);
  if (bdat_remaining_ == 0) process_bdat();
}

void ServerSession::do_rset(const Command&) {
  reset_transaction();
  say(replies::ok);
  if (state_ != State::initial) enter(State::ready);
}

void ServerSession::do_vrfy(const Command&) {
  // §3.5.3, §7.3: we do not disclose mailboxes.
  say(replies::cannot_vrfy);
}

void ServerSession::do_help(const Command&) {
  Reply r = make_reply(214, 2, 0, 0, "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP");
  r.lines.emplace_back("See RFC 5321");
  reply(r);
}

void ServerSession::do_quit(const Command&) {
  close_with(replies::bye.with_host(cfg_.hostname));
}

const NamedReply* ServerSession::check_starttls(const Command&) const {
  // STARTTLS is offered only in an EHLO reply (RFC 3207 §4), never after HELO or under TLS.
  if (tls_active_) return &replies::tls_already_active;
  if (!cfg_.starttls || !esmtp_) return &replies::starttls_not_offered;
  return nullptr;
}

void ServerSession::do_starttls(const Command&) {
  say(replies::ready_for_tls);
  // Anything pipelined after STARTTLS arrived in the clear and is thrown away (RFC 3207 §4.2,
  // CVE-2011-0411); the host must not feed it either.
  discarded_at_starttls_ += in_.size() - in_pos_;
  in_.clear();
  in_pos_ = 0;
  push(action::StartTls{});
  enter(State::tls_handshake);
}

const NamedReply* ServerSession::check_auth(const Command& c) const {
  if (cfg_.auth_mechanisms.empty() || !esmtp_) return &replies::auth_not_offered;
  if (!auth_identity_.empty()) return &replies::already_authenticated;  // RFC 4954 §4
  if (cfg_.auth_requires_tls && !tls_active_) return &replies::encryption_required;
  if (std::find(cfg_.auth_mechanisms.begin(), cfg_.auth_mechanisms.end(), c.mechanism) == cfg_.auth_mechanisms.end() ||
      !core::SaslServer::supported(c.mechanism)) {
    return &replies::unrecognized_auth_type;
  }
  return nullptr;
}

void ServerSession::do_auth(const Command& c) {
  enter(State::auth);
  sasl_step(sasl_.start(c.mechanism, c.initial_response));
}

void ServerSession::do_expn(const Command&) { say(replies::expn_not_supported); }

void ServerSession::do_noop(const Command&) { say(replies::ok); }

}  // namespace refsmtp::smtp
