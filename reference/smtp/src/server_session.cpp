#include "refsmtp/smtp/server_session.hpp"

#include <algorithm>
#include <array>
#include <utility>

#include "refsmtp/core/ascii.hpp"
#include "refsmtp/core/base64.hpp"
#include "session_states.hpp"

namespace refsmtp::smtp {

using core::iequals;
using detail::bit;
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
  // A client error counts toward the limit; at the limit the session closes instead (§7.8).
  if (r.client_error && ++errors_ >= cfg_.limits.errors && cfg_.limits.errors > 0) {
    close_with(replies::too_many_errors.with_host(cfg_.hostname));
    return;
  }
  if (r.code >= 400) {  // a refusal: it is written and also told to the host (Postfix's NOQUEUE lines)
    Reply refusal = r.to_reply(detail);
    reply(refusal);
    push(action::Refused{verb_, std::move(refusal)});
  } else if (detail.empty()) {  // the common positive replies, without building a Reply
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
  verb_ = state_ == State::auth ? "AUTH" : "";
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

void ServerSession::reset_transaction(std::string_view why) {
  if (message_started_) {
    push(action::MessageAborted{std::string(why)});
    message_started_ = false;
  }
  env_.reverse_path = Path{};
  env_.params = MailParams{};
  env_.recipients.clear();
  env_.size = 0;
  bdat_error_ = nullptr;
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
    verb_ = "DATA";
    say(*refusal);
    reset_transaction(refusal->text);
    enter(State::ready);
    return;
  }
  message_started_ = false;
  enter(State::ready);
  ask(Question::message, action::MessageComplete{env_});
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
    if (bdat_return_ == State::ready) reset_transaction(r.text);  // RFC 3030 §2: the transaction is over
    enter(bdat_return_);
    verb_ = "BDAT";
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
