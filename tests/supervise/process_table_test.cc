// ProcessTable with real processes and a fake clock: back-off, health reset,
// crash loop, exit status 2, stop (graceful and SIGKILL), orphans, fd leaks.
#include "src/supervise/process_table.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/supervise/test_util.h"

namespace ddv::supervise {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::OpenFds;
using testing::WaitReadable;

constexpr absl::Duration kWait = absl::Seconds(5);

ProcessSpec Shell(const std::string& name, const std::string& script) {
  ProcessSpec spec;
  spec.name = name;
  spec.argv = {"/bin/sh", "-c", script};
  return spec;
}

// Time only moves when the test says so; processes are real.
class ProcessTableTest : public ::testing::Test {
 protected:
  ProcessTable::Clock clock() {
    return [this] { return now_; };
  }
  // Waits (bounded) for the slot's process to exit and hands it to OnExit,
  // as the master loop does when the pidfd polls readable.
  void AwaitExit(ProcessTable& table, int slot) {
    ASSERT_GE(table.pidfd(slot), 0) << "slot " << slot << " has no process";
    ASSERT_TRUE(WaitReadable(table.pidfd(slot), kWait))
        << "worker " << table.spec(slot).name << " did not exit in time";
    table.OnExit(slot);
  }

  absl::Time now_ = absl::FromUnixSeconds(1700000000);
};

// The master's log writer client is a stdio router: each start gets fresh
// pipes, and a router error fails that start.
TEST_F(ProcessTableTest, StdioRouterGivesEveryStartItsOwnPipes) {
  ProcessTable table(BackoffPolicy{}, clock());
  std::vector<UniqueFd> read_ends;
  int routed = 0;
  bool fail = false;
  table.set_stdio_router(
      [&](const ProcessSpec& spec) -> absl::StatusOr<StdioPipes> {
        ++routed;
        if (fail) return absl::PermissionDeniedError("no log for " + spec.name);
        int ends[2];
        EXPECT_EQ(::pipe2(ends, O_CLOEXEC), 0);
        read_ends.emplace_back(ends[0]);
        StdioPipes pipes;
        pipes.out.Reset(ends[1]);
        return pipes;
      });
  ProcessSpec spec = Shell("a#0", "echo run");
  spec.stdout_path = "/nonexistent/never-opened.log";
  const int slot = table.Add(spec);
  const int silent = table.Add(Shell("b#0", "true"));  // no log: not routed
  ASSERT_TRUE(table.Start(silent).ok());
  for (int run = 0; run < 2; ++run) {
    ASSERT_TRUE(table.Start(slot).ok());
    AwaitExit(table, slot);
    table.Stop(slot, absl::ZeroDuration());  // no restart: we start it
  }
  AwaitExit(table, silent);
  EXPECT_EQ(routed, 2);
  ASSERT_EQ(read_ends.size(), 2u);
  for (const UniqueFd& fd : read_ends) {
    char buffer[16];
    EXPECT_EQ(::read(fd.get(), buffer, sizeof(buffer)), 4);  // then EOF:
    EXPECT_EQ(::read(fd.get(), buffer, sizeof(buffer)), 0);  // no copy kept
  }
  fail = true;
  absl::Status status = table.Start(slot);
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(status.message()), HasSubstr("no log for a#0"));
}

TEST_F(ProcessTableTest, StartsThenBecomesHealthyThenStops) {
  ProcessTable table(BackoffPolicy{}, clock());
  std::vector<std::pair<int, pid_t>> started;
  table.set_on_started(
      [&](int slot, pid_t pid) { started.emplace_back(slot, pid); });
  const int slot = table.Add(Shell("a#0", "exec sleep 30"));
  EXPECT_EQ(table.state(slot), ProcessState::kIdle);
  EXPECT_EQ(table.pid(slot), 0);
  EXPECT_EQ(table.pidfd(slot), -1);

  ASSERT_TRUE(table.Start(slot).ok());
  EXPECT_EQ(table.state(slot), ProcessState::kStarting);
  EXPECT_GT(table.pid(slot), 0);
  EXPECT_GE(table.pidfd(slot), 0);
  EXPECT_THAT(started, ElementsAre(std::make_pair(slot, table.pid(slot))));
  EXPECT_EQ(table.FindByPid(table.pid(slot)), slot);
  EXPECT_EQ(table.Start(slot).code(), absl::StatusCode::kFailedPrecondition);

  // Not healthy yet: the next deadline is when it will be.
  EXPECT_EQ(table.RestartDue(now_ + absl::Seconds(5)),
            now_ + absl::Seconds(10));
  EXPECT_EQ(table.state(slot), ProcessState::kStarting);
  EXPECT_EQ(table.RestartDue(now_ + absl::Seconds(10)), absl::InfiniteFuture());
  EXPECT_EQ(table.state(slot), ProcessState::kRunning);

  const pid_t pid = table.pid(slot);
  ASSERT_TRUE(table.StopAllAndWait(absl::Seconds(2)).ok());
  EXPECT_EQ(table.state(slot), ProcessState::kExited);
  EXPECT_EQ(table.pid(slot), 0);
  EXPECT_EQ(table.live_count(), 0);
  EXPECT_EQ(table.last_exit(slot)->signal, SIGTERM);
  EXPECT_TRUE(testing::WaitGone(pid, kWait));
  EXPECT_EQ(ProcessStateName(table.state(slot)), "exited");
}

TEST_F(ProcessTableTest, BackoffGrowsExponentiallyUpToTheCap) {
  BackoffPolicy policy;
  policy.initial = absl::Milliseconds(100);
  policy.max = absl::Milliseconds(500);
  policy.multiplier = 2;
  policy.crash_loop_limit = 100;
  ProcessTable table(policy, clock());
  std::vector<int> codes;
  table.set_on_exited([&](int, pid_t, const ExitStatus& status) {
    codes.push_back(status.code);
  });
  const int slot = table.Add(Shell("a#0", "exit 1"));
  ASSERT_TRUE(table.Start(slot).ok());

  const std::vector<int> expected_ms = {100, 200, 400, 500, 500};
  for (size_t i = 0; i < expected_ms.size(); ++i) {
    AwaitExit(table, slot);
    ASSERT_EQ(table.state(slot), ProcessState::kBackoff);
    const absl::Time due = now_ + absl::Milliseconds(expected_ms[i]);
    EXPECT_EQ(table.restart_at(slot), due) << "restart " << i;
    // Not yet: nothing starts, and the loop is told when to come back.
    EXPECT_EQ(table.RestartDue(due - absl::Milliseconds(1)), due);
    EXPECT_EQ(table.pid(slot), 0);
    now_ = due;
    table.RestartDue(now_);
    EXPECT_EQ(table.state(slot), ProcessState::kStarting);
    EXPECT_EQ(table.restarts(slot), static_cast<int>(i) + 1);
  }
  EXPECT_THAT(codes, ElementsAre(1, 1, 1, 1, 1));
  ASSERT_TRUE(table.StopAllAndWait(absl::Seconds(2)).ok());
}

TEST_F(ProcessTableTest, HealthyRunResetsTheBackoff) {
  ProcessTable table(BackoffPolicy{}, clock());
  const int slot = table.Add(Shell("a#0", "exit 1"));
  ASSERT_TRUE(table.Start(slot).ok());
  AwaitExit(table, slot);
  EXPECT_EQ(table.restart_at(slot), now_ + absl::Milliseconds(100));
  now_ += absl::Milliseconds(100);
  table.RestartDue(now_);
  AwaitExit(table, slot);
  EXPECT_EQ(table.restart_at(slot), now_ + absl::Milliseconds(200));
  now_ += absl::Milliseconds(200);
  table.RestartDue(now_);
  // This run "lasts" healthy_after on the fake clock.
  now_ += absl::Seconds(10);
  AwaitExit(table, slot);
  EXPECT_EQ(table.restart_at(slot), now_ + absl::Milliseconds(100));
  ASSERT_TRUE(table.StopAllAndWait(absl::Seconds(2)).ok());
}

TEST_F(ProcessTableTest, CrashLoopFailsTheSlotOnce) {
  ProcessTable table(BackoffPolicy{}, clock());  // > 5 exits in 60 s
  int exits = 0;
  table.set_on_exited([&](int, pid_t, const ExitStatus&) { ++exits; });
  const int crashing = table.Add(Shell("a#0", "exit 1"));
  const int other = table.Add(Shell("b#0", "exec sleep 30"));
  ASSERT_TRUE(table.Start(crashing).ok());
  ASSERT_TRUE(table.Start(other).ok());
  for (int i = 0; i < 6; ++i) {
    AwaitExit(table, crashing);
    if (table.state(crashing) != ProcessState::kBackoff) break;
    now_ = table.restart_at(crashing);
    table.RestartDue(now_);
  }
  EXPECT_EQ(exits, 6);
  EXPECT_EQ(table.state(crashing), ProcessState::kFailed);
  EXPECT_EQ(table.restarts(crashing), 5);
  EXPECT_TRUE(table.SiteFailed("a"));
  EXPECT_FALSE(table.SiteFailed("b"));
  // Failed stays failed: no restart however long we wait.
  now_ += absl::Hours(1);
  table.RestartDue(now_);
  EXPECT_EQ(table.state(crashing), ProcessState::kFailed);
  EXPECT_EQ(table.pid(crashing), 0);

  // Started by hand, it gets a fresh history (and crashes again, into
  // back-off, not straight back to failed).
  ASSERT_TRUE(table.Start(crashing).ok());
  AwaitExit(table, crashing);
  EXPECT_EQ(table.state(crashing), ProcessState::kBackoff);
  EXPECT_EQ(table.restart_at(crashing), now_ + absl::Milliseconds(100));
  ASSERT_TRUE(table.StopAllAndWait(absl::Seconds(2)).ok());
  EXPECT_EQ(table.state(crashing), ProcessState::kExited);
}

TEST_F(ProcessTableTest, ExitsSpreadOverTimeAreNotACrashLoop) {
  BackoffPolicy policy;
  policy.crash_loop_limit = 2;
  policy.crash_loop_window = absl::Seconds(10);
  ProcessTable table(policy, clock());
  const int slot = table.Add(Shell("a#0", "exit 1"));
  ASSERT_TRUE(table.Start(slot).ok());
  for (int i = 0; i < 5; ++i) {
    AwaitExit(table, slot);
    ASSERT_EQ(table.state(slot), ProcessState::kBackoff) << "exit " << i;
    now_ += absl::Seconds(6);  // at most 2 exits in any 10 s
    table.RestartDue(now_);
  }
  ASSERT_TRUE(table.StopAllAndWait(absl::Seconds(2)).ok());
}

TEST_F(ProcessTableTest, ExitStatus2IsDoneAndNotRestarted) {
  ProcessTable table(BackoffPolicy{}, clock());
  const int slot = table.Add(Shell("a#0", "exit 2"));
  ASSERT_TRUE(table.Start(slot).ok());
  AwaitExit(table, slot);
  EXPECT_EQ(table.state(slot), ProcessState::kDone);
  EXPECT_EQ(table.last_exit(slot)->code, 2);
  EXPECT_EQ(table.RestartDue(now_ + absl::Hours(1)), absl::InfiniteFuture());
  EXPECT_EQ(table.pid(slot), 0);
  EXPECT_EQ(table.restarts(slot), 0);
}

// The watchdog's policy: status 2 and a crash loop are retried forever,
// the delay growing to the cap; a healthy run resets it.
TEST_F(ProcessTableTest, NeverGiveUpRetriesStatus2AndCrashLoopsAtTheCap) {
  BackoffPolicy policy;
  policy.initial = absl::Milliseconds(100);
  policy.max = absl::Seconds(1);
  policy.never_give_up = true;  // crash_loop_limit stays 5 in 60 s
  ProcessTable table(policy, clock());
  const int slot = table.Add(Shell("master", "exit 2"));
  ASSERT_TRUE(table.Start(slot).ok());
  const std::vector<int> expected_ms = {100, 200, 400, 800, 1000,
                                        1000, 1000, 1000};
  for (size_t i = 0; i < expected_ms.size(); ++i) {
    AwaitExit(table, slot);
    ASSERT_EQ(table.state(slot), ProcessState::kBackoff) << "exit " << i;
    EXPECT_EQ(table.last_exit(slot)->code, 2);
    EXPECT_EQ(table.restart_at(slot), now_ + absl::Milliseconds(expected_ms[i]))
        << "exit " << i;
    now_ = table.restart_at(slot);
    table.RestartDue(now_);
    ASSERT_EQ(table.state(slot), ProcessState::kStarting) << "exit " << i;
  }
  EXPECT_EQ(table.restarts(slot), 8);
  // Fixed meanwhile: it stays up, becomes healthy, and the next failure
  // starts again from the initial delay.
  table.SetSpec(slot, Shell("master", "exec sleep 30"));
  AwaitExit(table, slot);  // the last failing run
  now_ = table.restart_at(slot);
  table.RestartDue(now_);
  now_ += absl::Seconds(10);
  table.RestartDue(now_);
  EXPECT_EQ(table.state(slot), ProcessState::kRunning);
  ASSERT_TRUE(table.StopAllAndWait(absl::Seconds(2)).ok());
}

TEST_F(ProcessTableTest, StoppedProcessIsNotRestarted) {
  ProcessTable table(BackoffPolicy{}, clock());
  const int slot = table.Add(Shell("a#0", "exec sleep 30"));
  ASSERT_TRUE(table.Start(slot).ok());
  table.StopAll(absl::Seconds(3));
  EXPECT_EQ(table.state(slot), ProcessState::kStopping);
  EXPECT_EQ(table.RestartDue(now_), now_ + absl::Seconds(3));
  AwaitExit(table, slot);
  EXPECT_EQ(table.state(slot), ProcessState::kExited);
  EXPECT_EQ(table.last_exit(slot)->signal, SIGTERM);
  EXPECT_EQ(table.RestartDue(now_ + absl::Hours(1)), absl::InfiniteFuture());
  EXPECT_EQ(table.pid(slot), 0);
}

TEST_F(ProcessTableTest, StopCancelsAPendingRestart) {
  ProcessTable table(BackoffPolicy{}, clock());
  const int slot = table.Add(Shell("a#0", "exit 1"));
  ASSERT_TRUE(table.Start(slot).ok());
  AwaitExit(table, slot);
  ASSERT_EQ(table.state(slot), ProcessState::kBackoff);
  table.Stop(slot, absl::Seconds(1));
  EXPECT_EQ(table.state(slot), ProcessState::kExited);
  EXPECT_EQ(table.RestartDue(now_ + absl::Hours(1)), absl::InfiniteFuture());
  EXPECT_EQ(table.pid(slot), 0);
}

TEST_F(ProcessTableTest, StopEscalatesToSigkillAfterGrace) {
  const std::string dir = testing::MakeTempDir();
  ProcessTable table(BackoffPolicy{}, clock());
  // Ignores SIGTERM (and tells us once it does, so the signal is not early).
  const std::string ready = dir + "/ready";
  const int slot =
      table.Add(Shell("a#0", absl::StrCat("trap '' TERM; echo ok > ", ready,
                                          "; while :; do sleep 0.05; done")));
  ASSERT_TRUE(table.Start(slot).ok());
  ASSERT_TRUE(testing::WaitForFile(ready, kWait));
  table.StopAll(absl::Seconds(2));
  EXPECT_FALSE(WaitReadable(table.pidfd(slot), absl::Milliseconds(300)));
  EXPECT_EQ(table.state(slot), ProcessState::kStopping);
  // Grace over on the loop's clock: SIGKILL, and no further deadline.
  EXPECT_EQ(table.RestartDue(now_ + absl::Seconds(2)), absl::InfiniteFuture());
  AwaitExit(table, slot);
  EXPECT_EQ(table.state(slot), ProcessState::kExited);
  EXPECT_EQ(table.last_exit(slot)->signal, SIGKILL);
}

TEST_F(ProcessTableTest, StopAllAndWaitKillsStubbornWorkers) {
  const std::string dir = testing::MakeTempDir();
  ProcessTable table(BackoffPolicy{}, clock());
  const std::string ready = dir + "/ready";
  const int slot =
      table.Add(Shell("a#0", absl::StrCat("trap '' TERM; echo ok > ", ready,
                                          "; while :; do sleep 0.05; done")));
  ASSERT_TRUE(table.Start(slot).ok());
  ASSERT_TRUE(testing::WaitForFile(ready, kWait));
  const absl::Time begin = absl::Now();
  ASSERT_TRUE(table.StopAllAndWait(absl::Milliseconds(300)).ok());
  EXPECT_GE(absl::Now() - begin, absl::Milliseconds(290));
  EXPECT_EQ(table.last_exit(slot)->signal, SIGKILL);
  EXPECT_EQ(table.live_count(), 0);
}

pid_t ReadPid(const std::string& path) {
  int pid = 0;
  EXPECT_TRUE(absl::SimpleAtoi(
      absl::StripAsciiWhitespace(testing::ReadFile(path)), &pid))
      << path;
  return pid;
}

ProcessTable* g_reaping_table = nullptr;
void ReapWithGlobalTable() { g_reaping_table->ReapOrphans(); }

TEST_F(ProcessTableTest, StopAllAndWaitLeavesNoWorkerAndNoGrandchild) {
  // As the watchdog does: orphans come back to us and are reaped.
  ASSERT_TRUE(BecomeSubreaper().ok());
  const std::string dir = testing::MakeTempDir();
  ProcessTable table(BackoffPolicy{}, clock());
  std::vector<std::string> pid_files;
  for (int i = 0; i < 2; ++i) {
    const std::string a = absl::StrCat(dir, "/plain", i);
    const std::string b = absl::StrCat(dir, "/deaf", i);
    pid_files.push_back(a);
    pid_files.push_back(b);
    // One grandchild that dies of SIGTERM, one that ignores it.
    table.Add(Shell(absl::StrCat("a#", i),
                    absl::StrCat("sleep 30 & echo $! > ", a,
                                 "; (trap '' TERM; exec sleep 30) & echo $! > ",
                                 b, "; wait")));
    ASSERT_TRUE(table.Start(i).ok());
  }
  std::vector<pid_t> pids = {table.pid(0), table.pid(1)};
  for (const std::string& file : pid_files) {
    ASSERT_TRUE(testing::WaitForFile(file, kWait)) << file;
    pids.push_back(ReadPid(file));
  }

  ASSERT_TRUE(table.StopAllAndWait(absl::Seconds(2)).ok());
  EXPECT_EQ(table.live_count(), 0);
  g_reaping_table = &table;
  for (pid_t pid : pids) {
    ASSERT_GT(pid, 0);
    EXPECT_TRUE(testing::WaitGone(pid, kWait, &ReapWithGlobalTable))
        << "pid " << pid << " survived the stop";
  }
  g_reaping_table = nullptr;
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1) << "a child is left";
}

TEST_F(ProcessTableTest, ReapOrphansRoutesTableExitsAndReapsTheRest) {
  ProcessTable table(BackoffPolicy{}, clock());
  const int slot = table.Add(Shell("a#0", "exit 1"));
  ASSERT_TRUE(table.Start(slot).ok());
  // A child that is not in the table (as an adopted orphan would be).
  const pid_t stranger = ::fork();
  ASSERT_GE(stranger, 0);
  if (stranger == 0) ::_exit(0);

  // Both are zombies once the table's pidfd is readable and the stranger's
  // /proc entry says so; then one SIGCHLD-style sweep handles both.
  ASSERT_TRUE(WaitReadable(table.pidfd(slot), kWait));
  const absl::Time deadline = absl::Now() + kWait;
  siginfo_t info = {};
  while (absl::Now() < deadline) {
    info = {};
    ASSERT_EQ(::waitid(P_PID, stranger, &info, WEXITED | WNOHANG | WNOWAIT), 0);
    if (info.si_pid == stranger) break;
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(info.si_pid, stranger);
  EXPECT_EQ(table.ReapOrphans(), 1);
  EXPECT_EQ(table.state(slot), ProcessState::kBackoff);
  EXPECT_EQ(table.last_exit(slot)->code, 1);
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);
  EXPECT_EQ(table.ReapOrphans(), 0);
}

TEST_F(ProcessTableTest, SpawnFailureIsReturnedAndRetriedWithBackoff) {
  ProcessTable table(BackoffPolicy{}, clock());
  ProcessSpec spec;
  spec.name = "a#0";
  spec.argv = {"/nonexistent/ddv_hello"};
  const int slot = table.Add(spec);
  absl::Status status = table.Start(slot);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("execve() failed while starting "
                                          "worker a#0 \"/nonexistent/"));
  EXPECT_EQ(table.state(slot), ProcessState::kBackoff);
  for (int i = 0; i < 10 && table.state(slot) == ProcessState::kBackoff; ++i) {
    now_ = table.restart_at(slot);
    table.RestartDue(now_);
  }
  EXPECT_EQ(table.state(slot), ProcessState::kFailed);
  EXPECT_EQ(table.restarts(slot), 0);
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);
}

TEST_F(ProcessTableTest, DestructorLeavesNoProcess) {
  pid_t pid = 0;
  {
    ProcessTable table(BackoffPolicy{}, clock());
    const int slot = table.Add(Shell("a#0", "exec sleep 30"));
    ASSERT_TRUE(table.Start(slot).ok());
    pid = table.pid(slot);
  }
  EXPECT_TRUE(testing::WaitGone(pid, absl::Seconds(1)));
}

TEST_F(ProcessTableTest, NoDescriptorLeakedOverALifetime) {
  const std::vector<int> fds_before = OpenFds();
  const std::string dir = testing::MakeTempDir();
  {
    ProcessTable table(BackoffPolicy{}, clock());
    ProcessSpec crashing = Shell("a#0", "echo crash; exit 1");
    crashing.stdout_path = crashing.stderr_path = dir + "/a.log";
    const int a = table.Add(crashing);
    const int b = table.Add(Shell("b#0", "exec sleep 30"));
    ProcessSpec missing;
    missing.name = "c#0";
    missing.argv = {"/nonexistent/ddv_hello"};
    const int c = table.Add(missing);
    ASSERT_TRUE(table.Start(a).ok());
    ASSERT_TRUE(table.Start(b).ok());
    EXPECT_FALSE(table.Start(c).ok());
    for (int i = 0; i < 3; ++i) {
      AwaitExit(table, a);
      now_ = table.restart_at(a);
      table.RestartDue(now_);
    }
    AwaitExit(table, a);  // the fourth run has written its line too
    ASSERT_TRUE(table.StopAllAndWait(absl::Seconds(2)).ok());
  }
  EXPECT_EQ(OpenFds(), fds_before);
  EXPECT_EQ(testing::ReadFile(dir + "/a.log"), "crash\ncrash\ncrash\ncrash\n");
}

}  // namespace
}  // namespace ddv::supervise
