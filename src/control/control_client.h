// The control protocol, client side: one command line per connection to the
// master's Unix socket ("status", "metrics", "reload", "stop",
// "restart SITE"); the reply is everything the master writes before closing.
// Replies starting with "error:" are failures.
#ifndef DDV_SRC_CONTROL_CONTROL_CLIENT_H_
#define DDV_SRC_CONTROL_CONTROL_CLIENT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ddv {
namespace control {

// The reply, or why there is none, as one of these codes (each message says
// what happened in words a person can act on):
//   FailedPrecondition  the master answered "error: ..."; the message is its
//                       reason (e.g. a reload's FILE:LINE:COL)
//   PermissionDenied    the socket file's mode refused us, or the master's
//                       peer check did ("error: permission denied (uid N)")
//   Unavailable         no master: no socket at the path, or nobody listening
//   DeadlineExceeded    no answer within `timeout`: busy or stuck
//   Internal            anything else (a closed connection, a bad path)
absl::StatusOr<std::string> SendControlCommand(
    const std::string& socket_path, const std::string& command,
    absl::Duration timeout = absl::Seconds(5));

// ddvctl's exit codes (ddvctl --help, docs/master.md). Scripts tell "not
// running" and "try again later" apart from a refusal by these.
enum ExitCode : int {
  kExitOk = 0,
  kExitFailed = 1,            // the master's "error: ...", or another failure
  kExitUsage = 2,             // ddvctl's own command line
  kExitNotRunning = 3,        // Unavailable
  kExitNoAnswer = 4,          // DeadlineExceeded
  kExitPermissionDenied = 5,  // PermissionDenied
};
ExitCode ExitCodeFor(const absl::Status& status);

}  // namespace control
}  // namespace ddv

#endif  // DDV_SRC_CONTROL_CONTROL_CLIENT_H_
