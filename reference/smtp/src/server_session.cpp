#include "refsmtp/smtp/server_session.hpp"

#include <algorithm>
#include <array>
#include <utility>

#include "refsmtp/core/ascii.hpp"
#include "refsmtp/core/base64.hpp"

namespace refsmtp::smtp {

using core::iequals;
using core::base64_encode;

std::string_view state_name(State s) {
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

namespace {

constexpr unsigned bit(State s) { return 1u << static_cast<unsigned>(s); }
constexpr unsigned kCommandStates =
    bit(State::initial) | bit(State::ready) | bit(State::mail) | bit(State::rcpt) | bit(State::chunking);

}  // namespace

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

ServerSession::ServerSession(ServerConfig config, Millis now)
    : cfg_(std::move(config)),
      framer_(core::LineFramer::Options{cfg_.lenient_command_lf}),
      now_(now),
      last_activity_(now),
      tls_active_(cfg_.tls_active) {
  decoder_ = DataDecoder(DataDecoder::Options{cfg_.limits.text_line, cfg_.limits.message_size});
  if (cfg_.refuse) {
    if (cfg_.refuse->code == 421) {
      close_with(*cfg_.refuse);
      return;
    }
    reply(*cfg_.refuse);  // §3.1: 554, then wait for QUIT answering 503
    enter(State::refused);
  } else {
    reply(Reply{220, std::nullopt, {cfg_.hostname + " " + cfg_.greeting}});  // §4.3.1: no status code
  }
}

void ServerSession::enter(State s) {
  if (s == state_) return;
  const State old = state_;
  state_ = s;
  if (trace_) trace_(old, s);
}

void ServerSession::reply(const Reply& r) { r.format_to(out_, cfg_.enhanced_status_codes); }


void ServerSession::say(const NamedReply& r, std::string_view detail) {
  // A client error counts toward the limit; at the limit the session closes instead (§3.8).
  if (r.client_error && ++errors_ >= cfg_.limits.errors && cfg_.limits.errors > 0) {
    close_with(replies::too_many_errors.with_host(cfg_.hostname));
    return;
  }
  if (detail.empty()) {
    const EnhancedStatus* status = r.has_status() && cfg_.enhanced_status_codes ? &r.status : nullptr;
    append_reply_line(out_, r.code, true, status, r.text);
  } else {
    reply(r.to_reply(detail));
  }
}

void ServerSession::flush() {
  if (out_.empty()) return;
  actions_.emplace_back(action::Send{std::move(out_)});
  out_.clear();
}

void ServerSession::push(Action a) {
  // Replies not yet handed out must reach the wire before TLS starts or the connection closes;
  // other actions (questions, body events) need not wait for them.
  if (std::holds_alternative<action::StartTls>(a) || std::holds_alternative<action::Close>(a)) flush();
  actions_.push_back(std::move(a));
}

void ServerSession::ask(Question q, Action a) {
  question_ = q;
  push(std::move(a));
}

void ServerSession::close_with(const Reply& r) {
  if (state_ == State::closed) return;
  if (message_started_) {
    push(action::MessageAborted{"connection closed"});
    message_started_ = false;
  }
  reply(r);
  push(action::Close{});
  question_ = Question::none;
  in_.clear();
  in_pos_ = 0;
  enter(State::closed);
}

std::optional<Action> ServerSession::next_action() {
  // Replies are handed out lazily, once every other action was taken: a host that answers its
  // questions while draining gets all replies to a pipelined group in one Send (RFC 2920 §3.2),
  // and a host that goes off to decide something slow has drained, and so written, the replies
  // owed so far before it waits.
  if (actions_.empty()) flush();
  if (actions_.empty()) return std::nullopt;
  Action a = std::move(actions_.front());
  actions_.pop_front();
  return a;
}

std::size_t ServerSession::receive(std::string_view bytes) {
  if (state_ == State::closed) return bytes.size();
  if (state_ == State::tls_handshake) {
    // Nothing sent in the clear after STARTTLS may be acted on (RFC 3207 §4.2, CVE-2011-0411).
    discarded_at_starttls_ += bytes.size();
    return bytes.size();
  }
  last_activity_ = now_;
  std::size_t taken = 0;
  while (taken < bytes.size() && state_ != State::closed && state_ != State::tls_handshake) {
    const std::size_t held = in_.size() - in_pos_;
    const std::size_t room = cfg_.limits.buffered_input > held ? cfg_.limits.buffered_input - held : 0;
    if (room == 0) break;
    const std::size_t n = std::min(room, bytes.size() - taken);
    if (in_pos_ > 0) {
      in_.erase(0, in_pos_);
      in_pos_ = 0;
    }
    in_.append(bytes.data() + taken, n);
    taken += n;
    process();
    if (question_ != Question::none) break;
  }
  if (state_ == State::closed || state_ == State::tls_handshake) {
    if (state_ == State::tls_handshake) discarded_at_starttls_ += bytes.size() - taken;
    taken = bytes.size();
  }
  return taken;
}

void ServerSession::process() {
  while (state_ != State::closed && state_ != State::tls_handshake && question_ == Question::none &&
         in_pos_ < in_.size()) {
    const std::size_t before = in_pos_;
    if (state_ == State::data) {
      process_data();
    } else if (state_ == State::bdat) {
      process_bdat();
    } else {
      const std::string_view avail(in_.data() + in_pos_, in_.size() - in_pos_);
      const auto frame = framer_.next(avail, line_limit(avail));
      in_pos_ += frame.consumed;
      switch (frame.kind) {
        case core::LineFramer::Kind::need_more:
          break;
        case core::LineFramer::Kind::skipped:
          continue;
        case core::LineFramer::Kind::too_long:
          line_error(replies::line_too_long);
          continue;
        case core::LineFramer::Kind::bare_lf:
          line_error(replies::bare_lf_in_command);
          continue;
        case core::LineFramer::Kind::line:
          process_line(frame.line);
          continue;
      }
      break;
    }
    if (in_pos_ == before && state_ != State::data && state_ != State::bdat) break;
  }
  if (in_pos_ == in_.size()) {
    in_.clear();
    in_pos_ = 0;
  }
}

void ServerSession::line_error(const NamedReply& r) {
  if (state_ == State::auth) {
    // RFC 4954 §4: a SASL response we cannot take ends the exchange -- 500 5.5.6 when it is too
    // long, 501 5.5.2 when it cannot be decoded (a bare LF in it) -- so the next line is read as
    // a command again.
    enter(State::ready);
    say(&r == &replies::line_too_long ? replies::auth_line_too_long : replies::auth_line_malformed);
    return;
  }
  say(r);
}

std::size_t ServerSession::line_limit(std::string_view partial) const {
  // RFC 4954 §4: AUTH command lines and SASL responses may be up to 12288 octets.
  if (state_ == State::auth) return cfg_.limits.auth_line;
  if (partial.size() >= 5 && iequals(partial.substr(0, 5), "AUTH ")) return cfg_.limits.auth_line;
  if (partial.size() >= 5 && iequals(partial.substr(0, 5), "MAIL ")) {
    // §4.5.3.1.4 lets extensions lengthen MAIL: SIZE by 26 (RFC 1870 §3), AUTH= by 500
    // (RFC 4954 §3), SMTPUTF8 by 10 (RFC 6531 §3.4) -- for what we offer.
    std::size_t limit = cfg_.limits.command_line;
    if (cfg_.limits.message_size > 0) limit += 26;
    if (!cfg_.auth_mechanisms.empty()) limit += 500;
    if (cfg_.smtputf8) limit += 10;
    return limit;
  }
  return cfg_.limits.command_line;
}

void ServerSession::process_line(std::string_view line) {
  if (state_ == State::auth) {
    sasl_step(sasl_.respond(line));
  } else {
    process_command(line);
  }
}

void ServerSession::process_command(std::string_view line) {
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
          say(replies::utf8_needs_smtputf8);
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

void ServerSession::reset_transaction() {
  if (message_started_) {
    push(action::MessageAborted{"transaction reset"});
    message_started_ = false;
  }
  env_.reverse_path = Path{};
  env_.params = MailParams{};
  env_.recipients.clear();
  env_.size = 0;
  bdat_error_ = nullptr;
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

void ServerSession::process_data() {
  const std::string_view avail(in_.data() + in_pos_, in_.size() - in_pos_);
  const auto progress = decoder_.decode(avail, body_);
  in_pos_ += progress.consumed;
  if (!body_.empty()) {
    push(action::BodyChunk{std::move(body_)});
    body_.clear();
  }
  if (!progress.done) return;
  const bool bare = (decoder_.bare_lf() && !cfg_.lenient_bare_lf_in_data) ||
                    (decoder_.bare_cr() && !cfg_.lenient_bare_cr_in_data);
  env_.size = decoder_.size();
  finish_message_body(decoder_.too_large(), decoder_.line_too_long(), bare);
}

void ServerSession::finish_message_body(bool too_large, bool line_too_long, bool bare) {
  const NamedReply* refusal = too_large       ? &replies::message_too_big  // RFC 1870 §6.3: after the data
                              : line_too_long ? &replies::data_line_too_long
                              : bare          ? &replies::bare_cr_lf_in_data
                                              : nullptr;
  if (refusal) {
    say(*refusal);
    reset_transaction();
    enter(State::ready);
    return;
  }
  message_started_ = false;
  enter(State::ready);
  ask(Question::message, action::MessageComplete{env_});
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

void ServerSession::process_bdat() {
  const std::size_t avail = in_.size() - in_pos_;
  const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(avail, bdat_remaining_));
  if (n > 0 && !bdat_error_) {
    push(action::BodyChunk{in_.substr(in_pos_, n)});
    env_.size += n;
  }
  in_pos_ += n;
  bdat_remaining_ -= n;
  if (bdat_remaining_ > 0) return;
  if (bdat_error_) {
    const NamedReply& r = *bdat_error_;
    bdat_error_ = nullptr;
    if (bdat_return_ == State::ready) reset_transaction();  // RFC 3030 §2: the transaction is over
    enter(bdat_return_);
    say(r);
    return;
  }
  if (!bdat_last_) {
    say(replies::chunk_accepted);
    enter(State::chunking);
    return;
  }
  message_started_ = false;
  enter(State::ready);
  ask(Question::message, action::MessageComplete{env_});
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

void ServerSession::do_expn(const Command&) { say(replies::expn_not_supported); }

void ServerSession::do_help(const Command&) {
  Reply r = make_reply(214, 2, 0, 0, "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP");
  r.lines.emplace_back("See RFC 5321");
  reply(r);
}

void ServerSession::do_noop(const Command&) { say(replies::ok); }

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

Fault ServerSession::tls_started() {
  if (state_ != State::tls_handshake) return Fault::not_in_handshake;
  tls_active_ = true;
  // RFC 3207 §4.2: discard all knowledge from the client, including the EHLO argument.
  reset_transaction();
  env_ = Envelope{};
  esmtp_ = false;
  auth_identity_.clear();
  enter(State::initial);
  last_activity_ = now_;
  return Fault::none;
}

void ServerSession::tls_failed() {
  if (state_ == State::closed) return;
  push(action::Close{});
  enter(State::closed);
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

void ServerSession::sasl_step(const core::SaslServer::Step& step) {
  using Status = core::SaslServer::Status;
  if (step.status == Status::challenge) {
    reply(Reply{334, std::nullopt, {base64_encode(step.challenge)}});  // RFC 4954 §4
    return;
  }
  enter(State::ready);
  switch (step.status) {
    case Status::cancelled:
      say(replies::auth_cancelled);
      return;
    case Status::bad_base64:
      say(replies::invalid_base64);
      return;
    case Status::malformed:
      say(replies::malformed_plain);
      return;
    case Status::challenge:
    case Status::done:
      break;
  }
  const core::SaslCredentials& creds = sasl_.credentials();
  ask(Question::auth, action::CheckAuth{creds.mechanism, creds.authzid, creds.authcid, creds.password});
}

Fault ServerSession::answer(Verdict v, std::optional<Millis> now) {
  if (question_ == Question::none) return Fault::no_question_pending;
  if (v.reply && v.reply->positive() != v.accepted) return Fault::reply_class_mismatch;
  const Question q = question_;
  question_ = Question::none;
  // §4.5.3.2.7 times the wait for the client's next command, which starts now, not when the
  // client last spoke: a slow host decision must not time the client out.
  if (now) now_ = *now;
  last_activity_ = now_;
  if (v.reply && v.reply->code == 421) {  // §3.8: the host is closing the channel
    close_with(*v.reply);
    return Fault::none;
  }
  // Default replies when the host gives none (RFC 3463 codes).
  auto pick = [&](const NamedReply& accept, const NamedReply& reject) {
    return v.reply.value_or((v.accepted ? accept : reject).to_reply());
  };
  switch (q) {
    case Question::sender:
      reply(pick(replies::sender_ok, replies::sender_rejected));
      if (v.accepted) {
        enter(State::mail);
      } else {
        env_.reverse_path = Path{};
        env_.params = MailParams{};
      }
      break;
    case Question::recipient:
      reply(pick(replies::recipient_ok, replies::no_such_user));
      if (v.accepted) {
        enter(State::rcpt);
      } else {
        env_.recipients.pop_back();
      }
      break;
    case Question::auth:
      reply(pick(replies::auth_ok, replies::auth_invalid));
      if (v.accepted) auth_identity_ = sasl_.credentials().authcid;
      break;
    case Question::message:
      // §6.1: the host answers accept only once the message is on stable storage.
      reply(pick(replies::message_stored, replies::message_not_stored));
      reset_transaction();
      break;
    case Question::none:
      break;
  }
  process();
  return Fault::none;
}

void ServerSession::shutdown(std::optional<Reply> r) {
  close_with(r.value_or(replies::shutting_down.with_host(cfg_.hostname)));
}

std::optional<Millis> ServerSession::deadline() const {
  if (state_ == State::closed || state_ == State::tls_handshake || question_ != Question::none) return std::nullopt;
  const bool in_data = state_ == State::data || state_ == State::bdat;
  return last_activity_ + (in_data ? cfg_.data_timeout : cfg_.command_timeout);
}

void ServerSession::on_time(Millis now) {
  now_ = now;
  const auto d = deadline();
  if (d && now >= *d) {
    close_with(replies::timeout.with_host(cfg_.hostname));
  }
}

}  // namespace refsmtp::smtp
