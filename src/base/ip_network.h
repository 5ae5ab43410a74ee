// IpNetwork: an IP network written in CIDR notation ("10.0.0.0/8",
// "::1/128", or a bare address for one host), and whether a peer's address
// lies in it. Listeners use it for `proxy_protocol_from`: the networks a
// PROXY header is believed from.
#ifndef DDV_SRC_BASE_IP_NETWORK_H_
#define DDV_SRC_BASE_IP_NETWORK_H_

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace ddv {

class IpNetwork {
 public:
  // "A.B.C.D/N" (N 0..32), "IPv6/N" (N 0..128, no brackets), or a bare
  // address (/32, /128). Host bits past the prefix must be zero: a typo
  // such as "10.0.0.1/8" would otherwise trust more, or other, hosts than
  // meant. An IPv4-mapped IPv6 network (::ffff:0:0/96 and longer) is the
  // IPv4 network it maps. On error, InvalidArgument with a message that
  // starts with `network "TEXT"` and says how to write it.
  static absl::StatusOr<IpNetwork> Parse(absl::string_view text);

  // Whether `address` (AF_INET or AF_INET6; the port is ignored) is in the
  // network. An IPv4-mapped IPv6 address (::ffff:a.b.c.d, how a dual-stack
  // socket reports an IPv4 peer) is matched as the IPv4 address it is.
  // Other families are in no network.
  bool Contains(const sockaddr_storage& address) const;

  // The normal form: "10.0.0.0/8", "::1/128".
  std::string ToString() const;

  int family() const { return family_; }
  int prefix_length() const { return prefix_length_; }

  friend bool operator==(const IpNetwork& a, const IpNetwork& b) {
    return a.family_ == b.family_ && a.prefix_length_ == b.prefix_length_ &&
           a.bytes_ == b.bytes_;
  }
  friend bool operator!=(const IpNetwork& a, const IpNetwork& b) {
    return !(a == b);
  }

 private:
  IpNetwork() = default;

  int family_ = AF_UNSPEC;
  int prefix_length_ = 0;
  std::array<uint8_t, 16> bytes_{};  // IPv4 uses the first 4
};

// Whether any of `networks` contains `address`.
bool AnyNetworkContains(absl::Span<const IpNetwork> networks,
                        const sockaddr_storage& address);

}  // namespace ddv

#endif  // DDV_SRC_BASE_IP_NETWORK_H_
