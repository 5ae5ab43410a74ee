// NotifySocket and the environment it comes from (sd_notify(3)).
#include "src/base/sd_notify.h"

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "src/base/errno_status.h"

namespace ddv {
namespace {

const char* Env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : nullptr;
}

}  // namespace

absl::StatusOr<SystemdNotifyEnv> ReadSystemdNotifyEnv(pid_t self) {
  SystemdNotifyEnv env;
  if (const char* socket = Env("NOTIFY_SOCKET")) env.notify_socket = socket;
  const char* usec = Env("WATCHDOG_USEC");
  if (usec == nullptr) return env;
  uint64_t microseconds = 0;
  if (!absl::SimpleAtoi(usec, &microseconds) || microseconds == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "WATCHDOG_USEC=\"", usec, "\" is not a positive number of "
        "microseconds"));
  }
  // Set by systemd to the main process: a child that inherited the
  // variables is not the one watched.
  if (const char* pid = Env("WATCHDOG_PID")) {
    int64_t watched = 0;
    if (!absl::SimpleAtoi(pid, &watched) || watched <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("WATCHDOG_PID=\"", pid, "\" is not a process id"));
    }
    if (watched != self) return env;
  }
  env.watchdog = absl::Microseconds(microseconds);
  return env;
}

bool IsSystemdNotifyVariable(absl::string_view name) {
  return name == "NOTIFY_SOCKET" || name == "WATCHDOG_USEC" ||
         name == "WATCHDOG_PID";
}

absl::StatusOr<NotifySocket> NotifySocket::Open(absl::string_view address) {
  NotifySocket out;
  out.address_ = std::string(address);
  out.sockaddr_.sun_family = AF_UNIX;
  const bool abstract = !address.empty() && address[0] == '@';
  if (address.empty() || (address[0] != '/' && !abstract) ||
      (abstract && address.size() < 2)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "NOTIFY_SOCKET=\"", address,
        "\": expected an AF_UNIX socket path (/...) or an abstract name "
        "(@...)"));
  }
  // A path needs its terminating NUL inside sun_path; an abstract name is
  // exactly its bytes after the leading NUL that stands for '@'.
  if (address.size() + (abstract ? 0 : 1) > sizeof(out.sockaddr_.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "NOTIFY_SOCKET=\"", address, "\" is longer than an AF_UNIX address (",
        sizeof(out.sockaddr_.sun_path), " bytes)"));
  }
  std::memcpy(out.sockaddr_.sun_path, address.data(), address.size());
  if (abstract) out.sockaddr_.sun_path[0] = '\0';
  out.sockaddr_length_ = static_cast<socklen_t>(
      offsetof(sockaddr_un, sun_path) + address.size() + (abstract ? 0 : 1));
  out.fd_ = UniqueFd(socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!out.fd_) {
    return ErrnoStatus(errno, "socket",
                       absl::StrCat("opening a socket to NOTIFY_SOCKET=",
                                    address));
  }
  return out;
}

absl::Status NotifySocket::Send(absl::string_view message) const {
  if (!fd_) return absl::OkStatus();
  iovec iov{const_cast<char*>(message.data()), message.size()};
  msghdr msg{};
  msg.msg_name = const_cast<sockaddr_un*>(&sockaddr_);
  msg.msg_namelen = sockaddr_length_;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  while (true) {
    if (sendmsg(fd_.get(), &msg, MSG_NOSIGNAL) >= 0) return absl::OkStatus();
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "NOTIFY_SOCKET ", address_, " is full; dropped: ",
          absl::StrReplaceAll(message, {{"\n", " "}})));
    }
    return ErrnoStatus(errno, "sendmsg",
                       absl::StrCat("notifying ", address_));
  }
}

std::string NotifyValue(absl::string_view text) {
  return absl::StrReplaceAll(text, {{"\n", " "}, {"\r", " "}});
}

}  // namespace ddv
