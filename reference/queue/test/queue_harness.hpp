#pragma once
// A queue with a fake next hop and an observer's log of what was acknowledged and delivered,
// over MemoryStorage, so tests can crash it anywhere and check what survives.
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "refsmtp/queue/queue.hpp"

namespace refsmtp::queue {

// The journal limits every QueueHarness uses: the defaults, or tiny segments (one record each,
// checkpointed as soon as two exist) so that rotation and checkpoints happen all the time.
inline JournalLimits& journal_limits() {
  static JournalLimits limits;
  return limits;
}
inline const JournalLimits kTinyJournal{1, 1};

struct QueueHarness {
  MemoryStorage storage;
  std::unique_ptr<Queue> queue;
  std::int64_t now = 0;
  int next_token = 0;
  bool crashed_ever = false;

  // The outside world's view.
  std::map<std::string, std::string> acked;                 // token -> queue id (250 was sent)
  std::map<std::string, int> recipients_of;                 // token -> recipient count
  std::map<std::pair<std::string, int>, int> deliveries;    // (token, rcpt) -> times delivered
  std::set<std::pair<std::string, int>> recorded_final;     // record() returned ok with a final state
  std::map<std::pair<std::string, int>, std::set<std::string>> bounces_delivered;  // report ids handed out
  int bounced(const std::pair<std::string, int>& key) { return static_cast<int>(bounces_delivered[key].size()); }

  // The (token, recipient) pairs a failure report is about.
  std::vector<std::pair<std::string, int>> reported_in(const std::string& body) const {
    std::vector<std::pair<std::string, int>> out;
    const std::size_t at = body.find("X-Refsmtp-Queue-ID: ");
    if (at == std::string::npos) return out;
    const std::string id = body.substr(at + 20, body.find("\r\n", at) - at - 20);
    std::string token;
    for (const auto& [t, i] : acked) {
      if (i == id) token = t;
    }
    if (token.empty()) return out;
    std::size_t pos = 0;
    while ((pos = body.find("Final-Recipient: rfc822; r", pos)) != std::string::npos) {
      pos += 26;
      const int rcpt = std::atoi(body.c_str() + pos);
      if (body.find("Action: failed", pos) < body.find("Final-Recipient", pos)) out.push_back({token, rcpt});
    }
    return out;
  }

  static QueueConfig config() {
    QueueConfig c;
    c.journal = journal_limits();
    c.hostname = "mx.test";
    c.retry.first = {std::chrono::milliseconds(10)};
    c.retry.later = std::chrono::milliseconds(20);
    c.retry.max_interval = std::chrono::milliseconds(40);
    c.retry.give_up_after = std::chrono::milliseconds(1000);
    c.retry.delay_warning.reset();
    return c;
  }

  QueueHarness() { reopen(); }

  void reopen() {
    queue = std::make_unique<Queue>(storage, config());
    if (queue->open(now)) std::abort();
  }

  void crash() {
    crashed_ever = true;
    storage.crash_and_restart();
    reopen();
  }

  static std::string token_of(const std::string& body) {
    const std::size_t at = body.find("Token: ");
    if (at == std::string::npos) return {};
    return body.substr(at + 7, body.find("\r\n", at) - at - 7);
  }

  // Accepts a message with `n` recipients; returns whether 250 was (would have been) sent.
  bool accept(int n) {
    const std::string token = "T" + std::to_string(next_token++);
    smtp::Envelope e;
    e.helo = "client.test";
    e.reverse_path.mailbox = smtp::Mailbox{"sender", "client.test", false};
    for (int i = 0; i < n; ++i) {
      smtp::Path p;
      p.mailbox = smtp::Mailbox{"r" + std::to_string(i), "remote.test", false};
      e.recipients.push_back({p, {}});
    }
    auto r = queue->accept(e, "Token: " + token + "\r\n\r\nbody\r\n", ClientInfo{"client.test", "192.0.2.1"}, now);
    if (!r.id) return false;
    acked[token] = *r.id;
    recipients_of[token] = n;
    return true;
  }

  // Delivers every due normal message: outcome(i) picks each pending recipient's fate. Reports
  // (bounces, notices) are delivered too. Returns false if storage failed along the way.
  template <class Outcome>
  bool deliver_due(Outcome outcome) {
    bool ok = true;
    for (const auto& id : queue->due(now)) {
      const StoredEnvelope* e = queue->find(id);
      if (!e) continue;
      std::string body;
      if (queue->read_body(id, body)) {
        ok = false;
        continue;
      }
      const std::string token = e->kind == MessageKind::normal ? token_of(body) : std::string();
      if (e->kind == MessageKind::bounce) {
        for (const auto& key : reported_in(body)) bounces_delivered[key].insert(id);
      }
      std::vector<DeliveryOutcome> outs;
      for (std::size_t i = 0; i < e->recipients.size(); ++i) {
        if (e->recipients[i].state != RecipientState::pending) continue;
        const RecipientState s = token.empty() ? RecipientState::delivered : outcome(static_cast<int>(i));
        if (s == RecipientState::delivered && !token.empty()) ++deliveries[{token, static_cast<int>(i)}];
        outs.push_back({i, s, s == RecipientState::delivered ? smtp::make_reply(250, std::nullopt, "ok") : s == RecipientState::failed ? smtp::make_reply(550, 5, 1, 1, "no") : smtp::make_reply(451, 4, 3, 0, "later")});
      }
      if (queue->record(id, outs, now)) {
        ok = false;
        continue;
      }
      // Final now: by this outcome, or because the queue gave up (then it bounced).
      const StoredEnvelope* after = queue->find(id);
      for (const auto& o : outs) {
        const bool final_now = !after || after->recipients[o.recipient].state != RecipientState::pending;
        if (final_now && !token.empty()) recorded_final.insert({token, static_cast<int>(o.recipient)});
      }
    }
    return ok;
  }

  // The invariants of issue 3, checked against the queue as it now is. Returns "" or a complaint.
  std::string check() {
    std::map<std::string, const StoredEnvelope*> by_token;
    auto bounces = bounces_delivered;  // report ids, handed out or still queued
    for (const auto& id : queue->due(INT64_MAX)) {
      const StoredEnvelope* e = queue->find(id);
      std::string body;
      if (queue->read_body(id, body)) return "unreadable body for " + id;
      if (e->kind == MessageKind::bounce) {
        for (const auto& key : reported_in(body)) bounces[key].insert(id);
      }
      if (e->kind != MessageKind::normal) continue;
      const std::string token = token_of(body);
      // None appears that was not accepted.
      if (!acked.count(token) || acked[token] != id) return "unacknowledged message " + token + " in the queue";
      by_token[token] = e;
    }
    for (const auto& [token, id] : acked) {
      const auto it = by_token.find(token);
      for (int i = 0; i < recipients_of[token]; ++i) {
        const bool delivered = deliveries.count({token, i}) && deliveries[{token, i}] > 0;
        const bool pending = it != by_token.end() && it->second->recipients[static_cast<std::size_t>(i)].state == RecipientState::pending;
        const bool final_recorded = recorded_final.count({token, i}) > 0;
        const int bounced = bounces.count({token, i}) ? static_cast<int>(bounces[{token, i}].size()) : 0;
        // Every accepted recipient is delivered, bounced (the report queued or handed out), or
        // still queued.
        if (!delivered && !pending && bounced == 0) {
          std::string why = "recipient " + std::to_string(i) + " of " + token + " (" + id + ") lost; queue:";
          for (const auto& q : queue->due(INT64_MAX)) why += " " + q + "/" + std::to_string(static_cast<int>(queue->find(q)->kind));
          return why;
        }
        // Without a crash, a failure is reported exactly once and only for undelivered mail.
        if (!crashed_ever && bounced > 1) return "recipient " + std::to_string(i) + " of " + token + " bounced twice";
        if (!crashed_ever && bounced > 0 && delivered) return "recipient " + std::to_string(i) + " of " + token + " delivered and bounced";
        // States never go backwards.
        if (final_recorded && pending) return "recipient " + std::to_string(i) + " of " + token + " went back to pending";
        // Without a crash, nobody gets a message twice.
        if (!crashed_ever && deliveries[{token, i}] > 1) return "duplicate delivery without a crash";
      }
    }
    return "";
  }
};

}  // namespace refsmtp::queue
