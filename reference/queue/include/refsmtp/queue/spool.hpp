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
  Storage& s_;
};

}  // namespace refsmtp::queue
