// LogWriterClient: a master's side of the link to the log writer
// (docs/logs.md). Before each worker starts, it makes the pipes for the
// worker's stdout and stderr and sends their read ends, with the files they
// go to, to the writer; the worker gets the write ends. It also asks the
// writer to reopen its files. Nothing here blocks: the link is a
// non-blocking socket, and a writer that cannot take a registration leaves
// the worker on its files, opened directly as before.
#ifndef DDV_SRC_LOGWRITER_LOG_WRITER_CLIENT_H_
#define DDV_SRC_LOGWRITER_LOG_WRITER_CLIENT_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "src/supervise/spawn.h"

namespace ddv {
namespace logwriter {

class LogWriterClient {
 public:
  // `link_fd`: the master's end of the link; not owned, and open for the
  // client's whole life.
  explicit LogWriterClient(int link_fd) : link_fd_(link_fd) {}

  // For ProcessTable's stdio router. Each log file of `spec` is first
  // opened (and created, mode 0640) here, as Spawn would, so a log that
  // cannot be opened fails the start with the same error as before. Then:
  // the write ends of the pipes, for the worker; or none (the worker writes
  // its files directly) when the writer cannot take them: the link is full
  // (the writer is down for long) or has no reader. That is logged once
  // until a registration gets through again.
  absl::StatusOr<supervise::StdioPipes> Route(
      const supervise::ProcessSpec& spec);

  // Asks the writer to reopen every file. With `reply_to` >= 0 (a ddvctl
  // client) the writer answers it ("ok: reopened N log files") and closes
  // it; the caller closes its own copy. An error means the request did not
  // reach the link (full, or no writer).
  absl::Status RequestReopen(int reply_to);

 private:
  int link_fd_;
  bool fallback_logged_ = false;
};

}  // namespace logwriter
}  // namespace ddv

#endif  // DDV_SRC_LOGWRITER_LOG_WRITER_CLIENT_H_
