// Listening sockets, bound the same way by whoever owns them: the watchdog
// (at start, and when a reload adds a listener), or the master when it runs
// alone. Here, below both, so the two can never bind differently.
#ifndef DDV_SRC_BASE_LISTEN_SOCKET_H_
#define DDV_SRC_BASE_LISTEN_SOCKET_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "src/base/socket_address.h"
#include "src/base/unique_fd.h"

namespace ddv {

struct ListenOptions {
  int backlog = 4096;
  // Seconds the kernel may hold a connection until its first bytes arrive
  // (TCP_DEFER_ACCEPT) on listeners whose connections are peeked (http,
  // tls); 0 disables. The master takes this hold off the peek deadline, so
  // it never delays a close.
  int defer_accept_seconds = 1;
};

// What one listening socket is bound from.
struct ListenSpec {
  std::string name;     // the listener's, for messages
  std::string address;  // as written, for messages: "127.0.0.1:80"
  SocketAddress bind_to;
  bool defer_accept = true;  // false for `tcp` listeners: nothing is peeked
  // IPv6 addresses: IPV6_V6ONLY, so "[::]" takes IPv6 alone. False: it
  // takes IPv4 too (dual stack). Fixed once bound: a change is a new socket.
  bool v6only = true;
  // Bound beside a listening socket of the same owner on an overlapping
  // address, which is about to be drained and closed (a reload that moves
  // an address or changes v6only): SO_REUSEPORT on, for bind() and
  // listen() only. The old socket must have SO_REUSEPORT set too
  // (SetReusePort). Off again once listening, so later binds by others are
  // refused as before.
  bool reuse_port = false;
  // A member of the listener's SO_REUSEPORT group: one socket per master
  // loop, the kernel spreading connections over them (docs/shards.md, "One
  // socket per loop"). SO_REUSEPORT stays on: the kernel picks a group
  // member only while the socket found first has it. The group's first
  // socket must have it on (SetReusePort) when this one listens.
  bool group_member = false;
};

// How the watchdog names the sockets of a listener's SO_REUSEPORT group
// (docs/shards.md) in its set, --listen_fds and its saved state: the
// first by the listener's name, the k-th other one "name#k". A master
// older than groups takes "name#k" for a listener it does not have and
// closes it, so a downgrade shrinks the group instead of leaving a socket
// nobody accepts on.
std::string GroupSocketName(absl::string_view listener, size_t k);
// The listener a socket name belongs to: "http" for "http" and "http#2".
absl::string_view ListenerOfSocketName(absl::string_view socket_name);

// socket + SO_REUSEADDR (+ IPV6_V6ONLY as `spec.v6only` says, for IPv6) +
// bind + listen, and TCP_DEFER_ACCEPT when `spec.defer_accept`. A failure
// names the call, the listener and the address:
//   bind() failed while binding listener "x" to 127.0.0.1:80: Address
//   already in use (errno 98)
absl::StatusOr<UniqueFd> BindListenSocket(const ListenSpec& spec,
                                          const ListenOptions& options);

// Turns TCP_DEFER_ACCEPT on (options.defer_accept_seconds) or off on a bound
// socket: a listener that changes between `tcp` and a peeked protocol keeps
// its socket.
absl::Status SetDeferAccept(int fd, bool on, const ListenOptions& options);

// Turns SO_REUSEPORT on or off on a bound socket: on before a socket that
// replaces it is bound beside it (ListenSpec::reuse_port), off again when
// that bind failed; on for good in the first socket of a group
// (ListenSpec::group_member).
absl::Status SetReusePort(int fd, bool on);

// IPV6_V6ONLY of a bound IPv6 socket; true for any other family (it takes
// no IPv4 through IPv6 either). False when it cannot be read.
bool IsV6Only(int fd);

// Whether `fd` is a listening socket (SO_ACCEPTCONN); false when it cannot
// be read.
bool IsListening(int fd);

// Whether `fd` is a listening socket bound to `address`; port 0 in
// `address` matches any port (the kernel picked one).
bool ListensOn(int fd, const SocketAddress& address);

// Connections waiting in a listening TCP socket's accept queue (TCP_INFO's
// tcpi_unacked, which a listener uses for that). -1 if it cannot be read.
int64_t AcceptQueueLength(int listener_fd);

}  // namespace ddv

#endif  // DDV_SRC_BASE_LISTEN_SOCKET_H_
