// One message with fds over a SOCK_SEQPACKET Unix socket, never blocking:
// the log writer's link from the masters and its park. (The handoff
// channel has its own, tied to its frames.)
#ifndef DDV_SRC_LOGWRITER_FD_PASSING_H_
#define DDV_SRC_LOGWRITER_FD_PASSING_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "src/base/unique_fd.h"

namespace ddv {
namespace logwriter {

// Most fds one message may carry (a register message: one per pipe).
inline constexpr size_t kMaxFdsPerMessage = 16;

// One sendmsg(MSG_DONTWAIT | MSG_NOSIGNAL) of `bytes` with `fds` in
// SCM_RIGHTS; the caller keeps its fds. Unavailable when the socket is full
// (EAGAIN), FailedPrecondition when no one holds the other end (EPIPE,
// ECONNRESET, ECONNREFUSED), another code for anything else.
absl::Status SendWithFds(int socket, absl::string_view bytes,
                         absl::Span<const int> fds);

struct Received {
  std::string bytes;
  std::vector<UniqueFd> fds;  // O_CLOEXEC
};

// One recvmsg(MSG_DONTWAIT | MSG_CMSG_CLOEXEC). Unavailable when nothing is
// queued; OutOfRange at EOF (every sender end closed); DataLoss when the
// message or its fds were cut (the fds that came are closed). On any error
// nothing is left open.
absl::StatusOr<Received> ReceiveWithFds(int socket);

}  // namespace logwriter
}  // namespace ddv

#endif  // DDV_SRC_LOGWRITER_FD_PASSING_H_
