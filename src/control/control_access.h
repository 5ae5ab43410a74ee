// Who may use the master's control socket. Two gates: the socket file's mode
// and group ([master] control_socket_mode, control_socket_group), which the
// kernel checks at connect(); then the master checks every connection
// against the kernel's record of the peer (SO_PEERCRED, SO_PEERGROUPS), so
// a mode set too wide, or a worker running under a site's `user`, still
// reaches no command.
#ifndef DDV_SRC_CONTROL_CONTROL_ACCESS_H_
#define DDV_SRC_CONTROL_CONTROL_ACCESS_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ddv {
namespace control {

// The peer of a connected Unix socket as the kernel recorded it at
// connect(): not what the peer says, and not what it became later.
struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;               // effective gid
  std::vector<gid_t> groups;   // supplementary groups
};

// SO_PEERCRED and SO_PEERGROUPS (Linux 4.13) of `fd`. The groups come from
// the kernel too, not from getgrouplist() or /proc/<pid>/status: no NSS
// lookup that could block the master's loop, and no race with the peer
// exiting and its pid being reused.
absl::StatusOr<PeerCredentials> ReadPeerCredentials(int fd);

// Who is let in: root, the master's own user, and members (primary or
// supplementary) of the control group when one is set.
struct ControlAccess {
  uid_t owner_uid = 0;         // the master's effective uid
  std::optional<gid_t> group;  // [master] control_socket_group
};

bool MayControl(const PeerCredentials& peer, const ControlAccess& access);

// Gives the socket file its group (the control group, or the master's own
// gid when none is set, so a group removed by a reload loses the file too)
// and mode. chown first: if it fails, nothing changed.
absl::Status SetControlSocketAccess(const std::string& path, mode_t mode,
                                    gid_t group);

}  // namespace control
}  // namespace ddv

#endif  // DDV_SRC_CONTROL_CONTROL_ACCESS_H_
