// Watchdog: the daemon role of ddv_master. It owns the listening sockets
// (so connections keep queueing in the kernel while a master restarts),
// runs the master as its child with those sockets inherited, restarts it
// with back-off, reaps orphans as a child subreaper, and forwards signals.
#ifndef DDV_SRC_WATCHDOG_WATCHDOG_H_
#define DDV_SRC_WATCHDOG_WATCHDOG_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "src/base/listen_socket.h"
#include "src/base/unique_fd.h"
#include "src/logwriter/writer_process.h"
#include "src/supervise/process_table.h"
#include "src/watchdog/service_notifier.h"
#include "src/watchdog/worker_record.h"

namespace ddv {
namespace watchdog {

// The master's exit status after handing its workers over for an upgrade
// (master::kExitHandedOver; the watchdog does not depend on the master).
inline constexpr int kExitHandedOver = 3;

struct WatchdogOptions {
  // The master's command line; the listen fds are appended as
  // --listen_fds=<name=fd,...>.
  std::vector<std::string> master_argv;
  std::vector<std::string> listener_names;
  // How listeners a reload adds are bound (as the first ones were).
  ListenOptions listen;
  // The watchdog's own command line, for an upgrade: it re-executes
  // master_argv[0] (the ddv_master binary on disk) with these arguments
  // and --watchdog_state_fd (docs/lifecycle.md).
  std::vector<std::string> self_argv;
  // Restarts of the master; never_give_up is always set.
  supervise::BackoffPolicy backoff;
  // After forwarding SIGTERM, how long the master may drain before SIGKILL
  // (ddv_master sets --drain_timeout plus the master's own SIGTERM-to-
  // SIGKILL wait for its workers, and a margin).
  absl::Duration stop_grace = absl::Seconds(40);
  // ddv_master and its logging flags, run as the log writer beside the
  // master (docs/logs.md); empty runs none.
  std::vector<std::string> log_writer_command;
  // systemd (docs/lifecycle.md, "systemd"): where to send READY=1 and the
  // rest, and how often WATCHDOG=1; the master never sees NOTIFY_SOCKET.
  ServiceNotifierOptions notify;
  // The listeners were passed by socket activation: they are systemd's,
  // and a reload may not add, remove, rename or move one.
  bool socket_activated = false;
  // A master that serves and then sends nothing on the link for this long
  // hangs: it is killed (SIGKILL) and restarted like one that died
  // (--master_hang_timeout; zero: never; docs/lifecycle.md).
  absl::Duration master_hang_timeout = absl::Seconds(10);
  // A master started (first, after an exit, after an upgrade) that has not
  // said it serves after this long hangs starting (adopting, binding,
  // starting workers): killed and restarted the same way
  // (--master_start_timeout; zero: never; docs/lifecycle.md).
  absl::Duration master_start_timeout = absl::Seconds(60);
};

// Runs until SIGTERM/SIGINT (forwarded; waits for the master to drain) or
// until the master exits 0 (it was asked to stop: `ddvctl stop`). Any other
// exit, status 2 (config error) and crash loops included, is logged and
// restarted with `backoff` (capped at backoff.max), never given up on: the
// listeners stay open and clients wait in the backlog. Returns the process
// exit code.
//
// `workers` are records kept across an upgrade's re-execution (empty on a
// fresh start): the first master adopts them. So is `log_writer`, the log
// writer that ran beside the master before it (docs/logs.md); without one
// the watchdog starts a writer of its own (options.log_writer_command).
//
// SIGUSR2, or `ddvctl upgrade` through the master, upgrades: the binary on
// disk checks the last good config (--check_config), the master hands over
// (stops accepting, hands off what it holds, exits leaving its workers),
// and the watchdog re-executes the binary in place, keeping the listeners
// and the workers' records; its first master adopts the workers.
int RunWatchdog(const WatchdogOptions& options,
                std::vector<UniqueFd> listeners,
                std::vector<WorkerRecord> workers = {},
                logwriter::KeptWriter log_writer = {});

}  // namespace watchdog
}  // namespace ddv

#endif  // DDV_SRC_WATCHDOG_WATCHDOG_H_
