// Core throughput: command parsing, DATA decoding against a plain memchr pass over the same
// buffer (the ceiling: any decoder must at least find every line end), and a whole transaction
// through the server session. Run with scripts/bench.
#include <benchmark/benchmark.h>

#include <cstring>
#include <string>
#include <vector>

#include "refsmtp/smtp/command.hpp"
#include "refsmtp/smtp/dot_codec.hpp"
#include "refsmtp/smtp/server_session.hpp"

using namespace refsmtp::smtp;

namespace {

// A message body shaped like real mail: header lines, 76-octet body lines (base64-like), some
// lines starting with a dot, stuffed for the wire.
std::string make_wire_body(std::size_t size) {
  std::string body = "From: a@example.com\r\nTo: b@example.com\r\nSubject: benchmark\r\n\r\n";
  std::size_t n = 0;
  while (body.size() < size) {
    std::string line(76, static_cast<char>('A' + n % 26));
    if (n % 50 == 0) line[0] = '.';
    body += line + "\r\n";
    ++n;
  }
  return dot_stuff(body);
}

const std::vector<std::string> kCommands = {
    "EHLO client.example.com",
    "MAIL FROM:<sender.name@example.com> SIZE=12345 BODY=8BITMIME",
    "RCPT TO:<recipient@example.org>",
    "RCPT TO:<\"quoted user\"@[192.0.2.1]>",
    "DATA",
    "BDAT 65536 LAST",
    "NOOP",
    "QUIT",
};

void BM_ParseCommand(benchmark::State& state) {
  std::size_t i = 0, bytes = 0;
  for (auto _ : state) {
    const std::string& line = kCommands[i++ % kCommands.size()];
    auto r = parse_command(line);
    benchmark::DoNotOptimize(r);
    bytes += line.size();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
}
BENCHMARK(BM_ParseCommand);

void BM_DataDecode(benchmark::State& state) {
  const std::string wire = make_wire_body(static_cast<std::size_t>(state.range(0)));
  std::string out;
  out.reserve(wire.size());
  for (auto _ : state) {
    out.clear();
    DataDecoder d;
    auto p = d.decode(wire, out);
    if (!p.done) state.SkipWithError("not done");
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * wire.size()));
}
BENCHMARK(BM_DataDecode)->Arg(1 << 10)->Arg(64 << 10)->Arg(1 << 20);

// The ceiling: one memchr pass finding every LF, doing nothing else.
void BM_MemchrCeiling(benchmark::State& state) {
  const std::string wire = make_wire_body(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) {
    std::size_t lines = 0;
    const char* p = wire.data();
    const char* end = p + wire.size();
    while (p < end) {
      const void* lf = std::memchr(p, '\n', static_cast<std::size_t>(end - p));
      if (!lf) break;
      ++lines;
      p = static_cast<const char*>(lf) + 1;
    }
    benchmark::DoNotOptimize(lines);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * wire.size()));
}
BENCHMARK(BM_MemchrCeiling)->Arg(1 << 10)->Arg(64 << 10)->Arg(1 << 20);

// A whole transaction (greeting, EHLO, MAIL, RCPT, DATA with a 1 KiB body, QUIT) through the
// session with a host that accepts at once: the protocol cost per message, without I/O.
void BM_SessionTransaction(benchmark::State& state) {
  const std::string input = "EHLO client.example.com\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n" +
                            make_wire_body(1024) + "QUIT\r\n";
  ServerConfig cfg;
  cfg.hostname = "mx.example.org";
  for (auto _ : state) {
    ServerSession s(cfg);
    std::string_view rest = input;
    std::size_t out = 0;
    while (!rest.empty()) {
      rest.remove_prefix(s.receive(rest));
      while (auto a = s.next_action()) {
        if (auto* send = std::get_if<action::Send>(&*a)) out += send->bytes.size();
        if (s.pending() != Question::none) s.answer(Verdict::accept());
      }
    }
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_SessionTransaction);

}  // namespace
