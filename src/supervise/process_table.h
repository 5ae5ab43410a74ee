// ProcessTable: one flat table of supervised worker slots, in the style of
// nginx's ngx_processes[]. It decides restart, back-off, crash-loop and stop;
// the master's event loop owns the waiting: it polls each slot's pidfd and
// calls OnExit, and arms a timer for the deadline RestartDue returns. No
// threads, no signal handlers, no blocking calls (except StopAllAndWait,
// meant for shutdown paths).
#ifndef DDV_SRC_SUPERVISE_PROCESS_TABLE_H_
#define DDV_SRC_SUPERVISE_PROCESS_TABLE_H_

#include <sys/types.h>

#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "src/base/unique_fd.h"
#include "src/supervise/spawn.h"

namespace ddv::supervise {

struct BackoffPolicy {
  // The n-th restart in a row waits initial * multiplier^n, at most `max`.
  absl::Duration initial = absl::Milliseconds(100);
  absl::Duration max = absl::Seconds(30);
  double multiplier = 2;
  // More than `crash_loop_limit` exits within `crash_loop_window` and the
  // slot is kFailed: no more restarts until someone calls Start again.
  int crash_loop_limit = 5;
  absl::Duration crash_loop_window = absl::Seconds(60);
  // A process up this long is healthy: kStarting becomes kRunning and the
  // back-off starts again from `initial`.
  absl::Duration healthy_after = absl::Seconds(10);
  // For a process whose supervisor must outlast any failure of it (the
  // watchdog's master): exit status 2 and crash loops are logged as such,
  // but the slot stays in kBackoff and restarts at the capped delay, never
  // kDone or kFailed. Whatever made it fail (a config file, a missing
  // resource) may be fixed meanwhile.
  bool never_give_up = false;
};

enum class ProcessState {
  kIdle,      // added, never started
  kStarting,  // running, but not yet up for healthy_after
  kRunning,   // running and healthy
  kBackoff,   // exited unexpectedly; restarts at restart_at()
  kStopping,  // asked to stop (SIGTERM sent); will not be restarted
  kExited,    // stopped on purpose; not restarted
  kFailed,    // crash loop; not restarted (unless never_give_up)
  kDone,      // exited with status 2, "fatal, do not restart" (nginx's rule;
              // unless never_give_up)
};

// "starting", "running", ... as shown by `ddvctl status`.
absl::string_view ProcessStateName(ProcessState state);

// The exit status that means "fatal error, do not restart me".
inline constexpr int kExitNoRestart = 2;

class ProcessTable {
 public:
  using Clock = std::function<absl::Time()>;
  using StartedCallback = std::function<void(int slot, pid_t pid)>;
  using ExitedCallback =
      std::function<void(int slot, pid_t pid, const ExitStatus& status)>;

  // `clock` (default absl::Now) times exits, back-off and health; tests pass
  // a fake one. Workers start from CleanBaseEnv() unless set_base_env.
  explicit ProcessTable(BackoffPolicy policy, Clock clock = nullptr);
  // Processes still alive are SIGKILLed with their groups and reaped (bounded
  // wait): a table never leaves a worker behind.
  ~ProcessTable();
  ProcessTable(const ProcessTable&) = delete;
  ProcessTable& operator=(const ProcessTable&) = delete;

  void set_base_env(EnvList env) { base_env_ = std::move(env); }
  // Called after every successful (re)start, e.g. to create the worker's new
  // channel; and after every reap. They may read the table, not change it.
  void set_on_started(StartedCallback cb) { on_started_ = std::move(cb); }
  void set_on_exited(ExitedCallback cb) { on_exited_ = std::move(cb); }
  // Called before each start of a process whose spec names log files: the
  // pipes its stdout and stderr go to instead (the master's log writer
  // client, docs/logs.md). An error fails the start as a Spawn error
  // would; no pipes leave the process on its files.
  using StdioRouter =
      std::function<absl::StatusOr<StdioPipes>(const ProcessSpec& spec)>;
  void set_stdio_router(StdioRouter router) {
    stdio_router_ = std::move(router);
  }

  // Adds a slot in kIdle and returns its id (0, 1, ...). Does not start it.
  int Add(ProcessSpec spec);

  // Replaces the spec a slot starts with next time (a reload changed the
  // site's command or environment). The running process is not touched.
  void SetSpec(int slot, ProcessSpec spec);

  // Starts the slot now. From kFailed, kDone, kExited or kIdle the back-off
  // and crash-loop history start afresh. A slot with a live process gives
  // FailedPrecondition. If Spawn fails, the slot is handled as if the
  // process had crashed at once (kBackoff, or kFailed in a loop) and the
  // Spawn error is returned.
  absl::Status Start(int slot);

  // Takes over a process another supervisor started (a worker of a master
  // that died, handed over by the watchdog: docs/lifecycle.md). It is not
  // our child, so its exit status cannot be known: OnExit learns of its end
  // from the pidfd and records ExitStatus::Unknown(). The slot must have no
  // process; it is kRunning, as one up for healthy_after.
  void Adopt(int slot, pid_t pid, UniqueFd pidfd);
  // Forgets every process without signalling it: the master hands its
  // workers over to the next one (an upgrade) and they must live on.
  void AbandonAll();

  // The loop calls this when the slot's pidfd is readable. Reaps the process
  // (waitid P_PIDFD, WNOHANG; nothing happens if it still runs), SIGKILLs
  // whatever is left of its process group, logs e.g.
  //   worker a#0 pid 123 exited with status 1; restarting in 200ms
  // and moves the slot to kBackoff, kFailed, kDone or (if it was stopping)
  // kExited. The slot's pidfd is closed: poll pidfd() again after a restart.
  void OnExit(int slot);

  // The loop's timer: restarts kBackoff slots whose time has come, promotes
  // kStarting slots up for healthy_after to kRunning, and SIGKILLs kStopping
  // slots past their grace. Returns the next time it has work to do
  // (absl::InfiniteFuture() if none); call it again then, and after any
  // OnExit/Start/Stop.
  absl::Time RestartDue(absl::Time now);

  // SIGTERM to the slot's process group, kStopping; RestartDue sends SIGKILL
  // once `grace` has passed. A slot waiting in kBackoff goes to kExited.
  // Nothing stopped is restarted.
  void Stop(int slot, absl::Duration grace);
  void StopAll(absl::Duration grace);
  // Blocking: StopAll, waits up to `grace` (real time) for the exits,
  // SIGKILLs the rest and waits for those too. For shutdown paths. Error if a
  // process could not be reaped within a few seconds even after SIGKILL.
  absl::Status StopAllAndWait(absl::Duration grace);

  // Reaps every exited child of this process that is not in the table (the
  // orphans a subreaper inherits) and routes exits of table processes to
  // OnExit. Returns how many orphans it reaped. The loop calls it on SIGCHLD.
  // It reaps *any* child, so only the one owner of this process's children
  // may call it (not a process that also uses system() or popen()).
  int ReapOrphans();

  // Accessors. `slot` must be a value returned by Add.
  int size() const { return static_cast<int>(slots_.size()); }
  const ProcessSpec& spec(int slot) const;
  ProcessState state(int slot) const;
  pid_t pid(int slot) const;     // 0 when no process
  int pidfd(int slot) const;     // -1 when no process
  int restarts(int slot) const;  // restarts done by the supervisor, ever
  std::optional<ExitStatus> last_exit(int slot) const;
  absl::Time restart_at(int slot) const;  // meaningful in kBackoff
  // Whether the slot's process has ended (without reaping it).
  bool HasExited(int slot) const { return At(slot).pidfd && Exited(At(slot)); }
  bool adopted(int slot) const { return At(slot).adopted; }
  // Slot with this live pid, or -1.
  int FindByPid(pid_t pid) const;
  // Processes not yet reaped.
  int live_count() const;
  // True when any slot of `site` (the part of the name before '#') is
  // kFailed.
  bool SiteFailed(absl::string_view site) const;

 private:
  struct Slot {
    ProcessSpec spec;
    ProcessState state = ProcessState::kIdle;
    pid_t pid = 0;
    UniqueFd pidfd;
    absl::Time started_at;
    absl::Time restart_at = absl::InfiniteFuture();
    absl::Time kill_at = absl::InfiniteFuture();  // kStopping: SIGKILL then
    bool killed = false;                          // SIGKILL sent
    bool adopted = false;  // not our child: only its pidfd tells its end
    int backoff_step = 0;  // restarts in a row without a healthy run
    int restarts = 0;
    std::deque<absl::Time> recent_exits;  // inside crash_loop_window
    std::optional<ExitStatus> last_exit;
  };

  Slot& At(int slot);
  // Whether the slot's process has exited; for our children without
  // reaping it, for adopted ones from the pidfd.
  bool Exited(const Slot& s) const;
  // The end of OnExit once the process is known gone: state and log.
  void FinishExit(int slot, const ExitStatus& status);
  const Slot& At(int slot) const;
  absl::Status StartSlot(int slot, absl::Time now);
  absl::StatusOr<Spawned> SpawnWithStdio(const ProcessSpec& spec);
  // Records an unexpected end (exit or failed spawn) and moves the slot to
  // kBackoff or kFailed; returns the log suffix describing the decision.
  std::string ScheduleRestart(Slot& s, absl::Time now);
  // More than crash_loop_limit exits within crash_loop_window.
  bool InCrashLoop(const Slot& s) const;
  void SignalGroup(Slot& s, int sig);
  absl::Duration BackoffDelay(int step) const;

  BackoffPolicy policy_;
  Clock clock_;
  EnvList base_env_;
  StartedCallback on_started_;
  ExitedCallback on_exited_;
  StdioRouter stdio_router_;
  std::vector<Slot> slots_;
};

}  // namespace ddv::supervise

#endif  // DDV_SRC_SUPERVISE_PROCESS_TABLE_H_
