// Both Storage implementations against the same expectations, and MemoryStorage's crash model.
#include <gtest/gtest.h>

#include "refsmtp/queue/storage.hpp"
#include "refsmtp/testing/temp_dir.hpp"

using namespace refsmtp::queue;
using refsmtp::testing::TempDir;
using Fault = MemoryStorage::Fault;

namespace {

void basic_contract(Storage& s) {
  ASSERT_FALSE(s.mkdirs("a/b"));
  ASSERT_FALSE(s.mkdirs("a/b"));  // idempotent
  Storage::Handle h = -1;
  ASSERT_FALSE(s.create("a/b/f", h));
  ASSERT_FALSE(s.write(h, "hello "));
  ASSERT_FALSE(s.write(h, "world"));
  ASSERT_FALSE(s.fsync(h));
  ASSERT_FALSE(s.close(h));
  Storage::Handle h2 = -1;
  EXPECT_EQ(s.create("a/b/f", h2), std::errc::file_exists);
  std::string data;
  ASSERT_FALSE(s.read("a/b/f", data));
  EXPECT_EQ(data, "hello world");
  ASSERT_FALSE(s.rename("a/b/f", "a/g"));
  EXPECT_EQ(s.read("a/b/f", data), std::errc::no_such_file_or_directory);
  std::vector<std::string> names;
  ASSERT_FALSE(s.list("a/b", names));
  EXPECT_TRUE(names.empty());
  ASSERT_FALSE(s.fsync_dir("a"));
  ASSERT_FALSE(write_durably(s, "a/b", "a", "h", "durable"));
  ASSERT_FALSE(s.read("a/h", data));
  EXPECT_EQ(data, "durable");
  ASSERT_FALSE(s.unlink("a/g"));
  EXPECT_EQ(s.unlink("a/g"), std::errc::no_such_file_or_directory);
}

}  // namespace

TEST(Storage, PosixContract) {
  TempDir dir;
  PosixStorage s(dir.path());
  basic_contract(s);
}

TEST(Storage, MemoryContract) {
  MemoryStorage s;
  basic_contract(s);
}

TEST(MemoryStorage, UnsyncedDataIsLostAtCrash) {
  MemoryStorage s;
  s.mkdirs("d");
  Storage::Handle h;
  s.create("d/f", h);
  s.write(h, "synced");
  s.fsync(h);
  s.write(h, " and not");
  s.close(h);
  s.fsync_dir("d");
  s.crash_and_restart();
  std::string data;
  ASSERT_FALSE(s.read("d/f", data));
  EXPECT_EQ(data, "synced");
}

TEST(MemoryStorage, UnsyncedDirectoryEntriesAreLostAtCrash) {
  MemoryStorage s;
  s.mkdirs("d");
  Storage::Handle h;
  s.create("d/f", h);
  s.write(h, "x");
  s.fsync(h);
  s.close(h);  // file synced but the directory entry is not
  s.crash_and_restart();
  std::string data;
  EXPECT_EQ(s.read("d/f", data), std::errc::no_such_file_or_directory);
  // A rename is undone too until the directory is synced.
  s.create("d/f", h);
  s.write(h, "x");
  s.fsync(h);
  s.close(h);
  s.fsync_dir("d");
  s.rename("d/f", "d/g");
  s.crash_and_restart();
  EXPECT_FALSE(s.read("d/f", data));
  EXPECT_EQ(s.read("d/g", data), std::errc::no_such_file_or_directory);
}

TEST(MemoryStorage, InjectedFaults) {
  MemoryStorage s;
  s.mkdirs("d");
  Storage::Handle h;
  s.inject(1, Fault::short_write);
  s.inject(2, Fault::eio);
  ASSERT_FALSE(s.create("d/f", h));                                        // op 0
  EXPECT_EQ(s.write(h, "abcd"), std::errc::no_space_on_device);            // op 1: short
  EXPECT_EQ(s.fsync(h), std::errc::io_error);                              // op 2
  EXPECT_FALSE(s.fsync(h));                                                // op 3
  std::string data;
  s.read("d/f", data);
  EXPECT_EQ(data, "ab");
  s.inject(4, Fault::crash);
  EXPECT_EQ(s.close(h), std::errc::io_error);  // op 4 crashes
  EXPECT_TRUE(s.crashed());
  EXPECT_EQ(s.fsync_dir("d"), std::errc::io_error);  // and everything after fails
  EXPECT_EQ(s.operations(), 6u);
  s.crash_and_restart();
  EXPECT_FALSE(s.crashed());
  EXPECT_FALSE(s.fsync_dir("d"));
}
