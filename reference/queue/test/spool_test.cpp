// Spool: accept, update, remove and recovery, on real files and in memory.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "refsmtp/queue/spool.hpp"
#include "refsmtp/testing/temp_dir.hpp"

using namespace refsmtp::queue;
using refsmtp::testing::TempDir;

namespace {

StoredEnvelope envelope(const std::string& id) {
  StoredEnvelope e;
  e.id = id;
  e.arrival_ms = 1000;
  e.reverse_path.mailbox = refsmtp::smtp::Mailbox{"a", "b.test", false};
  refsmtp::smtp::Path r;
  r.mailbox = refsmtp::smtp::Mailbox{"r", "mx.test", false};
  e.recipients.push_back({r, RecipientState::pending, ""});
  return e;
}

}  // namespace

TEST(Spool, AcceptRecoverUpdateRemoveOnRealFiles) {
  // The lives of a message: in the journal (accepted, updated, removed without a file of its
  // own), carried into a new segment by a recovery, and as queue/ files after a checkpoint.
  enum class Life { journal, recovered, checkpointed };
  for (const Life life : {Life::journal, Life::recovered, Life::checkpointed}) {
    SCOPED_TRACE(life == Life::journal ? "in the journal" : life == Life::recovered ? "recovered" : "as queue/ files");
    TempDir dir;
    PosixStorage storage(dir.path());
    // With a segment per record, a removal checkpoints the messages of older segments.
    Spool spool(storage, life == Life::checkpointed ? JournalLimits{1, 1} : JournalLimits{});
    ASSERT_FALSE(spool.init());
    StoredEnvelope e = envelope("M1");
    ASSERT_FALSE(spool.accept(e, "Subject: x\r\n\r\nbody\r\n"));
    EXPECT_EQ(e.body_size, 20u);
    RecoveryReport report;
    Spool live(storage);  // the spool in use from here on (one object per directory)
    if (life == Life::recovered) {
      ASSERT_FALSE(live.recover(report));
      ASSERT_EQ(report.messages.size(), 1u);
      EXPECT_EQ(report.messages[0], e);
      EXPECT_FALSE(std::filesystem::exists(dir.path() + "/queue/M1.env")) << "carried in the journal: no file";
    } else if (life == Life::checkpointed) {
      StoredEnvelope other = envelope("M2");
      ASSERT_FALSE(spool.accept(other, "x\r\n"));
      bool gone = false;
      ASSERT_FALSE(spool.remove("M2", gone));
      EXPECT_TRUE(std::filesystem::exists(dir.path() + "/queue/M1.env"));
    }
    Spool& s = life == Life::recovered ? live : spool;
    std::string body;
    ASSERT_FALSE(s.read_body(e, body));
    EXPECT_EQ(body, "Subject: x\r\n\r\nbody\r\n");

    e.recipients[0].state = RecipientState::delivered;
    ++e.attempts;
    ASSERT_FALSE(s.update(e));
    {
      Spool check(storage);
      ASSERT_FALSE(check.recover(report));  // (takes the spool over; `s` is not used again below)
      ASSERT_EQ(report.messages.size(), 1u);
      EXPECT_EQ(report.messages[0].recipients[0].state, RecipientState::delivered);
    }
    Spool after(storage);
    ASSERT_FALSE(after.recover(report));
    bool gone = false;
    ASSERT_FALSE(after.remove("M1", gone));
    EXPECT_TRUE(gone);
    ASSERT_FALSE(Spool(storage).recover(report));
    EXPECT_TRUE(report.messages.empty());
  }
}

TEST(Spool, JournalledMessagesNeedNoFilesAndSurviveATornTail) {
  MemoryStorage storage;
  Spool spool(storage);
  ASSERT_FALSE(spool.init());
  StoredEnvelope a = envelope("A"), b = envelope("B"), c = envelope("C");
  ASSERT_FALSE(spool.accept(a, "first\r\n"));
  ASSERT_FALSE(spool.accept(b, "second\r\n"));
  std::vector<std::string> names;
  ASSERT_FALSE(storage.list("queue", names));
  EXPECT_TRUE(names.empty()) << "no file per message";
  bool gone = false;
  ASSERT_FALSE(spool.remove("B", gone));
  // C's record is written but its commit is lost in a crash: C was never acknowledged.
  storage.inject(storage.operations() + 1, MemoryStorage::Fault::crash);  // the write succeeds, the fsync crashes
  EXPECT_TRUE(spool.accept(c, "third\r\n"));
  storage.crash_and_restart();
  RecoveryReport report;
  Spool again(storage);
  ASSERT_FALSE(again.recover(report));
  ASSERT_EQ(report.messages.size(), 1u);
  EXPECT_EQ(report.messages[0].id, "A");
  std::string body;
  ASSERT_FALSE(again.read_body(report.messages[0], body));
  EXPECT_EQ(body, "first\r\n");
  ASSERT_FALSE(storage.list("queue", names));
  EXPECT_TRUE(names.empty()) << "recovery carries A in the journal: still no file";
  ASSERT_FALSE(storage.list("journal", names));
  EXPECT_EQ(names.size(), 1u) << "one new segment holds what is live; the old one is gone";
}

// What a recovery must find: each live message's id and attempts; every body is "body of ID".
using Expected = std::map<std::string, std::uint32_t>;

void expect_live(MemoryStorage& storage, const Expected& expected, const std::string& when) {
  RecoveryReport report;
  Spool spool(storage);
  ASSERT_FALSE(spool.recover(report)) << when;
  Expected found;
  for (const auto& e : report.messages) {
    found[e.id] = e.attempts;
    std::string body;
    ASSERT_FALSE(spool.read_body(e, body)) << when << " " << e.id;
    EXPECT_EQ(body, "body of " + e.id + "\r\n") << when;
  }
  EXPECT_EQ(found, expected) << when;
  EXPECT_TRUE(report.quarantined.empty()) << when;
}

// A recovery of the spool `prepare` makes fails, or crashes, at each of its storage operations
// in turn; the next recovery finds exactly what is expected -- and so does the one after it.
void check_recovery_under_faults(const std::function<void(MemoryStorage&)>& prepare, const Expected& expected,
                                 const std::string& what) {
  std::size_t operations = 0;
  {
    MemoryStorage storage;
    prepare(storage);
    const std::size_t before = storage.operations();
    {
      RecoveryReport report;
      ASSERT_FALSE(Spool(storage).recover(report)) << what;
    }
    operations = storage.operations() - before;
    std::vector<std::string> segments;
    ASSERT_FALSE(storage.list("journal", segments));
    EXPECT_LE(segments.size(), 1u) << what << ": the live journalled messages carried into one new segment";
    expect_live(storage, expected, what + ", without faults");
  }
  for (const auto fault : {MemoryStorage::Fault::eio, MemoryStorage::Fault::crash}) {
    for (std::size_t k = 0; k < operations; ++k) {
      const std::string when = what + ", " + (fault == MemoryStorage::Fault::crash ? "crash" : "error") + " at op " + std::to_string(k);
      MemoryStorage storage;
      prepare(storage);
      storage.inject(storage.operations() + k, fault);
      {
        RecoveryReport report;
        Spool(storage).recover(report);  // fails, or not: either way the next one must be right
      }
      if (fault == MemoryStorage::Fault::crash) {
        EXPECT_TRUE(storage.crashed()) << when;
        storage.crash_and_restart();
      }
      expect_live(storage, expected, when + ", recovered again");
      expect_live(storage, expected, when + ", and once more");
    }
  }
}

StoredEnvelope with_body(const std::string& id, std::uint32_t attempts) {
  StoredEnvelope e = envelope(id);
  const std::string body = "body of " + id + "\r\n";
  e.body_size = body.size();
  e.body_hash = fnv1a64(body);
  e.attempts = attempts;
  return e;
}

TEST(Spool, RecoveryThatFailsOrCrashesAnywhereLosesNothingAndBringsNothingBack) {
  // Live messages in several segments, one of them updated, and a removed one.
  check_recovery_under_faults(
      [](MemoryStorage& storage) {
        Spool spool(storage, JournalLimits{300, 8});  // small segments: the records span several
        ASSERT_FALSE(spool.init());
        for (const char* id : {"A", "B", "C", "D"}) {
          StoredEnvelope e = envelope(id);
          ASSERT_FALSE(spool.accept(e, std::string("body of ") + id + "\r\n"));
        }
        ASSERT_FALSE(spool.update(with_body("B", 3)));
        bool gone = false;
        ASSERT_FALSE(spool.remove("C", gone));
      },
      Expected{{"A", 0}, {"B", 3}, {"D", 0}}, "journalled");
  // A is checkpointed but the deletion of its segment does not become durable (an error at
  // one operation or another of the update that checkpoints it), then updated again as a file
  // (no journal/ fsync after it): after a crash the journal still holds A, with fewer attempts
  // than A's envelope file.
  // Recovery must keep the file's state, and the file must not outlive the journal's copy.
  bool file_newer_than_journal = false;
  for (std::size_t k = 0; k < 20; ++k) {
    const auto prepare = [k](MemoryStorage& storage) {
      Spool spool(storage, JournalLimits{1, 1});  // a segment per record; checkpoint when two exist
      ASSERT_FALSE(spool.init());
      StoredEnvelope a = envelope("A");
      ASSERT_FALSE(spool.accept(a, "body of A\r\n"));
      storage.inject(storage.operations() + k, MemoryStorage::Fault::eio);
      spool.update(with_body("A", 1));  // its record, then a checkpoint of A; may fail
      ASSERT_FALSE(spool.update(with_body("A", 2)));
      storage.crash_and_restart();  // what was not durable is gone: perhaps not A's old segment
    };
    {
      MemoryStorage storage;
      prepare(storage);
      std::string file, segment;
      std::vector<std::string> segments;
      ASSERT_FALSE(storage.list("journal", segments));
      bool journal_has_a = false;
      for (const auto& n : segments) {
        if (!storage.read("journal/" + n, segment) && segment.find("RJ1 M A ") != std::string::npos) journal_has_a = true;
      }
      if (!storage.read("queue/A.env", file) && journal_has_a && file.find("\nattempts 2\n") != std::string::npos) {
        file_newer_than_journal = true;
        RecoveryReport report;
        ASSERT_FALSE(Spool(storage).recover(report));
        EXPECT_TRUE(storage.read("queue/A.env", file) && storage.read("queue/A.body", file))
            << "the checkpoint's files go once the journal carries A: left, they could outlive its removal";
      }
    }
    check_recovery_under_faults(prepare, Expected{{"A", 2}}, "checkpointed, error at op " + std::to_string(k));
  }
  EXPECT_TRUE(file_newer_than_journal) << "no case left a checkpoint file newer than the journal: the test misses its point";
}

TEST(Spool, DamagedJournalRecordsEndTheirSegmentAndAreReported) {
  TempDir dir;
  PosixStorage storage(dir.path());
  {
    Spool spool(storage);
    ASSERT_FALSE(spool.init());
    StoredEnvelope a = envelope("A"), b = envelope("B");
    ASSERT_FALSE(spool.accept(a, "first\r\n"));
    ASSERT_FALSE(spool.accept(b, "second\r\n"));
  }
  std::vector<std::string> segments;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path() + "/journal")) segments.push_back(entry.path());
  ASSERT_EQ(segments.size(), 1u);
  // Cut B's record short, as a torn append would.
  std::filesystem::resize_file(segments[0], std::filesystem::file_size(segments[0]) - 5);
  RecoveryReport report;
  Spool again(storage);
  ASSERT_FALSE(again.recover(report));
  ASSERT_EQ(report.messages.size(), 1u);
  EXPECT_EQ(report.messages[0].id, "A");
  ASSERT_EQ(report.removed.size(), 1u);
  EXPECT_NE(report.removed[0].find("torn or damaged"), std::string::npos);
}

TEST(Spool, CorruptFilesAreQuarantinedNotLost) {
  TempDir dir;
  PosixStorage storage(dir.path());
  Spool spool(storage);
  ASSERT_FALSE(spool.init());
  // Four messages as queue/ files, as checkpoints leave them.
  for (const char* id : {"GOOD", "BAD", "NOBODY", "TAMPER"}) {
    StoredEnvelope e = envelope(id);
    e.body_size = 4;
    e.body_hash = fnv1a64("ok\r\n");
    ASSERT_FALSE(write_durably(storage, "tmp", "queue", e.id + ".body", "ok\r\n"));
    ASSERT_FALSE(write_durably(storage, "tmp", "queue", e.id + ".env", serialize(e)));
  }
  RecoveryReport first;
  ASSERT_FALSE(spool.recover(first));
  ASSERT_EQ(first.messages.size(), 4u);
  EXPECT_TRUE(std::filesystem::is_empty(dir.path() + "/journal"));
  const std::string q = dir.path() + "/queue/";
  // Truncate one envelope, delete one body, alter one body, drop in a stray file and an orphan body.
  std::filesystem::resize_file(q + "BAD.env", 40);
  std::filesystem::remove(q + "NOBODY.body");
  std::ofstream(q + "TAMPER.body") << "changed\r\n";
  std::ofstream(q + "stray.txt") << "?";
  std::ofstream(q + "ORPHAN.body") << "never committed";
  std::ofstream(dir.path() + "/tmp/X.env") << "interrupted";

  RecoveryReport report;
  ASSERT_FALSE(spool.recover(report));
  ASSERT_EQ(report.messages.size(), 1u);
  EXPECT_EQ(report.messages[0].id, "GOOD");
  EXPECT_EQ(report.quarantined.size(), 6u);
  for (const auto* f : {"BAD.env", "BAD.body", "NOBODY.env", "TAMPER.env", "TAMPER.body", "stray.txt"}) {
    EXPECT_TRUE(std::filesystem::exists(dir.path() + "/quarantine/" + f)) << f;
  }
  EXPECT_FALSE(std::filesystem::exists(q + "ORPHAN.body"));
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/tmp/X.env"));
}

TEST(Spool, OldSegmentsAreCheckpointedAndDeleted) {
  MemoryStorage storage;
  Spool spool(storage, JournalLimits{1, 1});  // a segment per record; checkpoint when two exist
  ASSERT_FALSE(spool.init());
  StoredEnvelope a = envelope("A"), b = envelope("B"), c = envelope("C");
  ASSERT_FALSE(spool.accept(a, "stays queued\r\n"));
  ASSERT_FALSE(spool.accept(b, "delivered\r\n"));
  ASSERT_FALSE(spool.accept(c, "also queued\r\n"));
  std::vector<std::string> segments;
  ASSERT_FALSE(storage.list("journal", segments));
  EXPECT_EQ(segments.size(), 3u);
  bool gone = false;
  ASSERT_FALSE(spool.remove("B", gone));  // its tombstone, then retirement of what is finished
  ASSERT_FALSE(storage.list("journal", segments));
  EXPECT_EQ(segments.size(), 1u) << "A and C checkpointed, B retired: only the active segment is left";
  // A crash now: A and C must be whole from their checkpointed files alone, B gone.
  storage.crash_and_restart();
  RecoveryReport report;
  ASSERT_FALSE(Spool(storage).recover(report));
  ASSERT_EQ(report.messages.size(), 2u);
  EXPECT_EQ(report.messages[0].id, "A");
  EXPECT_EQ(report.messages[1].id, "C");
  std::string body;
  ASSERT_FALSE(spool.read_body(report.messages[0], body));
  EXPECT_EQ(body, "stays queued\r\n");
}

TEST(Spool, ConcurrentAcceptsAndRemovalsKeepExactlyTheLiveMessages) {
  // Accepts from several threads (sharing commits, rotating small segments) while one thread
  // removes every other message, as the queue does; a fresh spool then finds exactly the rest.
  TempDir dir;
  PosixStorage storage(dir.path());
  Spool spool(storage, JournalLimits{4096, 2});
  ASSERT_FALSE(spool.init());
  constexpr int kThreads = 6, kEach = 40;
  std::mutex m;
  std::condition_variable cv;
  std::deque<std::string> to_remove;
  std::atomic<int> failures{0}, writers_left{kThreads};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        StoredEnvelope e = envelope("T" + std::to_string(t) + "x" + std::to_string(i));
        if (spool.accept(e, "body of " + e.id + "\r\n")) {
          ++failures;
          continue;
        }
        if (i % 2 == 0) {
          std::lock_guard lock(m);
          to_remove.push_back(e.id);
          cv.notify_one();
        }
      }
      if (--writers_left == 0) cv.notify_one();
    });
  }
  std::thread remover([&] {
    std::unique_lock lock(m);
    for (;;) {
      cv.wait(lock, [&] { return !to_remove.empty() || writers_left == 0; });
      if (to_remove.empty()) return;
      const std::string id = to_remove.front();
      to_remove.pop_front();
      lock.unlock();
      bool gone = false;
      if (spool.remove(id, gone) || !gone) ++failures;
      lock.lock();
    }
  });
  for (auto& t : threads) t.join();
  remover.join();
  ASSERT_EQ(failures, 0);
  RecoveryReport report;
  Spool again(storage);
  ASSERT_FALSE(again.recover(report));
  ASSERT_EQ(report.messages.size(), static_cast<std::size_t>(kThreads * kEach / 2));
  for (const auto& e : report.messages) {
    std::string body;
    ASSERT_FALSE(again.read_body(e, body)) << e.id;
    EXPECT_EQ(body, "body of " + e.id + "\r\n");
    EXPECT_EQ(std::stoi(e.id.substr(e.id.find('x') + 1)) % 2, 1) << e.id;
  }
  EXPECT_TRUE(report.quarantined.empty());
}

TEST(Spool, AnUnfinishedCheckpointNeverBringsARemovedMessageBack) {
  // A fault (an error, or a crash) at each operation of a removal that checkpoints an older
  // message; then that message is removed too; after a crash, exactly the messages whose
  // removal did not succeed are there.
  for (const auto fault : {MemoryStorage::Fault::eio, MemoryStorage::Fault::crash})
  for (std::size_t k = 0;; ++k) {
    ASSERT_LT(k, 200u);
    MemoryStorage storage;
    Spool spool(storage, JournalLimits{1, 1});
    ASSERT_FALSE(spool.init());
    StoredEnvelope a = envelope("A"), b = envelope("B");
    ASSERT_FALSE(spool.accept(a, "old\r\n"));
    ASSERT_FALSE(spool.accept(b, "new\r\n"));
    const std::size_t start = storage.operations();
    storage.inject(start + k, fault);
    bool gone = false;
    const bool b_removed = !spool.remove("B", gone);  // may fail: then B stays
    std::string body;
    if (!storage.crashed()) {
      ASSERT_FALSE(spool.read_body(a, body)) << "op " << k;  // A is whole whatever happened
      EXPECT_EQ(body, "old\r\n");
    }
    const bool a_removed = !spool.remove("A", gone);  // the fault may hit this removal instead
    const bool fault_reached = storage.operations() > start + k;
    storage.crash_and_restart();
    RecoveryReport report;
    ASSERT_FALSE(Spool(storage).recover(report)) << "op " << k;
    std::vector<std::string> left;
    for (const auto& m : report.messages) left.push_back(m.id);
    std::vector<std::string> expected;
    if (!a_removed) expected.push_back("A");
    if (!b_removed) expected.push_back("B");
    EXPECT_EQ(left, expected) << "op " << k;
    if (!fault_reached) break;  // every operation of the two removals has had its fault
    EXPECT_TRUE(report.quarantined.empty()) << "op " << k;
  }
}

TEST(Spool, StorageErrorsAtAcceptLeaveNothingBehind) {
  std::size_t accept_ops = 0;
  {
    MemoryStorage storage;
    Spool spool(storage);
    ASSERT_FALSE(spool.init());
    StoredEnvelope e = envelope("M1");
    const std::size_t before = storage.operations();
    ASSERT_FALSE(spool.accept(e, "body\r\n"));
    accept_ops = storage.operations() - before;
  }
  for (std::size_t op = 0; op < accept_ops; ++op) {
    for (auto fault : {MemoryStorage::Fault::enospc, MemoryStorage::Fault::eio, MemoryStorage::Fault::short_write}) {
      MemoryStorage storage;
      Spool spool(storage);
      ASSERT_FALSE(spool.init());
      storage.inject(storage.operations() + op, fault);
      StoredEnvelope e = envelope("M1");
      const auto err = spool.accept(e, "body\r\n");
      RecoveryReport report;
      ASSERT_FALSE(spool.recover(report));
      if (err) {
        EXPECT_TRUE(report.messages.empty()) << "op " << op;
      } else {
        EXPECT_EQ(report.messages.size(), 1u) << "op " << op;  // the fault hit a cleanup step
      }
      EXPECT_TRUE(report.quarantined.empty());
    }
  }
}

TEST(Spool, UnreadableEntriesAreSetAsideAndEvidenceIsKept) {
  TempDir dir;
  PosixStorage storage(dir.path());
  Spool spool(storage);
  ASSERT_FALSE(spool.init());
  StoredEnvelope good = envelope("GOOD");
  ASSERT_FALSE(spool.accept(good, "ok\r\n"));
  std::filesystem::create_directory(dir.path() + "/queue/WEIRD.env");  // a directory, not a file
  std::ofstream(dir.path() + "/queue/WEIRD.body") << "x";
  std::ofstream(dir.path() + "/quarantine/WEIRD.body") << "earlier evidence";
  RecoveryReport report;
  ASSERT_FALSE(spool.recover(report));  // does not stop at the bad entry
  ASSERT_EQ(report.messages.size(), 1u);
  EXPECT_EQ(report.messages[0].id, "GOOD");
  EXPECT_EQ(report.quarantined.size(), 2u);
  EXPECT_TRUE(std::filesystem::is_directory(dir.path() + "/quarantine/WEIRD.env"));
  std::string earlier;
  std::getline(std::ifstream(dir.path() + "/quarantine/WEIRD.body"), earlier);
  EXPECT_EQ(earlier, "earlier evidence");  // not overwritten
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/quarantine/WEIRD.body.1"));
}

// Seeds for fuzz_journal_replay: real segments (accepts, an update, a removal, a torn tail).
// Writes only when REFSMTP_WRITE_SEEDS names a directory (scripts/seed-corpus sets it).
TEST(Spool, WriteJournalSeedsWhenAsked) {
  const char* out = std::getenv("REFSMTP_WRITE_SEEDS");
  if (!out) GTEST_SKIP() << "REFSMTP_WRITE_SEEDS not set";
  MemoryStorage storage;
  Spool spool(storage);
  ASSERT_FALSE(spool.init());
  StoredEnvelope a = envelope("A1"), b = envelope("B2");
  ASSERT_FALSE(spool.accept(a, "Subject: a\r\n\r\nfirst\r\n"));
  ASSERT_FALSE(spool.accept(b, "Subject: b\r\n\r\nsecond\r\n"));
  a.recipients[0].state = RecipientState::delivered;
  ++a.attempts;
  ASSERT_FALSE(spool.update(a));
  bool gone = false;
  ASSERT_FALSE(spool.remove("B2", gone));
  std::vector<std::string> names;
  ASSERT_FALSE(storage.list("journal", names));
  ASSERT_EQ(names.size(), 1u);
  std::string segment;
  ASSERT_FALSE(storage.read("journal/" + names[0], segment));
  int n = 0;
  for (const std::string& seed : {segment, segment.substr(0, segment.size() - 7), segment.substr(0, segment.find("RJ1 U"))}) {
    std::ofstream(std::string(out) + "/journal-" + std::to_string(n++), std::ios::binary) << seed;
  }
}


TEST(Spool, AFailedJournalFsyncNeverCostsAnAcknowledgedMessage) {
  // Linux reports a writeback error once and then drops the data; a later fsync of the same
  // file succeeds (MemoryStorage models it). An accept whose commit fails is refused; the
  // accepts after it must still be durable when they are acknowledged -- not appended behind
  // the lost octets, which would end the segment for a reader (the segment is poisoned).
  bool hit_an_fsync = false;
  for (std::size_t k = 0; k < 12; ++k) {
    MemoryStorage storage;
    Spool spool(storage);
    ASSERT_FALSE(spool.init());
    StoredEnvelope first = envelope("FIRST");
    ASSERT_FALSE(spool.accept(first, "body of FIRST\r\n"));
    const std::size_t before = storage.operations();
    storage.inject(before + k, MemoryStorage::Fault::eio);
    StoredEnvelope a = envelope("A");
    const bool a_acked = !spool.accept(a, "body of A\r\n");
    const std::size_t a_ops = storage.operations() - before;
    if (k >= a_ops) break;  // the fault lies past A's accept: every operation of it was tried
    StoredEnvelope b = envelope("B"), c = envelope("C");
    ASSERT_FALSE(spool.accept(b, "body of B\r\n")) << k;
    ASSERT_FALSE(spool.accept(c, "body of C\r\n")) << k;
    std::vector<std::string> segments;
    ASSERT_FALSE(storage.list("journal", segments));
    hit_an_fsync = hit_an_fsync || (!a_acked && segments.size() > 1);
    storage.crash_and_restart();
    RecoveryReport report;
    Spool again(storage);
    ASSERT_FALSE(again.recover(report)) << k;
    std::vector<std::string> ids;
    for (const auto& e : report.messages) {
      ids.push_back(e.id);
      std::string body;
      ASSERT_FALSE(again.read_body(e, body)) << k << " " << e.id;
      EXPECT_EQ(body, "body of " + e.id + "\r\n") << k;
    }
    const std::vector<std::string> expected =
        a_acked ? std::vector<std::string>{"A", "B", "C", "FIRST"} : std::vector<std::string>{"B", "C", "FIRST"};
    EXPECT_EQ(ids, expected) << "fault at op " << k << " of A's accept";
  }
  EXPECT_TRUE(hit_an_fsync) << "no case failed a journal fsync: the test misses its point";
}
