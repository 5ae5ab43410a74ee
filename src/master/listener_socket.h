// Listening sockets: bound by whoever owns them (the watchdog, or the master
// when it runs alone) and passed to the master by fd.
#ifndef DDV_SRC_MASTER_LISTENER_SOCKET_H_
#define DDV_SRC_MASTER_LISTENER_SOCKET_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "src/base/unique_fd.h"
#include "src/config/config.h"

namespace ddv {
namespace master {

struct ListenOptions {
  int backlog = 4096;
  // Seconds the kernel may hold a connection until its first bytes arrive
  // (TCP_DEFER_ACCEPT) on http/tls listeners; 0 disables. The master takes
  // this hold off the peek deadline (see Master), so it never delays a close.
  int defer_accept_seconds = 1;
};

// socket + SO_REUSEADDR (+ IPV6_V6ONLY for "[::]") + bind + listen, and
// TCP_DEFER_ACCEPT for protocols that are peeked.
absl::StatusOr<UniqueFd> BindListener(const config::ListenerConfig& listener,
                                      const ListenOptions& options);

// Binds every listener of `config`, in order; on any failure closes the ones
// already bound and says which failed.
absl::StatusOr<std::vector<UniqueFd>> BindAll(const config::Config& config,
                                              const ListenOptions& options);

// Connections waiting in a listening TCP socket's accept queue (TCP_INFO's
// tcpi_unacked, which a listener uses for that). -1 if it cannot be read.
int64_t AcceptQueueLength(int listener_fd);

// How the watchdog passes listeners to the master: --listen_fds=http=3,https=4.
std::string FormatListenFds(const config::Config& config,
                            const std::vector<int>& fds);

// The text of --listen_fds → the fd of each of `listener_names`, in order;
// -1 for a listener the text does not name (entries naming no listener are
// ignored). InvalidArgument for a malformed entry, or an fd named twice (two
// owners would close it twice). Pure: it looks at no fd.
absl::StatusOr<std::vector<int>> ParseListenFdList(
    absl::string_view text, const std::vector<std::string>& listener_names);

// ParseListenFdList for `config`'s listeners, then checks that each fd is a
// listening socket (SO_ACCEPTCONN) and takes ownership of them all; nothing
// is owned (or closed) when it fails.
absl::StatusOr<std::vector<UniqueFd>> ParseListenFds(
    const std::string& text, const config::Config& config);

}  // namespace master
}  // namespace ddv

#endif  // DDV_SRC_MASTER_LISTENER_SOCKET_H_
