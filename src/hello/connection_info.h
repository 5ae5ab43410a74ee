// ConnectionInfo: what ddv_hello knows about a connection before its first
// byte (from the master's handoff, or from its own listener), and how it
// prints the client's address in response bodies.
#ifndef DDV_SRC_HELLO_CONNECTION_INFO_H_
#define DDV_SRC_HELLO_CONNECTION_INFO_H_

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace ddv {
namespace hello {

// ConnectionInfo::listener_key of a connection whose requests are not
// checked against the site's hosts (standalone, or no site view).
inline constexpr uint32_t kUncheckedListener = UINT32_MAX;

// What the master knows about a connection it hands over. The server keeps
// its own copy of these fields so it does not depend on the worker library.
struct ConnectionInfo {
  std::string site_id;
  int worker_index = 0;
  std::string host;       // the name the master routed on (informational only:
                          // the body reports each request's own Host header)
  std::string sni;        // empty: none
  std::string alpn;       // empty: none
  bool tls = false;       // the listener's protocol was TLS: the server
                          // terminates it (sni and alpn are then replaced
                          // by what the handshake negotiated)
  std::string peer;       // "ip:port" from a PROXY header; empty: getpeername()
  size_t skip_bytes = 0;  // unconsumed bytes to discard first (PROXY header)
  // The worker library's key for the listener it came on: each request's
  // host is checked against the site's names there (HostGate).
  uint32_t listener_key = kUncheckedListener;
  // What the PROXY header said, for GET /proxy: "proxy=1\n" and one
  // "key=value\n" line per field it had (ProxyLines); empty without one.
  std::string proxy;
};

// The fields of a PROXY header, as GET /proxy shows them. Text values are
// escaped (EscapeProxyValue); the unique id and unknown TLVs are in hex.
struct ProxyFields {
  std::string source, destination;  // "ip:port", IPv4-mapped as IPv4
  std::string alpn, authority, unique_id, netns;
  bool ssl = false;
  int ssl_client = 0;
  uint32_t ssl_verify = 0;
  std::string ssl_version, ssl_cn, ssl_cipher, ssl_sig_alg, ssl_key_alg;
  std::vector<std::pair<int, std::string>> other_tlvs;  // type, value
  bool tlvs_truncated = false;
};
std::string ProxyLines(const ProxyFields& fields);

// Printable ASCII but '\\' as it is; other bytes as \xHH.
std::string EscapeProxyValue(absl::string_view value);

// "ip:port", "[ipv6]:port" (IPv4-mapped IPv6 as plain IPv4), or "-".
std::string FormatSockaddr(const sockaddr_storage& address);

// The connected peer of `fd` as FormatSockaddr prints it; "-" when
// getpeername() fails.
std::string PeerOf(int fd);

}  // namespace hello
}  // namespace ddv

#endif  // DDV_SRC_HELLO_CONNECTION_INFO_H_
