// The master <-> watchdog link: an AF_UNIX SOCK_SEQPACKET socketpair made by
// the watchdog for each master it starts. One message is one JSON object
// (at most kMaxLinkMessageBytes) with up to kMaxLinkFds descriptors in
// SCM_RIGHTS. It is not a hot path: a message per worker start, exit and
// master start. docs/lifecycle.md lists the messages.
#ifndef DDV_SRC_WATCHDOG_LINK_H_
#define DDV_SRC_WATCHDOG_LINK_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "nlohmann/json.hpp"
#include "src/base/unique_fd.h"

namespace ddv {
namespace watchdog {

inline constexpr size_t kMaxLinkMessageBytes = 16 * 1024;
inline constexpr size_t kMaxLinkFds = 4;

struct LinkMessage {
  nlohmann::json body;  // always an object with a string "op"
  std::vector<UniqueFd> fds;
};

// Both ends SOCK_CLOEXEC | SOCK_NONBLOCK: first for the watchdog, second
// for the master (inherited).
absl::StatusOr<std::pair<UniqueFd, UniqueFd>> MakeLinkPair();

// One non-blocking send. The fds stay the caller's (the peer gets copies).
// A full socket gives ResourceExhausted; a closed peer FailedPrecondition.
absl::Status SendLinkMessage(int fd, const nlohmann::json& body,
                             absl::Span<const int> fds = {});

// Receives one message, waiting up to `timeout` (zero: do not wait).
// NotFound when nothing is queued by then; Unavailable when the peer closed.
// A message that is not a JSON object with a string "op", too long, or
// with more fds than kMaxLinkFds is InvalidArgument, its fds closed.
absl::StatusOr<LinkMessage> ReceiveLinkMessage(int fd, absl::Duration timeout);

}  // namespace watchdog
}  // namespace ddv

#endif  // DDV_SRC_WATCHDOG_LINK_H_
