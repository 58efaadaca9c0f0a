// Spool: accept, update, remove and recovery, on real files and in memory.
#include <gtest/gtest.h>

#include <fstream>

#include "refsmtp/queue/spool.hpp"
#include "temp_dir.hpp"

using namespace refsmtp::queue;

namespace {

StoredEnvelope envelope(const std::string& id) {
  StoredEnvelope e;
  e.id = id;
  e.arrival_ms = 1000;
  e.reverse_path.mailbox = refsmtp::core::Mailbox{"a", "b.test", false};
  refsmtp::core::Path r;
  r.mailbox = refsmtp::core::Mailbox{"r", "mx.test", false};
  e.recipients.push_back({r, RecipientState::pending, ""});
  return e;
}

}  // namespace

TEST(Spool, AcceptRecoverUpdateRemoveOnRealFiles) {
  TempDir dir;
  PosixStorage storage(dir.path());
  Spool spool(storage);
  ASSERT_FALSE(spool.init());
  StoredEnvelope e = envelope("M1");
  ASSERT_FALSE(spool.accept(e, "Subject: x\r\n\r\nbody\r\n"));
  EXPECT_EQ(e.body_size, 20u);

  RecoveryReport report;
  ASSERT_FALSE(Spool(storage).recover(report));
  ASSERT_EQ(report.messages.size(), 1u);
  EXPECT_EQ(report.messages[0], e);
  std::string body;
  ASSERT_FALSE(spool.read_body(e, body));
  EXPECT_EQ(body, "Subject: x\r\n\r\nbody\r\n");

  e.recipients[0].state = RecipientState::delivered;
  ASSERT_FALSE(spool.update(e));
  ASSERT_FALSE(Spool(storage).recover(report));
  EXPECT_EQ(report.messages[0].recipients[0].state, RecipientState::delivered);

  bool gone = false;
  ASSERT_FALSE(spool.remove("M1", gone));
  EXPECT_TRUE(gone);
  ASSERT_FALSE(Spool(storage).recover(report));
  EXPECT_TRUE(report.messages.empty());
}

TEST(Spool, CorruptFilesAreQuarantinedNotLost) {
  TempDir dir;
  PosixStorage storage(dir.path());
  Spool spool(storage);
  ASSERT_FALSE(spool.init());
  StoredEnvelope good = envelope("GOOD"), bad = envelope("BAD"), nobody = envelope("NOBODY"), tampered = envelope("TAMPER");
  ASSERT_FALSE(spool.accept(good, "ok\r\n"));
  ASSERT_FALSE(spool.accept(bad, "ok\r\n"));
  ASSERT_FALSE(spool.accept(nobody, "ok\r\n"));
  ASSERT_FALSE(spool.accept(tampered, "ok\r\n"));
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

TEST(Spool, StorageErrorsAtAcceptLeaveNothingBehind) {
  for (std::size_t op = 0; op < 12; ++op) {
    for (auto fault : {MemoryStorage::Fault::enospc, MemoryStorage::Fault::eio, MemoryStorage::Fault::short_write}) {
      MemoryStorage storage;
      Spool spool(storage);
      ASSERT_FALSE(spool.init());
      storage.inject(op, fault);
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
