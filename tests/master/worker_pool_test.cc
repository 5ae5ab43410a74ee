// WorkerPool with real worker processes (tests/master/shutdown_worker): a
// worker being retired or restarted is sent kShutdown and leaves on its own,
// which the supervisor records as a stop, not a crash to restart; one that
// ignores it gets SIGTERM after the grace; one that never said hello gets
// SIGTERM at once. Also the pick skips a worker asked to shut down.
#include "src/master/worker_pool.h"

#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>

#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "src/handoff/channel.h"
#include "src/handoff/wire.h"
#include "src/master/clock.h"

namespace ddv {
namespace master {
namespace {

using supervise::ProcessState;

std::string WorkerBinary() {
  char resolved[PATH_MAX];
  if (realpath("tests/master/shutdown_worker", resolved) == nullptr) {
    ADD_FAILURE() << "shutdown_worker not found in the runfiles";
    return "/nonexistent";
  }
  return resolved;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class WorkerPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log_ = absl::StrCat(
        getenv("TEST_TMPDIR"), "/shutdown.log.",
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
  }

  // One site "s" of `processes` shutdown_worker processes.
  void Start(int processes, std::vector<std::string> args = {},
             absl::Duration drain_timeout = absl::Seconds(4)) {
    std::vector<std::string> command = {WorkerBinary()};
    for (const std::string& arg : args) command.push_back(arg);
    StartCommand(processes, command, WorkerPoolOptions(), drain_timeout);
  }

  // One site "s" of `processes` processes running `command`.
  void StartCommand(int processes, std::vector<std::string> command,
                    WorkerPoolOptions options,
                    absl::Duration drain_timeout = absl::Seconds(4)) {
    config::Config config;
    config::SiteConfig site;
    site.id = "s";
    site.command = std::move(command);
    site.processes = processes;
    site.env = {{"SHUTDOWN_LOG", log_}};
    config.sites.push_back(site);
    site_ = site;
    options.drain_timeout = drain_timeout;
    options.term_grace = absl::Seconds(2);
    absl::StatusOr<std::unique_ptr<WorkerPool>> pool =
        WorkerPool::Create(options, config);
    ASSERT_TRUE(pool.ok()) << pool.status();
    pool_ = std::move(*pool);
    ASSERT_TRUE(pool_->StartAll().ok());
    pool_->TakeRestarted();
  }

  // Reads the worker's hello, as the master's channel poll would.
  void AwaitHello(int w) {
    absl::StatusOr<handoff::ReceivedFrame> frame =
        handoff::ReceiveFrame(pool_->at(w).channel.get(), absl::Seconds(5));
    ASSERT_TRUE(frame.ok()) << frame.status();
    ASSERT_TRUE(std::holds_alternative<handoff::Hello>(frame->frame));
    pool_->at(w).ready = true;
  }

  // Waits (bounded) for the worker's process to exit, then reaps it as the
  // master's exit poll would.
  void AwaitExitAndReap(int w) {
    pollfd p{pool_->pidfd(w), POLLIN, 0};
    ASSERT_GE(p.fd, 0);
    ASSERT_EQ(poll(&p, 1, 10000), 1) << "worker did not exit";
    ASSERT_TRUE(pool_->Reap(w));
  }

  ProcessState State(int w) const {
    return pool_->processes().state(pool_->at(w).process_slot);
  }
  supervise::ExitStatus LastExit(int w) const {
    return pool_->processes().last_exit(pool_->at(w).process_slot).value();
  }

  std::string log_;
  config::SiteConfig site_;
  std::unique_ptr<WorkerPool> pool_;
};

TEST_F(WorkerPoolTest, RetiredWorkerGetsKShutdownAndLeavesAsStopped) {
  Start(2);
  AwaitHello(0);
  AwaitHello(1);
  ASSERT_TRUE(pool_->SetProcessCount(0, site_, 1).ok());  // retires #1
  EXPECT_TRUE(pool_->at(1).retired);
  EXPECT_TRUE(pool_->at(1).draining);
  EXPECT_EQ(pool_->shutdowns_sent(), 1u);
  // Still running while it drains, but no longer picked, and shown as
  // stopping (as a SIGTERMed worker was).
  EXPECT_EQ(State(1), ProcessState::kStarting);
  EXPECT_EQ(pool_->StateName(1), "stopping");
  for (int i = 0; i < 4; ++i) EXPECT_EQ(pool_->Pick(0), 0);

  AwaitExitAndReap(1);
  EXPECT_EQ(State(1), ProcessState::kExited) << "a stop, not a crash";
  EXPECT_TRUE(LastExit(1).exited());
  EXPECT_EQ(LastExit(1).code, 0) << "it left on its own, not by a signal";
  EXPECT_EQ(ReadFile(log_), "shutdown 4000\n");
  // Nothing restarts it, however much time passes.
  pool_->Tick(MonotonicNowNs() + absl::ToInt64Nanoseconds(absl::Hours(1)));
  EXPECT_EQ(pool_->pid(1), 0);
  EXPECT_EQ(State(1), ProcessState::kExited);
  EXPECT_NE(pool_->pid(0), 0) << "the kept worker still runs";
}

TEST_F(WorkerPoolTest, RollingRestartAsksTheOldProcessToLeave) {
  Start(1);
  AwaitHello(0);
  const pid_t old = pool_->pid(0);
  const uint32_t generation = pool_->at(0).generation;
  pool_->RollingRestart(0);
  pool_->Tick(MonotonicNowNs());
  EXPECT_TRUE(pool_->at(0).restart_pending);
  EXPECT_TRUE(pool_->at(0).draining);
  EXPECT_EQ(pool_->Pick(0), -1) << "a worker asked to leave takes nothing new";

  AwaitExitAndReap(0);
  EXPECT_EQ(LastExit(0).code, 0);
  pool_->ContinueRestart(0);  // the master does this after draining
  EXPECT_NE(pool_->pid(0), 0);
  EXPECT_NE(pool_->pid(0), old);
  EXPECT_EQ(pool_->at(0).generation, generation + 1);
  EXPECT_FALSE(pool_->at(0).draining);
  EXPECT_EQ(pool_->TakeRestarted(), std::vector<int>({0}));
  EXPECT_EQ(ReadFile(log_), "shutdown 4000\n");
}

TEST_F(WorkerPoolTest, WorkerIgnoringKShutdownGetsSigtermAfterTheGrace) {
  Start(1, {"--ignore_shutdown"}, absl::Milliseconds(300));
  AwaitHello(0);
  pool_->Retire(0);
  EXPECT_EQ(pool_->shutdowns_sent(), 1u);
  pool_->Tick(MonotonicNowNs());
  EXPECT_NE(State(0), ProcessState::kStopping) << "no signal within the grace";
  absl::SleepFor(absl::Milliseconds(400));
  pool_->Tick(MonotonicNowNs());
  EXPECT_EQ(State(0), ProcessState::kStopping);
  AwaitExitAndReap(0);
  EXPECT_EQ(LastExit(0).signal, SIGTERM) << "SIGKILL only term_grace later";
  EXPECT_EQ(State(0), ProcessState::kExited);
  EXPECT_EQ(ReadFile(log_), "shutdown 300\n") << "it did get kShutdown";
}

TEST_F(WorkerPoolTest, WorkerThatNeverSaidHelloGetsSigtermAtOnce) {
  Start(1);
  // Its hello is never read: it may not speak the protocol.
  pool_->Retire(0);
  EXPECT_EQ(pool_->shutdowns_sent(), 0u);
  EXPECT_EQ(State(0), ProcessState::kStopping);
  AwaitExitAndReap(0);
  EXPECT_EQ(LastExit(0).signal, SIGTERM);
  EXPECT_EQ(ReadFile(log_), "");
}

TEST_F(WorkerPoolTest, ShutdownAllStopsEveryWorkerForGood) {
  Start(2);
  AwaitHello(0);
  AwaitHello(1);
  pool_->ShutdownAll(absl::Seconds(3));
  EXPECT_EQ(pool_->shutdowns_sent(), 2u);
  AwaitExitAndReap(0);
  AwaitExitAndReap(1);
  EXPECT_EQ(pool_->LiveProcesses(), 0);
  pool_->Tick(MonotonicNowNs() + absl::ToInt64Nanoseconds(absl::Hours(1)));
  EXPECT_EQ(pool_->LiveProcesses(), 0) << "nothing restarted";
  EXPECT_EQ(ReadFile(log_), "shutdown 3000\nshutdown 3000\n");
}

TEST_F(WorkerPoolTest, RestartRevivesASiteWhoseWorkersAllFailed) {
  // A crash loop: every start exits 1 at once, and one exit is a loop.
  WorkerPoolOptions options;
  options.backoff.crash_loop_limit = 0;
  StartCommand(2, {"/bin/sh", "-c", "exit 1"}, options);
  AwaitExitAndReap(0);
  AwaitExitAndReap(1);
  ASSERT_EQ(State(0), ProcessState::kFailed);
  ASSERT_EQ(State(1), ProcessState::kFailed);
  ASSERT_TRUE(pool_->SiteFailed(0));

  // The cause is fixed (a reload with a working command), then `restart`:
  // neither dead worker may wait for the other to say hello.
  config::SiteConfig fixed = site_;
  fixed.command = {WorkerBinary()};
  pool_->UpdateSpecs(0, fixed);
  pool_->RollingRestart(0);
  pool_->Tick(MonotonicNowNs());
  EXPECT_NE(pool_->pid(0), 0);
  EXPECT_NE(pool_->pid(1), 0);
  EXPECT_EQ(pool_->TakeRestarted(), std::vector<int>({0, 1}));
  EXPECT_FALSE(pool_->SiteFailed(0));
  AwaitHello(0);
  AwaitHello(1);
  EXPECT_GE(pool_->Pick(0), 0);
}

TEST_F(WorkerPoolTest, FailedSiblingDoesNotHoldARollingRestart) {
  // #1 cannot start (its binary is gone) and is failed for good; #0 runs.
  // Replacing #0 must not wait for #1: nothing will bring it back.
  WorkerPoolOptions options;
  options.backoff.crash_loop_limit = 0;
  StartCommand(2, {WorkerBinary()}, options);
  AwaitHello(0);
  AwaitHello(1);
  config::SiteConfig missing = site_;
  missing.command = {"/nonexistent/worker"};
  pool_->UpdateSpecs(0, missing);
  ASSERT_EQ(kill(pool_->pid(1), SIGKILL), 0);
  AwaitExitAndReap(1);
  ASSERT_EQ(State(1), ProcessState::kFailed);

  pool_->RollingRestart(0);
  pool_->Tick(MonotonicNowNs());
  EXPECT_EQ(pool_->pid(1), 0);
  EXPECT_EQ(State(1), ProcessState::kFailed) << "its start failed again";
  EXPECT_TRUE(pool_->at(0).restart_pending) << "#1 must not hold #0";
  EXPECT_TRUE(pool_->at(0).draining);
  pool_->UpdateSpecs(0, site_);
  AwaitExitAndReap(0);
  pool_->ContinueRestart(0);
  EXPECT_NE(pool_->pid(0), 0);
  EXPECT_FALSE(pool_->at(0).restart_pending);
}

std::string EnvOf(const WorkerPool& pool, int w, const std::string& name) {
  for (const auto& [key, value] :
       pool.processes().spec(pool.at(w).process_slot).env) {
    if (key == name) return value;
  }
  return "";
}

// Node workers get their site's first listener's port as PORT; after a
// reload changed the listeners, the ones started from then on get the new
// one (running ones keep theirs: routing does not depend on it).
TEST(WorkerPoolPortTest, NodeWorkersGetTheFirstListenersPortAfterAChange) {
  config::Config config;
  config::SiteConfig named;
  named.id = "named";
  named.command = {"/bin/true"};
  named.runtime = config::Runtime::kNode;
  named.listeners = {"https"};
  config::SiteConfig every = named;
  every.id = "every";
  every.listeners = {};
  config.sites = {named, every};
  WorkerPoolOptions options;
  options.listener_ports = {{"http", 8080}, {"https", 8443}};
  absl::StatusOr<std::unique_ptr<WorkerPool>> pool =
      WorkerPool::Create(options, config);
  ASSERT_TRUE(pool.ok()) << pool.status();
  EXPECT_EQ(EnvOf(**pool, 0, "PORT"), "8443");
  EXPECT_EQ(EnvOf(**pool, 1, "PORT"), "8080");

  (*pool)->SetListenerPorts({{"https", 9443}, {"web", 9080}}, config);
  EXPECT_EQ(EnvOf(**pool, 0, "PORT"), "9443");
  EXPECT_EQ(EnvOf(**pool, 1, "PORT"), "9443");
}

}  // namespace
}  // namespace master
}  // namespace ddv
