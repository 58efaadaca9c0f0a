// Exhaustive crash points (the CrashMonkey/ALICE lesson: bugs hide right after fsync calls):
// for every storage operation in accepting and delivering a message, crash there, recover,
// finish the work, and check that nothing acknowledged was lost and nothing unacknowledged
// appeared. Faults (ENOSPC, EIO, short writes) at every operation are checked the same way.
#include <gtest/gtest.h>

#include "queue_harness.hpp"

using namespace refsmtp::queue;
using Fault = MemoryStorage::Fault;

namespace {

// Accept a 3-recipient message, then two delivery rounds: r0 delivered, r1 deferred, r2 failed
// (a bounce is queued); then r1 delivered and the bounce delivered.
void workload(QueueHarness& h) {
  if (!h.accept(3)) return;
  h.deliver_due([](int i) { return i == 0 ? RecipientState::delivered : i == 1 ? RecipientState::pending : RecipientState::failed; });
  h.now += 100;
  h.deliver_due([](int) { return RecipientState::delivered; });
}

void finish(QueueHarness& h) {
  for (int round = 0; round < 20 && h.queue->size() > 0; ++round) {
    h.now += 100;
    h.deliver_due([](int) { return RecipientState::delivered; });
  }
}

std::size_t operations_of_workload() {
  QueueHarness h;
  const std::size_t before = h.storage.operations();
  workload(h);
  return h.storage.operations() - before;
}

}  // namespace

TEST(CrashPoints, WorkloadWithoutFaultsDeliversEachRecipientOnce) {
  QueueHarness h;
  workload(h);
  finish(h);
  EXPECT_EQ(h.check(), "");
  EXPECT_EQ(h.queue->size(), 0u);
  EXPECT_EQ((h.deliveries[{"T0", 0}]), 1);
  EXPECT_EQ((h.deliveries[{"T0", 1}]), 1);
  EXPECT_EQ((h.deliveries[{"T0", 2}]), 0);
  EXPECT_EQ((h.bounced({"T0", 2})), 1);  // r2 failed: one report, handed out
  EXPECT_EQ((h.bounced({"T0", 0})), 0);
}

TEST(CrashPoints, CrashAtEveryOperation) {
  for (const JournalLimits& limits : {JournalLimits{}, kTinyJournal}) {
  journal_limits() = limits;
  SCOPED_TRACE(limits.segment_bytes == 1 ? "tiny journal segments" : "default journal segments");
  const std::size_t total = operations_of_workload();
  ASSERT_GT(total, 8u);
  for (std::size_t k = 0; k < total; ++k) {
    QueueHarness h;
    h.storage.inject(h.storage.operations() + k, Fault::crash);
    workload(h);
    ASSERT_TRUE(h.storage.crashed()) << "crash point " << k << " not reached";
    h.crash();
    EXPECT_EQ(h.check(), "") << "right after recovery, crash at op " << k;
    finish(h);
    EXPECT_EQ(h.check(), "") << "after finishing, crash at op " << k;
    EXPECT_EQ(h.queue->size(), 0u) << "crash at op " << k;
    // An acknowledged message's deliverable recipients arrive at least once, at most twice.
    if (h.acked.count("T0")) {
      for (int i : {0, 1}) {
        EXPECT_GE((h.deliveries[{"T0", i}]), 1) << "crash at op " << k << " rcpt " << i;
        EXPECT_LE((h.deliveries[{"T0", i}]), 2) << "crash at op " << k << " rcpt " << i;
      }
      // The failing recipient is reported or (retried after the crash and) delivered; a report
      // is repeated at most once (crash between queueing it and recording the failure).
      EXPECT_GE((h.bounced({"T0", 2}) + h.deliveries[{"T0", 2}]), 1) << "crash at op " << k;
      EXPECT_LE((h.bounced({"T0", 2})), 2) << "crash at op " << k;
    }
  }
  }
  journal_limits() = JournalLimits{};
}

TEST(CrashPoints, ErrorAtEveryOperation) {
  for (const JournalLimits& limits : {JournalLimits{}, kTinyJournal}) {
  journal_limits() = limits;
  SCOPED_TRACE(limits.segment_bytes == 1 ? "tiny journal segments" : "default journal segments");
  const std::size_t total = operations_of_workload();
  for (std::size_t k = 0; k < total; ++k) {
    for (Fault f : {Fault::enospc, Fault::eio, Fault::short_write}) {
      QueueHarness h;
      h.storage.inject(h.storage.operations() + k, f);
      workload(h);
      EXPECT_EQ(h.check(), "") << "fault at op " << k;
      finish(h);
      EXPECT_EQ(h.check(), "") << "fault at op " << k;
      EXPECT_EQ(h.queue->size(), 0u) << "fault at op " << k;
      // No crash: nobody receives anything twice, and the failure is reported exactly once.
      for (const auto& [key, n] : h.deliveries) EXPECT_LE(n, 1) << "fault at op " << k;
      // (If recording the failure failed, r2 is tried again -- and the retry delivers it.)
      if (h.acked.count("T0")) {
        EXPECT_EQ((h.bounced({"T0", 2}) + h.deliveries[{"T0", 2}]), 1) << "fault at op " << k;
      }
      // A restart afterwards finds a consistent spool (nothing quarantined).
      RecoveryReport report;
      Queue again(h.storage, QueueHarness::config());
      ASSERT_FALSE(again.open(h.now, &report));
      EXPECT_TRUE(report.quarantined.empty()) << "fault at op " << k;
    }
  }
  }
  journal_limits() = JournalLimits{};
}
