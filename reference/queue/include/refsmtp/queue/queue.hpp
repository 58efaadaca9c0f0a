#pragma once
// The queue: accepts messages durably, says which are due, records delivery attempts, retries on
// the schedule, and bounces what fails. It owns no thread, socket or clock: the host calls it with
// the time, and runs deliveries however it likes (refsmtpd's delivery loop, or a test loop).
//
// One Queue owns a spool directory: two processes on the same spool would overwrite each
// other's messages (ids are unique per owner). Its methods may be called from several threads:
// accept() does its durable writing outside the queue's lock, so concurrent accepts share the
// spool's group commit. Pointers from find() stay valid until that message is recorded done.
//
// Lifecycle of a message: accepted (durable, 250 sent) -> due -> attempted -> each recipient
// delivered / failed / still pending -> retried until none is pending or the give-up time, then
// removed. Per-recipient state is persisted after every attempt, so after a crash a delivered
// recipient is never sent again (at most the attempt in flight during the crash is repeated).
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <random>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "refsmtp/smtp/reply.hpp"
#include "refsmtp/smtp/server_session.hpp"
#include "refsmtp/queue/dsn.hpp"
#include "refsmtp/queue/retry.hpp"
#include "refsmtp/queue/spool.hpp"

namespace refsmtp::queue {

struct QueueConfig {
  std::string hostname = "localhost";  // in Received: headers, DSNs and queue replies
  std::string postmaster;              // where failed bounces are reported; default postmaster@hostname
  RetryPolicy retry;
  JournalLimits journal;  // the spool's journal segments (tests make them tiny)
};

struct ClientInfo {
  std::string helo;
  std::string address;
  bool esmtp = true, tls = false, authenticated = false;
};

struct AcceptResult {
  std::optional<std::string> id;  // set when the message is on stable storage
  smtp::Reply reply;              // 250 with the queue id, or 452 (no space) / 451 (I/O error)
};

struct DeliveryOutcome {
  DeliveryOutcome() = default;
  DeliveryOutcome(std::size_t i, RecipientState s, smtp::Reply r, std::string from = {})
      : recipient(i), state(s), reply(std::move(r)), remote(std::move(from)) {}
  std::size_t recipient = 0;  // index into the envelope's recipients
  RecipientState state = RecipientState::pending;  // pending = deferred (try again later)
  smtp::Reply reply;          // what the next hop (or this server) said, e.g. 550 5.1.1 no such user
  // The server that said it (a host name or address), for the DSN's Remote-MTA field; empty
  // when this server decided (a local delivery, a routing failure).
  std::string remote;
};

struct QueueEvent {  // what happened, for the host's log
  std::string id;
  std::string what;
};

class Queue {
 public:
  Queue(Storage& storage, QueueConfig config);

  // Recovers the spool; must be called before anything else.
  std::error_code open(std::int64_t now_ms, RecoveryReport* report = nullptr);

  // Stores a message received by a ServerSession; the Received: header is prepended. The reply
  // goes to the client: 250 only when the message is durable (RFC 5321 §6.1).
  AcceptResult accept(const smtp::Envelope& envelope, std::string_view body, const ClientInfo& client,
                      std::int64_t now_ms);

  std::vector<std::string> due(std::int64_t now_ms) const;  // ids whose next attempt is due
  std::optional<std::int64_t> next_wakeup() const;
  const StoredEnvelope* find(const std::string& id) const;
  std::error_code read_body(const std::string& id, std::string& body);

  // Records one delivery attempt and persists it before returning. On a storage error only the
  // delivered recipients are remembered, in memory (so they are not sent again by this process),
  // the message is due again soon, and the next record() persists the whole state. Only a crash
  // in between can repeat a delivery (at least once, never lost).
  std::error_code record(const std::string& id, const std::vector<DeliveryOutcome>& outcomes, std::int64_t now_ms);

  std::size_t size() const { return msgs_.size(); }

  // The operator's tools (refsmtpd queue ...). A copy of every queued message, oldest first.
  std::vector<StoredEnvelope> snapshot() const;
  // Makes one message (or, with an empty id, every message not on hold) due now. In memory only:
  // after a restart the stored schedule applies again. ENOENT for an unknown id.
  std::error_code flush(const std::string& id, std::int64_t now_ms);
  // Puts a message on hold (never due) or releases it (due now); durable.
  std::error_code hold(const std::string& id, bool on, std::int64_t now_ms);
  // Deletes a message without telling anyone (Postfix's postsuper -d); durable.
  std::error_code remove(const std::string& id);
  std::vector<QueueEvent> take_events();

 private:
  std::string new_id(std::int64_t now_ms);
  std::string random_boundary();
  std::error_code enqueue_report(const StoredEnvelope& original, const std::vector<DsnRecipient>& recipients,
                                 std::int64_t now_ms);

  Spool spool_;
  QueueConfig cfg_;
  std::map<std::string, StoredEnvelope> msgs_;
  mutable std::mutex m_;  // guards everything below
  std::set<std::string> reserved_;  // ids of accepts being written
  std::uint32_t seq_ = 0;
  std::uint32_t salt_ = 0;
  std::mt19937_64 rng_;
  std::vector<QueueEvent> events_;
};

}  // namespace refsmtp::queue
