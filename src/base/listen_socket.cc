// BindListenSocket and the socket options a listener's owner may change.
#include "src/base/listen_socket.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "src/base/errno_status.h"
#include "src/base/status_macros.h"

namespace ddv {

std::string GroupSocketName(absl::string_view listener, size_t k) {
  return k == 0 ? std::string(listener) : absl::StrCat(listener, "#", k);
}

absl::string_view ListenerOfSocketName(absl::string_view socket_name) {
  const size_t hash = socket_name.rfind('#');
  if (hash == absl::string_view::npos || hash + 1 == socket_name.size()) {
    return socket_name;
  }
  for (size_t i = hash + 1; i < socket_name.size(); ++i) {
    if (!absl::ascii_isdigit(socket_name[i])) return socket_name;
  }
  return socket_name.substr(0, hash);
}

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
  // Set either way: the kernel's default (net.ipv6.bindv6only) is the
  // host's choice, and the config's must win.
  const int v6only = spec.v6only ? 1 : 0;
  if (family == AF_INET6 && setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY,
                                       &v6only, sizeof(v6only)) < 0) {
    return ErrnoStatus(errno, "setsockopt(IPV6_V6ONLY)", doing);
  }
  if (spec.reuse_port || spec.group_member) {
    DDV_RETURN_IF_ERROR(SetReusePort(fd.get(), true));
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
  // Listening, the socket has joined the old one's port; from now on a
  // third socket's bind is judged by this one's flag, which goes off. (The
  // kernel may still let a same-user SO_REUSEPORT socket share the port
  // until both are closed: its bucket remembers. Only the owner's user can
  // do that, and it holds the sockets anyway.)
  if (spec.reuse_port && !spec.group_member) {
    DDV_RETURN_IF_ERROR(SetReusePort(fd.get(), false));
  }
  return fd;
}

absl::Status SetReusePort(int fd, bool on) {
  const int value = on ? 1 : 0;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &value, sizeof(value)) < 0) {
    return ErrnoStatus(errno, "setsockopt(SO_REUSEPORT)",
                       on ? "letting a listener's port take another socket"
                          : "restoring a listener after a failed bind");
  }
  return absl::OkStatus();
}

bool IsV6Only(int fd) {
  sockaddr_storage bound{};
  socklen_t length = sizeof(bound);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length) != 0) {
    return false;
  }
  if (bound.ss_family != AF_INET6) return true;
  int v6only = 0;
  length = sizeof(v6only);
  if (getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &length) != 0) {
    return false;
  }
  return v6only != 0;
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

bool IsListening(int fd) {
  int accepting = 0;
  socklen_t length = sizeof(accepting);
  return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &length) == 0 &&
         accepting != 0;
}

bool ListensOn(int fd, const SocketAddress& address) {
  if (!IsListening(fd)) return false;
  sockaddr_storage bound{};
  socklen_t length = sizeof(bound);
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
