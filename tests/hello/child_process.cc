// Child processes for the ddv_hello tests: posix_spawn, pipes, bounded waits.
#include "tests/hello/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

extern char** environ;

namespace ddv {
namespace hello {
namespace testing {

std::string HelloPath() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  return absl::StrCat(srcdir ? srcdir : ".", "/", workspace ? workspace : "ddv",
                      "/src/ddv_hello");
}

Child Spawn(const std::vector<std::string>& argv, const SpawnOptions& options) {
  Child child;
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return child;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  // dup2 clears FD_CLOEXEC on the copy, so the child inherits exactly this.
  if (options.pass_fd >= 0) {
    posix_spawn_file_actions_adddup2(&actions, options.pass_fd,
                                     options.pass_fd_as);
  }
  std::vector<char*> args;
  for (const std::string& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> env;
  for (char** e = environ; *e != nullptr; ++e) env.push_back(*e);
  for (const std::string& e : options.extra_env) {
    env.push_back(const_cast<char*>(e.c_str()));
  }
  env.push_back(nullptr);
  pid_t pid = -1;
  int rc =
      posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), env.data());
  posix_spawn_file_actions_destroy(&actions);
  close(pipe_fds[1]);
  child.out.Reset(pipe_fds[0]);
  if (rc == 0) child.pid = pid;
  return child;
}

std::string ReadAll(int fd, absl::Duration limit) {
  std::string out;
  absl::Time deadline = absl::Now() + limit;
  for (;;) {
    int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (ms <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(ms)) <= 0) break;
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::string ReadLine(int fd, absl::Duration limit) {
  std::string line;
  absl::Time deadline = absl::Now() + limit;
  while (absl::Now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    char c;
    if (read(fd, &c, 1) != 1 || c == '\n') break;
    line += c;
  }
  return line;
}

std::optional<int> WaitExit(pid_t pid, absl::Duration limit) {
  if (pid <= 0) return std::nullopt;
  absl::Time deadline = absl::Now() + limit;
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (r < 0 || absl::Now() >= deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return std::nullopt;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
}

}  // namespace testing
}  // namespace hello
}  // namespace ddv
