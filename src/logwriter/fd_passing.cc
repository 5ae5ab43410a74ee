// SCM_RIGHTS send and receive, non-blocking, for seqpacket sockets.
#include "src/logwriter/fd_passing.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "src/base/errno_status.h"
#include "src/logwriter/wire.h"

namespace ddv {
namespace logwriter {

absl::Status SendWithFds(int socket, absl::string_view bytes,
                         absl::Span<const int> fds) {
  if (fds.size() > kMaxFdsPerMessage) {
    return absl::InvalidArgumentError(
        absl::StrCat(fds.size(), " fds in one message; at most ",
                     kMaxFdsPerMessage));
  }
  iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
  msghdr header{};
  header.msg_iov = &iov;
  header.msg_iovlen = 1;
  alignas(cmsghdr) unsigned char control[CMSG_SPACE(sizeof(int) *
                                                    kMaxFdsPerMessage)];
  if (!fds.empty()) {
    header.msg_control = control;
    header.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* cmsg = CMSG_FIRSTHDR(&header);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n;
  do {
    n = sendmsg(socket, &header, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n >= 0) return absl::OkStatus();
  const int error = errno;
  if (error == EAGAIN || error == EWOULDBLOCK) {
    return absl::UnavailableError("the socket is full");
  }
  if (error == EPIPE || error == ECONNRESET || error == ECONNREFUSED ||
      error == ENOTCONN) {
    return absl::FailedPreconditionError("no one reads the other end");
  }
  return ErrnoStatus(error, "sendmsg", "passing fds");
}

absl::StatusOr<Received> ReceiveWithFds(int socket) {
  Received received;
  received.bytes.resize(kMaxMessageBytes + 1);
  iovec iov{received.bytes.data(), received.bytes.size()};
  msghdr header{};
  header.msg_iov = &iov;
  header.msg_iovlen = 1;
  // Room for more than a message may carry, so an oversized batch is seen
  // as such (and closed) instead of silently cut by the kernel.
  alignas(cmsghdr) unsigned char control[CMSG_SPACE(
      sizeof(int) * (kMaxFdsPerMessage + 8))];
  header.msg_control = control;
  header.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = recvmsg(socket, &header, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    const int error = errno;
    if (error == EAGAIN || error == EWOULDBLOCK) {
      return absl::UnavailableError("nothing queued");
    }
    if (error == ECONNRESET) return absl::OutOfRangeError("end of the link");
    return ErrnoStatus(error, "recvmsg", "receiving fds");
  }
  // Own every fd that came before anything can fail.
  for (cmsghdr* cmsg = CMSG_FIRSTHDR(&header); cmsg != nullptr;
       cmsg = CMSG_NXTHDR(&header, cmsg)) {
    if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) {
      continue;
    }
    const size_t count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof(int));
      received.fds.emplace_back(fd);
    }
  }
  if (n == 0 && received.fds.empty()) {
    return absl::OutOfRangeError("end of the link");
  }
  if ((header.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0 ||
      received.fds.size() > kMaxFdsPerMessage) {
    return absl::DataLossError(absl::StrCat(
        "a message was cut (", n, " bytes, ", received.fds.size(), " fds)"));
  }
  received.bytes.resize(n);
  return received;
}

}  // namespace logwriter
}  // namespace ddv
