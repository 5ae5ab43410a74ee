// ReadPeerCredentials, MayControl, SetControlSocketAccess.
#include "src/control/control_access.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "src/base/errno_status.h"

namespace ddv {
namespace control {

absl::StatusOr<PeerCredentials> ReadPeerCredentials(int fd) {
  ucred cred{};
  socklen_t length = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) < 0) {
    return ErrnoStatus(errno, "getsockopt(SO_PEERCRED)",
                       "checking a control client");
  }
  PeerCredentials peer;
  peer.pid = cred.pid;
  peer.uid = cred.uid;
  peer.gid = cred.gid;
  // ERANGE says how much room the list needs; it cannot change afterwards
  // (the kernel copied it at connect), so the second call fits.
  peer.groups.resize(32);
  for (int attempt = 0; attempt < 2; ++attempt) {
    length = static_cast<socklen_t>(peer.groups.size() * sizeof(gid_t));
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, peer.groups.data(),
                   &length) == 0) {
      peer.groups.resize(length / sizeof(gid_t));
      return peer;
    }
    if (errno != ERANGE) break;
    peer.groups.resize(length / sizeof(gid_t) + 1);
  }
  return ErrnoStatus(errno, "getsockopt(SO_PEERGROUPS)",
                     "checking a control client");
}

bool MayControl(const PeerCredentials& peer, const ControlAccess& access) {
  if (peer.uid == 0 || peer.uid == access.owner_uid) return true;
  if (!access.group.has_value()) return false;
  return peer.gid == *access.group ||
         std::find(peer.groups.begin(), peer.groups.end(), *access.group) !=
             peer.groups.end();
}

absl::Status SetControlSocketAccess(const std::string& path, mode_t mode,
                                    gid_t group) {
  if (chown(path.c_str(), static_cast<uid_t>(-1), group) < 0) {
    return ErrnoStatus(
        errno, "chown",
        absl::StrCat("giving the control socket \"", path, "\" group ",
                     group));
  }
  if (chmod(path.c_str(), mode) < 0) {
    return ErrnoStatus(errno, "chmod",
                       absl::StrFormat("setting the control socket \"%s\" to "
                                       "mode %04o",
                                       path, mode));
  }
  return absl::OkStatus();
}

}  // namespace control
}  // namespace ddv
