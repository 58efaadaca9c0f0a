// Spool recovery replaying an untrusted journal segment (recovery reads whatever is on disk):
// it never crashes and never fails on bad contents, every message it recovers reads back with
// the body its envelope records, what is live is left in at most one new segment, and a second
// recovery finds exactly the same messages.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "refsmtp/queue/spool.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace refsmtp::queue;
  MemoryStorage storage;
  Spool spool(storage);
  if (spool.init()) std::abort();
  Storage::Handle h = -1;
  if (storage.create("journal/000000000001.seg", h)) std::abort();
  if (storage.write(h, std::string_view(reinterpret_cast<const char*>(data), size)) || storage.close(h)) std::abort();
  RecoveryReport report;
  if (spool.recover(report)) std::abort();  // bad contents are never a storage failure
  for (const auto& e : report.messages) {
    std::string body;
    if (spool.read_body(e, body)) std::abort();  // what is recovered is whole
  }
  std::vector<std::string> left;
  if (storage.list("journal", left) || left.size() > 1) std::abort();
  RecoveryReport again;
  Spool second(storage);
  if (second.recover(again)) std::abort();
  if (again.messages != report.messages) std::abort();
  for (const auto& e : again.messages) {
    std::string body;
    if (second.read_body(e, body)) std::abort();
  }
  return 0;
}
