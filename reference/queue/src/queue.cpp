#include "refsmtp/queue/queue.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <random>

#include "refsmtp/queue/dsn.hpp"

namespace refsmtp::queue {

std::string Queue::random_boundary() {
  // Unpredictable, so header text from the original can never contain it (RFC 2046 §5.1.1).
  std::uniform_int_distribution<std::uint64_t> dist;
  char buf[40];
  std::snprintf(buf, sizeof buf, "refsmtp-%016llx%016llx", static_cast<unsigned long long>(dist(rng_)),
                static_cast<unsigned long long>(dist(rng_)));
  return buf;
}

Queue::Queue(Storage& storage, QueueConfig config) : spool_(storage, config.journal), cfg_(std::move(config)), rng_(std::random_device{}()) {
  salt_ = static_cast<std::uint32_t>(rng_());
  if (cfg_.postmaster.empty()) cfg_.postmaster = "postmaster@" + cfg_.hostname;
}

std::error_code Queue::open(std::int64_t, RecoveryReport* report) {
  std::lock_guard lock(m_);
  RecoveryReport local;
  RecoveryReport& r = report ? *report : local;
  if (auto e = spool_.recover(r)) return e;
  msgs_.clear();
  for (auto& m : r.messages) msgs_[m.id] = m;
  for (const auto& q : r.quarantined) events_.push_back({"", "quarantined " + q});
  return {};
}

std::string Queue::new_id(std::int64_t now_ms) {
  // Sortable by arrival: 12 hex digits of milliseconds, 4 of a random per-process salt (so a
  // restart in the same millisecond, or a clock stepped back, does not reuse the ids of messages
  // already gone -- logs and bounces name them), then a sequence number. Ids the queue holds are
  // skipped outright: renaming into queue/ must never meet an existing message.
  while (true) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%012llX%04X%06X", static_cast<unsigned long long>(now_ms) & 0xFFFFFFFFFFFFULL,
                  static_cast<unsigned>(salt_ & 0xFFFF), static_cast<unsigned>(seq_++ & 0xFFFFFF));
    if (!msgs_.count(buf) && !reserved_.count(buf)) return buf;
  }
}

AcceptResult Queue::accept(const smtp::Envelope& envelope, std::string_view body, const ClientInfo& client,
                           std::int64_t now_ms) {
  StoredEnvelope e;
  e.kind = MessageKind::normal;
  e.arrival_ms = now_ms;
  e.helo = client.helo;
  e.client_address = client.address;
  e.reverse_path = envelope.reverse_path;
  e.size = envelope.params.size;
  e.body_type = envelope.params.body;
  e.smtputf8 = envelope.params.smtputf8;
  e.auth = envelope.params.auth;
  for (const auto& r : envelope.recipients) e.recipients.push_back(QueuedRecipient{r.path, RecipientState::pending, ""});
  e.next_attempt_ms = now_ms;
  std::error_code err;
  for (int tries = 0; tries < 3; ++tries) {  // an id collision (clock stepped back) gets a fresh id
    {
      std::lock_guard lock(m_);
      e.id = new_id(now_ms);
      reserved_.insert(e.id);
    }
    TraceInfo t{client.helo, client.address, cfg_.hostname, e.id, client.esmtp, client.tls, client.authenticated,
                envelope.params.smtputf8, {}, now_ms};
    for (const auto& r : envelope.recipients) t.recipients.push_back(r.path);
    const std::string stored = received_header(t) + std::string(body);
    // The slow, durable part runs without the lock, so concurrent accepts can share the
    // spool's group commit.
    err = spool_.accept(e, stored);
    std::lock_guard lock(m_);
    reserved_.erase(e.id);
    if (err != std::errc::file_exists) break;
  }
  std::lock_guard lock(m_);
  if (err) {
    events_.push_back({e.id, "accept failed: " + err.message()});
    // RFC 3463: 4.3.1 mail system full; 4.3.0 other mail system problem.
    if (err == std::errc::no_space_on_device) return {std::nullopt, smtp::make_reply(452, 4, 3, 1, "Insufficient system storage")};
    return {std::nullopt, smtp::make_reply(451, 4, 3, 0, "Local error in processing; try again later")};
  }
  msgs_[e.id] = e;
  events_.push_back({e.id, "accepted from " + client.address + " " + e.reverse_path.to_string() + ", " +
                               std::to_string(e.recipients.size()) + " recipient(s)"});
  return {e.id, smtp::make_reply(250, 2, 0, 0, "OK queued as " + e.id)};
}

std::vector<std::string> Queue::due(std::int64_t now_ms) const {
  std::lock_guard lock(m_);
  std::vector<std::string> out;
  for (const auto& [id, m] : msgs_) {
    if (!m.held && m.next_attempt_ms <= now_ms) out.push_back(id);
  }
  return out;
}

std::optional<std::int64_t> Queue::next_wakeup() const {
  std::lock_guard lock(m_);
  std::optional<std::int64_t> t;
  for (const auto& [id, m] : msgs_) {
    if (m.held) continue;
    if (!t || m.next_attempt_ms < *t) t = m.next_attempt_ms;
  }
  return t;
}

std::vector<StoredEnvelope> Queue::snapshot() const {
  std::lock_guard lock(m_);
  std::vector<StoredEnvelope> out;
  for (const auto& [id, m] : msgs_) out.push_back(m);
  std::sort(out.begin(), out.end(), [](const StoredEnvelope& a, const StoredEnvelope& b) {
    return a.arrival_ms != b.arrival_ms ? a.arrival_ms < b.arrival_ms : a.id < b.id;
  });
  return out;
}

std::error_code Queue::flush(const std::string& id, std::int64_t now_ms) {
  std::lock_guard lock(m_);
  if (id.empty()) {
    for (auto& [i, m] : msgs_) {
      if (!m.held) m.next_attempt_ms = std::min(m.next_attempt_ms, now_ms);
    }
    events_.push_back({"", "flushed by the operator"});
    return {};
  }
  auto it = msgs_.find(id);
  if (it == msgs_.end()) return std::make_error_code(std::errc::no_such_file_or_directory);
  if (it->second.held) return std::make_error_code(std::errc::operation_not_permitted);
  it->second.next_attempt_ms = std::min(it->second.next_attempt_ms, now_ms);
  events_.push_back({id, "flushed by the operator"});
  return {};
}

std::error_code Queue::hold(const std::string& id, bool on, std::int64_t now_ms) {
  std::lock_guard lock(m_);
  auto it = msgs_.find(id);
  if (it == msgs_.end()) return std::make_error_code(std::errc::no_such_file_or_directory);
  StoredEnvelope next = it->second;
  next.held = on;
  if (!on) next.next_attempt_ms = std::min(next.next_attempt_ms, now_ms);
  if (auto err = spool_.update(next)) return err;
  it->second = std::move(next);
  events_.push_back({id, on ? "held by the operator" : "released by the operator"});
  return {};
}

std::error_code Queue::remove(const std::string& id) {
  std::lock_guard lock(m_);
  auto it = msgs_.find(id);
  if (it == msgs_.end()) return std::make_error_code(std::errc::no_such_file_or_directory);
  bool gone = false;
  const std::error_code err = spool_.remove(id, gone);
  if (err && !gone) return err;
  msgs_.erase(it);
  events_.push_back({id, err ? "deleted by the operator, but the removal may not be durable: " + err.message()
                             : std::string("deleted by the operator")});
  return {};
}

const StoredEnvelope* Queue::find(const std::string& id) const {
  std::lock_guard lock(m_);
  auto it = msgs_.find(id);
  return it == msgs_.end() ? nullptr : &it->second;
}

std::error_code Queue::read_body(const std::string& id, std::string& body) {
  std::lock_guard lock(m_);
  auto it = msgs_.find(id);
  if (it == msgs_.end()) return std::make_error_code(std::errc::no_such_file_or_directory);
  return spool_.read_body(it->second, body);
}

std::error_code Queue::enqueue_report(const StoredEnvelope& original, const std::vector<DsnRecipient>& recipients,
                                      std::int64_t now_ms) {
  // Who hears about the failure (RFC 5321 §6.1, §4.5.5): the sender for a normal message; the
  // postmaster for a failed bounce; nobody for a failed notice (no loops).
  smtp::Path to;
  MessageKind kind;
  if (original.kind == MessageKind::normal && !original.reverse_path.is_null()) {
    to = original.reverse_path;
    kind = MessageKind::bounce;
  } else if (original.kind != MessageKind::notice) {
    const std::size_t at = cfg_.postmaster.rfind('@');
    to.mailbox = smtp::Mailbox{cfg_.postmaster.substr(0, at), at == std::string::npos ? "" : cfg_.postmaster.substr(at + 1), false};
    kind = MessageKind::notice;
  } else {
    events_.push_back({original.id, "failed notice to postmaster dropped (no report about a report)"});
    return {};
  }
  // The original's header section goes in the report (RFC 6522 §3). If the body cannot be read
  // (damaged on disk), report anyway without it: a failure must never block its own report.
  std::string body;
  if (spool_.read_body(original, body)) body.clear();
  const std::size_t end = body.find("\r\n\r\n");
  DsnInput in;
  in.reporting_mta = cfg_.hostname;
  in.original_id = original.id;
  in.postmaster = "MAILER-DAEMON@" + cfg_.hostname;
  in.to = to;
  in.arrival_ms = original.arrival_ms;
  in.now_ms = now_ms;
  in.recipients = recipients;
  in.original_headers = end == std::string::npos ? std::string() : body.substr(0, end + 2);
  in.boundary = random_boundary();
  const std::string report = make_dsn(in);

  StoredEnvelope e;
  e.kind = kind;
  e.arrival_ms = now_ms;
  e.helo = cfg_.hostname;
  e.client_address = "local";
  e.recipients.push_back(QueuedRecipient{to, RecipientState::pending, ""});
  e.next_attempt_ms = now_ms;
  std::error_code err;
  for (int tries = 0; tries < 3; ++tries) {
    e.id = new_id(now_ms);
    err = spool_.accept(e, report);
    if (err != std::errc::file_exists) break;
  }
  if (err) return err;
  msgs_[e.id] = e;
  events_.push_back({e.id, std::string(kind == MessageKind::bounce ? "bounce" : "postmaster notice") + " about " +
                               original.id + " to " + to.to_string()});
  return {};
}

std::error_code Queue::record(const std::string& id, const std::vector<DeliveryOutcome>& outcomes, std::int64_t now_ms) {
  std::lock_guard lock(m_);
  auto it = msgs_.find(id);
  if (it == msgs_.end()) return std::make_error_code(std::errc::no_such_file_or_directory);
  StoredEnvelope next = it->second;  // changes are committed only once durable
  std::vector<DsnRecipient> failed;
  std::map<std::size_t, std::string> remote;  // who gave this attempt's replies (not stored)
  for (const auto& o : outcomes) {
    if (o.recipient >= next.recipients.size()) continue;
    QueuedRecipient& r = next.recipients[o.recipient];
    if (r.state != RecipientState::pending) continue;  // states never go backwards
    r.last_reply = o.reply.one_line();
    r.state = o.state;
    remote[o.recipient] = o.remote;
    if (o.state == RecipientState::failed) failed.push_back({r.path, false, status_of(r.last_reply, true), r.last_reply, o.remote});
  }
  ++next.attempts;
  const bool pending = std::any_of(next.recipients.begin(), next.recipients.end(),
                                   [](const QueuedRecipient& r) { return r.state == RecipientState::pending; });
  std::vector<DsnRecipient> delayed;
  if (pending) {
    const auto when = next_attempt(cfg_.retry, next.attempts, next.arrival_ms, now_ms);
    if (!when) {
      // Give up (RFC 3463 4.4.7 / 5.4.7: delivery time expired).
      for (std::size_t i = 0; i < next.recipients.size(); ++i) {
        auto& r = next.recipients[i];
        if (r.state != RecipientState::pending) continue;
        r.state = RecipientState::failed;
        const std::string why = r.last_reply.empty() ? std::string("gave up") : r.last_reply;
        failed.push_back({r.path, false, "5.4.7", why + " (delivery time expired)", remote[i]});
      }
    } else {
      next.next_attempt_ms = *when;
      if (!next.delay_notified && cfg_.retry.delay_warning && now_ms - next.arrival_ms >= cfg_.retry.delay_warning->count() &&
          next.kind == MessageKind::normal && !next.reverse_path.is_null()) {
        for (std::size_t i = 0; i < next.recipients.size(); ++i) {
          const auto& r = next.recipients[i];
          if (r.state == RecipientState::pending) {
            delayed.push_back({r.path, true, status_of(r.last_reply, false), r.last_reply, remote[i]});
          }
        }
        next.delay_notified = true;
      }
    }
  }
  // Reports first, then the state change: a crash in between repeats a report, never loses one.
  std::error_code err;
  bool failures_reported = false, delay_reported = false;
  if (!failed.empty()) {
    err = enqueue_report(next, failed, now_ms);
    failures_reported = !err;
  }
  if (!err && !delayed.empty()) {
    err = enqueue_report(next, delayed, now_ms);
    delay_reported = !err;
  }
  const bool done = std::none_of(next.recipients.begin(), next.recipients.end(),
                                 [](const QueuedRecipient& r) { return r.state == RecipientState::pending; });
  bool gone = false;
  if (!err) err = done ? spool_.remove(id, gone) : spool_.update(next);
  if (err && gone) {
    // Removed, but not durably: forget it here; after a crash it would be delivered again.
    msgs_.erase(id);
    events_.push_back({id, "done, but the removal may not be durable: " + err.message()});
    return err;
  }
  if (err) {
    // Not durable. Remember in memory what happened outside -- deliveries, and failures whose
    // report is already queued -- so this process neither sends nor reports them again, and
    // persist it all on the next attempt, soon.
    StoredEnvelope& current = it->second;
    for (std::size_t i = 0; i < current.recipients.size(); ++i) {
      QueuedRecipient& r = current.recipients[i];
      if (r.state != RecipientState::pending) continue;
      const RecipientState s = next.recipients[i].state;
      if (s == RecipientState::delivered || (s == RecipientState::failed && failures_reported)) r = next.recipients[i];
    }
    if (delay_reported) current.delay_notified = true;
    current.next_attempt_ms = now_ms + (cfg_.retry.first.empty() ? cfg_.retry.later : cfg_.retry.first.front()).count();
    events_.push_back({id, "could not record delivery attempt: " + err.message()});
    return err;
  }
  if (done) {
    msgs_.erase(id);
    events_.push_back({id, "done"});
    return {};
  }
  it->second = std::move(next);
  events_.push_back({id, "deferred until " + iso8601_utc(it->second.next_attempt_ms)});
  return {};
}

std::vector<QueueEvent> Queue::take_events() {
  std::lock_guard lock(m_);
  std::vector<QueueEvent> out;
  out.swap(events_);
  return out;
}

}  // namespace refsmtp::queue
