// AcceptGate: the decisions that keep the master from accepting a connection
// it has no slot for, and the pause accounting behind its metrics.
#include "src/master/accept_gate.h"

#include <vector>

#include "gtest/gtest.h"

namespace ddv {
namespace master {
namespace {

using Action = AcceptGate::Action;

constexpr int64_t kMs = 1000000;

std::vector<Action> Plan(AcceptGate& gate, int64_t free, int64_t now_ns,
                         bool stopping = false) {
  std::vector<Action> actions;
  gate.Plan(free, stopping, now_ns, &actions);
  return actions;
}

// The kernel's answer to a cancel: the op's last completion.
void Cancelled(AcceptGate& gate, uint32_t listener) {
  gate.OnCompletion(listener, /*more=*/false, /*accepted=*/false, 0);
}

TEST(AcceptGateTest, StartsOneAtATimeThenMultishotWithRoomForTheBacklog) {
  AcceptGate gate(/*listeners=*/2, /*capacity=*/1024);
  EXPECT_EQ(gate.headroom(), 64u);
  // A new master may inherit a full backlog: single-shot first.
  EXPECT_EQ(Plan(gate, 1024, 0),
            (std::vector<Action>{Action::kArmSingle, Action::kArmSingle}));
  EXPECT_EQ(Plan(gate, 1024, 0),
            (std::vector<Action>{Action::kNone, Action::kNone}));
  // Listener 0 accepts and 1000 more wait: no room for them and the
  // headroom twice over, so it stays single-shot.
  gate.OnCompletion(0, false, true, /*queued=*/1000);
  EXPECT_EQ(Plan(gate, 1023, 0)[0], Action::kArmSingle);
  // 800 wait: 1022 free is room enough (800 + 2 x 64).
  gate.OnCompletion(0, false, true, /*queued=*/800);
  EXPECT_EQ(Plan(gate, 1022, 0)[0], Action::kArmMultishot);
  // Multishot completions change nothing (and their `queued` is not read).
  gate.OnCompletion(0, true, true, AcceptGate::kQueuedUnknown);
  EXPECT_EQ(Plan(gate, 1021, 0)[0], Action::kNone);
  // Listener 1's accept failed: it measured nothing, so single-shot again.
  gate.OnCompletion(1, false, false, 0);
  EXPECT_EQ(Plan(gate, 1021, 0)[1], Action::kArmSingle);
  // A multishot that ends leaves a backlog of unknown length behind: the
  // next accept is single-shot, to measure it.
  gate.OnCompletion(0, false, false, 0);
  EXPECT_EQ(Plan(gate, 1021, 0)[0], Action::kArmSingle);
}

// A socket master shards accept on too: never a multishot, which would
// take every connection from the other loops; an armed one is cancelled
// when the listener becomes shared (docs/shards.md).
TEST(AcceptGateTest, ASharedListenerIsSingleShotOnly) {
  AcceptGate gate(/*listeners=*/2, /*capacity=*/1024);
  gate.set_shared(1, true);
  EXPECT_TRUE(gate.shared(1));
  EXPECT_FALSE(gate.shared(0));
  Plan(gate, 1024, 0);
  gate.OnCompletion(0, false, true, /*queued=*/0);
  gate.OnCompletion(1, false, true, /*queued=*/0);
  EXPECT_EQ(Plan(gate, 1022, 0),
            (std::vector<Action>{Action::kArmMultishot, Action::kArmSingle}));
  gate.set_shared(0, true);
  EXPECT_EQ(Plan(gate, 1022, 0)[0], Action::kCancel);
  Cancelled(gate, 0);
  EXPECT_EQ(Plan(gate, 1022, 0)[0], Action::kArmSingle);
  // No longer shared (a reload): its backlog was not measured while it
  // was, so a single-shot accept measures it before any multishot.
  gate.OnCompletion(1, false, true, /*queued=*/0);
  gate.set_shared(1, false);
  EXPECT_EQ(Plan(gate, 1022, 0)[1], Action::kArmSingle);
  gate.set_shared(7, true);  // no such listener: ignored
  EXPECT_FALSE(gate.shared(7));
}

TEST(AcceptGateTest, NearTheLimitMultishotIsCancelledForSingleShot) {
  AcceptGate gate(1, 256);  // headroom 16
  Plan(gate, 256, 0);
  gate.OnCompletion(0, false, true, /*queued=*/0);
  EXPECT_EQ(Plan(gate, 255, 0)[0], Action::kArmMultishot);
  EXPECT_EQ(Plan(gate, 16, 0)[0], Action::kNone) << "still >= headroom";
  EXPECT_EQ(Plan(gate, 15, 0)[0], Action::kCancel);
  // Nothing new until the cancelled op's last completion.
  EXPECT_EQ(Plan(gate, 15, 0)[0], Action::kNone);
  gate.OnCompletion(0, true, true, 0);  // accepted before the cancel
  EXPECT_EQ(Plan(gate, 14, 0)[0], Action::kNone);
  Cancelled(gate, 0);
  EXPECT_EQ(Plan(gate, 14, 0)[0], Action::kArmSingle);
  // Back to multishot only at twice the headroom (hysteresis).
  gate.OnCompletion(0, false, true, /*queued=*/0);
  EXPECT_EQ(Plan(gate, 31, 0)[0], Action::kArmSingle);
  gate.OnCompletion(0, false, true, /*queued=*/0);
  EXPECT_EQ(Plan(gate, 32, 0)[0], Action::kArmMultishot);
  EXPECT_FALSE(gate.paused());
}

TEST(AcceptGateTest, FullTablePausesEveryListenerAndCountsTheTime) {
  AcceptGate gate(2, 8);
  Plan(gate, 8, 0);  // both single-shot
  EXPECT_EQ(Plan(gate, 0, 10 * kMs),
            (std::vector<Action>{Action::kCancel, Action::kCancel}));
  EXPECT_TRUE(gate.paused());
  EXPECT_EQ(gate.pauses(), 1u);
  EXPECT_EQ(gate.paused_ns(30 * kMs), 20 * kMs) << "counts while paused";
  // No re-arm while the cancels are outstanding, even with room again.
  EXPECT_EQ(Plan(gate, 0, 40 * kMs),
            (std::vector<Action>{Action::kNone, Action::kNone}));
  Cancelled(gate, 0);
  Cancelled(gate, 1);
  EXPECT_EQ(Plan(gate, 0, 50 * kMs),
            (std::vector<Action>{Action::kNone, Action::kNone}));
  // A slot frees: resume one at a time (the backlog filled meanwhile).
  EXPECT_EQ(Plan(gate, 1, 60 * kMs),
            (std::vector<Action>{Action::kArmSingle, Action::kArmSingle}));
  EXPECT_FALSE(gate.paused());
  EXPECT_EQ(gate.paused_ns(1000 * kMs), 50 * kMs);
  // The second pause is counted apart.
  Plan(gate, 0, 100 * kMs);
  EXPECT_EQ(gate.pauses(), 2u);
  EXPECT_EQ(gate.paused_ns(110 * kMs), 60 * kMs);
}

TEST(AcceptGateTest, OutOfFdsPausesUntilAConnectionClosesOrTheRetry) {
  AcceptGate gate(1, 64);
  Plan(gate, 64, 0);
  gate.OnCompletion(0, false, false, 0);  // failed: EMFILE
  gate.OnOutOfFds(0);
  EXPECT_EQ(Plan(gate, 64, kMs)[0], Action::kNone);
  EXPECT_TRUE(gate.paused());
  // A connection closing frees an fd: retry at once.
  gate.OnConnectionClosed();
  EXPECT_EQ(Plan(gate, 64, 2 * kMs)[0], Action::kArmSingle);
  EXPECT_FALSE(gate.paused());
  // Without a close, the retry comes after kOutOfFdsRetryNs.
  gate.OnCompletion(0, false, false, 0);
  gate.OnOutOfFds(10 * kMs);
  EXPECT_EQ(Plan(gate, 64, 11 * kMs)[0], Action::kNone);
  EXPECT_EQ(Plan(gate, 64, 10 * kMs + AcceptGate::kOutOfFdsRetryNs)[0],
            Action::kArmSingle);
  EXPECT_EQ(gate.pauses(), 2u);
}

TEST(AcceptGateTest, StoppingCancelsForGoodAndIsNotAPause) {
  AcceptGate gate(2, 8);
  Plan(gate, 8, 0);
  Plan(gate, 0, kMs);  // paused
  Cancelled(gate, 0);
  Cancelled(gate, 1);
  EXPECT_EQ(Plan(gate, 0, 5 * kMs, /*stopping=*/true),
            (std::vector<Action>{Action::kNone, Action::kNone}));
  EXPECT_FALSE(gate.paused());
  EXPECT_EQ(gate.paused_ns(100 * kMs), 4 * kMs);
  EXPECT_EQ(Plan(gate, 8, 6 * kMs, true),
            (std::vector<Action>{Action::kNone, Action::kNone}));

  AcceptGate running(1, 8);
  Plan(running, 8, 0);
  EXPECT_EQ(Plan(running, 8, 0, true)[0], Action::kCancel);
}

// A reload adds listeners (the next index) and retires others: a retired
// one's accept is cancelled and never armed again, and the master drains
// its backlog only once no accept op of it is left (Idle).
TEST(AcceptGateTest, ListenersAddedAndRetiredByAReload) {
  AcceptGate gate(1, 1024);
  Plan(gate, 1024, 0);
  gate.OnCompletion(0, false, true, /*queued=*/0);
  EXPECT_EQ(Plan(gate, 1023, 0)[0], Action::kArmMultishot);
  EXPECT_FALSE(gate.Idle(0));

  EXPECT_EQ(gate.Add(), 1u);
  gate.Retire(0);
  EXPECT_EQ(Plan(gate, 1023, 0),
            (std::vector<Action>{Action::kCancel, Action::kArmSingle}));
  EXPECT_FALSE(gate.Idle(0)) << "cancelling";
  gate.OnCompletion(0, true, true, 0);  // accepted before the cancel
  EXPECT_FALSE(gate.Idle(0));
  Cancelled(gate, 0);
  EXPECT_TRUE(gate.Idle(0));
  EXPECT_EQ(Plan(gate, 1022, 0)[0], Action::kNone) << "never again";
  EXPECT_TRUE(gate.Idle(0));

  // A single-shot accept is cancelled too: the listener goes away.
  gate.Retire(1);
  EXPECT_EQ(Plan(gate, 1022, 0)[1], Action::kCancel);
  Cancelled(gate, 1);
  EXPECT_TRUE(gate.Idle(1));
  // Never armed at all: idle at once.
  const uint32_t unused = gate.Add();
  gate.Retire(unused);
  EXPECT_TRUE(gate.Idle(unused));
  EXPECT_EQ(Plan(gate, 1022, 0)[unused], Action::kNone);
}

}  // namespace
}  // namespace master
}  // namespace ddv
