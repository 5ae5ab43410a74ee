// Spawn with real processes: environment, log files, inherited fds, exec
// failures, credentials, signal state and the parent-death signal.
#include "src/supervise/spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <limits.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/supervise/test_util.h"

namespace ddv::supervise {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using testing::OpenFds;
using testing::ProbePath;
using testing::ReadFile;
using testing::RunToExit;
using testing::Shell;
using ::testing::StartsWith;
using testing::WaitReadable;

constexpr absl::Duration kWait = absl::Seconds(5);

TEST(SpawnTest, ReportsExitStatusAndSignal) {
  ExitStatus exit3 = RunToExit(Shell("exit 3"));
  EXPECT_TRUE(exit3.exited());
  EXPECT_EQ(exit3.code, 3);
  EXPECT_EQ(exit3.ToString(), "status 3");

  ExitStatus killed = RunToExit(Shell("kill -9 $$"));
  EXPECT_FALSE(killed.exited());
  EXPECT_EQ(killed.signal, SIGKILL);
  EXPECT_THAT(killed.ToString(), StartsWith("signal 9 ("));
}

TEST(SpawnTest, StillRunningIsUnavailable) {
  absl::StatusOr<Spawned> spawned = Spawn(Shell("sleep 5"));
  ASSERT_TRUE(spawned.ok()) << spawned.status();
  EXPECT_EQ(TryReap(spawned->pidfd.get()).status().code(),
            absl::StatusCode::kUnavailable);
  ::kill(spawned->pid, SIGKILL);
  ASSERT_TRUE(WaitReadable(spawned->pidfd.get(), kWait));
  EXPECT_EQ(TryReap(spawned->pidfd.get())->signal, SIGKILL);
}

TEST(SpawnTest, EnvironmentIsBasePlusSpec) {
  const std::string dir = testing::MakeTempDir();
  ProcessSpec spec = Shell("echo \"$A $B $C\"; env | sort");
  spec.stdout_path = dir + "/out";
  spec.env = {{"A", "spec"}, {"C", "c"}};
  EnvList base = CleanBaseEnv();
  base.emplace_back("A", "base");
  base.emplace_back("B", "kept");
  ::setenv("DDV_PARENT_ONLY", "leak", 1);
  EXPECT_EQ(RunToExit(spec, base).code, 0);
  ::unsetenv("DDV_PARENT_ONLY");
  const std::string out = ReadFile(spec.stdout_path);
  EXPECT_THAT(out, StartsWith("spec kept c\n"));
  EXPECT_THAT(out, HasSubstr("\nPATH=/usr/local/sbin:"));
  EXPECT_THAT(out, ::testing::Not(HasSubstr("DDV_PARENT_ONLY")));
  EXPECT_THAT(out, ::testing::Not(HasSubstr("TEST_TMPDIR")));
}

TEST(SpawnTest, StdoutAndStderrGoToTheirFilesAppending) {
  const std::string dir = testing::MakeTempDir();
  ProcessSpec spec = Shell("echo to-out; echo to-err >&2");
  spec.stdout_path = dir + "/a.out";
  spec.stderr_path = dir + "/a.err";
  testing::WriteFile(spec.stdout_path, "earlier\n");
  EXPECT_EQ(RunToExit(spec).code, 0);
  EXPECT_EQ(ReadFile(spec.stdout_path), "earlier\nto-out\n");
  EXPECT_EQ(ReadFile(spec.stderr_path), "to-err\n");
  const mode_t umask_now = ::umask(0);
  ::umask(umask_now);
  struct stat st;
  ASSERT_EQ(::stat(spec.stderr_path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640 & ~umask_now);
}

TEST(SpawnTest, SamePathForBothIsOneLogInOrder) {
  const std::string dir = testing::MakeTempDir();
  ProcessSpec spec = Shell("echo one; echo two >&2; echo three");
  spec.stdout_path = spec.stderr_path = dir + "/all.log";
  EXPECT_EQ(RunToExit(spec).code, 0);
  EXPECT_EQ(ReadFile(spec.stdout_path), "one\ntwo\nthree\n");
}

// A log writer's pipes stand in for the paths (docs/logs.md): nothing is
// opened, and the parent keeps its ends.
TEST(SpawnTest, OutputFdsStandInForThePaths) {
  const std::string dir = testing::MakeTempDir();
  int out[2], err[2];
  ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(err, O_CLOEXEC), 0);
  UniqueFd out_read(out[0]), out_write(out[1]);
  UniqueFd err_read(err[0]), err_write(err[1]);
  ProcessSpec spec = Shell("echo to-out; echo to-err >&2");
  spec.stdout_path = spec.stderr_path = dir + "/all.log";
  spec.stdout_fd = out_write.get();
  spec.stderr_fd = err_write.get();
  EXPECT_EQ(RunToExit(spec).code, 0);
  EXPECT_EQ(::fcntl(out_write.get(), F_GETFD), FD_CLOEXEC) << "still ours";
  out_write.Reset();
  err_write.Reset();
  char buffer[64];
  EXPECT_EQ(::read(out_read.get(), buffer, sizeof(buffer)), 7);
  EXPECT_EQ(std::string(buffer, 7), "to-out\n");
  EXPECT_EQ(::read(err_read.get(), buffer, sizeof(buffer)), 7);
  EXPECT_EQ(std::string(buffer, 7), "to-err\n");
  EXPECT_NE(::access(spec.stdout_path.c_str(), F_OK), 0) << "not opened";

  // One stream piped, the other on its file.
  ProcessSpec half = Shell("echo a; echo b >&2");
  half.stdout_path = half.stderr_path = dir + "/half.log";
  ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
  out_read.Reset(out[0]);
  out_write.Reset(out[1]);
  half.stdout_fd = out_write.get();
  EXPECT_EQ(RunToExit(half).code, 0);
  EXPECT_EQ(ReadFile(half.stderr_path), "b\n");

  ProcessSpec closed = Shell("true");
  closed.stdout_fd = 1000;
  EXPECT_THAT(std::string(Spawn(closed).status().message()),
              HasSubstr("output fd 1000 is not open"));
}

TEST(SpawnTest, InheritedFdsArriveAtTheirNumbersAndNothingElse) {
  const std::string dir = testing::MakeTempDir();
  int first[2], second[2];
  ASSERT_EQ(::pipe2(first, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(second, O_CLOEXEC), 0);
  // A descriptor some library opened without O_CLOEXEC must not leak.
  int careless = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(careless, 0);

  // Swap the two write ends' numbers: each target is the other's source.
  const int a = first[1], b = second[1];
  ProcessSpec spec;
  spec.name = "t#1";
  spec.argv = {ProbePath(), "fds",   "write",         absl::StrCat(b),
               "to-first",  "write", absl::StrCat(a), "to-second"};
  spec.stdout_path = dir + "/out";
  spec.inherit_fds = {{a, b}, {b, a}};
  EXPECT_EQ(RunToExit(spec).code, 0);

  const int lo = std::min(a, b), hi = std::max(a, b);
  EXPECT_EQ(ReadFile(spec.stdout_path),
            absl::StrCat("fds 0 1 2 ", lo, " ", hi, "\n"));
  ::close(first[1]);
  ::close(second[1]);
  char buffer[32] = {};
  ASSERT_EQ(::read(first[0], buffer, sizeof(buffer)), 8);
  EXPECT_EQ(std::string(buffer), "to-first");
  char buffer2[32] = {};
  ASSERT_EQ(::read(second[0], buffer2, sizeof(buffer2)), 9);
  EXPECT_EQ(std::string(buffer2), "to-second");
  ::close(first[0]);
  ::close(second[0]);
  ::close(careless);
}

TEST(SpawnTest, InheritedFdCanReplaceStdio) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  ProcessSpec spec = Shell("echo via-pipe");
  spec.inherit_fds = {{pipe_fds[1], 1}};
  EXPECT_EQ(RunToExit(spec).code, 0);
  ::close(pipe_fds[1]);
  char buffer[32] = {};
  EXPECT_EQ(::read(pipe_fds[0], buffer, sizeof(buffer)), 9);
  EXPECT_EQ(std::string(buffer), "via-pipe\n");
  ::close(pipe_fds[0]);
}

TEST(SpawnTest, ExecFailureIsAStatusNamingPathAndErrno) {
  const std::vector<int> fds_before = OpenFds();
  ProcessSpec spec;
  spec.name = "a#0";
  spec.argv = {"/nonexistent/ddv_hello", "--site=a"};
  absl::StatusOr<Spawned> missing = Spawn(spec);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(),
              AllOf(HasSubstr("execve() failed while starting worker a#0 "
                              "\"/nonexistent/ddv_hello\""),
                    HasSubstr("No such file or directory (errno 2)")));

  spec.argv = {"/etc/passwd"};  // exists, not executable
  absl::StatusOr<Spawned> not_executable = Spawn(spec);
  ASSERT_FALSE(not_executable.ok());
  EXPECT_EQ(not_executable.status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(not_executable.status().message(),
              AllOf(HasSubstr("execve()"), HasSubstr("/etc/passwd")));

  // The failed children were reaped and no descriptor was left behind.
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
  EXPECT_EQ(OpenFds(), fds_before);
}

TEST(SpawnTest, RejectsBadSpecsBeforeForking) {
  const std::vector<int> fds_before = OpenFds();
  ProcessSpec relative = Shell("true");
  relative.argv[0] = "sh";
  EXPECT_EQ(Spawn(relative).status().code(),
            absl::StatusCode::kInvalidArgument);

  ProcessSpec empty;
  EXPECT_EQ(Spawn(empty).status().code(), absl::StatusCode::kInvalidArgument);

  ProcessSpec closed_fd = Shell("true");
  closed_fd.inherit_fds = {{999, 3}};
  EXPECT_THAT(Spawn(closed_fd).status().message(),
              HasSubstr("inherited fd 999 is not open"));

  ProcessSpec twice = Shell("true");
  twice.inherit_fds = {{0, 5}, {1, 5}};
  EXPECT_EQ(Spawn(twice).status().code(), absl::StatusCode::kInvalidArgument);

  ProcessSpec user = Shell("true");
  user.user = "no-such-user-ddv";
  EXPECT_EQ(Spawn(user).status().code(), absl::StatusCode::kNotFound);
  ProcessSpec group = Shell("true");
  group.group = "no-such-group-ddv";
  EXPECT_EQ(Spawn(group).status().code(), absl::StatusCode::kNotFound);

  ProcessSpec log = Shell("true");
  log.stdout_path = "/nonexistent/dir/a.out";
  absl::Status status = Spawn(log).status();
  EXPECT_THAT(status.message(),
              HasSubstr("open() failed while opening log "
                        "\"/nonexistent/dir/a.out\" for worker t#0"));

  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);
  EXPECT_EQ(OpenFds(), fds_before);
}

TEST(SpawnTest, ChildStartsWithCleanSignalsOwnGroupAndPdeathsig) {
  const std::string dir = testing::MakeTempDir();
  // The master blocks what it reads through a signalfd and ignores SIGPIPE.
  sigset_t block, old_mask;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGHUP);
  ASSERT_EQ(::sigprocmask(SIG_BLOCK, &block, &old_mask), 0);
  struct sigaction ignore = {}, old_pipe;
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGPIPE, &ignore, &old_pipe), 0);

  ProcessSpec spec;
  spec.name = "t#2";
  spec.argv = {ProbePath(), "signals", "pdeathsig", "pgid"};
  spec.stdout_path = dir + "/out";
  ExitStatus status = RunToExit(spec);

  ::sigaction(SIGPIPE, &old_pipe, nullptr);
  ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
  EXPECT_EQ(status.code, 0);
  EXPECT_EQ(ReadFile(spec.stdout_path),
            "SigBlk:\t0000000000000000\n"
            "SigIgn:\t0000000000000000\n"
            "pdeathsig 15\n"
            "pgid_is_pid 1\n");
}

// What a site's worker gets on top (docs/isolation.md): its limits, soft
// and hard alike; its directory; no new privileges; a session of its own.
TEST(SpawnTest, WorkerSpecSetsLimitsCwdNoNewPrivsAndSession) {
  const std::string dir = testing::MakeTempDir();
  ProcessSpec spec;
  spec.name = "t#5";
  spec.argv = {ProbePath(), "limits", "cwd", "status", "sid"};
  spec.stdout_path = dir + "/out";
  spec.rlimits = {{RLIMIT_NOFILE, 64}, {RLIMIT_CORE, 0},
                  {RLIMIT_AS, RLIM_INFINITY}, {RLIMIT_MEMLOCK, 1 << 20}};
  spec.cwd = dir;
  spec.no_new_privs = true;
  spec.new_session = true;
  ASSERT_EQ(RunToExit(spec).code, 0);
  const std::string out = ReadFile(spec.stdout_path);
  EXPECT_THAT(out, HasSubstr("nofile 64 64\n"));
  EXPECT_THAT(out, HasSubstr("core 0 0\n"));
  EXPECT_THAT(out, HasSubstr("as unlimited unlimited\n"));
  EXPECT_THAT(out, HasSubstr("memlock 1048576 1048576\n"));
  EXPECT_THAT(out, HasSubstr("cwd " + dir + "\n"));
  EXPECT_THAT(out, HasSubstr("NoNewPrivs:\t1\n"));
  EXPECT_THAT(out, HasSubstr("sid_is_pid 1\n"));
}

// Without them (the watchdog's master): the parent's limits, directory and
// session, and exec may still grant privileges.
TEST(SpawnTest, DefaultSpecKeepsTheParents) {
  const std::string dir = testing::MakeTempDir();
  struct rlimit nofile;
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &nofile), 0);
  char cwd[PATH_MAX];
  ASSERT_NE(::getcwd(cwd, sizeof(cwd)), nullptr);
  ProcessSpec spec;
  spec.name = "t#6";
  spec.argv = {ProbePath(), "limits", "cwd", "status", "sid"};
  spec.stdout_path = dir + "/out";
  ASSERT_EQ(RunToExit(spec).code, 0);
  const std::string out = ReadFile(spec.stdout_path);
  EXPECT_THAT(out, HasSubstr(absl::StrCat(
                       "nofile ", static_cast<uint64_t>(nofile.rlim_cur), " ",
                       static_cast<uint64_t>(nofile.rlim_max), "\n")));
  EXPECT_THAT(out, HasSubstr(absl::StrCat("cwd ", cwd, "\n")));
  EXPECT_THAT(out, HasSubstr("NoNewPrivs:\t0\n"));
  EXPECT_THAT(out, HasSubstr("sid_is_pid 0\n"));
}

// A limit the kernel refuses (nofile above fs.nr_open, refused even to
// root) fails the start with the call and the resource named.
TEST(SpawnTest, RefusedLimitFailsTheStartNamingTheResource) {
  ProcessSpec spec = Shell("exit 0");
  spec.name = "a#1";
  spec.rlimits = {{RLIMIT_NOFILE, rlim_t{1} << 40}};
  absl::StatusOr<Spawned> spawned = Spawn(spec);
  ASSERT_FALSE(spawned.ok());
  EXPECT_THAT(spawned.status().message(),
              AllOf(HasSubstr("setrlimit() failed while setting "
                              "RLIMIT_NOFILE to 1099511627776 while "
                              "starting worker a#1 \"/bin/sh\""),
                    HasSubstr("Operation not permitted")));
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);  // reaped
}

TEST(SpawnTest, MissingCwdFailsTheStart) {
  ProcessSpec spec = Shell("exit 0");
  spec.cwd = "/nonexistent-ddv-cwd";
  absl::StatusOr<Spawned> spawned = Spawn(spec);
  ASSERT_FALSE(spawned.ok());
  EXPECT_THAT(spawned.status().message(),
              AllOf(HasSubstr("chdir() failed while entering "
                              "\"/nonexistent-ddv-cwd\" while starting "
                              "worker t#0"),
                    HasSubstr("No such file or directory")));
}

// The child joins its cgroup by writing "0" (itself) to cgroup.procs,
// opened by the parent. A plain directory stands in for the cgroup here;
// tests/supervise/cgroup_test.cc and the e2e test use real ones.
TEST(SpawnTest, JoinsItsCgroupBeforeExec) {
  const std::string cgroup = testing::MakeTempDir();
  testing::WriteFile(cgroup + "/cgroup.procs", "");
  ProcessSpec spec = Shell("exit 0");
  spec.cgroup = cgroup;
  ASSERT_EQ(RunToExit(spec).code, 0);
  EXPECT_EQ(ReadFile(cgroup + "/cgroup.procs"), "0");

  spec.cgroup = cgroup + "/gone";
  absl::StatusOr<Spawned> spawned = Spawn(spec);
  ASSERT_FALSE(spawned.ok());
  EXPECT_THAT(spawned.status().message(),
              HasSubstr("open() failed while opening \"" + cgroup +
                        "/gone/cgroup.procs\" while starting worker t#0"));
}

TEST(SpawnTest, WorkerGetsSigtermWhenItsParentDies) {
  // We adopt the orphaned worker so we can see how it died.
  ASSERT_TRUE(BecomeSubreaper().ok());
  int pid_pipe[2];
  ASSERT_EQ(::pipe2(pid_pipe, O_CLOEXEC), 0);
  const pid_t middle = ::fork();
  ASSERT_GE(middle, 0);
  if (middle == 0) {
    // A stand-in master: spawn a long-running worker, then die abruptly.
    ProcessSpec spec;
    spec.name = "t#5";
    spec.argv = {ProbePath(), "sleep", "30"};
    absl::StatusOr<Spawned> spawned = Spawn(spec);
    pid_t pid = spawned.ok() ? spawned->pid : 0;
    (void)!::write(pid_pipe[1], &pid, sizeof(pid));
    ::_exit(0);
  }
  ::close(pid_pipe[1]);
  pid_t worker = 0;
  ASSERT_EQ(::read(pid_pipe[0], &worker, sizeof(worker)),
            static_cast<ssize_t>(sizeof(worker)));
  ::close(pid_pipe[0]);
  ASSERT_GT(worker, 0);
  ASSERT_EQ(::waitpid(middle, nullptr, 0), middle);

  // Now our child (subreaper); it must die of SIGTERM on its own.
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, worker, 0));
  ASSERT_GE(pidfd, 0);
  ASSERT_TRUE(WaitReadable(pidfd, kWait)) << "worker outlived its parent";
  absl::StatusOr<ExitStatus> status = TryReap(pidfd);
  ::close(pidfd);
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->signal, SIGTERM);
}

TEST(SpawnTest, NoDescriptorLeftInTheParent) {
  const std::vector<int> fds_before = OpenFds();
  const std::string dir = testing::MakeTempDir();
  ProcessSpec spec = Shell("echo x; echo y >&2");
  spec.stdout_path = dir + "/o";
  spec.stderr_path = dir + "/e";
  for (int i = 0; i < 3; ++i) EXPECT_EQ(RunToExit(spec).code, 0);
  EXPECT_EQ(OpenFds(), fds_before);
}

}  // namespace
}  // namespace ddv::supervise
