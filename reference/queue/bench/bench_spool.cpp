// Accepted messages per second to the spool on this machine's disk: 1 KiB and 100 KiB bodies,
// 1 and 32 concurrent writers, beside the bare rate of write + fsync + rename + directory fsync
// (the single-writer ceiling). Run with scripts/bench --benchmark_filter=Spool.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "refsmtp/queue/spool.hpp"

using namespace refsmtp::queue;

namespace {

std::string bench_dir() {
  const char* base = std::getenv("REFSMTP_BENCH_DIR");  // a directory on the disk to measure
  std::string d = std::string(base && *base ? base : "build") + "/bench-spool";
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

std::atomic<std::uint64_t> g_seq{0};

struct Fixture {
  std::string dir = bench_dir();
  PosixStorage storage{dir};
  Spool spool{storage};
  Fixture() { spool.init(); }
};
Fixture* g_fixture = nullptr;

void BM_SpoolAccept(benchmark::State& state) {
  if (state.thread_index() == 0) g_fixture = new Fixture();
  const std::string body(static_cast<std::size_t>(state.range(0)), 'x');
  // Threads start after the setup above (Google Benchmark runs the first iteration together).
  for (auto _ : state) {
    StoredEnvelope e;
    e.id = "B" + std::to_string(g_seq++);
    refsmtp::core::Path r;
    r.mailbox = refsmtp::core::Mailbox{"r", "mx.test", false};
    e.recipients.push_back({r, RecipientState::pending, ""});
    if (g_fixture->spool.accept(e, body)) state.SkipWithError("accept failed");
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  if (state.thread_index() == 0) {
    // Cleaned up by the next run's bench_dir(); deleting here would race other threads.
  }
}
BENCHMARK(BM_SpoolAccept)->Arg(1024)->Arg(100 * 1024)->Threads(1)->Threads(32)->UseRealTime();

// The bare ceiling for one writer: create, write 1 KiB, fsync, close, rename, fsync the directory.
void BM_BareDurableWrite(benchmark::State& state) {
  const std::string dir = bench_dir();
  const std::string body(1024, 'x');
  std::uint64_t n = 0;
  for (auto _ : state) {
    const std::string tmp = dir + "/t" + std::to_string(n), dst = dir + "/f" + std::to_string(n);
    ++n;
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || ::write(fd, body.data(), body.size()) != static_cast<ssize_t>(body.size()) || ::fsync(fd) != 0) {
      state.SkipWithError("write failed");
    }
    ::close(fd);
    ::rename(tmp.c_str(), dst.c_str());
    const int d = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
    ::fsync(d);
    ::close(d);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_BareDurableWrite)->UseRealTime();

}  // namespace
