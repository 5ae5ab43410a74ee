// SendControlCommand: connect, write the line, read to EOF, with timeouts;
// every failure sorted into the codes ddvctl turns into exit codes.
#include "src/control/control_client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "src/base/errno_status.h"
#include "src/base/unique_fd.h"

namespace ddv {
namespace control {
namespace {

bool IsTimeout(int error) {
  // SO_SNDTIMEO / SO_RCVTIMEO expiring: a blocking connect() to a socket
  // whose backlog is full, or a master that does not answer.
  return error == EAGAIN || error == EWOULDBLOCK || error == ETIMEDOUT;
}

absl::Status NoAnswer(const std::string& socket_path, absl::Duration timeout) {
  return absl::DeadlineExceededError(absl::StrCat(
      "ddv_master did not answer on \"", socket_path, "\" within ",
      absl::FormatDuration(timeout),
      " (busy, or stuck); try again, or give it longer with --timeout_ms"));
}

absl::Status PermissionDenied(const std::string& socket_path,
                              absl::string_view what) {
  return absl::PermissionDeniedError(absl::StrCat(
      what, " on \"", socket_path,
      "\": run ddvctl as root, as the master's user, or as a member of its "
      "[master] control_socket_group"));
}

// A failed syscall, sorted: the errno values that mean "no master", "no
// answer" or "not allowed" get their own codes; anything else is Internal.
absl::Status Classify(int error, absl::string_view call,
                      absl::string_view doing, const std::string& socket_path,
                      absl::Duration timeout) {
  if (IsTimeout(error)) return NoAnswer(socket_path, timeout);
  if (error == EACCES || error == EPERM) {
    return PermissionDenied(socket_path, "permission denied");
  }
  return absl::InternalError(ErrnoStatus(error, call, doing).message());
}

}  // namespace

absl::StatusOr<std::string> SendControlCommand(const std::string& socket_path,
                                               const std::string& command,
                                               absl::Duration timeout) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(addr.sun_path)) {
    return absl::InternalError(absl::StrCat(
        "control socket path \"", socket_path, "\" is too long (",
        socket_path.size(), " bytes; a Unix socket path must be shorter than ",
        sizeof(addr.sun_path), ")"));
  }
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    return absl::InternalError(
        ErrnoStatus(errno, "socket", "opening a control connection")
            .message());
  }
  timeval tv = absl::ToTimeval(timeout);
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) <
      0) {
    const int error = errno;
    if (error == ENOENT || error == ENOTDIR) {
      return absl::UnavailableError(absl::StrCat(
          "ddv_master is not running: no control socket at \"", socket_path,
          "\" (or it listens elsewhere: see [master] control_socket and "
          "--control_socket)"));
    }
    if (error == ECONNREFUSED) {
      return absl::UnavailableError(absl::StrCat(
          "ddv_master is not running: nothing listens on \"", socket_path,
          "\" (a socket left by a master that exited)"));
    }
    return Classify(error, "connect",
                    absl::StrCat("connecting to \"", socket_path, "\""),
                    socket_path, timeout);
  }
  std::string line = command + "\n";
  size_t sent = 0;
  while (sent < line.size()) {
    ssize_t n = send(fd.get(), line.data() + sent, line.size() - sent,
                     MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return Classify(errno, "send", "sending a control command", socket_path,
                      timeout);
    }
    sent += n;
  }
  std::string reply;
  char buf[4096];
  while (true) {
    ssize_t n = recv(fd.get(), buf, sizeof(buf), 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      return Classify(errno, "recv", "reading the master's reply",
                      socket_path, timeout);
    }
    reply.append(buf, n);
  }
  if (reply.empty()) {
    return absl::InternalError(
        "ddv_master closed the connection without answering (is it "
        "stopping?)");
  }
  absl::string_view error = reply;
  if (!absl::ConsumePrefix(&error, "error:")) return reply;
  error = absl::StripAsciiWhitespace(error);
  // The master's peer check (docs/master.md): "permission denied (uid N)".
  if (absl::StartsWith(error, "permission denied")) {
    return PermissionDenied(socket_path,
                            absl::StrCat("the master refused: ", error));
  }
  return absl::FailedPreconditionError(error);
}

ExitCode ExitCodeFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return kExitOk;
    case absl::StatusCode::kUnavailable:
      return kExitNotRunning;
    case absl::StatusCode::kDeadlineExceeded:
      return kExitNoAnswer;
    case absl::StatusCode::kPermissionDenied:
      return kExitPermissionDenied;
    default:
      return kExitFailed;
  }
}

}  // namespace control
}  // namespace ddv
