// Watchdog: the daemon role of ddv_master. It owns the listening sockets
// (so connections keep queueing in the kernel while a master restarts),
// runs the master as its child with those sockets inherited, restarts it
// with back-off, reaps orphans as a child subreaper, and forwards signals.
#ifndef DDV_SRC_WATCHDOG_WATCHDOG_H_
#define DDV_SRC_WATCHDOG_WATCHDOG_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "src/base/unique_fd.h"
#include "src/supervise/process_table.h"

namespace ddv {
namespace watchdog {

struct WatchdogOptions {
  // The master's command line; the listen fds are appended as
  // --listen_fds=<name=fd,...>.
  std::vector<std::string> master_argv;
  std::vector<std::string> listener_names;
  // Restarts of the master; never_give_up is always set.
  supervise::BackoffPolicy backoff;
  // After forwarding SIGTERM, how long the master may drain before SIGKILL
  // (ddv_master sets --drain_timeout plus the master's own SIGTERM-to-
  // SIGKILL wait for its workers, and a margin).
  absl::Duration stop_grace = absl::Seconds(40);
  // ddv_master and its logging flags, run as the log writer beside the
  // master (docs/logs.md); empty runs none.
  std::vector<std::string> log_writer_command;
};

// Runs until SIGTERM/SIGINT (forwarded; waits for the master to drain) or
// until the master exits 0 (it was asked to stop: `ddvctl stop`). Any other
// exit, status 2 (config error) and crash loops included, is logged and
// restarted with `backoff` (capped at backoff.max), never given up on: the
// listeners stay open and clients wait in the backlog. Returns the process
// exit code.
int RunWatchdog(const WatchdogOptions& options,
                std::vector<UniqueFd> listeners);

}  // namespace watchdog
}  // namespace ddv

#endif  // DDV_SRC_WATCHDOG_WATCHDOG_H_
