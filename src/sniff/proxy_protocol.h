// SniffProxyHeader: recognises a PROXY protocol v1 (text) or v2 (binary)
// header at the start of a connection, as sent by an L4 tier (HAProxy,
// Katran, cloud load balancers) so workers still see the real client.
// Spec: haproxy doc/proxy-protocol.txt.
#ifndef DDV_SRC_SNIFF_PROXY_PROTOCOL_H_
#define DDV_SRC_SNIFF_PROXY_PROTOCOL_H_

#include <sys/socket.h>

#include <cstddef>

#include "absl/strings/string_view.h"
#include "src/sniff/sniff_status.h"

namespace ddv {
namespace sniff {

// v1 §2.1: "a receiver must not wait for more than 107 bytes", CRLF included.
inline constexpr size_t kProxyV1MaxLength = 107;
// v2 §2.2: the fixed part (signature, ver_cmd, fam, len) is 16 bytes.
inline constexpr size_t kProxyV2FixedLength = 16;

struct ProxyHeader {
  int version = 0;  // 1 or 2
  // v2 LOCAL command, v1 UNKNOWN, v2 AF_UNSPEC or AF_UNIX: the header carries
  // no usable TCP addresses, so keep the real connection's addresses.
  bool local = false;
  int family = AF_UNSPEC;  // AF_INET / AF_INET6; AF_UNSPEC when `local`
  // The original client and the original destination, ports set, in
  // sockaddr_in / sockaddr_in6 form. All zero when `local`.
  sockaddr_storage source{};
  sockaddr_storage destination{};
  // kFound: bytes to skip before the HTTP/TLS payload.
  // kNeedMore on a v2 header whose fixed part has arrived: the total header
  // length, so the caller can size its next peek. 0 otherwise.
  size_t header_length = 0;
  // kMalformed / kNotThisProtocol: a static string saying why. nullptr else.
  const char* reason = nullptr;
};

// Looks at `prefix`, the first bytes of a connection, and fills `*header`
// (always reset first). Decides from as few bytes as possible:
//   kNotThisProtocol  the bytes seen so far differ from both "PROXY " and the
//                     v2 signature (usually from the first byte);
//   kNeedMore         a prefix of a header that may still turn out valid
//                     (an empty prefix included);
//   kMalformed        a header that breaks the grammar: v1 longer than 107
//                     bytes, bad address or port, v2 bad version, command,
//                     family, transport (only STREAM is accepted) or TLV
//                     lengths;
//   kFound            a complete valid header of `header_length` bytes.
// Never kTooLarge: a v2 header is at most 16 + 65535 bytes and it is the
// caller's peek cap that decides whether to wait that long.
// Pure: no I/O, no logging, no allocation.
SniffStatus SniffProxyHeader(absl::string_view prefix, ProxyHeader* header);

}  // namespace sniff
}  // namespace ddv

#endif  // DDV_SRC_SNIFF_PROXY_PROTOCOL_H_
