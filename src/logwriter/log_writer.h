// LogWriter: the log writer process's loop (docs/logs.md). It reads the
// workers' stdout and stderr pipes, whose read ends the masters send it over
// the link, and appends whole lines to each pipe's file. One io_uring: a
// read in flight per pipe, a write in flight per file, so a slow file holds
// back only the pipes routed to it, and only up to a bound. It reopens every
// file by path on SIGUSR1 (or SIGHUP) and on a kReopen message, and keeps a
// copy of each pipe in the watchdog's park so a restarted writer carries on.
#ifndef DDV_SRC_LOGWRITER_LOG_WRITER_H_
#define DDV_SRC_LOGWRITER_LOG_WRITER_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace ddv {
namespace logwriter {

struct LogWriterOptions {
  // The writer's end of the link: kRegister and kReopen from the masters
  // (and the watchdog). When every other end is closed (the master that
  // started this writer has exited), the writer stops.
  int link_fd = -1;
  // The park (park.h), when the watchdog keeps one; -1 for none.
  int park_send_fd = -1;
  int park_recv_fd = -1;
  // The longest line kept whole; longer ones are cut (line_buffer.h).
  size_t line_capacity = 64 * 1024;
  // Lines queued for one file beyond which its pipes are not read until the
  // file catches up: the workers writing there wait, as they would on a
  // slow file of their own, and no other file is held back.
  size_t file_queue_limit = 1024 * 1024;
  // A write in flight this long means a hung file system: that file's
  // lines are dropped (counted, logged) so its pipes flow again.
  absl::Duration stall_limit = absl::Seconds(10);
  // After SIGTERM/SIGINT or the end of the link: how long pipes still open
  // are read before the writer flushes what it has and exits.
  absl::Duration stop_grace = absl::Seconds(5);
};

// Runs the log writer until it is stopped and has written what it read.
// Blocks SIGTERM, SIGINT, SIGHUP and SIGUSR1 (read from a signalfd) and
// ignores SIGPIPE. Returns an error only when it cannot start.
absl::Status RunLogWriter(const LogWriterOptions& options);

}  // namespace logwriter
}  // namespace ddv

#endif  // DDV_SRC_LOGWRITER_LOG_WRITER_H_
