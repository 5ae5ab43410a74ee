// Spawn: fork + exec of one worker. The parent prepares every byte the child
// needs (argv, envp, opened log files, resolved ids) so that between fork and
// execve the child only makes async-signal-safe syscalls and never allocates.
#include "src/supervise/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <pwd.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "src/base/errno_status.h"

namespace ddv::supervise {
namespace {

// The step of the child's set-up that failed, sent to the parent with errno.
enum ChildStep : int {
  kSetpgid,
  kMoveFd,
  kDup2,
  kSetgroups,
  kSetgid,
  kSetuid,
  kPdeathsig,
  kParentGone,
  kExecve,
};

// glibc 2.36's <sys/pidfd.h> lacks extern "C", so C++ cannot link its
// wrapper; the raw syscall is the same thing.
int PidfdOpen(pid_t pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

const char* ChildStepCall(int step) {
  switch (step) {
    case kSetpgid:
      return "setpgid";
    case kMoveFd:
      return "fcntl(F_DUPFD_CLOEXEC)";
    case kDup2:
      return "dup2";
    case kSetgroups:
      return "setgroups";
    case kSetgid:
      return "setgid";
    case kSetuid:
      return "setuid";
    case kPdeathsig:
      return "prctl(PR_SET_PDEATHSIG)";
    case kParentGone:
      return "getppid";
    case kExecve:
      return "execve";
  }
  return "child set-up";
}

struct ChildReport {
  int step;
  int error;
};

// Credentials to switch to, resolved in the parent (NSS is not
// async-signal-safe).
struct Credentials {
  bool set_groups = false;
  bool set_gid = false;
  bool set_uid = false;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
  std::string home;  // from passwd when switching user
  std::string user_name;
};

// The kernel's struct sigaction (not glibc's, whose mask is 128 bytes).
struct KernelSigaction {
  void (*handler)(int);
  unsigned long flags;
  void (*restorer)();
  uint64_t mask;
};

// One dup2 the child performs: `from` (a parent fd) becomes `to`.
struct FdMove {
  int from;
  int to;
};

std::string Doing(const ProcessSpec& spec) {
  return absl::StrCat("starting worker ", spec.name, " \"",
                      spec.argv.empty() ? "" : spec.argv[0], "\"");
}

absl::Status ResolveCredentials(const ProcessSpec& spec, Credentials* creds) {
  if (spec.user.empty() && spec.group.empty()) return absl::OkStatus();
  long size = ::sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buffer(size > 0 ? size : 16384);
  if (!spec.user.empty()) {
    struct passwd pw;
    struct passwd* found = nullptr;
    int rc;
    while ((rc = ::getpwnam_r(spec.user.c_str(), &pw, buffer.data(),
                              buffer.size(), &found)) == ERANGE) {
      buffer.resize(buffer.size() * 2);
    }
    if (rc != 0) {
      return ErrnoStatus(rc, "getpwnam_r",
                         absl::StrCat("looking up user \"", spec.user,
                                      "\" for worker ", spec.name));
    }
    if (found == nullptr) {
      return absl::NotFoundError(absl::StrCat("unknown user \"", spec.user,
                                              "\" for worker ", spec.name));
    }
    creds->set_uid = true;
    creds->set_gid = true;
    creds->uid = pw.pw_uid;
    creds->gid = pw.pw_gid;
    creds->home = pw.pw_dir;
    creds->user_name = pw.pw_name;
  }
  if (!spec.group.empty()) {
    long gsize = ::sysconf(_SC_GETGR_R_SIZE_MAX);
    if (gsize > 0 && static_cast<size_t>(gsize) > buffer.size()) {
      buffer.resize(gsize);
    }
    struct group gr;
    struct group* found = nullptr;
    int rc;
    while ((rc = ::getgrnam_r(spec.group.c_str(), &gr, buffer.data(),
                              buffer.size(), &found)) == ERANGE) {
      buffer.resize(buffer.size() * 2);
    }
    if (rc != 0) {
      return ErrnoStatus(rc, "getgrnam_r",
                         absl::StrCat("looking up group \"", spec.group,
                                      "\" for worker ", spec.name));
    }
    if (found == nullptr) {
      return absl::NotFoundError(absl::StrCat("unknown group \"", spec.group,
                                              "\" for worker ", spec.name));
    }
    creds->set_gid = true;
    creds->gid = gr.gr_gid;
  }
  if (creds->set_uid) {
    // The user's supplementary groups, with the chosen primary group.
    int count = 32;
    creds->groups.resize(count);
    while (::getgrouplist(creds->user_name.c_str(), creds->gid,
                          creds->groups.data(), &count) == -1) {
      creds->groups.resize(std::max<size_t>(count, creds->groups.size() * 2));
      count = static_cast<int>(creds->groups.size());
    }
    creds->groups.resize(count);
  } else {
    creds->groups = {creds->gid};
  }
  // Only root may set supplementary groups; a non-root master can still run
  // a worker as itself.
  creds->set_groups = ::geteuid() == 0;
  if (::geteuid() != 0 && creds->set_uid && creds->uid == ::getuid() &&
      creds->gid == ::getgid()) {
    creds->set_uid = creds->set_gid = false;
  }
  return absl::OkStatus();
}

absl::StatusOr<UniqueFd> OpenLog(const std::string& path,
                                 const ProcessSpec& spec) {
  int fd =
      ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) {
    return ErrnoStatus(
        errno, "open",
        absl::StrCat("opening log \"", path, "\" for worker ", spec.name));
  }
  return UniqueFd(fd);
}

// Writes the failed step to the parent and exits. Async-signal-safe.
[[noreturn]] void ChildFail(int report_fd, int step, int error) {
  ChildReport report{step, error};
  ssize_t n;
  do {
    n = ::write(report_fd, &report, sizeof(report));
  } while (n < 0 && errno == EINTR);
  ::_exit(127);
}

// Everything between fork and execve. Only async-signal-safe calls, no
// allocation: all inputs were prepared by the parent.
[[noreturn]] void RunChild(int report_fd, pid_t parent,
                           int parent_death_signal, int floor,
                           const std::vector<FdMove>& moves,
                           std::vector<int>& scratch, const Credentials& creds,
                           char* const* argv, char* const* envp) {
  // Own process group: the supervisor signals the worker and its helpers as
  // one, and a terminal's Ctrl-C reaches only the master.
  if (::setpgid(0, 0) != 0) ChildFail(report_fd, kSetpgid, errno);

  // Lift the report pipe and every source fd above all target numbers, so
  // the dup2s below can never overwrite a source not yet moved.
  int report = ::fcntl(report_fd, F_DUPFD_CLOEXEC, floor);
  if (report < 0) ChildFail(report_fd, kMoveFd, errno);
  for (size_t i = 0; i < moves.size(); ++i) {
    scratch[i] = ::fcntl(moves[i].from, F_DUPFD_CLOEXEC, floor);
    if (scratch[i] < 0) ChildFail(report, kMoveFd, errno);
  }
  // Everything above stdio closes on exec, including fds some library opened
  // without O_CLOEXEC. Best effort: before Linux 5.11 this is EINVAL.
  ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
  // dup2 clears FD_CLOEXEC on the target, so exactly these survive exec.
  for (size_t i = 0; i < moves.size(); ++i) {
    if (::dup2(scratch[i], moves[i].to) < 0) ChildFail(report, kDup2, errno);
  }

  // Groups first, then gid, then uid: afterwards we may no longer change them.
  if (creds.set_groups &&
      ::setgroups(creds.groups.size(), creds.groups.data()) != 0) {
    ChildFail(report, kSetgroups, errno);
  }
  if (creds.set_gid && ::setgid(creds.gid) != 0) {
    ChildFail(report, kSetgid, errno);
  }
  if (creds.set_uid && ::setuid(creds.uid) != 0) {
    ChildFail(report, kSetuid, errno);
  }

  // After the credential change, which clears it. If the master died before
  // this line the signal would never come: check and give up.
  if (parent_death_signal != 0) {
    if (::prctl(PR_SET_PDEATHSIG, parent_death_signal) != 0) {
      ChildFail(report, kPdeathsig, errno);
    }
    if (::getppid() != parent) ChildFail(report, kParentGone, ESRCH);
  }

  // Ignored signals stay ignored across exec (the master ignores SIGPIPE);
  // blocked ones stay blocked (the master may block what it reads from a
  // signalfd). Reset both: dispositions first, then unblock. The raw
  // syscall also reaches the two real-time signals glibc reserves (its
  // sigaction() refuses them) and bypasses sanitizer interceptors.
  KernelSigaction dfl;
  ::memset(&dfl, 0, sizeof(dfl));
  dfl.handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    ::syscall(SYS_rt_sigaction, sig, &dfl, nullptr, sizeof(dfl.mask));
  }
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);

  ::execve(argv[0], argv, envp);
  ChildFail(report, kExecve, errno);
}

}  // namespace

EnvList CleanBaseEnv() {
  EnvList env = {
      {"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}};
  for (const char* name : {"TZ", "LANG", "LC_ALL"}) {
    if (const char* value = std::getenv(name)) env.emplace_back(name, value);
  }
  return env;
}

absl::StatusOr<Spawned> Spawn(const ProcessSpec& spec,
                              const EnvList& base_env) {
  if (spec.argv.empty() || spec.argv[0].empty() || spec.argv[0][0] != '/') {
    return absl::InvalidArgumentError(absl::StrCat(
        "worker ", spec.name, ": argv[0] must be an absolute path, got \"",
        spec.argv.empty() ? "" : spec.argv[0], "\""));
  }

  // fds: stdin on /dev/null, log files, then the inherited ones.
  UniqueFd dev_null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!dev_null) {
    return ErrnoStatus(errno, "open", "opening /dev/null for " + Doing(spec));
  }
  std::vector<FdMove> moves = {{dev_null.get(), 0}};
  UniqueFd out_log, err_log;
  // Pipes to the log writer, when the caller made them (docs/logs.md): each
  // stands in for its stream's path.
  const bool stdout_piped = spec.stdout_fd >= 0;
  const bool stderr_piped = spec.stderr_fd >= 0;
  for (int fd : {spec.stdout_fd, spec.stderr_fd}) {
    if (fd >= 0 && ::fcntl(fd, F_GETFD) < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "worker ", spec.name, ": output fd ", fd, " is not open"));
    }
  }
  if (stdout_piped) moves.push_back({spec.stdout_fd, 1});
  if (stderr_piped) moves.push_back({spec.stderr_fd, 2});
  if (!stdout_piped && !spec.stdout_path.empty()) {
    absl::StatusOr<UniqueFd> fd = OpenLog(spec.stdout_path, spec);
    if (!fd.ok()) return fd.status();
    out_log = *std::move(fd);
    moves.push_back({out_log.get(), 1});
  }
  if (!stderr_piped && !spec.stderr_path.empty()) {
    if (spec.stderr_path == spec.stdout_path && out_log) {
      moves.push_back({out_log.get(), 2});  // one file, one offset: log_all
    } else {
      absl::StatusOr<UniqueFd> fd = OpenLog(spec.stderr_path, spec);
      if (!fd.ok()) return fd.status();
      err_log = *std::move(fd);
      moves.push_back({err_log.get(), 2});
    }
  }
  absl::flat_hash_set<int> targets;
  int floor = 3;
  for (const auto& [from, to] : spec.inherit_fds) {
    if (to < 0 || !targets.insert(to).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("worker ", spec.name, ": inherited fd target ", to,
                       " is negative or given twice"));
    }
    if (from < 0 || ::fcntl(from, F_GETFD) < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "worker ", spec.name, ": inherited fd ", from, " is not open"));
    }
    moves.push_back({from, to});
    floor = std::max(floor, to + 1);
  }
  std::vector<int> scratch(moves.size(), -1);

  Credentials creds;
  if (absl::Status s = ResolveCredentials(spec, &creds); !s.ok()) return s;

  // argv and envp as the NULL-terminated arrays execve wants.
  std::vector<char*> argv;
  for (const std::string& arg : spec.argv) {
    argv.push_back(const_cast<char*>(arg.c_str()));
  }
  argv.push_back(nullptr);
  EnvList merged = base_env;
  if (creds.set_uid) {
    merged.emplace_back("HOME", creds.home);
    merged.emplace_back("USER", creds.user_name);
    merged.emplace_back("LOGNAME", creds.user_name);
  }
  merged.insert(merged.end(), spec.env.begin(), spec.env.end());
  std::vector<std::string> env_strings;
  absl::flat_hash_set<std::string> seen;
  for (auto it = merged.rbegin(); it != merged.rend(); ++it) {  // last wins
    if (seen.insert(it->first).second) {
      env_strings.push_back(absl::StrCat(it->first, "=", it->second));
    }
  }
  std::reverse(env_strings.begin(), env_strings.end());
  std::vector<char*> envp;
  for (std::string& entry : env_strings) envp.push_back(entry.data());
  envp.push_back(nullptr);

  int report_pipe[2];
  if (::pipe2(report_pipe, O_CLOEXEC) != 0) {
    return ErrnoStatus(errno, "pipe2", Doing(spec));
  }
  UniqueFd report_read(report_pipe[0]);
  UniqueFd report_write(report_pipe[1]);

  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) return ErrnoStatus(errno, "fork", Doing(spec));
  if (pid == 0) {
    RunChild(report_write.get(), parent, spec.parent_death_signal, floor,
             moves, scratch, creds,
             argv.data(), envp.data());
  }
  report_write.Reset();

  // The child cannot be reaped by anyone but us before this, so `pid` still
  // names it.
  UniqueFd pidfd(PidfdOpen(pid));
  if (!pidfd) {
    int error = errno;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return ErrnoStatus(error, "pidfd_open", Doing(spec));
  }

  // EOF: execve succeeded (the pipe was CLOEXEC). A report: it failed.
  ChildReport report;
  ssize_t n;
  do {
    n = ::read(report_read.get(), &report, sizeof(report));
  } while (n < 0 && errno == EINTR);
  if (n == 0) return Spawned{pid, std::move(pidfd)};

  // The child is exiting right after its report; reap it so no zombie stays.
  int read_error = errno;
  siginfo_t info;
  while (::waitid(static_cast<idtype_t>(P_PIDFD), pidfd.get(), &info,
                  WEXITED) != 0 &&
         errno == EINTR) {
  }
  if (n == static_cast<ssize_t>(sizeof(report))) {
    return ErrnoStatus(report.error, ChildStepCall(report.step), Doing(spec));
  }
  return ErrnoStatus(n < 0 ? read_error : EPROTO, "read",
                     "reading the exec report while " + Doing(spec));
}

ExitStatus ExitStatus::FromSiginfo(const siginfo_t& info) {
  ExitStatus status;
  if (info.si_code == CLD_EXITED) {
    status.code = info.si_status;
  } else {
    status.signal = info.si_status;
    status.core_dumped = info.si_code == CLD_DUMPED;
  }
  return status;
}

std::string ExitStatus::ToString() const {
  if (!known) return "an unknown status (adopted, not our child)";
  if (exited()) return absl::StrCat("status ", code);
  return absl::StrCat("signal ", signal, " (", ::strsignal(signal),
                      core_dumped ? ", core dumped" : "", ")");
}

absl::StatusOr<ExitStatus> TryReap(int pidfd) {
  siginfo_t info;
  ::memset(&info, 0, sizeof(info));
  int rc;
  do {
    rc = ::waitid(static_cast<idtype_t>(P_PIDFD), pidfd, &info,
                  WEXITED | WNOHANG);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) return ErrnoStatus(errno, "waitid", "reaping a worker");
  if (info.si_pid == 0) return absl::UnavailableError("still running");
  return ExitStatus::FromSiginfo(info);
}

absl::Status BecomeSubreaper() {
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
    return ErrnoStatus(errno, "prctl", "becoming the child subreaper");
  }
  return absl::OkStatus();
}

}  // namespace ddv::supervise
