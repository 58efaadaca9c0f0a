// Maildir and mbox delivery, read back byte for byte.
#include "refsmtp/delivery/mailbox.hpp"


#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <ctime>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "refsmtp/testing/temp_dir.hpp"

using refsmtp::smtp::make_path;

using namespace refsmtp::delivery;
using refsmtp::smtp::Mailbox;
using refsmtp::smtp::Path;
using refsmtp::testing::TempDir;

namespace {


std::string slurp(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const std::string kMessage = "Received: from a by b; date\r\nSubject: hi\r\n\r\nFrom here on\r\n>From quoted\r\n.dot\r\n";

}  // namespace

TEST(LocalCopy, ReturnPathAndLfLines) {  // RFC 5321 §4.4
  EXPECT_EQ(local_copy(make_path("alice", "example.com"), "A: b\r\n\r\nx\r\n"), "Return-Path: <alice@example.com>\nA: b\n\nx\n");
  EXPECT_EQ(local_copy(Path{}, "x\r\n"), "Return-Path: <>\nx\n");
  EXPECT_EQ(local_copy(Path{}, "bare\rcr\r\n"), "Return-Path: <>\nbare\rcr\n");
}

TEST(Maildir, DeliversDurablyWithUniqueNames) {
  TempDir dir;
  refsmtp::queue::PosixStorage storage(dir.path());
  const std::string copy = local_copy(make_path("alice", "example.com"), kMessage);
  MaildirTarget t{"mail/bob/Maildir", "mx.test:25/x", 1'795'912'276'123, 7, 4242, ""};
  std::string name;
  ASSERT_FALSE(deliver_maildir(storage, t, copy, name));
  EXPECT_EQ(name, "1795912276.M123000P4242Q7.mx.test\\07225\\057x");
  EXPECT_EQ(slurp(dir.path() + "/mail/bob/Maildir/new/" + name), copy);
  EXPECT_TRUE(std::filesystem::is_directory(dir.path() + "/mail/bob/Maildir/cur"));
  EXPECT_TRUE(std::filesystem::is_empty(dir.path() + "/mail/bob/Maildir/tmp"));
  t.sequence = 8;
  std::string second;
  ASSERT_FALSE(deliver_maildir(storage, t, copy, second));
  EXPECT_NE(name, second);
}

TEST(Maildir, NeverOverwritesAnExistingMessage) {
  TempDir dir;
  refsmtp::queue::PosixStorage storage(dir.path());
  MaildirTarget t{"md", "h", 5000, 1, 7, ""};  // same pid, time and sequence twice (a restart)
  std::string first, second;
  ASSERT_FALSE(deliver_maildir(storage, t, "first\n", first));
  ASSERT_FALSE(deliver_maildir(storage, t, "second\n", second));
  EXPECT_NE(first, second);
  EXPECT_EQ(slurp(dir.path() + "/md/new/" + first), "first\n");
  EXPECT_EQ(slurp(dir.path() + "/md/new/" + second), "second\n");
}

TEST(Maildir, IdempotentDeliveryLeavesOneCopy) {
  TempDir dir;
  refsmtp::queue::PosixStorage storage(dir.path());
  MaildirTarget t{"md", "h", 5000, 1, 7, "Q123-0"};
  std::string first, again;
  ASSERT_FALSE(deliver_maildir(storage, t, "message\n", first));
  EXPECT_EQ(first, "5.KQ123-0.h");
  t.sequence = 99;  // a later process, after a crash
  ASSERT_FALSE(deliver_maildir(storage, t, "message\n", again));
  EXPECT_EQ(again, first);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path() + "/md/new"), std::filesystem::directory_iterator{}), 1);
}

TEST(Maildir, CrashBeforeRenameLeavesNoMessage) {
  refsmtp::queue::MemoryStorage storage;
  MaildirTarget t{"m", "h", 0, 1, 1, ""};
  // write_durably: unlink(tmp), create, write, fsync, close, rename, fsync_dir = ops 0..6
  for (std::size_t op = 0; op <= 6; ++op) {
    refsmtp::queue::MemoryStorage s;
    s.inject(op, refsmtp::queue::MemoryStorage::Fault::crash);
    std::string name;
    const auto err = deliver_maildir(s, t, "x\n", name);
    EXPECT_TRUE(err) << op;
    s.crash_and_restart();
    std::vector<std::string> files;
    s.list("m/new", files);
    EXPECT_TRUE(files.empty()) << "a message appeared although delivery failed, op " << op;
  }
}

TEST(Maildir, WithoutDirSyncTheDeliveryIsDurableOnceTheCallerSyncsNew) {
  const auto delivered_after_crash = [](refsmtp::queue::MemoryStorage& s) {
    s.crash_and_restart();
    std::vector<std::string> files;
    s.list("m/new", files);
    return files.size();
  };
  MaildirTarget t{"m", "h", 0, 1, 1, "Q1-0"};
  t.sync_dir = false;
  std::string name;
  {
    refsmtp::queue::MemoryStorage s;
    ASSERT_FALSE(deliver_maildir(s, t, "x\n", name));
    EXPECT_EQ(delivered_after_crash(s), 0u) << "the rename into new/ is not durable until new/ is synced";
  }
  {
    refsmtp::queue::MemoryStorage s;
    ASSERT_FALSE(deliver_maildir(s, t, "x\n", name));
    ASSERT_FALSE(s.fsync_dir("m/new"));
    EXPECT_EQ(delivered_after_crash(s), 1u);
    std::string data;
    ASSERT_FALSE(s.read("m/new/" + name, data));
    EXPECT_EQ(data, "x\n");
  }
  {
    // Found already there by a repeated, synced delivery (the caller's sync failed before):
    // its name is made durable then.
    refsmtp::queue::MemoryStorage s;
    ASSERT_FALSE(deliver_maildir(s, t, "x\n", name));
    MaildirTarget again = t;
    again.sync_dir = true;
    ASSERT_FALSE(deliver_maildir(s, again, "x\n", name));
    EXPECT_EQ(delivered_after_crash(s), 1u);
  }
}

TEST(Mbox, AppendsWithFromLineAndMboxrdQuoting) {  // RFC 4155
  TempDir dir;
  const std::string box = dir.path() + "/bob.mbox";
  const std::string copy = local_copy(make_path("alice", "example.com"), kMessage);
  ASSERT_FALSE(deliver_mbox(box, make_path("alice", "example.com"), 1'795'912'276'000, copy));
  ASSERT_FALSE(deliver_mbox(box, Path{}, 1'795'912'277'000, local_copy(Path{}, "Subject: 2\r\n\r\nFrom x\r\n")));
  const std::string expected =
      "From alice@example.com Sun Nov 29 00:31:16 2026\n"
      "Return-Path: <alice@example.com>\nReceived: from a by b; date\nSubject: hi\n\n>From here on\n>>From quoted\n.dot\n"
      "\n"
      "From MAILER-DAEMON Sun Nov 29 00:31:17 2026\n"
      "Return-Path: <>\nSubject: 2\n\n>From x\n"
      "\n";
  EXPECT_EQ(slurp(box), expected);
  EXPECT_FALSE(std::filesystem::exists(box + ".lock"));
}

TEST(Mbox, FailedAppendLeavesTheMailboxAsItWas) {
  TempDir dir;
  const std::string box = dir.path() + "/bob.mbox";
  ASSERT_FALSE(deliver_mbox(box, make_path("a", "b"), 0, "first\n"));
  const std::string before = slurp(box);
  // A real write failure: the file size limit (EFBIG) in a child process.
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    rlimit lim{static_cast<rlim_t>(before.size() + 100), static_cast<rlim_t>(before.size() + 100)};
    ::setrlimit(RLIMIT_FSIZE, &lim);
    const auto err = deliver_mbox(box, make_path("a", "b"), 0, std::string(10000, 'x') + "\n");
    ::_exit(err == std::errc::file_too_large ? 0 : 1);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the append did not fail with EFBIG";
  EXPECT_EQ(slurp(box), before);
  EXPECT_FALSE(std::filesystem::exists(box + ".lock"));
}

TEST(Mbox, WaitsForAHeldDotLockThenGivesUp) {
  TempDir dir;
  const std::string box = dir.path() + "/bob.mbox";
  std::ofstream(box + ".lock") << "held";
  const auto err = deliver_mbox(box, make_path("a", "b"), 0, "x\n", MboxOptions{3, std::chrono::milliseconds(1)});
  EXPECT_EQ(err, std::errc::resource_unavailable_try_again);
  EXPECT_FALSE(std::filesystem::exists(box));
}

TEST(Mbox, RefusesSymlinksAndHardLinks) {
  TempDir dir;
  const std::string target = dir.path() + "/elsewhere";
  std::ofstream(target) << "precious\n";
  std::filesystem::create_symlink(target, dir.path() + "/sym.mbox");
  EXPECT_TRUE(deliver_mbox(dir.path() + "/sym.mbox", make_path("a", "b"), 0, "x\n"));
  std::filesystem::create_hard_link(target, dir.path() + "/hard.mbox");
  EXPECT_EQ(deliver_mbox(dir.path() + "/hard.mbox", make_path("a", "b"), 0, "x\n"), std::errc::operation_not_permitted);
  EXPECT_EQ(slurp(target), "precious\n");
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/sym.mbox.lock"));
}

TEST(Mbox, StaleDotLockIsTakenOver) {
  TempDir dir;
  const std::string box = dir.path() + "/bob.mbox";
  std::ofstream(box + ".lock") << "left by a dead process";
  std::filesystem::last_write_time(box + ".lock", std::filesystem::file_time_type::clock::now() - std::chrono::hours(1));
  const std::int64_t now_ms = static_cast<std::int64_t>(::time(nullptr)) * 1000;
  ASSERT_FALSE(deliver_mbox(box, make_path("a", "b"), now_ms, "x\n", MboxOptions{3, std::chrono::milliseconds(1)}));
  EXPECT_NE(slurp(box).find("\nx\n"), std::string::npos);
}

TEST(Mbox, HeldFcntlLockGivesUpAfterBoundedWait) {
  TempDir dir;
  const std::string box = dir.path() + "/bob.mbox";
  std::ofstream(box) << "";
  int ready[2], done[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(done), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {  // a mail reader holding the lock
    const int fd = ::open(box.c_str(), O_RDWR);
    struct flock fl{};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    ::fcntl(fd, F_SETLK, &fl);
    char c = 'r';
    (void)!::write(ready[1], &c, 1);
    (void)!::read(done[0], &c, 1);
    ::_exit(0);
  }
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  const auto err = deliver_mbox(box, make_path("a", "b"), 0, "x\n", MboxOptions{3, std::chrono::milliseconds(1)});
  EXPECT_EQ(err, std::errc::resource_unavailable_try_again);
  (void)!::write(done[1], &c, 1);
  ::waitpid(pid, nullptr, 0);
  EXPECT_EQ(slurp(box), "");
  EXPECT_FALSE(std::filesystem::exists(box + ".lock"));
}
