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
  kSetsid,
  kCgroup,
  kMoveFd,
  kCloseRange,
  kDup2,
  kSetrlimit,  // ChildReport.detail: the RLIMIT_* resource
  kSetgroups,
  kSetgid,
  kSetuid,
  kChdir,
  kNoNewPrivs,
  kPdeathsig,
  kParentGone,
  kExecve,
};

// glibc 2.36's <sys/pidfd.h> lacks extern "C", so C++ cannot link its
// wrapper; the raw syscall is the same thing.
int PidfdOpen(pid_t pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

const char* RlimitName(int resource) {
  switch (resource) {
    case RLIMIT_NOFILE:
      return "RLIMIT_NOFILE";
    case RLIMIT_NPROC:
      return "RLIMIT_NPROC";
    case RLIMIT_CORE:
      return "RLIMIT_CORE";
    case RLIMIT_AS:
      return "RLIMIT_AS";
    case RLIMIT_MEMLOCK:
      return "RLIMIT_MEMLOCK";
  }
  return "a resource";
}

const char* ChildStepCall(int step) {
  switch (step) {
    case kSetpgid:
      return "setpgid";
    case kSetsid:
      return "setsid";
    case kCgroup:
      return "write";
    case kMoveFd:
      return "fcntl(F_DUPFD_CLOEXEC)";
    case kCloseRange:
      return "close_range";
    case kDup2:
      return "dup2";
    case kSetrlimit:
      return "setrlimit";
    case kChdir:
      return "chdir";
    case kNoNewPrivs:
      return "prctl";
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

std::string Doing(const ProcessSpec& spec);

// What the failed step was doing, for the steps that need more than the
// worker's name: which limit, directory or cgroup.
std::string ChildStepDoing(int step, int detail, const ProcessSpec& spec) {
  switch (step) {
    case kCgroup:
      return absl::StrCat("joining cgroup \"", spec.cgroup, "\" while ",
                          Doing(spec));
    case kCloseRange:
      return absl::StrCat("closing inherited fds on exec while ", Doing(spec));
    case kSetrlimit:
      for (const auto& [resource, value] : spec.rlimits) {
        if (resource != detail) continue;
        return absl::StrCat(
            "setting ", RlimitName(resource), " to ",
            value == RLIM_INFINITY ? std::string("unlimited")
                                   : absl::StrCat(value),
            " while ", Doing(spec));
      }
      break;
    case kChdir:
      return absl::StrCat("entering \"", spec.cwd, "\" while ", Doing(spec));
    case kNoNewPrivs:
      return absl::StrCat("setting PR_SET_NO_NEW_PRIVS while ", Doing(spec));
  }
  return Doing(spec);
}

struct ChildReport {
  int step;
  int error;
  int detail;  // kSetrlimit: which resource
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
[[noreturn]] void ChildFail(int report_fd, int step, int error,
                            int detail = 0) {
  ChildReport report{step, error, detail};
  ssize_t n;
  do {
    n = ::write(report_fd, &report, sizeof(report));
  } while (n < 0 && errno == EINTR);
  ::_exit(127);
}

// Everything the child needs, prepared by the parent before fork: the child
// reads it and allocates nothing.
struct ChildPlan {
  int report_fd = -1;
  pid_t parent = 0;
  int parent_death_signal = 0;
  int floor = 3;  // above every inherited fd's target number
  const std::vector<FdMove>* moves = nullptr;
  std::vector<int>* scratch = nullptr;  // one slot per move
  const Credentials* creds = nullptr;
  int cgroup_procs_fd = -1;  // the cgroup to join, or -1
  const std::vector<std::pair<int, rlim_t>>* rlimits = nullptr;
  const char* cwd = nullptr;  // nullptr: stay in the parent's
  bool no_new_privs = false;
  bool new_session = false;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
};

// Everything between fork and execve. Only async-signal-safe calls, no
// allocation: all inputs were prepared by the parent.
[[noreturn]] void RunChild(const ChildPlan& plan) {
  // Own process group: the supervisor signals the worker and its helpers as
  // one, and a terminal's Ctrl-C reaches only the master. A new session
  // also leaves the master's controlling terminal behind.
  if (plan.new_session) {
    if (::setsid() < 0) ChildFail(plan.report_fd, kSetsid, errno);
  } else if (::setpgid(0, 0) != 0) {
    ChildFail(plan.report_fd, kSetpgid, errno);
  }

  // Into the site's cgroup before anything it should be charged for: "0"
  // moves the writer itself. Before the credential change, which could
  // take away the right to.
  if (plan.cgroup_procs_fd >= 0 && ::write(plan.cgroup_procs_fd, "0", 1) != 1) {
    ChildFail(plan.report_fd, kCgroup, errno);
  }

  // Lift the report pipe and every source fd above all target numbers, so
  // the dup2s below can never overwrite a source not yet moved.
  const std::vector<FdMove>& moves = *plan.moves;
  std::vector<int>& scratch = *plan.scratch;
  int report = ::fcntl(plan.report_fd, F_DUPFD_CLOEXEC, plan.floor);
  if (report < 0) ChildFail(plan.report_fd, kMoveFd, errno);
  for (size_t i = 0; i < moves.size(); ++i) {
    scratch[i] = ::fcntl(moves[i].from, F_DUPFD_CLOEXEC, plan.floor);
    if (scratch[i] < 0) ChildFail(report, kMoveFd, errno);
  }
  // Everything above stdio closes on exec, including fds some library opened
  // without O_CLOEXEC (a listener, another worker's channel, the control
  // socket must never reach a worker). Linux 5.11+; the master needs newer
  // io_uring features anyway, so a failure is an error, not a leak.
  if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    ChildFail(report, kCloseRange, errno);
  }
  // dup2 clears FD_CLOEXEC on the target, so exactly these survive exec.
  for (size_t i = 0; i < moves.size(); ++i) {
    if (::dup2(scratch[i], moves[i].to) < 0) ChildFail(report, kDup2, errno);
  }

  // Limits before the credential change: lowering needs nothing, raising a
  // hard limit needs CAP_SYS_RESOURCE, which a uid change drops. Soft and
  // hard alike, so the worker cannot raise its own again.
  for (const auto& [resource, value] : *plan.rlimits) {
    const struct rlimit limit = {value, value};
    if (::setrlimit(static_cast<__rlimit_resource_t>(resource), &limit) != 0) {
      ChildFail(report, kSetrlimit, errno, resource);
    }
  }

  // Groups first, then gid, then uid: afterwards we may no longer change them.
  const Credentials& creds = *plan.creds;
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

  // As the worker's own user: a directory it may not enter fails here,
  // with the reason, not later inside the app.
  if (plan.cwd != nullptr && ::chdir(plan.cwd) != 0) {
    ChildFail(report, kChdir, errno);
  }
  if (plan.no_new_privs && ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    ChildFail(report, kNoNewPrivs, errno);
  }

  // After the credential change, which clears it. If the master died before
  // this line the signal would never come: check and give up.
  if (plan.parent_death_signal != 0) {
    if (::prctl(PR_SET_PDEATHSIG, plan.parent_death_signal) != 0) {
      ChildFail(report, kPdeathsig, errno);
    }
    if (::getppid() != plan.parent) ChildFail(report, kParentGone, ESRCH);
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

  ::execve(plan.argv[0], plan.argv, plan.envp);
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

  // The cgroup's cgroup.procs, opened here: the child only writes to it.
  UniqueFd cgroup_procs;
  if (!spec.cgroup.empty()) {
    const std::string procs = spec.cgroup + "/cgroup.procs";
    cgroup_procs = UniqueFd(::open(procs.c_str(), O_WRONLY | O_CLOEXEC));
    if (!cgroup_procs) {
      return ErrnoStatus(errno, "open",
                         absl::StrCat("opening \"", procs, "\" while ",
                                      Doing(spec)));
    }
  }

  ChildPlan plan;
  plan.report_fd = report_write.get();
  plan.parent = ::getpid();
  plan.parent_death_signal = spec.parent_death_signal;
  plan.floor = floor;
  plan.moves = &moves;
  plan.scratch = &scratch;
  plan.creds = &creds;
  plan.cgroup_procs_fd = cgroup_procs.get();
  plan.rlimits = &spec.rlimits;
  plan.cwd = spec.cwd.empty() ? nullptr : spec.cwd.c_str();
  plan.no_new_privs = spec.no_new_privs;
  plan.new_session = spec.new_session;
  plan.argv = argv.data();
  plan.envp = envp.data();
  const pid_t pid = ::fork();
  if (pid < 0) return ErrnoStatus(errno, "fork", Doing(spec));
  if (pid == 0) RunChild(plan);
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
    return ErrnoStatus(report.error, ChildStepCall(report.step),
                       ChildStepDoing(report.step, report.detail, spec));
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
