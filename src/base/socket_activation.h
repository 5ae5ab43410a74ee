// Socket activation without libsystemd (sd_listen_fds(3)): a service
// manager binds the listening sockets and passes them from fd 3 on,
// LISTEN_FDS of them, to the process LISTEN_PID, named in LISTEN_FDNAMES
// (colon-separated: FileDescriptorName= of a .socket unit, --fdname= of
// systemd-socket-activate). ddv matches them to its [[listener]]s by name;
// nothing about them is guessed, so a unit and a config that disagree stop
// the start with a message saying how (docs/package.md).
#ifndef DDV_SRC_BASE_SOCKET_ACTIVATION_H_
#define DDV_SRC_BASE_SOCKET_ACTIVATION_H_

#include <unistd.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "src/base/listen_socket.h"
#include "src/base/unique_fd.h"

namespace ddv {

// The first passed descriptor (SD_LISTEN_FDS_START).
inline constexpr int kFirstPassedFd = 3;

// What the three variables say: how many sockets were passed to `self`
// and their names ("" for one without). `count` 0: none (LISTEN_FDS unset,
// or LISTEN_PID another process's: a parent's variables inherited).
struct ListenFdsEnv {
  int count = 0;
  std::vector<std::string> names;  // `count` of them
};

// Pure. Null pointers are unset variables. InvalidArgument for a
// LISTEN_FDS or LISTEN_PID that is not a number, or a LISTEN_FDNAMES with
// another number of names than LISTEN_FDS.
absl::StatusOr<ListenFdsEnv> ParseListenFdsEnv(const char* listen_pid,
                                               const char* listen_fds,
                                               const char* listen_fdnames,
                                               pid_t self);

struct PassedSocket {
  UniqueFd fd;
  std::string name;
};

// Takes the sockets passed to this process: owned and close-on-exec from
// here on, with their names. Unsets LISTEN_PID, LISTEN_FDS and
// LISTEN_FDNAMES whatever they said, so no child (nor a re-executed
// watchdog) takes them for its own. Empty when nothing was passed.
absl::StatusOr<std::vector<PassedSocket>> TakePassedSockets();

// The passed socket for each of `listeners`, in their order: the one named
// like the listener. Every problem is named in one InvalidArgument (the
// others are closed then):
//   - a socket with no name, or a name no listener has;
//   - two sockets with one name;
//   - a listener no socket is named for;
//   - a socket that is not a listening TCP socket (another family or type,
//     not listening) or listens elsewhere than the listener's address;
//   - an IPv6 socket whose IPV6_V6ONLY is not the listener's v6only.
absl::StatusOr<std::vector<UniqueFd>> MatchPassedSockets(
    std::vector<PassedSocket> passed, const std::vector<ListenSpec>& listeners);

// Under socket activation the listening sockets are the service manager's,
// fixed by its units: a reload may change how a listener's connections are
// handled, not which sockets there are. FailedPrecondition, naming the
// listener, when `next` adds, removes or renames one, or gives one another
// address or v6only, compared with `running` (the order does not matter).
absl::Status CheckPassedListenersKept(const std::vector<ListenSpec>& running,
                                      const std::vector<ListenSpec>& next);

}  // namespace ddv

#endif  // DDV_SRC_BASE_SOCKET_ACTIVATION_H_
