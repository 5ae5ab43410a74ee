// ListenAddress: a listener's "IP:PORT" as written in the config
// ("0.0.0.0:80", "[::1]:8443") turned into the sockaddr that bind() takes.
// The parsing is ddv::ParseSocketAddress (src/base), the one address parser
// shared with ddv_hello; this header keeps the config's names for it.
#ifndef DDV_SRC_CONFIG_LISTEN_ADDRESS_H_
#define DDV_SRC_CONFIG_LISTEN_ADDRESS_H_

#include <sys/socket.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "src/base/socket_address.h"

namespace ddv {
namespace config {

// Fields `addr` and `addr_len`, ready for bind().
using ListenAddress = ::ddv::SocketAddress;

// Accepts an IPv4 dotted quad or a bracketed IPv6 literal, then ":PORT" with
// PORT in 0..65535 (0 asks the kernel for a free port). Host names are refused:
// a front door binds addresses, and resolving a name at load time would make
// the listener depend on DNS. On error, InvalidArgument with a message that
// starts with `address "TEXT"`.
absl::StatusOr<ListenAddress> ParseListenAddress(absl::string_view text);

// True when both name the same family, IP and port.
bool SameListenAddress(const ListenAddress& a, const ListenAddress& b);

// The port in host byte order.
int ListenPort(const ListenAddress& address);

}  // namespace config
}  // namespace ddv

#endif  // DDV_SRC_CONFIG_LISTEN_ADDRESS_H_
