#pragma once
// The delivery loop: every second and after each accepted message, what the queue says is due
// is delivered -- local recipients at once (Maildir, mbox or LMTP), other domains through the
// relay in the background -- and each attempt is recorded in the queue once. Deliveries block on
// disk (fsync) and on LMTP, so they run on a thread of their own and the io threads keep serving
// SMTP. Requests coalesce: at most one pass waits to run.
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "event_log.hpp"
#include "recipient_policy.hpp"
#include "refsmtp/queue/queue.hpp"
#include "refsmtp/queue/storage.hpp"
#include "refsmtp/server/relayer.hpp"

namespace refsmtp::server {

struct ServerOptions;

class DeliveryLoop {
 public:
  using Strand = boost::asio::strand<boost::asio::io_context::executor_type>;
  // Everything it uses outlives it. `strand` runs its timer.
  DeliveryLoop(Strand strand, queue::Queue& queue, queue::Storage& mail_storage, Relayer& relayer,
               const RecipientPolicy& policy, const EventLog& log, const ServerOptions& opt);
  ~DeliveryLoop();  // as join()

  void start();    // the first pass now, then one each second
  void request();  // a pass soon (after an accepted message); coalesces
  void stop();     // no new passes; the timer is cancelled on the strand
  // Stops, and waits for the delivery thread: relay results already handed to it are recorded,
  // so a message the next hop took is not sent again after a restart.
  void join();

  // Runs an operator's request (see control.hpp) on the delivery thread, between passes, so it
  // never changes a message a pass is looking at; `done` gets the reply there. Messages with relay
  // jobs still out cannot be held or deleted until the jobs report.
  void control(std::string line, std::function<void(std::string reply)> done);

  std::uint64_t passes() const { return passes_; }
  bool wait_for_passes(std::uint64_t n, std::chrono::milliseconds timeout) const;

 private:
  struct Attempt;
  void deliver_due();
  void deliver_local(const queue::StoredEnvelope& e, const std::string& body, const std::vector<Targets>& targets,
                     std::int64_t now_ms, Attempt& attempt);
  void sync_maildirs(const std::vector<std::shared_ptr<Attempt>>& attempts);
  void record_attempt(const Attempt& a);
  void log_queue_events();
  void schedule();
  bool routable(const std::string& domain) const { return relayer_.routable(domain); }

  Strand strand_;
  queue::Queue& queue_;
  queue::Storage& mail_storage_;
  Relayer& relayer_;
  const RecipientPolicy& policy_;
  const EventLog& log_;
  const ServerOptions& opt_;

  std::mutex queue_m_;              // one delivery pass at a time (accepts do not take it)
  std::set<std::string> in_flight_;  // under queue_m_: messages with relay jobs still running
  std::uint64_t maildir_seq_ = 0;    // under queue_m_
  std::atomic<bool> stopping_{false};
  std::atomic<bool> pending_{false};
  std::atomic<std::uint64_t> passes_{0};  // changed under passes_m_, which passes_cv_ waits on
  mutable std::mutex passes_m_;
  mutable std::condition_variable passes_cv_;
  std::unique_ptr<boost::asio::steady_timer> timer_;
  std::unique_ptr<boost::asio::thread_pool> pool_;  // last: joined first
};

}  // namespace refsmtp::server
