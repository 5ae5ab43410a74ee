// MasterHangCheck: a serving master silent for the timeout is hung, and so
// is one that has not said it serves within the start timeout; one that
// serves in time, is heard in time, is stopping, or serves without
// heartbeats (older than the check) is not; and a turn of the watchdog's
// own loop that took long (its upgrade check) never makes the silence it
// could not hear count. Times are given, not read from a clock.
#include "src/watchdog/hang_check.h"

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace ddv {
namespace watchdog {
namespace {

constexpr absl::Duration kTimeout = absl::Seconds(10);
constexpr absl::Duration kStartTimeout = absl::Seconds(60);

absl::Duration At(double seconds) { return absl::Seconds(seconds); }

HangVerdict NoHeartbeatFor(absl::Duration silence) {
  return {HangVerdict::Kind::kNoHeartbeat, silence};
}

HangVerdict NotServingAfter(absl::Duration since_start) {
  return {HangVerdict::Kind::kNotServing, since_start};
}

// Checks every 100 ms from `from` to `to` (the watchdog loop's pace);
// returns the first verdict.
std::optional<HangVerdict> CheckEvery100ms(MasterHangCheck* check,
                                           double from, double to) {
  for (int tenth = static_cast<int>(from * 10); tenth <= to * 10; ++tenth) {
    std::optional<HangVerdict> verdict = check->Check(At(tenth / 10.0));
    if (verdict) return verdict;
  }
  return std::nullopt;
}

TEST(MasterHangCheckTest, SilentServingMasterIsHungAfterTheTimeout) {
  MasterHangCheck check(kTimeout);
  check.Serving(At(100));
  EXPECT_TRUE(check.armed());
  EXPECT_EQ(CheckEvery100ms(&check, 100, 109.9), std::nullopt);
  EXPECT_EQ(check.Check(At(110)), NoHeartbeatFor(kTimeout));
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
  EXPECT_EQ(check.Check(At(70)), NoHeartbeatFor(kTimeout));
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
  EXPECT_EQ(check.Check(At(70)), NoHeartbeatFor(kTimeout));
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
  EXPECT_EQ(check.Check(At(33)), NoHeartbeatFor(kTimeout));
}

TEST(MasterHangCheckTest, TurnsOfUpToASecondStillCount) {
  MasterHangCheck check(kTimeout);
  check.Serving(At(0));
  // Turns of up to a second (a busy watchdog) do not restart the silence.
  double t = 0;
  std::optional<HangVerdict> verdict;
  while (!verdict && t < 20) {
    t += 1.0;
    verdict = check.Check(At(t));
  }
  ASSERT_TRUE(verdict.has_value());
  EXPECT_EQ(t, 10);
}

TEST(MasterHangCheckTest, MasterNotServingWithinTheStartTimeoutIsHung) {
  MasterHangCheck check(kTimeout, kStartTimeout);
  check.Started(At(100));
  EXPECT_TRUE(check.armed());
  EXPECT_TRUE(check.starting());
  // Far beyond the heartbeat timeout: a start is judged by its own.
  EXPECT_EQ(CheckEvery100ms(&check, 100, 159.9), std::nullopt);
  EXPECT_EQ(check.Check(At(160)), NotServingAfter(kStartTimeout));
  // One verdict per master.
  EXPECT_FALSE(check.armed());
  EXPECT_EQ(CheckEvery100ms(&check, 160.1, 300), std::nullopt);
}

TEST(MasterHangCheckTest, ServingInTimeEndsTheStartAndArmsTheHeartbeats) {
  MasterHangCheck check(kTimeout, kStartTimeout);
  check.Started(At(0));
  EXPECT_EQ(CheckEvery100ms(&check, 0, 58.9), std::nullopt);
  check.Serving(At(59));
  EXPECT_FALSE(check.starting());
  EXPECT_TRUE(check.armed());
  // Judged by its heartbeats from its `serving` on, not from its start.
  EXPECT_EQ(CheckEvery100ms(&check, 59, 68.9), std::nullopt);
  EXPECT_EQ(check.Check(At(69)), NoHeartbeatFor(kTimeout));
}

TEST(MasterHangCheckTest, HeartbeatsBeforeServingDoNotEndTheStart) {
  MasterHangCheck check(kTimeout, kStartTimeout);
  check.Started(At(0));
  for (int second = 1; second < 60; ++second) check.Heard(At(second));
  EXPECT_EQ(CheckEvery100ms(&check, 0, 59.9), std::nullopt);
  EXPECT_EQ(check.Check(At(60)), NotServingAfter(kStartTimeout));
}

TEST(MasterHangCheckTest, OlderMasterIsJudgedOnlyUntilItServes) {
  // `serving` without `alive_every_ms`: it will never send a heartbeat.
  MasterHangCheck check(kTimeout, kStartTimeout);
  check.Started(At(0));
  check.Serving(At(5), /*heartbeats=*/false);
  EXPECT_FALSE(check.armed());
  EXPECT_EQ(CheckEvery100ms(&check, 5, 300), std::nullopt);
  // Its next start is judged again: every master says `serving`.
  check.Started(At(300));
  EXPECT_EQ(CheckEvery100ms(&check, 300, 359.9), std::nullopt);
  EXPECT_EQ(check.Check(At(360)), NotServingAfter(kStartTimeout));
}

TEST(MasterHangCheckTest, EachStartHasItsOwnClock) {
  MasterHangCheck check(kTimeout, kStartTimeout);
  check.Started(At(0));
  EXPECT_EQ(CheckEvery100ms(&check, 0, 30), std::nullopt);
  // It died 30 s in; the next master is started 40 s in (its back-off).
  check.Off();
  EXPECT_EQ(CheckEvery100ms(&check, 30.1, 40), std::nullopt);
  check.Started(At(40));
  EXPECT_EQ(CheckEvery100ms(&check, 40, 99.9), std::nullopt);
  EXPECT_EQ(check.Check(At(100)), NotServingAfter(kStartTimeout));
  // Killed for it, then restarted: judged from that start.
  check.Started(At(101));
  EXPECT_EQ(CheckEvery100ms(&check, 100.1, 160.9), std::nullopt);
  EXPECT_EQ(check.Check(At(161)), NotServingAfter(kStartTimeout));
}

TEST(MasterHangCheckTest, StoppingOrHandingOverStartingMasterIsNotJudged) {
  // A stop or an upgrade during the start: bounded by their own grace.
  MasterHangCheck check(kTimeout, kStartTimeout);
  check.Started(At(0));
  check.Off();
  EXPECT_FALSE(check.armed());
  EXPECT_EQ(CheckEvery100ms(&check, 0, 300), std::nullopt);
}

TEST(MasterHangCheckTest, ZeroStartTimeoutJudgesOnlyHeartbeats) {
  MasterHangCheck check(kTimeout, absl::ZeroDuration());
  check.Started(At(0));
  EXPECT_FALSE(check.armed());
  EXPECT_EQ(CheckEvery100ms(&check, 0, 300), std::nullopt);
  check.Serving(At(300));
  EXPECT_EQ(CheckEvery100ms(&check, 300, 309.9), std::nullopt);
  EXPECT_EQ(check.Check(At(310)), NoHeartbeatFor(kTimeout));
}

TEST(MasterHangCheckTest, ZeroHangTimeoutStillJudgesTheStart) {
  MasterHangCheck check(absl::ZeroDuration(), kStartTimeout);
  check.Started(At(0));
  EXPECT_EQ(CheckEvery100ms(&check, 0, 59.9), std::nullopt);
  EXPECT_EQ(check.Check(At(60)), NotServingAfter(kStartTimeout));
  check.Started(At(100));
  check.Serving(At(101));
  EXPECT_FALSE(check.armed());
  EXPECT_EQ(CheckEvery100ms(&check, 101, 400), std::nullopt);
}

TEST(MasterHangCheckTest, StartTimeWhileTheWatchdogWasBlockedDoesNotCount) {
  MasterHangCheck check(kTimeout, kStartTimeout);
  check.Started(At(0));
  EXPECT_EQ(CheckEvery100ms(&check, 0, 50), std::nullopt);
  // Its loop blocked 15 s (an upgrade's binary check): a `serving` sent
  // meanwhile may wait unread in the link.
  EXPECT_EQ(check.Check(At(65)), std::nullopt);
  EXPECT_TRUE(check.starting());
  // Counted again from the end of the blocked turn.
  EXPECT_EQ(CheckEvery100ms(&check, 65.1, 124.9), std::nullopt);
  EXPECT_EQ(check.Check(At(125)), NotServingAfter(kStartTimeout));
}

TEST(MasterHangCheckTest, StartTurnsOfUpToASecondStillCount) {
  MasterHangCheck check(kTimeout, kStartTimeout);
  check.Started(At(0));
  double t = 0;
  std::optional<HangVerdict> verdict;
  while (!verdict && t < 120) {
    t += 1.0;
    verdict = check.Check(At(t));
  }
  EXPECT_EQ(verdict, NotServingAfter(kStartTimeout));
  EXPECT_EQ(t, 60);
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
