// Taking and matching the sockets a service manager passed (sd_listen_fds).
#include "src/base/socket_activation.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "src/base/errno_status.h"
#include "src/base/socket_address.h"

namespace ddv {
namespace {

// More than any unit passes; bounds what a stray LISTEN_FDS makes us touch.
constexpr int kMaxPassedFds = 4096;

std::string Quoted(const std::string& name) {
  return name.empty() ? std::string("(no name)") : absl::StrCat("\"", name, "\"");
}

int IntOption(int fd, int level, int option) {
  int value = -1;
  socklen_t length = sizeof(value);
  if (getsockopt(fd, level, option, &value, &length) < 0) return -1;
  return value;
}

// "" when `fd` is a listening TCP socket on `spec`'s address; otherwise
// what it is instead, to follow `fd 3 "http" `.
std::string Mismatch(int fd, const ListenSpec& spec) {
  const int family = IntOption(fd, SOL_SOCKET, SO_DOMAIN);
  if (family < 0) {
    return errno == ENOTSOCK ? "is not a socket"
                             : absl::StrCat("cannot be examined (",
                                            std::strerror(errno), ")");
  }
  const std::string wanted =
      absl::StrCat("listener \"", spec.name, "\" needs a listening TCP socket "
                   "on ", spec.address, " (ListenStream=", spec.address, ")");
  if (family != AF_INET && family != AF_INET6) {
    return absl::StrCat(
        "is an ", family == AF_UNIX ? "AF_UNIX" : absl::StrCat("family ", family),
        " socket; ", wanted);
  }
  const int type = IntOption(fd, SOL_SOCKET, SO_TYPE);
  const int protocol = IntOption(fd, SOL_SOCKET, SO_PROTOCOL);
  if (type != SOCK_STREAM || protocol != IPPROTO_TCP) {
    return absl::StrCat(
        "is a ",
        type == SOCK_DGRAM ? std::string("datagram (UDP)")
                           : absl::StrCat("type ", type, " protocol ", protocol),
        " socket; ", wanted);
  }
  if (IntOption(fd, SOL_SOCKET, SO_ACCEPTCONN) != 1) {
    return absl::StrCat("is a TCP socket that does not listen; ", wanted);
  }
  if (ListensOn(fd, spec.bind_to)) {
    // IPV6_V6ONLY is fixed once bound: the unit's BindIPv6Only= decides.
    if (family == AF_INET6 && IsV6Only(fd) != spec.v6only) {
      return spec.v6only
                 ? absl::StrCat("is dual stack (BindIPv6Only=both); listener \"",
                                spec.name, "\" has v6only = true, so the unit "
                                "needs BindIPv6Only=ipv6-only")
                 : absl::StrCat("is IPv6-only; listener \"", spec.name,
                                "\" has v6only = false, so the unit needs "
                                "BindIPv6Only=both");
    }
    return "";
  }
  sockaddr_storage bound{};
  socklen_t length = sizeof(bound);
  std::string where = "an unknown address";
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length) == 0) {
    absl::StatusOr<std::string> text = FormatSocketAddress(bound);
    if (text.ok()) where = *text;
  }
  return absl::StrCat("listens on ", where, "; listener \"", spec.name,
                      "\" has address ", spec.address);
}

}  // namespace

absl::StatusOr<ListenFdsEnv> ParseListenFdsEnv(const char* listen_pid,
                                               const char* listen_fds,
                                               const char* listen_fdnames,
                                               pid_t self) {
  ListenFdsEnv env;
  if (listen_fds == nullptr) return env;
  int64_t pid = 0;
  if (listen_pid == nullptr || !absl::SimpleAtoi(listen_pid, &pid) ||
      pid <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "LISTEN_FDS is set but LISTEN_PID=\"",
        listen_pid == nullptr ? "" : listen_pid,
        "\" does not name a process: sockets passed to whom?"));
  }
  // Inherited from a parent the sockets were meant for: not ours.
  if (pid != self) return env;
  int count = 0;
  if (!absl::SimpleAtoi(listen_fds, &count) || count < 0 ||
      count > kMaxPassedFds) {
    return absl::InvalidArgumentError(absl::StrCat(
        "LISTEN_FDS=\"", listen_fds, "\" is not a number of sockets"));
  }
  env.count = count;
  env.names.assign(count, "");
  if (listen_fdnames == nullptr || count == 0) return env;
  std::vector<std::string> names = absl::StrSplit(listen_fdnames, ':');
  if (static_cast<int>(names.size()) != count) {
    return absl::InvalidArgumentError(absl::StrCat(
        "LISTEN_FDNAMES=\"", listen_fdnames, "\" has ", names.size(),
        " names for LISTEN_FDS=", count, " sockets"));
  }
  env.names = std::move(names);
  return env;
}

absl::StatusOr<std::vector<PassedSocket>> TakePassedSockets() {
  absl::StatusOr<ListenFdsEnv> env =
      ParseListenFdsEnv(std::getenv("LISTEN_PID"), std::getenv("LISTEN_FDS"),
                        std::getenv("LISTEN_FDNAMES"), getpid());
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDS");
  unsetenv("LISTEN_FDNAMES");
  if (!env.ok()) return env.status();
  std::vector<PassedSocket> passed;
  for (int i = 0; i < env->count; ++i) {
    const int fd = kFirstPassedFd + i;
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
      return ErrnoStatus(errno, "fcntl(F_SETFD)",
                         absl::StrCat("taking passed socket ", fd, " (",
                                      Quoted(env->names[i]), ")"));
    }
    passed.push_back({UniqueFd(fd), env->names[i]});
  }
  return passed;
}

absl::StatusOr<std::vector<UniqueFd>> MatchPassedSockets(
    std::vector<PassedSocket> passed,
    const std::vector<ListenSpec>& listeners) {
  std::vector<std::string> problems;
  std::map<std::string, size_t> by_name;  // passed socket index by name
  std::vector<std::string> passed_names;
  for (size_t i = 0; i < passed.size(); ++i) {
    const std::string& name = passed[i].name;
    passed_names.push_back(Quoted(name));
    if (name.empty()) {
      problems.push_back(absl::StrCat(
          "fd ", passed[i].fd.get(),
          " has no name: name it like its [[listener]] (FileDescriptorName= "
          "in its .socket unit, --fdname= for systemd-socket-activate)"));
      continue;
    }
    auto [it, inserted] = by_name.emplace(name, i);
    if (!inserted) {
      problems.push_back(absl::StrCat("fds ", passed[it->second].fd.get(),
                                      " and ", passed[i].fd.get(),
                                      " are both named \"", name, "\""));
    }
  }
  std::vector<std::string> listener_names;
  for (const ListenSpec& spec : listeners) {
    listener_names.push_back(absl::StrCat("\"", spec.name, "\""));
  }
  std::vector<bool> taken(passed.size(), false);
  std::vector<UniqueFd> out(listeners.size());
  for (size_t l = 0; l < listeners.size(); ++l) {
    const ListenSpec& spec = listeners[l];
    auto it = by_name.find(spec.name);
    if (it == by_name.end()) {
      problems.push_back(absl::StrCat(
          "listener \"", spec.name, "\" (", spec.address,
          ") has no socket among those passed (",
          passed_names.empty() ? "none" : absl::StrJoin(passed_names, ", "),
          "): add ListenStream=", spec.address, " with FileDescriptorName=",
          spec.name, " to a .socket unit of the service"));
      continue;
    }
    const size_t i = it->second;
    taken[i] = true;
    const std::string mismatch = Mismatch(passed[i].fd.get(), spec);
    if (!mismatch.empty()) {
      problems.push_back(absl::StrCat("fd ", passed[i].fd.get(), " \"",
                                      spec.name, "\" ", mismatch));
      continue;
    }
    out[l] = std::move(passed[i].fd);
  }
  for (size_t i = 0; i < passed.size(); ++i) {
    if (taken[i] || passed[i].name.empty() ||
        by_name.at(passed[i].name) != i) {
      continue;  // matched, or already named above
    }
    problems.push_back(absl::StrCat(
        "fd ", passed[i].fd.get(), " is named \"", passed[i].name,
        "\" and no [[listener]] has that name (the config has ",
        listener_names.empty() ? "none" : absl::StrJoin(listener_names, ", "),
        ")"));
  }
  if (!problems.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "socket activation: the sockets passed (LISTEN_FDNAMES) do not match "
        "the config's listeners: ",
        absl::StrJoin(problems, "; ")));
  }
  return out;
}

absl::Status CheckPassedListenersKept(const std::vector<ListenSpec>& running,
                                      const std::vector<ListenSpec>& next) {
  std::vector<std::string> problems;
  for (const ListenSpec& spec : next) {
    const ListenSpec* same = nullptr;
    for (const ListenSpec& r : running) {
      if (r.name == spec.name) same = &r;
    }
    if (same == nullptr) {
      problems.push_back(absl::StrCat("listener \"", spec.name, "\" (",
                                      spec.address, ") is new"));
    } else if (!SameSocketAddress(same->bind_to.addr, spec.bind_to.addr)) {
      problems.push_back(absl::StrCat("listener \"", spec.name,
                                      "\" moves from ", same->address, " to ",
                                      spec.address));
    } else if (spec.bind_to.addr.ss_family == AF_INET6 &&
               same->v6only != spec.v6only) {
      problems.push_back(absl::StrCat("listener \"", spec.name,
                                      "\" changes v6only to ",
                                      spec.v6only ? "true" : "false"));
    }
  }
  for (const ListenSpec& r : running) {
    bool kept = false;
    for (const ListenSpec& spec : next) kept = kept || spec.name == r.name;
    if (!kept) {
      problems.push_back(absl::StrCat("listener \"", r.name, "\" (", r.address,
                                      ") is gone"));
    }
  }
  if (problems.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "the listening sockets came from systemd (socket activation) and stay "
      "as its units pass them: ",
      absl::StrJoin(problems, "; "),
      ". Change the .socket units and the config together, then restart "
      "the service"));
}

}  // namespace ddv
