// SendLinkMessage / ReceiveLinkMessage: sendmsg/recvmsg with SCM_RIGHTS.
#include "src/watchdog/link.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "src/base/errno_status.h"

namespace ddv {
namespace watchdog {

absl::StatusOr<std::pair<UniqueFd, UniqueFd>> MakeLinkPair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0,
                   fds) != 0) {
    return ErrnoStatus(errno, "socketpair", "creating the watchdog link");
  }
  return std::make_pair(UniqueFd(fds[0]), UniqueFd(fds[1]));
}

absl::Status SendLinkMessage(int fd, const nlohmann::json& body,
                             absl::Span<const int> fds) {
  // Strings from workers and command lines need not be UTF-8: replaced,
  // never a throw (nlohmann's default, fatal without exceptions).
  const std::string text =
      body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (text.size() > kMaxLinkMessageBytes || fds.size() > kMaxLinkFds) {
    return absl::InvalidArgumentError(
        absl::StrCat("watchdog link message too large: ", text.size(),
                     " bytes, ", fds.size(), " fds"));
  }
  iovec iov{const_cast<char*>(text.data()), text.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxLinkFds)];
  if (!fds.empty()) {
    const size_t bytes = sizeof(int) * fds.size();
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(bytes);
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(bytes);
    std::memcpy(CMSG_DATA(cmsg), fds.data(), bytes);
  }
  ssize_t n;
  do {
    n = ::sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n >= 0) return absl::OkStatus();
  if (errno == EAGAIN) {
    return absl::ResourceExhaustedError("the watchdog link is full");
  }
  if (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN) {
    return absl::FailedPreconditionError("the watchdog link is closed");
  }
  return ErrnoStatus(errno, "sendmsg", "writing to the watchdog link");
}

absl::StatusOr<LinkMessage> ReceiveLinkMessage(int fd,
                                               absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::string buffer(kMaxLinkMessageBytes + 1, '\0');
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxLinkFds)];
  for (;;) {
    iovec iov{buffer.data(), buffer.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    const ssize_t n = ::recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) {
        return absl::NotFoundError("no message on the watchdog link");
      }
      pollfd pfd{fd, POLLIN, 0};
      ::poll(&pfd, 1,
             static_cast<int>(absl::ToInt64Milliseconds(
                 absl::Ceil(left, absl::Milliseconds(1)))));
      continue;
    }
    if (n < 0) return ErrnoStatus(errno, "recvmsg", "reading the watchdog link");
    LinkMessage message;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr;
         c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int received;
        std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        message.fds.emplace_back(received);
      }
    }
    if (n == 0 && message.fds.empty()) {
      return absl::UnavailableError("the watchdog link is closed");
    }
    if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
      return absl::InvalidArgumentError(
          "watchdog link message truncated (too long or too many fds)");
    }
    message.body = nlohmann::json::parse(buffer.data(), buffer.data() + n,
                                         nullptr, /*allow_exceptions=*/false);
    if (!message.body.is_object() || !message.body.contains("op") ||
        !message.body["op"].is_string()) {
      return absl::InvalidArgumentError(
          "watchdog link message is not a JSON object with an \"op\"");
    }
    return message;
  }
}

}  // namespace watchdog
}  // namespace ddv
