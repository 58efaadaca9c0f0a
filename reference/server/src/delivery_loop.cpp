#include "delivery_loop.hpp"

#include <unistd.h>

#include <boost/asio/post.hpp>
#include <algorithm>
#include <map>

#include "refsmtp/core/text.hpp"
#include "refsmtp/delivery/lmtp.hpp"
#include "refsmtp/delivery/mailbox.hpp"
#include "refsmtp/delivery/relay.hpp"
#include "control.hpp"
#include "refsmtp/server/server.hpp"

namespace refsmtp::server {

namespace asio = boost::asio;
using core::ascii_lower;

// One delivery attempt of one message: what was decided so far, and the relay jobs still out.
// Recorded in the queue once, when the last job reports, so an attempt counts once.
struct DeliveryLoop::Attempt {
  std::string id;
  std::vector<queue::DeliveryOutcome> outcomes;
  std::size_t jobs_left = 0;
  // Maildir deliveries whose new/ is not yet fsynced: (index into outcomes, that new/).
  std::vector<std::pair<std::size_t, std::string>> unsynced;
};

namespace {

// Merges the outcomes of several targets of one queue recipient (an alias): delivered only
// when every target is; otherwise the first non-delivery decides.
std::vector<queue::DeliveryOutcome> merge(const std::vector<queue::DeliveryOutcome>& all) {
  std::map<std::size_t, queue::DeliveryOutcome> merged;
  for (const auto& o : all) {
    auto [it, fresh] = merged.try_emplace(o.recipient, o);
    if (!fresh && it->second.state == queue::RecipientState::delivered && o.state != queue::RecipientState::delivered) {
      it->second = o;
    } else if (!fresh && it->second.state == queue::RecipientState::failed && o.state == queue::RecipientState::pending) {
      it->second = o;  // a later retry may still fail it; do not bounce what is only deferred
    }
  }
  std::vector<queue::DeliveryOutcome> out;
  for (auto& [i, o] : merged) out.push_back(o);
  return out;
}

}  // namespace

DeliveryLoop::DeliveryLoop(Strand strand, queue::Queue& queue, queue::Storage& mail_storage, Relayer& relayer,
                           const RecipientPolicy& policy, const EventLog& log, const ServerOptions& opt)
    : strand_(std::move(strand)), queue_(queue), mail_storage_(mail_storage), relayer_(relayer), policy_(policy), log_(log),
      opt_(opt) {}

DeliveryLoop::~DeliveryLoop() { join(); }

void DeliveryLoop::start() {
  timer_ = std::make_unique<asio::steady_timer>(strand_);
  pool_ = std::make_unique<asio::thread_pool>(1);
  request();
  schedule();
}

void DeliveryLoop::request() {
  if (!pool_ || stopping_) return;
  if (pending_.exchange(true)) return;
  asio::post(*pool_, [this] {
    pending_ = false;
    deliver_due();
  });
}

void DeliveryLoop::stop() {
  stopping_ = true;
  asio::post(strand_, [this] {
    if (timer_) timer_->cancel();
  });
}

void DeliveryLoop::join() {
  stopping_ = true;
  if (pool_) pool_->join();
}

void DeliveryLoop::control(std::string line, std::function<void(std::string reply)> done) {
  if (!pool_) {
    done("error: the queue is not running\n");
    return;
  }
  asio::post(*pool_, [this, line = std::move(line), done = std::move(done)] {
    std::string reply;
    {
      std::lock_guard lock(queue_m_);
      reply = control_request(queue_, line, opt_.clock(), [this](const std::string& id) { return in_flight_.count(id) != 0; });
      log_queue_events();
    }
    // Flushed or released mail goes out now, not at the next tick.
    if (reply.starts_with("ok") && (line.starts_with("flush") || line.starts_with("release"))) request();
    done(std::move(reply));
  });
}

bool DeliveryLoop::wait_for_passes(std::uint64_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(passes_m_);
  return passes_cv_.wait_for(lock, timeout, [&] { return passes_ >= n; });
}

void DeliveryLoop::schedule() {
  if (stopping_ || !timer_) return;
  timer_->expires_after(std::chrono::seconds(1));  // on strand_
  timer_->async_wait([this](boost::system::error_code ec) {
    if (ec || stopping_) return;
    request();
    schedule();
  });
}

// Makes the Maildir deliveries of these attempts durable: each new/ they renamed into is
// fsynced once, however many messages went there. A delivery whose new/ could not be synced
// is deferred (it may not survive a crash; a retry finds it there and does not copy it again).
void DeliveryLoop::sync_maildirs(const std::vector<std::shared_ptr<Attempt>>& attempts) {
  std::map<std::string, std::error_code> synced;
  for (const auto& a : attempts) {
    for (const auto& [k, dir] : a->unsynced) {
      if (!synced.count(dir)) synced[dir] = mail_storage_.fsync_dir(dir);
    }
  }
  for (const auto& a : attempts) {
    for (const auto& [k, dir] : a->unsynced) {
      if (const std::error_code err = synced[dir]) {
        a->outcomes[k].state = queue::RecipientState::pending;
        a->outcomes[k].reply = smtp::make_reply(451, 4, 3, 0, dir + ": " + err.message());
      }
    }
    a->unsynced.clear();
  }
}

// Under queue_m_.
void DeliveryLoop::record_attempt(const Attempt& a) {
  const std::vector<queue::DeliveryOutcome> outcomes = merge(a.outcomes);
  const std::int64_t now_ms = opt_.clock();
  // One line per recipient and attempt, as Postfix's smtp/local lines: where it went, how long it
  // has been queued, and what was said (the DSN status, the reply or the local error).
  if (const queue::StoredEnvelope* e = queue_.find(a.id)) {
    for (const auto& o : outcomes) {
      if (o.recipient >= e->recipients.size()) continue;
      const char* status = o.state == queue::RecipientState::delivered ? "sent"
                           : o.state == queue::RecipientState::failed  ? "bounced"
                                                                       : "deferred";
      const std::string delay = std::to_string(std::max<std::int64_t>(0, now_ms - e->arrival_ms) / 1000);
      log_.write("delivery", {{"queue_id", a.id},
                              {"rcpt", e->recipients[o.recipient].path.to_string()},
                              {"status", status},
                              {"relay", o.remote.empty() ? "local" : o.remote},
                              {"delay", delay},
                              {"dsn", o.reply.enhanced ? o.reply.enhanced->to_string() : std::to_string(o.reply.code)},
                              {"reason", o.reply.one_line()}});
    }
  }
  if (auto err = queue_.record(a.id, outcomes, now_ms)) {
    log_.write("queue", {{"queue_id", a.id}, {"error", "could not record delivery: " + err.message()}});
  }
  log_queue_events();
}

void DeliveryLoop::log_queue_events() {
  for (const auto& ev : queue_.take_events()) {
    if (ev.what.starts_with("accepted")) continue;  // said by the connection's message line
    log_.write("queue", {{"queue_id", ev.id}, {"what", ev.what}});
  }
}

void DeliveryLoop::deliver_due() {
  if (stopping_) return;
  std::lock_guard lock(queue_m_);
  struct CountPass {
    DeliveryLoop& loop;
    ~CountPass() {
      {
        std::lock_guard lock(loop.passes_m_);
        ++loop.passes_;
      }
      loop.passes_cv_.notify_all();
    }
  } count{*this};
  const std::int64_t now_ms = opt_.clock();
  std::map<std::string, std::vector<std::pair<std::shared_ptr<Attempt>, RelayJob>>> by_domain;
  // Maildir deliveries are made durable in batches: one fsync per new/ for up to kBatch
  // messages, then those messages are recorded. (Attempts with relay jobs are synced with the
  // batch too, and recorded when their jobs report; attempts with nothing to sync -- mbox,
  // LMTP, failures -- are recorded at once, so a crash repeats as few deliveries as can be.)
  constexpr std::size_t kBatch = 64;
  std::vector<std::shared_ptr<Attempt>> unsynced;  // the batch
  std::size_t to_record = 0;                        // of which local-only, to record after the sync
  const auto settle = [&] {
    sync_maildirs(unsynced);
    for (const auto& a : unsynced) {
      if (a->jobs_left == 0) record_attempt(*a);
    }
    unsynced.clear();
    to_record = 0;
  };
  for (const auto& id : queue_.due(now_ms)) {
    if (in_flight_.count(id)) continue;
    const queue::StoredEnvelope* e = queue_.find(id);
    if (!e) continue;
    std::vector<Targets> targets(e->recipients.size());
    std::set<std::string> domains;
    for (std::size_t i = 0; i < e->recipients.size(); ++i) {
      if (e->recipients[i].state != queue::RecipientState::pending) continue;
      targets[i] = policy_.targets_of(e->recipients[i].path, [this](const std::string& d) { return routable(d); });
      for (const auto& r : targets[i].remote) domains.insert(ascii_lower(r.mailbox->domain));
    }
    // Bounded connections per destination: a message waits for its turn as a whole.
    if (std::any_of(domains.begin(), domains.end(), [&](const std::string& d) { return !relayer_.has_capacity(d); })) continue;
    std::string body;
    if (auto err = queue_.read_body(id, body)) {
      log_.write("queue", {{"queue_id", id}, {"error", "cannot read body: " + err.message()}});
      continue;
    }
    auto attempt = std::make_shared<Attempt>();
    attempt->id = id;
    deliver_local(*e, body, targets, now_ms, *attempt);
    // Relay jobs: one per destination domain. A message that has looped (too many Received:
    // headers, RFC 5321 §6.3) is not sent anywhere again.
    const bool looping = !domains.empty() && delivery::count_received_headers(body) > opt_.max_received;
    std::map<std::string, RelayJob> jobs;
    for (std::size_t i = 0; i < targets.size(); ++i) {
      if (e->recipients[i].state != queue::RecipientState::pending) continue;
      for (const auto& r : targets[i].remote) {
        if (looping) {
          // RFC 5321 §6.3; RFC 3463 §3.5: X.4.6 routing loop detected.
          attempt->outcomes.push_back({i, queue::RecipientState::failed,
                                       smtp::make_reply(554, 5, 4, 6, "Too many Received: headers (more than " +
                                                                          std::to_string(opt_.max_received) + "): mail loop")});
          continue;
        }
        RelayJob& job = jobs[ascii_lower(r.mailbox->domain)];
        job.msg.recipients.push_back(r);
        job.index.push_back(i);
      }
    }
    attempt->jobs_left = jobs.size();
    if (jobs.empty() && attempt->unsynced.empty()) {
      record_attempt(*attempt);
      continue;
    }
    if (!attempt->unsynced.empty()) {
      unsynced.push_back(attempt);
      if (jobs.empty() && ++to_record >= kBatch) settle();
    }
    if (jobs.empty()) continue;
    in_flight_.insert(id);
    for (auto& [domain, job] : jobs) {
      job.msg.reverse_path = e->reverse_path;
      job.msg.body = body;
      job.msg.smtputf8 = e->smtputf8;
      job.msg.auth = e->auth;
      by_domain[domain].emplace_back(attempt, std::move(job));
    }
  }
  settle();
  log_queue_events();
  // One connection per destination per pass, carrying all its messages (connection reuse).
  for (auto& [domain, list] : by_domain) {
    std::vector<std::shared_ptr<Attempt>> attempts;
    std::vector<RelayJob> jobs;
    for (auto& [a, j] : list) {
      attempts.push_back(a);
      jobs.push_back(std::move(j));
    }
    // Each message is recorded as soon as its last job reports: a shutdown or crash later in
    // the connection repeats at most the message in flight. The recording runs on the delivery
    // thread, in the order the results came: the relay's io thread (which also serves SMTP
    // connections) never waits for queue_m, held through whole delivery passes, or for a disk.
    relayer_.send(domain, std::move(jobs), [this, attempts](std::size_t j, std::vector<queue::DeliveryOutcome> results) {
      asio::post(*pool_, [this, attempts, j, results = std::move(results)] {
        {
          std::lock_guard relay_lock(queue_m_);
          Attempt& a = *attempts.at(j);
          a.outcomes.insert(a.outcomes.end(), results.begin(), results.end());
          if (--a.jobs_left != 0) return;
          record_attempt(a);
          in_flight_.erase(a.id);
        }
        // Bounces and newly due messages go out soon, not a timer tick later.
        request();
      });
    });
  }
}

// Local delivery of one message's local recipients; outcomes are appended to the attempt's.
// Maildir deliveries are left for sync_maildirs to make durable.
void DeliveryLoop::deliver_local(const queue::StoredEnvelope& e, const std::string& body, const std::vector<Targets>& targets,
                   std::int64_t now_ms, Attempt& attempt) {
  std::vector<queue::DeliveryOutcome>& outcomes = attempt.outcomes;
  const std::string& id = e.id;
  const std::string copy = delivery::local_copy(e.reverse_path, body);
  // LMTP: every local recipient of the message in one transaction (RFC 2033), one reply each.
  smtp::OutgoingMessage lmtp_msg;
  std::vector<std::size_t> lmtp_index;
  for (std::size_t i = 0; i < e.recipients.size(); ++i) {
    if (e.recipients[i].state != queue::RecipientState::pending) continue;
    const Targets& t = targets[i];
    if (t.refusal) {
      outcomes.push_back({i, queue::RecipientState::failed, *t.refusal});
      continue;
    }
    if (opt_.delivery == Delivery::lmtp) {
      for (const auto& box : t.mailboxes) {
        smtp::Path p;
        p.mailbox = smtp::Mailbox{box, policy_.primary_domain(e.recipients[i].path), false};
        lmtp_msg.recipients.push_back(p);
        lmtp_index.push_back(i);
      }
      continue;
    }
    for (const auto& box : t.mailboxes) {
      std::error_code err;
      if (opt_.delivery == Delivery::mbox) {
        // mbox cannot tell a repeated append after a crash: at least once, not exactly once.
        err = delivery::deliver_mbox(opt_.mail_root + "/" + box + ".mbox", e.reverse_path, now_ms, copy);
      } else {
        delivery::MaildirTarget target{box + "/Maildir", opt_.hostname, e.arrival_ms, ++maildir_seq_,
                                       static_cast<long>(::getpid()), id + "-" + std::to_string(i)};
        target.sync_dir = false;
        std::string name;
        err = delivery::deliver_maildir(mail_storage_, target, copy, name);
        if (!err) attempt.unsynced.emplace_back(outcomes.size(), target.dir + "/new");
      }
      outcomes.push_back({i, err ? queue::RecipientState::pending : queue::RecipientState::delivered,
                          err ? smtp::make_reply(451, 4, 3, 0, box + ": " + err.message())
                              : smtp::make_reply(250, 2, 0, 0, opt_.delivery == Delivery::mbox ? "Delivered to mbox" : "Delivered to Maildir")});
    }
  }
  if (!lmtp_msg.recipients.empty()) {
    lmtp_msg.reverse_path = e.reverse_path;
    lmtp_msg.body = body;
    delivery::LmtpOptions lo;
    lo.lhlo_name = opt_.hostname;
    const auto res = delivery::lmtp_deliver(opt_.lmtp, lmtp_msg, lo);
    for (std::size_t k = 0; k < res.results.size() && k < lmtp_index.size(); ++k) {
      // The LMTP server's replies name it as the remote MTA (when it is reached over TCP).
      outcomes.push_back(delivery::to_outcome(lmtp_index[k], res.results[k], opt_.lmtp.unix_path.empty() ? opt_.lmtp.host : ""));
    }
  }
}

}  // namespace refsmtp::server
