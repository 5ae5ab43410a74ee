// The master <-> worker channel: an AF_UNIX SOCK_SEQPACKET socketpair where
// one message is one frame (wire.h) and handed-off sockets ride along in
// SCM_RIGHTS, or are pulled by the worker with pidfd_getfd.
#ifndef DDV_SRC_HANDOFF_CHANNEL_H_
#define DDV_SRC_HANDOFF_CHANNEL_H_

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "src/base/unique_fd.h"
#include "src/handoff/wire.h"

namespace ddv {
namespace handoff {

// One message never carries more fds than one batch has entries.
inline constexpr size_t kMaxFdsPerMessage = kMaxEntriesPerBatch;

// Both ends are SOCK_CLOEXEC | SOCK_NONBLOCK. The master keeps `first`; the
// spawn code dup2()s `second` into the child (dup2 clears FD_CLOEXEC on the
// copy) and closes its own copy of `second` after the spawn, or the master
// never sees EOF when the worker dies.
absl::StatusOr<std::pair<UniqueFd, UniqueFd>> MakeChannelPair();

// A sendmsg() request built once with stable addresses, for the master's own
// io_uring loop: pass &message.header() to io_uring_prep_sendmsg with flags
// MSG_NOSIGNAL. The object must stay alive and unchanged, and the fds open,
// until the completion arrives: the kernel reads both when the op runs, not at
// submission. Neither copyable nor movable, since the header points into it.
//
// Seqpacket sends are atomic: the completion is either the whole frame size
// or an error. Without MSG_DONTWAIT io_uring would wait for room; the master
// sends with MSG_DONTWAIT and relies on -EAGAIN (a full channel: the batch
// goes to another worker, master_handoff.cc). On success the worker holds
// its own references: the master then closes its copies of the sockets.
class ScmRightsMessage {
 public:
  ScmRightsMessage();
  ScmRightsMessage(const ScmRightsMessage&) = delete;
  ScmRightsMessage& operator=(const ScmRightsMessage&) = delete;

  static absl::StatusOr<std::unique_ptr<ScmRightsMessage>> Create(
      std::string frame, absl::Span<const int> fds);

  // Replaces the frame and fds; reuse one object per in-flight send. Takes the
  // frame by value so the caller can move an encoded buffer in.
  absl::Status Assign(std::string frame, absl::Span<const int> fds);

  const msghdr& header() const { return header_; }
  const std::string& frame() const { return frame_; }
  size_t fd_count() const { return fd_count_; }

 private:
  std::string frame_;
  iovec iov_{};
  msghdr header_{};
  size_t fd_count_ = 0;
  alignas(cmsghdr) unsigned char control_[CMSG_SPACE(
      sizeof(int) * kMaxFdsPerMessage)];
};

// Sends one frame with `fds` in SCM_RIGHTS, synchronously (tests and the
// worker; the master uses ScmRightsMessage). EINTR is retried; on EAGAIN it
// waits for POLLOUT up to `timeout` (DeadlineExceeded after). A zero timeout
// never waits: EAGAIN returns a status for which IsWouldBlock() is true.
// A peer that closed gives IsPeerClosed(). The fds stay owned by the caller.
absl::Status SendFrame(int fd, absl::string_view frame,
                       absl::Span<const int> fds,
                       absl::Duration timeout = absl::Seconds(5));

struct ReceivedFrame {
  Frame frame;
  // Owned copies, O_CLOEXEC. For a kScmRights batch fds[i] is entries[i]'s
  // socket; empty for every other frame.
  std::vector<UniqueFd> fds;
};

// Receives one frame, waiting up to `timeout` for one to arrive (zero: do not
// wait; IsWouldBlock() when none is queued). Uses MSG_CMSG_CLOEXEC. On any
// failure (truncated message or cmsg, fd count not what the frame needs,
// decode error, fds attached to a frame that takes none) every received fd is
// closed before returning. EOF or ECONNRESET give IsPeerClosed().
//
// Not for the master's hot path (it has its own ring); it uses one receive
// buffer of kMaxFrameBytes per thread.
absl::StatusOr<ReceivedFrame> ReceiveFrame(
    int fd, absl::Duration timeout = absl::InfiniteDuration());

// Stream sockets (a Node worker's channel, docs/node.md), where a message is
// bytes, not a frame. One non-blocking write of `bytes` with `fd` (if >= 0)
// in SCM_RIGHTS; returns the bytes written (maybe fewer) or -errno.
ssize_t SendBytesWithFd(int socket, absl::string_view bytes, int fd);
// One non-blocking read into `buffer`. Fds that came with the bytes are
// closed: the peers this is for never send any. Returns the bytes read, 0 at
// EOF, or -errno (-EAGAIN when nothing is queued).
ssize_t RecvBytesClosingFds(int socket, char* buffer, size_t size);

// Distinguish the two expected non-errors of a channel from real failures.
bool IsWouldBlock(const absl::Status& status);
bool IsPeerClosed(const absl::Status& status);

// pidfd_open(2) on the master's pid; the worker does it once at start.
absl::StatusOr<UniqueFd> OpenPidfd(pid_t pid);

// pidfd_getfd(2): duplicates `master_fd` of the process behind `master_pidfd`
// into this process (O_CLOEXEC). Needs ptrace access to the master: EPERM
// gives PermissionDenied explaining Yama and PR_SET_PTRACER.
absl::StatusOr<UniqueFd> PullFd(int master_pidfd, int master_fd);

}  // namespace handoff
}  // namespace ddv

#endif  // DDV_SRC_HANDOFF_CHANNEL_H_
