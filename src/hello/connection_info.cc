// Peer addresses for response bodies and logs: src/base's formatter, with
// "-" where the body has nothing to show.
#include "src/hello/connection_info.h"

#include <sys/socket.h>

#include "src/base/socket_address.h"

namespace ddv {
namespace hello {

std::string FormatSockaddr(const sockaddr_storage& address) {
  return FormatSocketAddress(address).value_or("-");
}

std::string PeerOf(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return "-";
  }
  return FormatSockaddr(ss);
}

}  // namespace hello
}  // namespace ddv
