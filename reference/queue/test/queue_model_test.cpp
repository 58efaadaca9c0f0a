// Model-based test (rc::state) of the queue: random sequences of Accept, Deliver (with
// per-recipient outcomes), Fail, Tick, Crash (at a chosen storage operation inside the next
// action) and Recover, checking the invariants after every step: every accepted
// recipient is delivered, failed (bounced) or still queued; nothing unaccepted appears; states
// never go backwards; without a crash nobody gets a message twice.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <rapidcheck/state.h>

#include "queue_harness.hpp"

using namespace refsmtp::queue;

namespace {

struct Model {
  int accepted_attempts = 0;
  int crashes = 0;
};
using Cmd = rc::state::Command<Model, QueueHarness>;

void check_invariants(QueueHarness& h) {
  const std::string problem = h.check();
  RC_LOG() << problem << "\n";
  RC_ASSERT(problem.empty());
}

struct Accept : Cmd {
  int n = *rc::gen::inRange(1, 4);
  void apply(Model& m) const override { ++m.accepted_attempts; }
  void run(const Model&, QueueHarness& h) const override {
    h.accept(n);
    check_invariants(h);
  }
  void show(std::ostream& os) const override { os << "Accept(" << n << " recipients)"; }
};

struct Deliver : Cmd {
  std::vector<int> fates = *rc::gen::container<std::vector<int>>(4, rc::gen::inRange(0, 3));
  void checkPreconditions(const Model& m) const override { RC_PRE(m.accepted_attempts > 0); }
  void run(const Model&, QueueHarness& h) const override {
    h.deliver_due([&](int i) {
      const int f = fates[static_cast<std::size_t>(i) % fates.size()];
      return f == 0 ? RecipientState::delivered : f == 1 ? RecipientState::pending : RecipientState::failed;
    });
    check_invariants(h);
  }
  void show(std::ostream& os) const override {
    os << "Deliver(";
    for (int f : fates) os << "dpf"[f];
    os << ")";
  }
};

struct Tick : Cmd {
  int ms = *rc::gen::inRange(1, 400);
  void run(const Model&, QueueHarness& h) const override {
    h.now += ms;
    check_invariants(h);
  }
  void show(std::ostream& os) const override { os << "Tick(" << ms << "ms)"; }
};

// Crash at the k-th storage operation of the next Accept or Deliver, then recover.
struct CrashDuring : Cmd {
  int k = *rc::gen::inRange(0, 30);
  bool during_accept = *rc::gen::arbitrary<bool>();
  void apply(Model& m) const override {
    ++m.crashes;
    if (during_accept) ++m.accepted_attempts;
  }
  void run(const Model&, QueueHarness& h) const override {
    h.storage.inject(h.storage.operations() + static_cast<std::size_t>(k), MemoryStorage::Fault::crash);
    if (during_accept) {
      h.accept(2);
    } else {
      h.deliver_due([](int i) { return i % 2 ? RecipientState::delivered : RecipientState::failed; });
    }
    if (h.storage.crashed()) {
      h.crash();
    } else {
      h.storage.crash_and_restart();  // the crash point was not reached: crash now, idle
      h.crashed_ever = true;
      h.reopen();
    }
    check_invariants(h);
  }
  void show(std::ostream& os) const override { os << "Crash(op " << k << " of next " << (during_accept ? "accept" : "delivery") << ")"; }
};

struct Recover : Cmd {  // a clean restart
  void run(const Model&, QueueHarness& h) const override {
    h.reopen();
    check_invariants(h);
  }
  void show(std::ostream& os) const override { os << "Recover"; }
};

}  // namespace

// Random commands against the queue, then a final drain: every accepted recipient ends
// delivered or failed, and the harness's invariants hold throughout.
static void run_model() {
  Model model;
  QueueHarness h;
  rc::state::check(model, h, rc::state::gen::execOneOfWithArgs<Accept, Accept, Deliver, Deliver, Deliver, Tick, CrashDuring, Recover>());
  for (int round = 0; round < 200 && h.queue->size() > 0; ++round) {
    h.now += 100;
    h.deliver_due([](int) { return RecipientState::delivered; });
  }
  RC_ASSERT(h.queue->size() == 0u);
  RC_ASSERT(h.check().empty());
}

RC_GTEST_PROP(QueueModel, InvariantsHoldUnderCrashesAndFailures, ()) { run_model(); }

// The same with one journal record per segment and checkpoints whenever two exist: rotation,
// retirement and checkpoints under the same random crashes and failures.
RC_GTEST_PROP(QueueModel, InvariantsHoldWithTinyJournalSegments, ()) {
  journal_limits() = kTinyJournal;
  try {
    run_model();
  } catch (...) {
    journal_limits() = JournalLimits{};
    throw;
  }
  journal_limits() = JournalLimits{};
}
