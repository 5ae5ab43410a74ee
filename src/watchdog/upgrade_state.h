// What a watchdog passes to the binary it re-executes as (`ddvctl upgrade`,
// SIGUSR2; docs/lifecycle.md): its listeners, the records of the running
// workers and the master's command line, as JSON in a memfd whose number
// the new image gets in --watchdog_state_fd. Every fd named in it is left
// open across execve; the new image takes them back (and sets CLOEXEC).
#ifndef DDV_SRC_WATCHDOG_UPGRADE_STATE_H_
#define DDV_SRC_WATCHDOG_UPGRADE_STATE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "src/base/unique_fd.h"
#include "src/logwriter/writer_process.h"
#include "src/watchdog/listener_set.h"
#include "src/watchdog/worker_record.h"

namespace ddv {
namespace watchdog {

// What the new image must know about systemd (docs/lifecycle.md,
// "systemd"): whether the listeners came from socket activation (a reload
// may then not change them), and what systemd was told, so that READY=1
// is neither repeated nor lost across the re-execution.
struct KeptServiceState {
  bool socket_activated = false;
  bool ready_sent = false;
  bool reloading = false;  // RELOADING=1 sent, its READY=1 still owed
};

struct WatchdogState {
  std::vector<std::string> master_argv;
  std::vector<std::string> listener_names;
  std::vector<UniqueFd> listeners;
  std::vector<WorkerRecord> workers;
  std::vector<std::string> skipped;  // unusable worker records, and why
  // The log writer and its sockets (docs/logs.md); empty when there was
  // none, or it was unusable (then in `skipped`).
  logwriter::KeptWriter log_writer;
  KeptServiceState service;
};

// Writes the state into a new memfd and clears FD_CLOEXEC on it and on
// every fd it names. On error nothing is left changed.
absl::StatusOr<UniqueFd> WriteWatchdogState(
    const std::vector<std::string>& master_argv, const ListenerSet& listeners,
    const std::vector<const WorkerRecord*>& workers,
    const logwriter::SupervisedLogWriter* log_writer = nullptr,
    const KeptServiceState& service = {});

// Sets FD_CLOEXEC again on what WriteWatchdogState opened up (after a
// failed execve).
void RestoreCloseOnExec(
    const ListenerSet& listeners,
    const std::vector<const WorkerRecord*>& workers,
    const logwriter::SupervisedLogWriter* log_writer = nullptr);

// The new image's side: reads and closes `fd`, and owns the fds it names.
absl::StatusOr<WatchdogState> ReadWatchdogState(int fd);

}  // namespace watchdog
}  // namespace ddv

#endif  // DDV_SRC_WATCHDOG_UPGRADE_STATE_H_
