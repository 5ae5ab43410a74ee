// The config's listeners as sockets: bound (src/base/listen_socket.h, the
// code the watchdog binds with too) or taken over from --listen_fds, which
// the watchdog writes for each master it starts.
#ifndef DDV_SRC_MASTER_LISTENER_SOCKET_H_
#define DDV_SRC_MASTER_LISTENER_SOCKET_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "src/base/listen_socket.h"
#include "src/base/unique_fd.h"
#include "src/config/config.h"

namespace ddv {
namespace master {

using ListenOptions = ::ddv::ListenOptions;

// How `listener` is bound: its address, v6only, and TCP_DEFER_ACCEPT when
// its connections are peeked (config::IsPeeked).
ListenSpec ListenSpecFor(const config::ListenerConfig& listener);

absl::StatusOr<UniqueFd> BindListener(const config::ListenerConfig& listener,
                                      const ListenOptions& options);

// Binds every listener of `config`, in order; on any failure closes the ones
// already bound and says which failed.
absl::StatusOr<std::vector<UniqueFd>> BindAll(const config::Config& config,
                                              const ListenOptions& options);

// The text of --listen_fds (name=fd,...) → the fds of each of
// `listener_names`, in order: none for a listener the text does not name,
// several for a SO_REUSEPORT group (docs/shards.md: "name", "name#1", ...),
// in the text's order.
// Entries naming no listener are returned in `strangers` when it is given.
// InvalidArgument for a malformed entry, or an fd named twice (two owners
// would close it twice). Pure: it looks at no fd.
absl::StatusOr<std::vector<std::vector<int>>> ParseListenFdList(
    absl::string_view text, const std::vector<std::string>& listener_names,
    std::vector<int>* strangers = nullptr);

// Takes over what the watchdog passed: for each listener of `config`, in
// order, the --listen_fds socket of that name when it listens on the
// listener's address, else an empty UniqueFd: the caller binds that one
// (the watchdog's set and the config can differ after a crash in the
// middle of a reload that changed listeners). Named listening sockets that
// no listener takes (a name the config lacks, another address) are
// closed: the master's start commit drops the watchdog's copies too. Fds
// that are not listening sockets are left alone. InvalidArgument for
// malformed text, and then nothing is taken or closed.
//
// A listener with no socket under its own name takes one held under
// another name on its address (a rename, or two listeners that swapped
// addresses, whose commit the master did not live to snapshot): binding
// it again would fail, the address being the watchdog's already.
// `held_as[i]` is the name the watchdog holds listener i's socket under
// ("" when none was taken), for the master's commit.
//
// Several sockets under one name on the listener's address are its
// SO_REUSEPORT group: the first is returned, the others in `members[i]`
// (closed when `members` is null).
absl::StatusOr<std::vector<UniqueFd>> TakeListenFds(
    absl::string_view text, const config::Config& config,
    std::vector<std::string>* held_as = nullptr,
    std::vector<std::vector<UniqueFd>>* members = nullptr);

}  // namespace master
}  // namespace ddv

#endif  // DDV_SRC_MASTER_LISTENER_SOCKET_H_
