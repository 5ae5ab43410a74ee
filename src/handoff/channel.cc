// Channel I/O: socketpair setup, SCM_RIGHTS send/receive with strict fd
// accounting, and pidfd pulls. Every received fd is owned by a UniqueFd from
// the moment recvmsg returns, so any early return closes it.
#include "src/handoff/channel.h"

#include <errno.h>
#include <poll.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "src/base/errno_status.h"

// Older libc headers lack the numbers; they are the same on every arch
// (added in Linux 5.3 and 5.6).
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

namespace ddv {
namespace handoff {
namespace {

constexpr char kWouldBlockUrl[] = "ddv.handoff/would_block";
constexpr char kPeerClosedUrl[] = "ddv.handoff/peer_closed";

absl::Status WouldBlock(absl::string_view doing) {
  absl::Status s = absl::UnavailableError(
      absl::StrCat(doing, ": would block (EAGAIN)"));
  s.SetPayload(kWouldBlockUrl, absl::Cord("1"));
  return s;
}

absl::Status PeerClosed(absl::string_view why) {
  absl::Status s = absl::UnavailableError(
      absl::StrCat("channel peer closed (", why, ")"));
  s.SetPayload(kPeerClosedUrl, absl::Cord("1"));
  return s;
}

absl::Duration MonotonicNow() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return absl::DurationFromTimespec(ts);
}

// Milliseconds for poll(): -1 for infinite, rounded up so a wait never ends
// just before its deadline and spins.
int PollMillis(absl::Duration remaining) {
  if (remaining == absl::InfiniteDuration()) return -1;
  if (remaining <= absl::ZeroDuration()) return 0;
  int64_t ms = absl::ToInt64Milliseconds(remaining + absl::Microseconds(999));
  return ms > 1000000 ? 1000000 : static_cast<int>(ms);
}

// Waits for `events` until `deadline` (monotonic). OkStatus when ready.
absl::Status WaitFor(int fd, short events, absl::Duration deadline,
                     absl::string_view doing) {
  for (;;) {
    absl::Duration remaining = deadline == absl::InfiniteDuration()
                                   ? absl::InfiniteDuration()
                                   : deadline - MonotonicNow();
    if (remaining <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError(
          absl::StrCat(doing, ": timed out"));
    }
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, PollMillis(remaining));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "poll", doing);
    }
    if (n > 0) return absl::OkStatus();
  }
}

absl::Duration DeadlineAfter(absl::Duration timeout) {
  if (timeout == absl::InfiniteDuration()) return timeout;
  return MonotonicNow() + timeout;
}

// Fills control/iov of `msg` for a send of `frame` with `fds`.
void BuildSendHeader(absl::string_view frame, absl::Span<const int> fds,
                     iovec* iov, unsigned char* control, size_t control_size,
                     msghdr* msg) {
  *msg = msghdr{};
  iov->iov_base = const_cast<char*>(frame.data());
  iov->iov_len = frame.size();
  msg->msg_iov = iov;
  msg->msg_iovlen = 1;
  if (fds.empty()) return;  // no cmsg at all: a zero-fd SCM_RIGHTS is EINVAL
  std::memset(control, 0, control_size);
  msg->msg_control = control;
  msg->msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
  cmsghdr* cmsg = CMSG_FIRSTHDR(msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
  std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
}

// A recv of 0 bytes is either EOF or a zero-length seqpacket message; ddv
// never sends the latter, but tell them apart so the error is precise.
bool PeerHasShutDown(int fd) {
  pollfd p{fd, POLLIN | POLLRDHUP, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLRDHUP)) != 0;
}

}  // namespace

ssize_t SendBytesWithFd(int socket, absl::string_view bytes, int fd) {
  iovec iov;
  msghdr message;
  alignas(cmsghdr) unsigned char control[CMSG_SPACE(sizeof(int))];
  absl::Span<const int> fds;
  if (fd >= 0) fds = absl::MakeConstSpan(&fd, 1);
  BuildSendHeader(bytes, fds, &iov, control, sizeof(control), &message);
  ssize_t n;
  do {
    n = ::sendmsg(socket, &message, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : n;
}

ssize_t RecvBytesClosingFds(int socket, char* buffer, size_t size) {
  iovec iov{buffer, size};
  alignas(cmsghdr) unsigned char control[CMSG_SPACE(sizeof(int) * 16)];
  msghdr message{};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = ::recvmsg(socket, &message, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return -errno;
  for (cmsghdr* c = CMSG_FIRSTHDR(&message); c != nullptr;
       c = CMSG_NXTHDR(&message, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t k = 0; k < count; ++k) {
      int received;
      std::memcpy(&received, CMSG_DATA(c) + k * sizeof(int), sizeof(int));
      ::close(received);
    }
  }
  return n;
}

bool IsWouldBlock(const absl::Status& status) {
  return status.GetPayload(kWouldBlockUrl).has_value();
}

bool IsPeerClosed(const absl::Status& status) {
  return status.GetPayload(kPeerClosedUrl).has_value();
}

absl::StatusOr<std::pair<UniqueFd, UniqueFd>> MakeChannelPair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0,
                   fds) != 0) {
    return ErrnoStatus(errno, "socketpair",
                       "creating a master/worker channel");
  }
  return std::make_pair(UniqueFd(fds[0]), UniqueFd(fds[1]));
}

ScmRightsMessage::ScmRightsMessage() {
  std::memset(control_, 0, sizeof(control_));
}

absl::StatusOr<std::unique_ptr<ScmRightsMessage>> ScmRightsMessage::Create(
    std::string frame, absl::Span<const int> fds) {
  auto message = std::make_unique<ScmRightsMessage>();
  absl::Status status = message->Assign(std::move(frame), fds);
  if (!status.ok()) return status;
  return message;
}

absl::Status ScmRightsMessage::Assign(std::string frame,
                                      absl::Span<const int> fds) {
  if (fds.size() > kMaxFdsPerMessage) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ScmRightsMessage with ", fds.size(), " fds, over ",
        kMaxFdsPerMessage));
  }
  if (frame.empty() || frame.size() > kMaxFrameBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ScmRightsMessage frame of ", frame.size(), " bytes"));
  }
  frame_ = std::move(frame);
  fd_count_ = fds.size();
  BuildSendHeader(frame_, fds, &iov_, control_, sizeof(control_), &header_);
  return absl::OkStatus();
}

absl::Status SendFrame(int fd, absl::string_view frame,
                       absl::Span<const int> fds, absl::Duration timeout) {
  if (fds.size() > kMaxFdsPerMessage) {
    return absl::InvalidArgumentError(absl::StrCat(
        "SendFrame with ", fds.size(), " fds, over ", kMaxFdsPerMessage));
  }
  alignas(cmsghdr) unsigned char control[CMSG_SPACE(sizeof(int) *
                                                    kMaxFdsPerMessage)];
  iovec iov;
  msghdr msg;
  BuildSendHeader(frame, fds, &iov, control, sizeof(control), &msg);
  absl::Duration deadline = DeadlineAfter(timeout);
  for (;;) {
    // MSG_DONTWAIT whatever the fd's mode, so the wait is ours and bounded.
    ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) {
      // Seqpacket is all-or-nothing; a partial count means the fd is not a
      // seqpacket socket and the peer would see half a frame.
      if (static_cast<size_t>(n) != frame.size()) {
        return absl::InternalError(absl::StrCat(
            "sendmsg() sent ", n, " of ", frame.size(),
            " bytes: the channel is not SOCK_SEQPACKET"));
      }
      return absl::OkStatus();
    }
    int error = errno;
    if (error == EINTR) continue;
    if (error == EPIPE || error == ECONNRESET || error == ENOTCONN) {
      return PeerClosed(absl::StrCat("sendmsg: ", std::strerror(error)));
    }
    if (error != EAGAIN && error != EWOULDBLOCK) {
      return ErrnoStatus(error, "sendmsg",
                         absl::StrCat("sending a ", frame.size(),
                                      "-byte frame with ", fds.size(),
                                      " fds on the channel"));
    }
    if (timeout == absl::ZeroDuration()) return WouldBlock("sendmsg");
    absl::Status ready = WaitFor(fd, POLLOUT, deadline,
                                 "waiting for room on the channel");
    if (!ready.ok()) return ready;
  }
}

absl::StatusOr<ReceivedFrame> ReceiveFrame(int fd, absl::Duration timeout) {
  // One buffer per thread: big enough for any frame, too big for the stack,
  // and not worth a 128 KiB allocation per call.
  thread_local std::unique_ptr<char[]> buffer(new char[kMaxFrameBytes]);
  alignas(cmsghdr) unsigned char control[CMSG_SPACE(sizeof(int) *
                                                    kMaxFdsPerMessage)];
  absl::Duration deadline = DeadlineAfter(timeout);
  for (;;) {
    iovec iov{buffer.get(), kMaxFrameBytes};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0) {
      int error = errno;
      if (error == EINTR) continue;
      if (error == ECONNRESET) return PeerClosed("recvmsg: ECONNRESET");
      if (error != EAGAIN && error != EWOULDBLOCK) {
        return ErrnoStatus(error, "recvmsg", "receiving a channel frame");
      }
      if (timeout == absl::ZeroDuration()) return WouldBlock("recvmsg");
      absl::Status ready =
          WaitFor(fd, POLLIN, deadline, "waiting for a channel frame");
      if (!ready.ok()) return ready;
      continue;
    }

    // Take ownership of every fd before looking at anything else.
    ReceivedFrame received;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr;
         c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      const unsigned char* data = CMSG_DATA(c);
      for (size_t i = 0; i < count; ++i) {
        int received_fd;
        std::memcpy(&received_fd, data + i * sizeof(int), sizeof(int));
        received.fds.emplace_back(received_fd);
      }
    }

    if (n == 0 && received.fds.empty() && PeerHasShutDown(fd)) {
      return PeerClosed("recvmsg: EOF");
    }
    if (msg.msg_flags & MSG_CTRUNC) {
      return absl::InvalidArgumentError(absl::StrCat(
          "channel message carried more than ", kMaxFdsPerMessage,
          " fds (MSG_CTRUNC): the kernel dropped the rest; closed the ",
          received.fds.size(), " received"));
    }
    if (msg.msg_flags & MSG_TRUNC) {
      return absl::InvalidArgumentError(absl::StrCat(
          "channel message larger than ", kMaxFrameBytes,
          " bytes (MSG_TRUNC)"));
    }
    absl::StatusOr<Frame> frame =
        DecodeFrame(absl::string_view(buffer.get(), static_cast<size_t>(n)));
    if (!frame.ok()) return frame.status();
    size_t expected = ExpectedFdCount(*frame);
    if (received.fds.size() != expected) {
      return absl::InvalidArgumentError(absl::StrCat(
          FrameTypeName(TypeOf(*frame)), " frame came with ",
          received.fds.size(), " fds, expected ", expected,
          "; closed them all"));
    }
    received.frame = std::move(*frame);
    return received;
  }
}

absl::StatusOr<UniqueFd> OpenPidfd(pid_t pid) {
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) {
    return ErrnoStatus(errno, "pidfd_open",
                       absl::StrCat("opening a pidfd for the master pid ",
                                    pid));
  }
  return UniqueFd(fd);
}

absl::StatusOr<UniqueFd> PullFd(int master_pidfd, int master_fd) {
  int fd = static_cast<int>(
      ::syscall(SYS_pidfd_getfd, master_pidfd, master_fd, 0));
  if (fd >= 0) return UniqueFd(fd);
  int error = errno;
  std::string doing = absl::StrCat("pulling fd ", master_fd,
                                   " from the master");
  if (error == EPERM) {
    return absl::PermissionDeniedError(absl::StrCat(
        "pidfd_getfd() failed while ", doing,
        ": EPERM: this worker lacks ptrace access to the master. With Yama "
        "(kernel.yama.ptrace_scope >= 1) a child may not ptrace its parent: "
        "the master must call prctl(PR_SET_PTRACER, worker_pid or "
        "PR_SET_PTRACER_ANY), or run with handoff = \"scm_rights\"; a "
        "non-dumpable master also needs CAP_SYS_PTRACE in the worker"));
  }
  if (error == EBADF) {
    return absl::NotFoundError(absl::StrCat(
        "pidfd_getfd() failed while ", doing,
        ": EBADF: the pidfd is invalid or the master no longer has fd ",
        master_fd, " open"));
  }
  if (error == ESRCH) {
    return absl::UnavailableError(absl::StrCat(
        "pidfd_getfd() failed while ", doing, ": ESRCH: the master exited"));
  }
  return ErrnoStatus(error, "pidfd_getfd", doing);
}

}  // namespace handoff
}  // namespace ddv
