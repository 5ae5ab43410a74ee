// ProcessTable: restart policy (back-off, crash loop, exit status 2) and stop
// handling for the master's workers. The event loop does the waiting; this
// file only decides, signals and reaps.
#include "src/supervise/process_table.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "glog/logging.h"
#include "src/base/errno_status.h"

namespace ddv::supervise {
namespace {

// After SIGKILL a process dies at once unless it is stuck in the kernel;
// waits for it are bounded by this.
constexpr absl::Duration kKillWait = absl::Seconds(5);

absl::string_view SiteOf(absl::string_view name) {
  return name.substr(0, name.rfind('#'));
}

int PollTimeoutMs(absl::Duration left) {
  if (left <= absl::ZeroDuration()) return 0;
  return static_cast<int>(std::min<int64_t>(
      absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1))),
      60 * 1000));
}

std::string Describe(const std::string& name, pid_t pid,
                     const ExitStatus& status) {
  return absl::StrCat("worker ", name, " pid ", pid,
                      status.exited() ? " exited with " : " killed by ",
                      status.ToString());
}

}  // namespace

absl::string_view ProcessStateName(ProcessState state) {
  switch (state) {
    case ProcessState::kIdle:
      return "idle";
    case ProcessState::kStarting:
      return "starting";
    case ProcessState::kRunning:
      return "running";
    case ProcessState::kBackoff:
      return "backoff";
    case ProcessState::kStopping:
      return "stopping";
    case ProcessState::kExited:
      return "exited";
    case ProcessState::kFailed:
      return "failed";
    case ProcessState::kDone:
      return "done";
  }
  return "unknown";
}

ProcessTable::ProcessTable(BackoffPolicy policy, Clock clock)
    : policy_(policy),
      clock_(clock ? std::move(clock) : Clock([] { return absl::Now(); })),
      base_env_(CleanBaseEnv()) {}

ProcessTable::~ProcessTable() {
  const absl::Time deadline = absl::Now() + kKillWait;
  for (Slot& s : slots_) {
    if (!s.pidfd) continue;
    LOG(WARNING) << "worker " << s.spec.name << " pid " << s.pid
                 << " still running as its table goes away; SIGKILL";
    SignalGroup(s, SIGKILL);
  }
  for (Slot& s : slots_) {
    if (!s.pidfd) continue;
    struct pollfd pfd = {s.pidfd.get(), POLLIN, 0};
    while (::poll(&pfd, 1, PollTimeoutMs(deadline - absl::Now())) < 0 &&
           errno == EINTR) {
    }
    if (s.adopted) continue;  // its reaper is the watchdog
    if (!TryReap(s.pidfd.get()).ok()) {
      LOG(ERROR) << "worker " << s.spec.name << " pid " << s.pid
                 << " did not die after SIGKILL; left unreaped";
    }
  }
}

int ProcessTable::Add(ProcessSpec spec) {
  Slot slot;
  slot.spec = std::move(spec);
  slots_.push_back(std::move(slot));
  return static_cast<int>(slots_.size()) - 1;
}

ProcessTable::Slot& ProcessTable::At(int slot) {
  CHECK(slot >= 0 && slot < size()) << "no process slot " << slot;
  return slots_[slot];
}

const ProcessTable::Slot& ProcessTable::At(int slot) const {
  CHECK(slot >= 0 && slot < size()) << "no process slot " << slot;
  return slots_[slot];
}

absl::Duration ProcessTable::BackoffDelay(int step) const {
  absl::Duration delay = policy_.initial;
  for (int i = 0; i < step && delay < policy_.max; ++i) {
    delay = delay * policy_.multiplier;
  }
  return std::min(delay, policy_.max);
}

// The stdio router's pipes stand in for the spec's log files for this one
// process; the parent's write ends close once it has its own.
absl::StatusOr<Spawned> ProcessTable::SpawnWithStdio(const ProcessSpec& spec) {
  if (!stdio_router_ ||
      (spec.stdout_path.empty() && spec.stderr_path.empty())) {
    return Spawn(spec, base_env_);
  }
  absl::StatusOr<StdioPipes> pipes = stdio_router_(spec);
  if (!pipes.ok()) return pipes.status();
  if (!pipes->out && !pipes->err) return Spawn(spec, base_env_);
  ProcessSpec routed = spec;
  routed.stdout_fd = pipes->out.get();
  routed.stderr_fd = pipes->err_to_out ? pipes->out.get() : pipes->err.get();
  return Spawn(routed, base_env_);
}

absl::Status ProcessTable::StartSlot(int slot, absl::Time now) {
  Slot& s = slots_[slot];
  absl::StatusOr<Spawned> spawned = SpawnWithStdio(s.spec);
  if (!spawned.ok()) return spawned.status();
  s.pid = spawned->pid;
  s.pidfd = std::move(spawned->pidfd);
  s.started_at = now;
  s.restart_at = absl::InfiniteFuture();
  s.kill_at = absl::InfiniteFuture();
  s.killed = false;
  if (policy_.healthy_after <= absl::ZeroDuration()) {
    s.state = ProcessState::kRunning;
    s.backoff_step = 0;
  } else {
    s.state = ProcessState::kStarting;
  }
  LOG(INFO) << "worker " << s.spec.name << " started, pid " << s.pid;
  if (on_started_) on_started_(slot, s.pid);
  return absl::OkStatus();
}

std::string ProcessTable::ScheduleRestart(Slot& s, absl::Time now) {
  s.recent_exits.push_back(now);
  while (!s.recent_exits.empty() &&
         s.recent_exits.front() <= now - policy_.crash_loop_window) {
    s.recent_exits.pop_front();
  }
  const std::string crash_loop =
      InCrashLoop(s) ? absl::StrCat("; crash loop: ", s.recent_exits.size(),
                                    " exits within ",
                                    absl::FormatDuration(
                                        policy_.crash_loop_window))
                     : "";
  if (!crash_loop.empty() && !policy_.never_give_up) {
    s.state = ProcessState::kFailed;
    s.restart_at = absl::InfiniteFuture();
    return absl::StrCat(crash_loop,
                        ", not restarting until started by hand (site \"",
                        SiteOf(s.spec.name), "\" failed)");
  }
  const absl::Duration delay = BackoffDelay(s.backoff_step);
  ++s.backoff_step;
  s.state = ProcessState::kBackoff;
  s.restart_at = now + delay;
  return absl::StrCat(crash_loop, crash_loop.empty() ? "" : ", still retrying",
                      "; restarting in ", absl::FormatDuration(delay));
}

bool ProcessTable::InCrashLoop(const Slot& s) const {
  return static_cast<int>(s.recent_exits.size()) > policy_.crash_loop_limit;
}

void ProcessTable::SignalGroup(Slot& s, int sig) {
  // The worker leads its own process group (Spawn's setpgid). Its pid, and
  // so the group id, cannot be reused before we reap it, so the group
  // signal cannot hit a stranger. If the worker left its group, signal it
  // alone.
  if (s.pid <= 1) return;
  // Not our child: the watchdog reaps it the moment it exits, so its pid
  // (and group id) may already name another process. Only its pidfd is
  // sure; what it forked is the watchdog's to reap.
  if (!s.adopted && ::kill(-s.pid, sig) == 0) return;
  // Raw syscall: glibc 2.36's <sys/pidfd.h> cannot be linked from C++.
  if (::syscall(SYS_pidfd_send_signal, s.pidfd.get(), sig, nullptr, 0) != 0 &&
      errno != ESRCH) {
    LOG(ERROR) << ErrnoStatus(errno, "pidfd_send_signal",
                              absl::StrCat("signalling worker ", s.spec.name,
                                           " pid ", s.pid))
                      .message();
  }
}

absl::Status ProcessTable::Start(int slot) {
  if (slot < 0 || slot >= size()) {
    return absl::InvalidArgumentError(absl::StrCat("no process slot ", slot));
  }
  Slot& s = slots_[slot];
  if (s.pid != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("worker ", s.spec.name, " is already running (pid ", s.pid,
                     ", ", ProcessStateName(s.state), ")"));
  }
  if (s.state != ProcessState::kBackoff) {
    s.backoff_step = 0;
    s.recent_exits.clear();
  }
  const absl::Time now = clock_();
  absl::Status status = StartSlot(slot, now);
  if (!status.ok()) {
    std::string decision = ScheduleRestart(s, now);
    LOG(ERROR) << status.message() << decision;
  }
  return status;
}

void ProcessTable::Adopt(int slot, pid_t pid, UniqueFd pidfd) {
  Slot& s = At(slot);
  CHECK_EQ(s.pid, 0) << "adopting into busy slot " << s.spec.name;
  s.pid = pid;
  s.pidfd = std::move(pidfd);
  s.adopted = true;
  s.started_at = clock_() - policy_.healthy_after;
  s.restart_at = absl::InfiniteFuture();
  s.kill_at = absl::InfiniteFuture();
  s.killed = false;
  s.state = ProcessState::kRunning;
  s.backoff_step = 0;
  LOG(INFO) << "worker " << s.spec.name << " pid " << pid << " adopted";
}

void ProcessTable::AbandonAll() {
  for (Slot& s : slots_) {
    s.pid = 0;
    s.pidfd.Reset();
    s.state = ProcessState::kExited;
  }
}

bool ProcessTable::Exited(const Slot& s) const {
  if (s.adopted) {
    struct pollfd pfd = {s.pidfd.get(), POLLIN, 0};
    return ::poll(&pfd, 1, 0) > 0;
  }
  siginfo_t info;
  ::memset(&info, 0, sizeof(info));
  return ::waitid(static_cast<idtype_t>(P_PIDFD), s.pidfd.get(), &info,
                  WEXITED | WNOHANG | WNOWAIT) == 0 &&
         info.si_pid != 0;
}

void ProcessTable::OnExit(int slot) {
  Slot& s = At(slot);
  if (!s.pidfd) return;
  if (s.adopted) {
    if (!Exited(s)) return;  // still running: a spurious wake-up
    FinishExit(slot, ExitStatus::Unknown());
    return;
  }

  // Look without reaping first: while the zombie exists its pid, and so its
  // process-group id, stays reserved, so the group can be killed safely.
  siginfo_t info;
  ::memset(&info, 0, sizeof(info));
  if (::waitid(static_cast<idtype_t>(P_PIDFD), s.pidfd.get(), &info,
               WEXITED | WNOHANG | WNOWAIT) != 0) {
    const int error = errno;
    LOG(ERROR) << ErrnoStatus(error, "waitid",
                              absl::StrCat("checking worker ", s.spec.name,
                                           " pid ", s.pid))
                      .message();
    if (error != ECHILD) return;
    // Someone else reaped it: it is gone, with an unknown status.
  } else if (info.si_pid == 0) {
    return;  // still running: a spurious wake-up
  }
  // Helpers the worker forked die with it: no orphans hold its resources.
  ::kill(-s.pid, SIGKILL);
  ExitStatus status;
  if (absl::StatusOr<ExitStatus> reaped = TryReap(s.pidfd.get()); reaped.ok()) {
    status = *reaped;
  }
  FinishExit(slot, status);
}

void ProcessTable::FinishExit(int slot, const ExitStatus& status) {
  Slot& s = At(slot);
  const pid_t pid = s.pid;
  s.adopted = false;
  s.pid = 0;
  s.pidfd.Reset();
  s.last_exit = status;
  s.kill_at = absl::InfiniteFuture();
  const absl::Time now = clock_();
  const std::string what = Describe(s.spec.name, pid, status);
  if (s.state == ProcessState::kStopping) {
    s.state = ProcessState::kExited;
    LOG(INFO) << what << "; stopped";
  } else if (status.exited() && status.code == kExitNoRestart &&
             !policy_.never_give_up) {
    s.state = ProcessState::kDone;
    s.restart_at = absl::InfiniteFuture();
    LOG(ERROR) << what << ": status " << kExitNoRestart
               << " means fatal, not restarting";
  } else {
    if (now - s.started_at >= policy_.healthy_after) s.backoff_step = 0;
    const std::string decision = ScheduleRestart(s, now);
    if (s.state == ProcessState::kFailed || InCrashLoop(s) ||
        (status.exited() && status.code == kExitNoRestart)) {
      LOG(ERROR) << what << decision;
    } else {
      LOG(WARNING) << what << decision;
    }
  }
  if (on_exited_) on_exited_(slot, pid, status);
}

absl::Time ProcessTable::RestartDue(absl::Time now) {
  absl::Time next = absl::InfiniteFuture();
  for (int i = 0; i < size(); ++i) {
    Slot& s = slots_[i];
    if (s.state == ProcessState::kBackoff && now >= s.restart_at) {
      ++s.restarts;
      absl::Status status = StartSlot(i, now);
      if (!status.ok()) {
        --s.restarts;
        const std::string decision = ScheduleRestart(s, now);
        LOG(ERROR) << status.message() << decision;
      }
    }
    if (s.state == ProcessState::kStarting &&
        now - s.started_at >= policy_.healthy_after) {
      s.state = ProcessState::kRunning;
      s.backoff_step = 0;
    }
    if (s.state == ProcessState::kStopping && !s.killed && now >= s.kill_at) {
      LOG(WARNING) << "worker " << s.spec.name << " pid " << s.pid
                   << " still running after its stop grace; SIGKILL";
      SignalGroup(s, SIGKILL);
      s.killed = true;
    }
    switch (s.state) {
      case ProcessState::kBackoff:
        next = std::min(next, s.restart_at);
        break;
      case ProcessState::kStarting:
        next = std::min(next, s.started_at + policy_.healthy_after);
        break;
      case ProcessState::kStopping:
        if (!s.killed) next = std::min(next, s.kill_at);
        break;
      default:
        break;
    }
  }
  return next;
}

void ProcessTable::SetSpec(int slot, ProcessSpec spec) {
  At(slot).spec = std::move(spec);
}

void ProcessTable::Stop(int slot, absl::Duration grace) {
  Slot& s = At(slot);
  const absl::Time now = clock_();
  if (s.pid == 0) {
    if (s.state == ProcessState::kBackoff) {
      s.state = ProcessState::kExited;
      s.restart_at = absl::InfiniteFuture();
    }
    return;
  }
  if (s.state == ProcessState::kStopping) {
    s.kill_at = std::min(s.kill_at, now + grace);  // a second, shorter stop
    return;
  }
  s.state = ProcessState::kStopping;
  s.kill_at = now + grace;
  s.killed = grace <= absl::ZeroDuration();
  LOG(INFO) << "stopping worker " << s.spec.name << " pid " << s.pid;
  SignalGroup(s, s.killed ? SIGKILL : SIGTERM);
}

void ProcessTable::StopAll(absl::Duration grace) {
  for (int i = 0; i < size(); ++i) Stop(i, grace);
}

absl::Status ProcessTable::StopAllAndWait(absl::Duration grace) {
  StopAll(grace);
  absl::Time deadline = absl::Now() + grace;
  bool killed = false;
  std::vector<struct pollfd> fds;
  std::vector<int> fd_slots;
  for (;;) {
    fds.clear();
    fd_slots.clear();
    for (int i = 0; i < size(); ++i) {
      if (!slots_[i].pidfd) continue;
      fds.push_back({slots_[i].pidfd.get(), POLLIN, 0});
      fd_slots.push_back(i);
    }
    if (fds.empty()) return absl::OkStatus();

    const absl::Time now = absl::Now();
    if (now >= deadline) {
      if (killed) {
        std::vector<std::string> names;
        for (int i : fd_slots) names.push_back(slots_[i].spec.name);
        return absl::DeadlineExceededError(
            absl::StrCat("workers not reaped even after SIGKILL: ",
                         absl::StrJoin(names, ", ")));
      }
      for (int i : fd_slots) {
        LOG(WARNING) << "worker " << slots_[i].spec.name << " pid "
                     << slots_[i].pid
                     << " still running after its stop grace; SIGKILL";
        SignalGroup(slots_[i], SIGKILL);
        slots_[i].killed = true;
      }
      killed = true;
      deadline = now + kKillWait;
      continue;
    }
    int ready = ::poll(fds.data(), fds.size(), PollTimeoutMs(deadline - now));
    if (ready < 0 && errno != EINTR) {
      return ErrnoStatus(errno, "poll", "waiting for workers to stop");
    }
    for (size_t k = 0; ready > 0 && k < fds.size(); ++k) {
      if (fds[k].revents != 0) OnExit(fd_slots[k]);
    }
  }
}

int ProcessTable::ReapOrphans() {
  int reaped = 0;
  for (;;) {
    // Peek at the next exited child without reaping it: table processes must
    // be reaped through OnExit so their slots learn of it.
    siginfo_t info;
    ::memset(&info, 0, sizeof(info));
    if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
      if (errno == EINTR) continue;
      break;  // ECHILD: no children at all
    }
    if (info.si_pid == 0) break;  // none has exited
    const pid_t pid = info.si_pid;
    if (int slot = FindByPid(pid); slot >= 0) {
      OnExit(slot);
      if (slots_[slot].pid == pid) {
        LOG(ERROR) << "worker " << slots_[slot].spec.name << " pid " << pid
                   << " exited but could not be reaped";
        break;
      }
      continue;
    }
    ::memset(&info, 0, sizeof(info));
    if (::waitid(P_PID, pid, &info, WEXITED | WNOHANG) != 0) {
      LOG(ERROR) << ErrnoStatus(errno, "waitid",
                                absl::StrCat("reaping orphan pid ", pid))
                        .message();
      break;
    }
    LOG(INFO) << "reaped orphan pid " << pid << ", "
              << ExitStatus::FromSiginfo(info).ToString();
    ++reaped;
  }
  return reaped;
}

const ProcessSpec& ProcessTable::spec(int slot) const { return At(slot).spec; }
ProcessState ProcessTable::state(int slot) const { return At(slot).state; }
pid_t ProcessTable::pid(int slot) const { return At(slot).pid; }
int ProcessTable::pidfd(int slot) const { return At(slot).pidfd.get(); }
int ProcessTable::restarts(int slot) const { return At(slot).restarts; }
std::optional<ExitStatus> ProcessTable::last_exit(int slot) const {
  return At(slot).last_exit;
}
absl::Time ProcessTable::restart_at(int slot) const {
  return At(slot).restart_at;
}

int ProcessTable::FindByPid(pid_t pid) const {
  for (int i = 0; i < size(); ++i) {
    if (pid != 0 && slots_[i].pid == pid) return i;
  }
  return -1;
}

int ProcessTable::live_count() const {
  return static_cast<int>(std::count_if(
      slots_.begin(), slots_.end(), [](const Slot& s) { return s.pid != 0; }));
}

bool ProcessTable::SiteFailed(absl::string_view site) const {
  return std::any_of(slots_.begin(), slots_.end(), [site](const Slot& s) {
    return s.state == ProcessState::kFailed && SiteOf(s.spec.name) == site;
  });
}

}  // namespace ddv::supervise
