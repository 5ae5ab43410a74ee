// MasterHangCheck: a serving master silent for the timeout is hung; one
// that is starting, stopping or heard in time is not; and a turn of the
// watchdog's own loop that took long (its upgrade check) never makes the
// silence it could not hear count. Times are given, not read from a clock.
#include "src/watchdog/hang_check.h"

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace ddv {
namespace watchdog {
namespace {

constexpr absl::Duration kTimeout = absl::Seconds(10);

absl::Duration At(double seconds) { return absl::Seconds(seconds); }

// Checks every 100 ms from `from` to `to` (the watchdog loop's pace);
// returns the first verdict.
std::optional<absl::Duration> CheckEvery100ms(MasterHangCheck* check,
                                              double from, double to) {
  for (int tenth = static_cast<int>(from * 10); tenth <= to * 10; ++tenth) {
    std::optional<absl::Duration> silence = check->Check(At(tenth / 10.0));
    if (silence) return silence;
  }
  return std::nullopt;
}

TEST(MasterHangCheckTest, SilentServingMasterIsHungAfterTheTimeout) {
  MasterHangCheck check(kTimeout);
  check.Serving(At(100));
  EXPECT_TRUE(check.armed());
  EXPECT_EQ(CheckEvery100ms(&check, 100, 109.9), std::nullopt);
  std::optional<absl::Duration> silence = check.Check(At(110));
  ASSERT_TRUE(silence.has_value());
  EXPECT_EQ(*silence, kTimeout);
  // One verdict per master: the kill follows, and the exit is awaited.
  EXPECT_FALSE(check.armed());
  EXPECT_EQ(CheckEvery100ms(&check, 110.1, 130), std::nullopt);
}

TEST(MasterHangCheckTest, HeartbeatsKeepItAlive) {
  MasterHangCheck check(kTimeout);
  check.Serving(At(0));
  for (int second = 1; second <= 60; ++second) {
    EXPECT_EQ(CheckEvery100ms(&check, second - 1 + 0.1, second), std::nullopt)
        << second;
    check.Heard(At(second));
  }
  // The last heartbeat at 60 s: hung at 70 s, not before.
  EXPECT_EQ(CheckEvery100ms(&check, 60.1, 69.9), std::nullopt);
  EXPECT_EQ(check.Check(At(70)), kTimeout);
}

TEST(MasterHangCheckTest, StartingMasterIsNotJudged) {
  MasterHangCheck check(kTimeout);
  // Heartbeats before it serves arm nothing.
  check.Heard(At(1));
  EXPECT_EQ(CheckEvery100ms(&check, 0, 60), std::nullopt);
  EXPECT_FALSE(check.armed());
  // Serving starts the clock from then, not from the last message.
  check.Serving(At(60));
  EXPECT_EQ(CheckEvery100ms(&check, 60.1, 69.9), std::nullopt);
  EXPECT_EQ(check.Check(At(70)), kTimeout);
}

TEST(MasterHangCheckTest, StoppingOrHandingOverMasterIsNotJudged) {
  MasterHangCheck check(kTimeout);
  check.Serving(At(0));
  check.Off();
  EXPECT_FALSE(check.armed());
  EXPECT_EQ(CheckEvery100ms(&check, 0, 60), std::nullopt);
}

TEST(MasterHangCheckTest, ZeroTimeoutNeverJudges) {
  MasterHangCheck check(absl::ZeroDuration());
  check.Serving(At(0));
  EXPECT_FALSE(check.armed());
  EXPECT_EQ(CheckEvery100ms(&check, 0, 120), std::nullopt);
}

TEST(MasterHangCheckTest, SilenceWhileTheWatchdogWasBlockedDoesNotCount) {
  MasterHangCheck check(kTimeout);
  check.Serving(At(0));
  check.Heard(At(5));
  EXPECT_EQ(CheckEvery100ms(&check, 0, 8), std::nullopt);
  // The upgrade's binary check blocks the loop for 15 s: the master's
  // heartbeats of that time wait unread in the link.
  EXPECT_EQ(check.Check(At(23)), std::nullopt);
  EXPECT_TRUE(check.armed());
  // Judged again from the end of the blocked turn: a master that really
  // hangs is killed a full timeout later.
  EXPECT_EQ(CheckEvery100ms(&check, 23.1, 32.9), std::nullopt);
  EXPECT_EQ(check.Check(At(33)), kTimeout);
}

TEST(MasterHangCheckTest, TurnsOfUpToASecondStillCount) {
  MasterHangCheck check(kTimeout);
  check.Serving(At(0));
  // Turns of up to a second (a busy watchdog) do not restart the silence.
  double t = 0;
  std::optional<absl::Duration> silence;
  while (!silence && t < 20) {
    t += 1.0;
    silence = check.Check(At(t));
  }
  ASSERT_TRUE(silence.has_value());
  EXPECT_EQ(t, 10);
}

TEST(MasterHangCheckTest, MonotonicNowMovesForward) {
  const absl::Duration a = MasterHangCheck::MonotonicNow();
  const absl::Duration b = MasterHangCheck::MonotonicNow();
  EXPECT_LE(a, b);
  EXPECT_GT(a, absl::ZeroDuration());
}

}  // namespace
}  // namespace watchdog
}  // namespace ddv
