// Process primitives for the supervisor: start one worker (fork + exec with
// its fds, credentials and log files set up) and describe how it ended.
// Nothing here blocks for long, starts threads or installs signal handlers,
// so the master's single io_uring loop can drive it.
#ifndef DDV_SRC_SUPERVISE_SPAWN_H_
#define DDV_SRC_SUPERVISE_SPAWN_H_

#include <signal.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "src/base/unique_fd.h"

namespace ddv::supervise {

// NAME=value pairs, in order; a later entry replaces an earlier one.
using EnvList = std::vector<std::pair<std::string, std::string>>;

// What to run and how. Everything is resolved (user names, log files) by the
// parent before fork, so the child only makes async-signal-safe syscalls.
struct ProcessSpec {
  std::string name;               // "a#0": site id, '#', index; for logs
  std::vector<std::string> argv;  // argv[0] absolute (no PATH search)
  EnvList env;                    // added to, overriding, the base env
  // "" = inherit the parent's. Opened O_WRONLY|O_APPEND|O_CREAT, mode 0640.
  // The same path for both opens one file once (log_all).
  std::string stdout_path;
  std::string stderr_path;
  // Instead of opening the paths: fds in the parent to dup onto stdout and
  // stderr, e.g. the write ends of pipes a log writer reads
  // (src/logwriter/, docs/logs.md). -1: the path. Not closed by Spawn.
  int stdout_fd = -1;
  int stderr_fd = -1;
  // Size rotation of the log files, for the log writer that routes them
  // (a site's log_max_bytes and log_keep); Spawn itself only appends.
  uint64_t log_max_bytes = 0;
  uint32_t log_keep = 0;
  // Optional. `user` alone also takes the user's primary group and its
  // supplementary groups; `group` alone changes only the group.
  std::string user;
  std::string group;
  // (fd in the parent, fd number in the child), e.g. the worker's end of its
  // channel. Every other fd above 2 is closed on exec, even ones a library
  // forgot to open with O_CLOEXEC. Targets must be distinct; a target of 0, 1
  // or 2 overrides the stdio set up above.
  std::vector<std::pair<int, int>> inherit_fds;
  // PR_SET_PDEATHSIG: the signal the process gets when its parent dies; 0
  // for none. A master alone kills its workers this way; under a watchdog
  // the workers outlive it (docs/lifecycle.md).
  int parent_death_signal = SIGTERM;

  // What a site's worker gets on top (docs/isolation.md); the defaults
  // keep the parent's, as the watchdog wants for its master.
  // (RLIMIT_*, value): set before the credential change, as soft and hard
  // limit both, so the process cannot raise them again. RLIM_INFINITY is
  // "unlimited". Raising a hard limit needs CAP_SYS_RESOURCE.
  std::vector<std::pair<int, rlim_t>> rlimits;
  // The working directory, entered after the credential change, so the
  // process's own user must be able to enter it. "": the parent's.
  std::string cwd;
  // A cgroup v2 directory the process moves into first, before it makes
  // anything the cgroup should account (its cgroup.procs is opened by the
  // parent). "": the parent's cgroup.
  std::string cgroup;
  // PR_SET_NO_NEW_PRIVS: no execve() can grant privileges again (set-id
  // binaries, file capabilities).
  bool no_new_privs = false;
  // setsid() instead of setpgid(): a session of its own, so it has no
  // controlling terminal (no TIOCSTI into the terminal the master was
  // started from). It still leads its own process group.
  bool new_session = false;
};

// The parent's write ends of the pipes a process's stdout and stderr go to
// instead of its spec's files (ProcessTable::set_stdio_router). An invalid
// one leaves that stream on its path. Closed once the process has them.
struct StdioPipes {
  UniqueFd out;
  UniqueFd err;
  // One pipe for both streams (log_all): stderr goes to `out` too, in the
  // order the process writes, as it did to one file.
  bool err_to_out = false;
};

// The environment every worker starts from: a fixed PATH plus TZ, LANG and
// LC_ALL when the parent has them. Nothing else of the parent's leaks.
EnvList CleanBaseEnv();

struct Spawned {
  pid_t pid = 0;
  UniqueFd pidfd;  // readable once the process has exited; O_CLOEXEC
};

// Starts `spec` with `base_env` + spec.env. The child runs in its own process
// group (so the supervisor can signal the worker and whatever it forked),
// with stdin on /dev/null, all signal dispositions default and an empty
// signal mask, PR_SET_PDEATHSIG(spec.parent_death_signal) set after the
// credential change (a uid change would clear it), and then execve().
// In order: setsid/setpgid, the cgroup, the fds (every fd above 2 but the
// inherited ones is closed on exec: close_range, which must work), the
// rlimits, setgroups, setgid, setuid, chdir, no_new_privs, the death
// signal, signal state, execve.
//
// Returns once the child has exec'd: a failure in the child (execve, setuid,
// ...) comes back through a CLOEXEC pipe as a Status naming the call, the
// worker and the path, e.g.
//   execve() failed while starting worker a#0 "/bin/nope": No such file ...
// and the dead child is reaped before returning. The wait is only for the
// child's few syscalls before exec, never for the program itself.
//
// PR_SET_PDEATHSIG fires when the *thread* that forked exits: call Spawn from
// the master's loop thread.
absl::StatusOr<Spawned> Spawn(const ProcessSpec& spec,
                              const EnvList& base_env = CleanBaseEnv());

// How a process ended, from waitid()'s siginfo.
struct ExitStatus {
  int code = -1;   // exit status when it exited, else -1
  int signal = 0;  // the signal that killed it, else 0
  bool core_dumped = false;

  bool known = true;  // false: not our child (adopted), status unknown

  static ExitStatus FromSiginfo(const siginfo_t& info);
  static ExitStatus Unknown() {
    ExitStatus status;
    status.known = false;
    return status;
  }
  bool exited() const { return signal == 0; }
  // "status 1", "signal 9 (Killed)", "signal 11 (Segmentation fault, core
  // dumped)".
  std::string ToString() const;
};

// Reaps the process behind `pidfd` if it has exited (waitid(P_PIDFD,
// WNOHANG)). Returns its ExitStatus, or kUnavailable while it still runs.
absl::StatusOr<ExitStatus> TryReap(int pidfd);

// Makes this process the reaper of its descendants' orphans
// (PR_SET_CHILD_SUBREAPER), so a worker's forked helpers that outlive it come
// back here to be reaped and counted, instead of escaping to init. The
// watchdog calls it once at start.
absl::Status BecomeSubreaper();

}  // namespace ddv::supervise

#endif  // DDV_SRC_SUPERVISE_SPAWN_H_
