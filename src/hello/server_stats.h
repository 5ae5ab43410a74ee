// HttpServerStats: ddv_hello's counters, shared by the server loop, the
// connections and their responders; tests assert on them.
#ifndef DDV_SRC_HELLO_SERVER_STATS_H_
#define DDV_SRC_HELLO_SERVER_STATS_H_

#include <cstdint>

namespace ddv {
namespace hello {

// Counters, read on the loop thread or after Run() returned.
struct HttpServerStats {
  uint64_t connections_accepted = 0;
  uint64_t connections_added = 0;
  uint64_t tls_connections_refused = 0;  // TLS, but no TLS context set
  uint64_t tls_handshakes = 0;
  uint64_t tls_handshake_failures = 0;  // alert sent (if any), then closed
  uint64_t tls_errors = 0;  // fatal errors after the handshake (bad record)
  uint64_t requests = 0;
  uint64_t bad_requests = 0;     // answered 400 and closed
  uint64_t heads_too_large = 0;  // answered 431 and closed
  // Answered 421 and closed: the Host is another site's (HostGate).
  uint64_t misdirected_requests = 0;
  uint64_t idle_timeouts = 0;
  uint64_t open_connections = 0;
};

}  // namespace hello
}  // namespace ddv

#endif  // DDV_SRC_HELLO_SERVER_STATS_H_
