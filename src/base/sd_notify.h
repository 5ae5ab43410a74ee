// systemd's notification protocol without libsystemd (sd_notify(3)): a
// service manager that starts a process with NOTIFY_SOCKET=ADDRESS reads
// "READY=1", "STATUS=..." and the like, one datagram of newline-separated
// assignments per message, from that AF_UNIX socket. ADDRESS is a path, or
// an abstract name written with a leading '@'. WATCHDOG_USEC (with
// WATCHDOG_PID naming the process meant) asks for "WATCHDOG=1" at least
// that often.
#ifndef DDV_SRC_BASE_SD_NOTIFY_H_
#define DDV_SRC_BASE_SD_NOTIFY_H_

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "src/base/unique_fd.h"

namespace ddv {

// What the service manager put in the environment for this process.
struct SystemdNotifyEnv {
  std::string notify_socket;  // NOTIFY_SOCKET; empty: nobody listens
  // WATCHDOG_USEC when WATCHDOG_PID is unset or names `self`; zero: no
  // watchdog pings are wanted.
  absl::Duration watchdog = absl::ZeroDuration();
};

// Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID as sd_notify(3) and
// sd_watchdog_enabled(3) do. InvalidArgument for a WATCHDOG_USEC or
// WATCHDOG_PID that is not a positive number. The variables stay set.
absl::StatusOr<SystemdNotifyEnv> ReadSystemdNotifyEnv(pid_t self = getpid());

// The variables above, for a child's environment to leave out: a child
// must not speak for the service (NotifyAccess=main) nor think itself
// watched.
bool IsSystemdNotifyVariable(absl::string_view name);

// One socket to send notifications on: SOCK_DGRAM | SOCK_NONBLOCK |
// SOCK_CLOEXEC, unconnected, every message addressed (sendmsg with
// msg_name), so a service manager that re-creates its socket is still
// reached.
class NotifySocket {
 public:
  NotifySocket() = default;  // sends nothing

  // `address` as NOTIFY_SOCKET has it: "/run/systemd/notify" or
  // "@name". InvalidArgument for anything else (vsock: addresses, which
  // ddv has no use for, included), or one too long for sun_path.
  static absl::StatusOr<NotifySocket> Open(absl::string_view address);

  bool enabled() const { return fd_.valid(); }
  const std::string& address() const { return address_; }

  // Sends `message` ("READY=1\nSTATUS=...") as one datagram. Never blocks:
  // a full receive queue is ResourceExhausted (the message is dropped);
  // nobody bound to the address is FailedPrecondition or NotFound, as
  // errno says. OK and nothing sent when not enabled.
  absl::Status Send(absl::string_view message) const;

 private:
  UniqueFd fd_;
  sockaddr_un sockaddr_{};
  socklen_t sockaddr_length_ = 0;
  std::string address_;
};

// `text` made fit for one assignment: newlines become spaces.
std::string NotifyValue(absl::string_view text);

}  // namespace ddv

#endif  // DDV_SRC_BASE_SD_NOTIFY_H_
