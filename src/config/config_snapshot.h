// The last good config: the exact text a master applied, kept next to its
// control socket, so a master the watchdog restarts runs that config and
// never a file edited (and maybe broken) since. docs/master.md says who
// writes and reads it.
#ifndef DDV_SRC_CONFIG_CONFIG_SNAPSHOT_H_
#define DDV_SRC_CONFIG_CONFIG_SNAPSHOT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace ddv {
namespace config {

// Where the snapshot of a front door with this control socket lives: the
// socket's path with its extension replaced, "/run/ddv/control.sock" →
// "/run/ddv/control.last-good.toml". Named after the socket, so two front
// doors whose sockets share a directory never read each other's. "" for
// an empty control socket (no snapshot).
std::string SnapshotPathFor(const std::string& control_socket);

// Replaces `path` with `text`, all or nothing: a temporary file in the same
// directory (mode 0600: a config may name users and key files), fsync,
// rename over `path`, fsync of the directory. A crash leaves the old
// snapshot or the new one, never a part.
absl::Status WriteConfigSnapshot(const std::string& path,
                                 absl::string_view text);

}  // namespace config
}  // namespace ddv

#endif  // DDV_SRC_CONFIG_CONFIG_SNAPSHOT_H_
