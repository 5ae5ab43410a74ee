// Counters: every outcome the master can reach, counted once, as found /
// not-found pairs per feature in Envoy's style. Rendered as Prometheus text
// (names start with ddv_, counters end in _total) for `ddvctl metrics`.
#ifndef DDV_SRC_MASTER_COUNTERS_H_
#define DDV_SRC_MASTER_COUNTERS_H_

#include <array>
#include <cstdint>
#include <string>

namespace ddv {
namespace master {

// One list drives the struct, the reset and the Prometheus names.
#define DDV_MASTER_COUNTERS(X)                                             \
  X(connections_accepted, "connections accepted from listeners")           \
  X(connections_handed_off, "connections handed to a worker")              \
  X(connections_rerouted, "handoffs retried on another worker")            \
  X(handoff_batches, "handoff messages sent (each may carry several fds)") \
  X(handoff_channel_full, "handoffs that found a worker channel full")     \
  X(handoff_worker_gone, "handoffs whose worker died before taking them")  \
  X(no_site, "connections with no site for their name (421 / alert)")      \
  X(site_unavailable, "connections whose site has no live worker")         \
  X(site_pending_refused,                                                   \
    "connections refused at their site's max_pending (503 / alert)")       \
  X(site_connections_refused,                                               \
    "connections refused at their site's max_connections (503 / alert)")   \
  X(peek_timeout, "connections closed at the peek deadline")               \
  X(too_large, "prefixes over max_peek_bytes without a decision")          \
  X(malformed, "prefixes that broke their protocol's grammar")             \
  X(not_this_protocol, "prefixes of another protocol than the listener's") \
  X(closed_before_decision, "peers that closed before a decision")         \
  X(accept_errors, "failed accepts")                                       \
  X(accept_paused, "times accepts paused at --max_connections or the fd limit") \
  X(accepted_over_limit,                                                    \
    "connections accepted as the table filled, held for a slot, not reset") \
  X(http_host_found, "HTTP requests with a Host")                          \
  X(http_host_absent, "HTTP requests without a name (to the default)")     \
  X(tls_sni_found, "TLS ClientHellos with SNI")                            \
  X(tls_sni_absent, "TLS ClientHellos without SNI (to the default)")       \
  X(tls_alpn_found, "TLS ClientHellos offering ALPN")                      \
  X(tls_alpn_absent, "TLS ClientHellos without ALPN")                      \
  X(proxy_header_found, "PROXY protocol headers parsed")                   \
  X(proxy_untrusted,                                                        \
    "connections reset unread: not from the listener's proxy_protocol_from") \
  X(proxy_tlvs_dropped, "PROXY v2 TLVs left out: over what a handoff carries") \
  X(peek_buffer_exhausted, "peeks that waited for a free buffer")          \
  X(peek_grown, "prefixes that outgrew a ring buffer")                     \
  X(worker_restarts, "worker processes restarted")                         \
  X(worker_shutdowns, "workers asked to finish and exit (kShutdown)")      \
  X(stale_completions, "completions dropped because their slot was reused") \
  X(node_not_accepted, "connections a Node worker refused (maxConnections)") \
  X(node_protocol_errors, "Node workers killed for a broken IPC stream")   \
  X(control_refused, "control connections refused by the peer check")     \
  X(claims_refused, "update_server_conf claims refused by the policy")    \
  X(claims_dropped, "run-time claims dropped (worker gone, or a reload)") \
  X(workers_adopted, "running workers taken over from an earlier master")  \
  X(connections_lost_in_master_crashes,                                     \
    "connections dead masters had accepted and not handed off (watchdog)")

struct Counters {
#define DDV_DECLARE_COUNTER(name, help) uint64_t name = 0;
  DDV_MASTER_COUNTERS(DDV_DECLARE_COUNTER)
#undef DDV_DECLARE_COUNTER
};

// Prometheus text exposition of `counters` (HELP and TYPE lines included).
std::string RenderCounters(const Counters& counters);

}  // namespace master
}  // namespace ddv

#endif  // DDV_SRC_MASTER_COUNTERS_H_
