#pragma once
// The spool: messages on stable storage. A message is two files in queue/: <id>.body (written
// once) and <id>.env (the envelope, replaced atomically as recipients are delivered). The
// envelope file is what commits a message: it is renamed into queue/ after the body, and the
// queue/ directory is fsynced before accept() returns, so a message is either wholly there or
// was never acknowledged (RFC 5321 §6.1).
//
//   tmp/         files being written; anything here at start-up is an interrupted write
//   queue/       committed messages
//   quarantine/  files that failed to parse at recovery, kept for a person to look at
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "refsmtp/queue/envelope_record.hpp"
#include "refsmtp/queue/storage.hpp"

namespace refsmtp::queue {

struct RecoveryReport {
  std::vector<StoredEnvelope> messages;       // committed messages, sorted by id
  std::vector<std::string> quarantined;       // file names moved to quarantine/, with reasons
  std::vector<std::string> removed;           // interrupted writes and orphan bodies removed
};

// accept() may be called from several threads at once (with distinct ids): the fsync of queue/
// that commits a message is then shared -- one caller syncs the directory for every rename done
// before it started (group commit), so concurrent accepts cost far fewer directory fsyncs.
class Spool {
 public:
  explicit Spool(Storage& storage) : s_(storage) {}

  std::error_code init();  // creates the directories
  // Writes body and envelope durably. envelope.body_size/body_hash are filled in here.
  std::error_code accept(StoredEnvelope& envelope, std::string_view body);
  std::error_code update(const StoredEnvelope& envelope);  // atomic replace of the envelope
  // `gone` says whether the message left the queue directory, even when making that durable
  // failed (then a crash may bring it back).
  std::error_code remove(const std::string& id, bool& gone);
  std::error_code read_body(const StoredEnvelope& envelope, std::string& body);  // verifies size and hash
  // Scans the spool: removes interrupted writes, quarantines what does not parse, returns the
  // committed messages. Never fails on bad files; fails only if the storage itself does.
  std::error_code recover(RecoveryReport& report);

 private:
  std::error_code quarantine(const std::string& name, std::string_view reason, RecoveryReport& report);
  std::error_code commit_queue_dir();  // group commit of fsync_dir("queue")
  Storage& s_;
  std::mutex m_;
  std::condition_variable cv_;
  std::uint64_t requested_ = 0, synced_ = 0;
  bool syncing_ = false;
  std::deque<std::pair<std::uint64_t, std::error_code>> results_;  // recent (generation, result)
};

}  // namespace refsmtp::queue
