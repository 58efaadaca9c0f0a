#pragma once
// The spool: messages on stable storage, in a journal. Accepting appends the envelope and body,
// as one checksummed record, to the current journal segment, and one fsync of the segment
// commits every record appended before it (group commit: concurrent accepts share one fsync).
// Only then does accept() return, so the 250 is sent for a message on stable storage (RFC 5321
// §6.1) -- and no file is created per message. A journalled message's body is read from its
// segment; a new envelope (recipients delivered) is an update record, and removal a tombstone
// record, each committed the same way. A segment is deleted, oldest first, once every message
// recorded in it is done. One held by a message that stays queued while the journal grows is
// checkpointed: that message is written out as two files in queue/, <id>.body and <id>.env
// (durably), and is a file-based message from then on, its envelope replaced atomically as
// recipients are delivered. Recovery replays the journal and carries every live message into one
// new segment (one sequential write and one fsync, however many messages wait), then deletes the
// old segments; queue/ files are then read as they are.
//
//   tmp/         files being written; anything here at start-up is an interrupted write
//   journal/     segments NNNNNNNNNNNN.seg of records: "RJ1 M id envlen bodylen\n" env body
//                (accepted), "RJ1 U id envlen 0\n" env (new envelope), "RJ1 T id\n" (done), each
//                followed by "END hash\n" (FNV-1a 64 of the record); a torn or damaged record
//                ends its segment
//   queue/       checkpointed messages: <id>.body and <id>.env
//   quarantine/  files that failed to parse at recovery, kept for a person to look at
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
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

struct JournalLimits {
  std::uint64_t segment_bytes = 4 << 20;  // a segment takes appends until it is this large
  // More segments than this (an old one held by a message that stays queued) and the oldest is
  // checkpointed: its messages' files are written durably and it is deleted.
  std::size_t max_segments = 8;
};

// accept() may be called from several threads at once (with distinct ids): the journal fsync
// that commits a message is then shared -- one caller syncs the segment for every record
// appended before it started (group commit). update() and remove() are called by one thread at
// a time (the queue's lock), concurrently with accepts.
class Spool {
 public:
  explicit Spool(Storage& storage, JournalLimits limits = {}) : s_(storage), limits_(limits) {}
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

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
  struct Segment {
    std::uint64_t seq = 0;
    Storage::Handle h = -1;         // open while records may be appended or still need an fsync
    std::uint64_t bytes = 0;
    std::size_t live = 0;           // messages recorded here whose files are not yet durable or done
    std::uint64_t last_append = 0;  // number of the last record appended here
    bool entry_synced = false;      // its entry in journal/ is durable
    bool broken = false;            // an append failed: nothing more is written here
    // An fsync of it failed: whatever it holds may never reach the disk (Linux reports a
    // writeback error once), so no record in it counts as committed any more.
    bool sync_failed = false;
  };
  std::error_code quarantine(const std::string& name, std::string_view reason, RecoveryReport& report);
  struct Journalled {
    std::uint64_t seq = 0;          // the segment holding its M record
    std::uint64_t body_offset = 0;  // where its body starts there
    std::uint64_t body_size = 0;
    std::string env;                // its newest envelope record
    bool written_out = false;       // a checkpoint that did not finish left queue/ files of it
  };
  // Appends one record and waits until it is durable. `message` counts it as live in its
  // segment (a message record); the segment's number goes to `seq`, the record's offset in it
  // to `offset`.
  std::error_code journal(const std::string& record, bool message, std::uint64_t& seq, std::uint64_t& offset);
  std::error_code write_out(const std::string& id, const Journalled& j);  // as durable queue/ files
  std::error_code journal_commit(std::unique_lock<std::mutex>& lock, std::uint64_t mine);
  Segment* segment(std::uint64_t seq);  // under jm_
  std::error_code retire();             // deletes finished segments, checkpointing old ones
  std::error_code replay_journal(RecoveryReport& report);
  Storage& s_;
  JournalLimits limits_;
  std::mutex jm_;  // guards everything below
  std::condition_variable jcv_;
  std::deque<Segment> segments_;                       // oldest first; the last takes appends
  std::map<std::string, Journalled> journalled_;        // messages that live in the journal
  std::uint64_t next_seq_ = 1, appended_ = 0, jsynced_ = 0;
  bool jsyncing_ = false;
  struct CommitResult {
    std::uint64_t from = 0, to = 0;  // the round committed records from+1 .. to
    std::error_code error;
  };
  std::deque<CommitResult> jresults_;  // recent rounds
};

}  // namespace refsmtp::queue
