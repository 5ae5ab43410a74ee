// SendControlCommand: connect, write the line, read to EOF, with timeouts.
#include "src/control/control_client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "src/base/errno_status.h"
#include "src/base/unique_fd.h"

namespace ddv {
namespace control {

absl::StatusOr<std::string> SendControlCommand(const std::string& socket_path,
                                               const std::string& command,
                                               absl::Duration timeout) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError("control socket path too long");
  }
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoStatus(errno, "socket", "opening a control connection");
  timeval tv = absl::ToTimeval(timeout);
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) <
      0) {
    return ErrnoStatus(errno, "connect",
                       absl::StrCat("connecting to the master's control socket \"",
                                    socket_path, "\" (is ddv_master running?)"));
  }
  std::string line = command + "\n";
  if (send(fd.get(), line.data(), line.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(line.size())) {
    return ErrnoStatus(errno, "send", "sending a control command");
  }
  std::string reply;
  char buf[4096];
  while (true) {
    ssize_t n = recv(fd.get(), buf, sizeof(buf), 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "recv", "reading the master's reply");
    }
    reply.append(buf, n);
  }
  if (absl::StartsWith(reply, "error:")) {
    return absl::InvalidArgumentError(reply.substr(7));
  }
  return reply;
}

}  // namespace control
}  // namespace ddv
