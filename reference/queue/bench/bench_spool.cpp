// Accepted messages per second to the spool on this machine's disk: 1 KiB and 100 KiB bodies,
// 1 and 32 concurrent writers, beside the bare rate of write + fsync + rename + directory fsync
// (what a message cost when each one was its own durable files). Run with scripts/bench --benchmark_filter=Spool.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

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

// Each iteration accepts 64 messages spread over `writers` threads, so items/s is the total
// accept rate whatever the concurrency. (Google Benchmark's own ->Threads() reports per-thread
// figures, which hid the total.) The writer threads live for the whole run and meet at a
// barrier per iteration, so thread start-up is not part of the figure.
void BM_SpoolAccept(benchmark::State& state) {
  const std::string dir = bench_dir();
  PosixStorage storage(dir);
  Spool spool(storage);
  spool.init();
  const std::string body(static_cast<std::size_t>(state.range(0)), 'x');
  const int writers = static_cast<int>(state.range(1));
  constexpr int kPerIteration = 64;
  std::atomic<bool> failed{false}, stop{false};
  std::barrier start(writers + 1), done(writers + 1);
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w) {
    threads.emplace_back([&, w] {
      for (;;) {
        start.arrive_and_wait();
        if (stop) return;
        for (int i = w; i < kPerIteration; i += writers) {
          StoredEnvelope e;
          e.id = "B" + std::to_string(g_seq++);
          refsmtp::smtp::Path r;
          r.mailbox = refsmtp::smtp::Mailbox{"r", "mx.test", false};
          e.recipients.push_back({r, RecipientState::pending, ""});
          if (spool.accept(e, body)) failed = true;
        }
        done.arrive_and_wait();
      }
    });
  }
  for (auto _ : state) {
    start.arrive_and_wait();
    done.arrive_and_wait();
  }
  stop = true;
  start.arrive_and_wait();
  for (auto& t : threads) t.join();
  if (failed) state.SkipWithError("accept failed");
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * kPerIteration);
}
BENCHMARK(BM_SpoolAccept)->ArgNames({"size", "writers"})->ArgsProduct({{1024, 100 * 1024}, {1, 32}})->UseRealTime();

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
