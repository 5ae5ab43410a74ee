// SocketAddress: the one place ddv turns "IP:PORT" text into the sockaddr
// that bind() takes, and a sockaddr back into "IP:PORT" for logs and
// response bodies. Used by the config (listener addresses) and ddv_hello.
#ifndef DDV_SRC_BASE_SOCKET_ADDRESS_H_
#define DDV_SRC_BASE_SOCKET_ADDRESS_H_

#include <sys/socket.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ddv {

struct SocketAddress {
  sockaddr_storage addr;
  socklen_t addr_len;  // sizeof(sockaddr_in) or sizeof(sockaddr_in6)
};

// Accepts an IPv4 dotted quad or a bracketed IPv6 literal, then ":PORT" with
// PORT in 0..65535 (0 asks the kernel for a free port): "127.0.0.1:80",
// "[::1]:443". Host names are refused: ddv binds addresses, and resolving a
// name would make it depend on DNS. On error, InvalidArgument with a message
// that starts with `address "TEXT"` and says how to write it instead.
absl::StatusOr<SocketAddress> ParseSocketAddress(absl::string_view text);

// "192.0.2.1:80" or "[2001:db8::1]:443". An IPv4-mapped IPv6 address (how a
// dual-stack socket reports IPv4 peers) is printed as the IPv4 address it
// is. InvalidArgument for a family other than AF_INET and AF_INET6.
absl::StatusOr<std::string> FormatSocketAddress(const sockaddr_storage& address);

// The port in host byte order; -1 for a family other than AF_INET/AF_INET6.
int SocketAddressPort(const sockaddr_storage& address);

// True when both name the same family, IP and port.
bool SameSocketAddress(const sockaddr_storage& a, const sockaddr_storage& b);

}  // namespace ddv

#endif  // DDV_SRC_BASE_SOCKET_ADDRESS_H_
