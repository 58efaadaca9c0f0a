// The queue manager: accept replies, retries, bounces and who gets them.
#include <gtest/gtest.h>


#include "refsmtp/queue/queue.hpp"
#include "refsmtp/testing/temp_dir.hpp"

using refsmtp::smtp::make_path;

using namespace refsmtp::queue;
namespace smtp = refsmtp::smtp;
using refsmtp::testing::TempDir;
using refsmtp::smtp::Envelope;
using refsmtp::smtp::Path;

namespace {


Envelope envelope(Path from, std::vector<std::string> rcpts) {
  Envelope e;
  e.helo = "client.test";
  e.esmtp = true;
  e.reverse_path = std::move(from);
  for (auto& r : rcpts) e.recipients.push_back({make_path(r, "mx.test"), {}});
  return e;
}

QueueConfig config() {
  QueueConfig c;
  c.hostname = "mx.test";
  c.retry.first = {std::chrono::milliseconds(100)};
  c.retry.later = std::chrono::milliseconds(200);
  c.retry.max_interval = std::chrono::milliseconds(400);
  c.retry.give_up_after = std::chrono::milliseconds(2000);
  c.retry.delay_warning = std::chrono::milliseconds(500);
  return c;
}

const ClientInfo kClient{"client.test", "192.0.2.1", true, false, false};

}  // namespace

TEST(Queue, AcceptIsDurableAndPrependsReceived) {
  TempDir dir;
  PosixStorage storage(dir.path());
  Queue q(storage, config());
  ASSERT_FALSE(q.open(0));
  auto r = q.accept(envelope(make_path("a", "b.test"), {"x"}), "Subject: t\r\n\r\nhi\r\n", kClient, 1000);
  ASSERT_TRUE(r.id);
  EXPECT_EQ(r.reply.code, 250);
  EXPECT_EQ(r.reply.text(), "OK queued as " + *r.id);
  // A second queue over the same directory sees it (the message is on disk, not just in memory).
  Queue again(storage, config());
  ASSERT_FALSE(again.open(0));
  ASSERT_EQ(again.size(), 1u);
  std::string body;
  ASSERT_FALSE(again.read_body(*r.id, body));
  EXPECT_TRUE(body.starts_with("Received: from client.test (192.0.2.1)\r\n\tby mx.test (refsmtp) with ESMTP id " + *r.id));
  EXPECT_TRUE(body.ends_with("\r\nSubject: t\r\n\r\nhi\r\n"));
}

TEST(Queue, AuthParameterIsKeptForTheRelay) {  // RFC 4954 §5
  TempDir dir;
  PosixStorage storage(dir.path());
  Queue q(storage, config());
  ASSERT_FALSE(q.open(0));
  Envelope with = envelope(make_path("a", "b.test"), {"x"});
  with.params.auth = "a+2Bb@b.test";
  const auto r1 = q.accept(with, "Subject: t\r\n\r\nhi\r\n", kClient, 1000);
  const auto r2 = q.accept(envelope(make_path("a", "b.test"), {"x"}), "Subject: t\r\n\r\nhi\r\n", kClient, 1000);
  ASSERT_TRUE(r1.id && r2.id);
  Queue again(storage, config());  // read back from the spool
  ASSERT_FALSE(again.open(0));
  ASSERT_NE(again.find(*r1.id), nullptr);
  EXPECT_EQ(again.find(*r1.id)->auth, std::optional<std::string>("a+2Bb@b.test"));
  EXPECT_EQ(again.find(*r2.id)->auth, std::nullopt);
}

TEST(Queue, IdsAreUniqueAndSortable) {
  MemoryStorage storage;
  Queue q(storage, config());
  q.open(0);
  std::vector<std::string> ids;
  for (std::int64_t t : {5, 5, 5, 6, 100}) ids.push_back(*q.accept(envelope(make_path("a", "b"), {"x"}), "x\r\n", kClient, t).id);
  for (std::size_t i = 1; i < ids.size(); ++i) EXPECT_LT(ids[i - 1], ids[i]);
}

TEST(Queue, NoSpaceIs452AndIoErrorIs451NeverA250) {  // RFC 3463 4.3.1 / 4.3.0
  // A fault at any storage operation of an accept must refuse the message.
  std::size_t accept_ops = 0;
  {
    MemoryStorage storage;
    Queue q(storage, config());
    ASSERT_FALSE(q.open(0));
    const std::size_t before = storage.operations();
    ASSERT_TRUE(q.accept(envelope(make_path("a", "b"), {"x"}), "x\r\n", kClient, 0).id);
    accept_ops = storage.operations() - before;
  }
  ASSERT_GE(accept_ops, 2u);
  for (auto [fault, code] : {std::pair{MemoryStorage::Fault::enospc, 452}, std::pair{MemoryStorage::Fault::short_write, 452},
                             std::pair{MemoryStorage::Fault::eio, 451}}) {
    for (std::size_t op = 0; op < accept_ops; ++op) {
      MemoryStorage storage;
      Queue q(storage, config());
      ASSERT_FALSE(q.open(0));
      storage.inject(storage.operations() + op, fault);
      auto r = q.accept(envelope(make_path("a", "b"), {"x"}), "x\r\n", kClient, 0);
      ASSERT_FALSE(r.id) << "fault at op " << op << " still acknowledged";
      EXPECT_EQ(r.reply.code, code) << op;
      EXPECT_EQ(q.size(), 0u);
      Queue again(storage, config());
      ASSERT_FALSE(again.open(0));
      EXPECT_EQ(again.size(), 0u) << "refused message found at recovery, op " << op;
    }
  }
}

TEST(Queue, PartialDeliverySurvivesRestartWithoutRedelivery) {
  TempDir dir;
  PosixStorage storage(dir.path());
  std::string id;
  {
    Queue q(storage, config());
    q.open(0);
    id = *q.accept(envelope(make_path("a", "b.test"), {"x", "y", "z"}), "m\r\n", kClient, 0).id;
    ASSERT_EQ(q.due(0), std::vector<std::string>{id});
    ASSERT_FALSE(q.record(id, {{0, RecipientState::delivered, smtp::make_reply(250, std::nullopt, "ok")}, {1, RecipientState::delivered, smtp::make_reply(250, std::nullopt, "ok")},
                               {2, RecipientState::pending, smtp::make_reply(451, 4, 3, 0, "later")}}, 10));
    EXPECT_TRUE(q.due(10).empty());
    EXPECT_EQ(q.due(110), std::vector<std::string>{id});
  }
  Queue q(storage, config());
  q.open(0);
  const StoredEnvelope* e = q.find(id);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->recipients[0].state, RecipientState::delivered);
  EXPECT_EQ(e->recipients[1].state, RecipientState::delivered);
  EXPECT_EQ(e->recipients[2].state, RecipientState::pending);
  EXPECT_EQ(e->attempts, 1u);
  EXPECT_EQ(e->next_attempt_ms, 110);
  // States never go backwards: a later "pending" for x changes nothing.
  ASSERT_FALSE(q.record(id, {{0, RecipientState::pending, smtp::make_reply(451, std::nullopt, "")}, {2, RecipientState::delivered, smtp::make_reply(250, std::nullopt, "ok")}}, 120));
  EXPECT_EQ(q.size(), 0u);  // all final: removed
}

TEST(Queue, PermanentFailureBouncesToTheSender) {  // RFC 3464, RFC 5321 §6.1
  MemoryStorage storage;
  Queue q(storage, config());
  q.open(0);
  const std::string id = *q.accept(envelope(make_path("alice", "example.com"), {"x", "y"}), "Subject: s\r\n\r\nb\r\n", kClient, 0).id;
  ASSERT_FALSE(q.record(id, {{0, RecipientState::failed, smtp::make_reply(550, 5, 1, 1, "no such user"), "mx.example.com"}, {1, RecipientState::delivered, smtp::make_reply(250, std::nullopt, "ok")}}, 5));
  ASSERT_EQ(q.size(), 1u);  // the original is done; the bounce is queued
  const std::string bounce_id = q.due(5).at(0);
  const StoredEnvelope* b = q.find(bounce_id);
  EXPECT_EQ(b->kind, MessageKind::bounce);
  EXPECT_TRUE(b->reverse_path.is_null());  // bounces use the null reverse-path
  EXPECT_EQ(b->recipients.at(0).path.to_string(), "<alice@example.com>");
  std::string body;
  ASSERT_FALSE(q.read_body(bounce_id, body));
  EXPECT_NE(body.find("Final-Recipient: rfc822; x@mx.test\r\nAction: failed\r\nStatus: 5.1.1\r\n"
                      "Remote-MTA: dns; mx.example.com\r\nDiagnostic-Code: smtp; 550 5.1.1 no such user\r\n"),
            std::string::npos);
  EXPECT_EQ(body.find("y@mx.test\r\nAction"), std::string::npos);  // only the failed one
  EXPECT_NE(body.find("Subject: s\r\n"), std::string::npos);
}

TEST(Queue, NoBounceToNullSenderAndNoLoops) {  // RFC 5321 §4.5.5, §6.1
  MemoryStorage storage;
  Queue q(storage, config());
  q.open(0);
  const std::string id = *q.accept(envelope(Path{}, {"x"}), "m\r\n", kClient, 0).id;
  ASSERT_FALSE(q.record(id, {{0, RecipientState::failed, smtp::make_reply(550, std::nullopt, "no")}}, 1));
  // A null-sender message that fails is reported to postmaster, once.
  ASSERT_EQ(q.size(), 1u);
  const std::string notice = q.due(1).at(0);
  EXPECT_EQ(q.find(notice)->kind, MessageKind::notice);
  EXPECT_EQ(q.find(notice)->recipients[0].path.to_string(), "<postmaster@mx.test>");
  // If that notice fails too, it is dropped: nothing new is queued.
  ASSERT_FALSE(q.record(notice, {{0, RecipientState::failed, smtp::make_reply(550, std::nullopt, "no")}}, 2));
  EXPECT_EQ(q.size(), 0u);
}

TEST(Queue, FailedBounceGoesToPostmaster) {
  MemoryStorage storage;
  Queue q(storage, config());
  q.open(0);
  const std::string id = *q.accept(envelope(make_path("alice", "example.com"), {"x"}), "m\r\n", kClient, 0).id;
  q.record(id, {{0, RecipientState::failed, smtp::make_reply(550, std::nullopt, "no")}}, 1);
  const std::string bounce = q.due(1).at(0);
  q.record(bounce, {{0, RecipientState::failed, smtp::make_reply(550, std::nullopt, "alice unknown")}}, 2);
  const std::string notice = q.due(2).at(0);
  EXPECT_EQ(q.find(notice)->kind, MessageKind::notice);
  EXPECT_EQ(q.find(notice)->recipients[0].path.to_string(), "<postmaster@mx.test>");
}

TEST(Queue, RetriesOnScheduleThenGivesUpWithABounce) {  // RFC 5321 §4.5.4.1
  MemoryStorage storage;
  Queue q(storage, config());
  q.open(0);
  const std::string id = *q.accept(envelope(make_path("alice", "example.com"), {"x"}), "m\r\n", kClient, 0).id;
  std::vector<std::int64_t> attempts;
  std::int64_t now = 0;
  int delay_notices = 0;
  for (int guard = 0; guard < 100 && q.find(id); ++guard) {
    const auto wake = q.next_wakeup();
    ASSERT_TRUE(wake);
    now = std::max(now, *wake);
    for (const auto& d : q.due(now)) {
      if (d != id) {
        if (q.find(d)->kind == MessageKind::bounce) {
          std::string body;
          q.read_body(d, body);
          if (body.find("Action: delayed") != std::string::npos) ++delay_notices;
        }
        q.record(d, {{0, RecipientState::delivered, smtp::make_reply(250, std::nullopt, "ok")}}, now);  // reports are delivered
        continue;
      }
      attempts.push_back(now);
      ASSERT_FALSE(q.record(id, {{0, RecipientState::pending, smtp::make_reply(451, 4, 4, 1, "no answer"), "mx.slow.test"}}, now));
    }
  }
  EXPECT_EQ(attempts, (std::vector<std::int64_t>{0, 100, 300, 700, 1100, 1500, 1900, 2000}));
  EXPECT_EQ(delay_notices, 1);  // once, after 500 ms
  EXPECT_FALSE(q.find(id));
  // The give-up bounce was queued and says why.
  ASSERT_EQ(q.size(), 1u);
  std::string body;
  q.read_body(q.due(now).at(0), body);
  EXPECT_NE(body.find("Status: 5.4.7"), std::string::npos);
  EXPECT_NE(body.find("Remote-MTA: dns; mx.slow.test\r\nDiagnostic-Code: smtp; 451 4.4.1 no answer (delivery time expired)"),
            std::string::npos);
}

TEST(Queue, CorruptSpoolFileIsQuarantinedAndReported) {
  TempDir dir;
  PosixStorage storage(dir.path());
  std::string id;
  {
    QueueConfig c = config();
    c.journal = JournalLimits{1, 1};  // a segment per record: the removal below checkpoints `id`
    Queue q(storage, c);
    q.open(0);
    id = *q.accept(envelope(make_path("a", "b"), {"x"}), "m\r\n", kClient, 0).id;
    const std::string other = *q.accept(envelope(make_path("a", "b"), {"y"}), "n\r\n", kClient, 0).id;
    ASSERT_FALSE(q.record(other, {{0, RecipientState::delivered, smtp::make_reply(250, std::nullopt, "ok")}}, 1));
  }
  ASSERT_TRUE(std::filesystem::exists(dir.path() + "/queue/" + id + ".env")) << "written out as files by the checkpoint";
  std::filesystem::resize_file(dir.path() + "/queue/" + id + ".env", 10);
  Queue q(storage, config());
  RecoveryReport report;
  ASSERT_FALSE(q.open(0, &report));
  EXPECT_EQ(q.size(), 0u);
  ASSERT_EQ(report.quarantined.size(), 2u);
  auto events = q.take_events();
  ASSERT_FALSE(events.empty());
  EXPECT_NE(events[0].what.find("quarantined " + id + ".env"), std::string::npos);
}

// The operator's tools: hold survives a restart, flush makes deferred mail due at once, delete
// removes a message for good and tells nobody.
TEST(Queue, OperatorHoldFlushAndDelete) {
  TempDir dir;
  PosixStorage storage(dir.path());
  std::string held_id, deleted_id;
  {
    Queue q(storage, config());
    ASSERT_FALSE(q.open(0));
    const auto a = q.accept(envelope(make_path("a", "b.test"), {"x"}), "Subject: a\r\n\r\na\r\n", kClient, 1000);
    const auto b = q.accept(envelope(make_path("a", "b.test"), {"y"}), "Subject: b\r\n\r\nb\r\n", kClient, 1001);
    const auto c = q.accept(envelope(make_path("a", "b.test"), {"z"}), "Subject: c\r\n\r\nc\r\n", kClient, 1002);
    ASSERT_TRUE(a.id && b.id && c.id);
    ASSERT_EQ(q.snapshot().size(), 3u);
    EXPECT_EQ(q.snapshot().front().id, *a.id);  // oldest first
    // Deferred: not due again until its retry time; flush makes it due now.
    ASSERT_FALSE(q.record(*a.id, {{0, RecipientState::pending, smtp::make_reply(451, 4, 3, 0, "later")}}, 1100));
    EXPECT_EQ(q.due(1101), (std::vector<std::string>{*b.id, *c.id}));
    ASSERT_FALSE(q.flush(*a.id, 1102));
    EXPECT_EQ(q.due(1102).size(), 3u);
    EXPECT_EQ(q.flush("no-such-id", 1102), std::errc::no_such_file_or_directory);
    // Held: never due; a held message is not flushed; released, it is due at once.
    ASSERT_FALSE(q.hold(*a.id, true, 1103));
    EXPECT_EQ(q.due(99999), (std::vector<std::string>{*b.id, *c.id}));
    EXPECT_EQ(q.flush(*a.id, 1104), std::errc::operation_not_permitted);
    ASSERT_FALSE(q.hold(*a.id, false, 1200));
    EXPECT_EQ(q.due(1200).size(), 3u);
    ASSERT_FALSE(q.hold(*c.id, true, 1201));
    // Deleted: gone, and no bounce was queued for it.
    ASSERT_FALSE(q.remove(*b.id));
    EXPECT_EQ(q.find(*b.id), nullptr);
    EXPECT_EQ(q.remove(*b.id), std::errc::no_such_file_or_directory);
    EXPECT_EQ(q.size(), 2u);
    held_id = *c.id;
    deleted_id = *b.id;
  }
  // After a restart the hold and the deletion still stand.
  Queue again(storage, config());
  ASSERT_FALSE(again.open(3000));
  EXPECT_EQ(again.size(), 2u);
  EXPECT_EQ(again.find(deleted_id), nullptr);
  ASSERT_NE(again.find(held_id), nullptr);
  EXPECT_TRUE(again.find(held_id)->held);
  EXPECT_EQ(again.due(99999).size(), 1u);
}
