// Supervisor test helpers: every wait here is bounded by its caller's timeout.
#include "tests/supervise/test_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <sstream>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace ddv::supervise::testing {

std::string MakeTempDir() {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string pattern = std::string(base ? base : "/tmp") + "/supXXXXXX";
  char* dir = ::mkdtemp(pattern.data());
  EXPECT_NE(dir, nullptr);
  return pattern;
}

std::string MakeWorldDir() {
  std::string pattern = "/tmp/ddv-supXXXXXX";
  char* dir = ::mkdtemp(pattern.data());
  EXPECT_NE(dir, nullptr);
  ::chmod(pattern.c_str(), 0777);
  return pattern;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

std::vector<int> OpenFds() {
  std::vector<int> fds;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return fds;
  while (dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    int fd = std::atoi(entry->d_name);
    if (fd != ::dirfd(dir)) fds.push_back(fd);
  }
  ::closedir(dir);
  std::sort(fds.begin(), fds.end());
  return fds;
}

bool WaitReadable(int fd, absl::Duration timeout) {
  struct pollfd pfd = {fd, POLLIN, 0};
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    const int ms = static_cast<int>(std::max<int64_t>(
        0, absl::ToInt64Milliseconds(deadline - absl::Now())));
    int n = ::poll(&pfd, 1, ms);
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) return false;
  }
}

bool WaitForFile(const std::string& path, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && st.st_size > 0) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return false;
}

bool WaitGone(pid_t pid, absl::Duration timeout, void (*between)()) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
    if (absl::Now() >= deadline) return false;
    if (between != nullptr) between();
    absl::SleepFor(absl::Milliseconds(10));
  }
}

ProcessSpec Shell(const std::string& script) {
  ProcessSpec spec;
  spec.name = "t#0";
  spec.argv = {"/bin/sh", "-c", script};
  return spec;
}

ExitStatus RunToExit(const ProcessSpec& spec, const EnvList& base) {
  absl::StatusOr<Spawned> spawned = Spawn(spec, base);
  EXPECT_TRUE(spawned.ok()) << spawned.status();
  if (!spawned.ok()) return ExitStatus{};
  EXPECT_GT(spawned->pid, 0);
  EXPECT_TRUE(WaitReadable(spawned->pidfd.get(), absl::Seconds(5)))
      << "worker " << spec.name << " did not exit in time";
  absl::StatusOr<ExitStatus> status = TryReap(spawned->pidfd.get());
  EXPECT_TRUE(status.ok()) << status.status();
  if (!status.ok()) {
    ::kill(spawned->pid, SIGKILL);
    ::waitpid(spawned->pid, nullptr, 0);
    return ExitStatus{};
  }
  return *status;
}

std::string ProbePath() {
  char resolved[PATH_MAX];
  if (::realpath("tests/supervise/probe", resolved) == nullptr) {
    ADD_FAILURE() << "probe binary not found in the runfiles";
    return "/nonexistent/probe";
  }
  return resolved;
}

std::string WorldProbePath() {
  const std::string dir = MakeWorldDir();
  const std::string copy = dir + "/probe";
  std::ifstream in(ProbePath(), std::ios::binary);
  std::ofstream out(copy, std::ios::binary);
  out << in.rdbuf();
  out.close();
  ::chmod(copy.c_str(), 0755);
  return copy;
}

}  // namespace ddv::supervise::testing
