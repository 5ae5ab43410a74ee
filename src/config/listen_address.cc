// ParseListenAddress and friends: the config's names for the shared
// socket-address parser in src/base (strict "IPv4:PORT" / "[IPv6]:PORT",
// messages that say how to write the address instead).
#include "src/config/listen_address.h"

namespace ddv {
namespace config {

absl::StatusOr<ListenAddress> ParseListenAddress(absl::string_view text) {
  return ParseSocketAddress(text);
}

bool SameListenAddress(const ListenAddress& a, const ListenAddress& b) {
  return SameSocketAddress(a.addr, b.addr);
}

int ListenPort(const ListenAddress& address) {
  return SocketAddressPort(address.addr);
}

}  // namespace config
}  // namespace ddv
