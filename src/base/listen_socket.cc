// BindListenSocket and the socket options a listener's owner may change.
#include "src/base/listen_socket.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "src/base/errno_status.h"

namespace ddv {

absl::StatusOr<UniqueFd> BindListenSocket(const ListenSpec& spec,
                                          const ListenOptions& options) {
  const std::string doing = absl::StrCat("binding listener \"", spec.name,
                                         "\" to ", spec.address);
  const int family = spec.bind_to.addr.ss_family;
  UniqueFd fd(socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoStatus(errno, "socket", doing);
  int one = 1;
  if (setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0) {
    return ErrnoStatus(errno, "setsockopt(SO_REUSEADDR)", doing);
  }
  if (family == AF_INET6 &&
      setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) {
    return ErrnoStatus(errno, "setsockopt(IPV6_V6ONLY)", doing);
  }
  if (spec.defer_accept && options.defer_accept_seconds > 0 &&
      setsockopt(fd.get(), IPPROTO_TCP, TCP_DEFER_ACCEPT,
                 &options.defer_accept_seconds,
                 sizeof(options.defer_accept_seconds)) < 0) {
    return ErrnoStatus(errno, "setsockopt(TCP_DEFER_ACCEPT)", doing);
  }
  if (bind(fd.get(), reinterpret_cast<const sockaddr*>(&spec.bind_to.addr),
           spec.bind_to.addr_len) < 0) {
    return ErrnoStatus(errno, "bind", doing);
  }
  if (::listen(fd.get(), options.backlog) < 0) {
    return ErrnoStatus(errno, "listen", doing);
  }
  return fd;
}

absl::Status SetDeferAccept(int fd, bool on, const ListenOptions& options) {
  const int seconds = on ? options.defer_accept_seconds : 0;
  if (setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &seconds,
                 sizeof(seconds)) < 0) {
    return ErrnoStatus(errno, "setsockopt(TCP_DEFER_ACCEPT)",
                       "changing a listener's protocol");
  }
  return absl::OkStatus();
}

bool ListensOn(int fd, const SocketAddress& address) {
  int accepting = 0;
  socklen_t length = sizeof(accepting);
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &length) < 0 ||
      !accepting) {
    return false;
  }
  sockaddr_storage bound{};
  length = sizeof(bound);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length) < 0) {
    return false;
  }
  sockaddr_storage want = address.addr;
  if (SocketAddressPort(want) == 0) {
    // Any port will do: compare the family and IP with the bound port.
    if (want.ss_family == AF_INET) {
      reinterpret_cast<sockaddr_in*>(&want)->sin_port =
          reinterpret_cast<const sockaddr_in*>(&bound)->sin_port;
    } else if (want.ss_family == AF_INET6) {
      reinterpret_cast<sockaddr_in6*>(&want)->sin6_port =
          reinterpret_cast<const sockaddr_in6*>(&bound)->sin6_port;
    }
  }
  return SameSocketAddress(bound, want);
}

int64_t AcceptQueueLength(int listener_fd) {
  // On a listening socket the kernel reports the accept queue in
  // tcpi_unacked and its limit in tcpi_sacked (tcp_get_info), as `ss`
  // shows them for LISTEN sockets.
  tcp_info info{};
  socklen_t length = sizeof(info);
  if (getsockopt(listener_fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0 ||
      info.tcpi_state != TCP_LISTEN) {
    return -1;
  }
  return info.tcpi_unacked;
}

}  // namespace ddv
