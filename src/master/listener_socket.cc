// BindListener / BindAll / listen-fd passing.
#include "src/master/listener_socket.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "src/base/errno_status.h"

namespace ddv {
namespace master {

absl::StatusOr<UniqueFd> BindListener(const config::ListenerConfig& listener,
                                      const ListenOptions& options) {
  const std::string doing =
      absl::StrCat("binding listener \"", listener.name, "\" to ",
                   listener.address);
  int family = listener.addr.ss_family;
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
  if (listener.protocol != config::Protocol::kTcp &&
      options.defer_accept_seconds > 0 &&
      setsockopt(fd.get(), IPPROTO_TCP, TCP_DEFER_ACCEPT,
                 &options.defer_accept_seconds,
                 sizeof(options.defer_accept_seconds)) < 0) {
    return ErrnoStatus(errno, "setsockopt(TCP_DEFER_ACCEPT)", doing);
  }
  if (bind(fd.get(), reinterpret_cast<const sockaddr*>(&listener.addr),
           listener.addr_len) < 0) {
    return ErrnoStatus(errno, "bind", doing);
  }
  if (listen(fd.get(), options.backlog) < 0) {
    return ErrnoStatus(errno, "listen", doing);
  }
  return fd;
}

absl::StatusOr<std::vector<UniqueFd>> BindAll(const config::Config& config,
                                              const ListenOptions& options) {
  std::vector<UniqueFd> fds;
  for (const config::ListenerConfig& listener : config.listeners) {
    absl::StatusOr<UniqueFd> fd = BindListener(listener, options);
    if (!fd.ok()) return fd.status();
    fds.push_back(std::move(*fd));
  }
  return fds;
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

std::string FormatListenFds(const config::Config& config,
                            const std::vector<int>& fds) {
  std::vector<std::string> parts;
  for (size_t i = 0; i < config.listeners.size() && i < fds.size(); ++i) {
    parts.push_back(absl::StrCat(config.listeners[i].name, "=", fds[i]));
  }
  return absl::StrJoin(parts, ",");
}

absl::StatusOr<std::vector<int>> ParseListenFdList(
    absl::string_view text, const std::vector<std::string>& listener_names) {
  std::vector<int> by_listener(listener_names.size(), -1);
  std::vector<int> seen;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(part, '=');
    int fd = -1;
    if (!absl::SimpleAtoi(kv.second, &fd) || fd < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--listen_fds: bad entry \"", part, "\""));
    }
    if (std::find(seen.begin(), seen.end(), fd) != seen.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--listen_fds: fd ", fd, " is named twice"));
    }
    seen.push_back(fd);
    for (size_t i = 0; i < listener_names.size(); ++i) {
      if (listener_names[i] == kv.first) by_listener[i] = fd;
    }
  }
  return by_listener;
}

absl::StatusOr<std::vector<UniqueFd>> ParseListenFds(
    const std::string& text, const config::Config& config) {
  std::vector<std::string> names;
  for (const config::ListenerConfig& listener : config.listeners) {
    names.push_back(listener.name);
  }
  absl::StatusOr<std::vector<int>> by_listener = ParseListenFdList(text, names);
  if (!by_listener.ok()) return by_listener.status();
  for (size_t i = 0; i < by_listener->size(); ++i) {
    const int fd = (*by_listener)[i];
    int accepting = 0;
    socklen_t len = sizeof(accepting);
    if (fd < 0 ||
        getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) < 0 ||
        !accepting) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--listen_fds has no listening socket for listener \"", names[i],
          "\"; was the listener added without a full restart?"));
    }
  }
  // Owned only now, all checked: a failure above closes nothing that might
  // belong to someone else.
  std::vector<UniqueFd> fds;
  for (int fd : *by_listener) fds.emplace_back(fd);
  return fds;
}

}  // namespace master
}  // namespace ddv
