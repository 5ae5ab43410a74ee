// The control protocol, client side: one command line per connection to the
// master's Unix socket ("status", "metrics", "reload", "stop",
// "restart SITE"); the reply is everything the master writes before closing.
// Replies starting with "error:" are failures.
#ifndef DDV_SRC_CONTROL_CONTROL_CLIENT_H_
#define DDV_SRC_CONTROL_CONTROL_CLIENT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ddv {
namespace control {

absl::StatusOr<std::string> SendControlCommand(
    const std::string& socket_path, const std::string& command,
    absl::Duration timeout = absl::Seconds(5));

}  // namespace control
}  // namespace ddv

#endif  // DDV_SRC_CONTROL_CONTROL_CLIENT_H_
