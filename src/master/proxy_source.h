// What the master does with PROXY protocol headers besides finding them:
// who may send one (a listener's proxy_protocol_from), and what of a parsed
// header travels to the worker (handoff::ProxyMetadata).
#ifndef DDV_SRC_MASTER_PROXY_SOURCE_H_
#define DDV_SRC_MASTER_PROXY_SOURCE_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "src/base/unique_fd.h"
#include "src/config/config.h"
#include "src/handoff/wire.h"
#include "src/sniff/proxy_protocol.h"

namespace ddv {
namespace master {

// Whether the peer of `fd`, just accepted on `listener`, may send it a
// PROXY header: any peer when the listener lists no proxy_protocol_from;
// otherwise its address (IPv4-mapped on a dual-stack listener counts as
// IPv4) must be in one of those networks. A peer getpeername() cannot
// name (already gone) may not. `peer` gets the address for the log.
bool PeerMaySendProxy(const config::ListenerConfig& listener, int fd,
                      sockaddr_storage* peer);

// Closes `fd` with a reset and without reading it (SO_LINGER 0): the
// answer to a peer that may not speak PROXY to this listener.
void ResetUnread(UniqueFd fd);

// What the worker is told of `header` (kFound): its addresses unless it had
// none (v1 UNKNOWN, v2 LOCAL or AF_UNSPEC), and its TLVs, whole and in
// order, without PP2_TYPE_NOOP (padding) and PP2_TYPE_CRC32C (checked
// already), as long as they fit handoff::kMaxProxyTlvLength: a TLV that
// does not is left out and `tlvs_truncated` set. Returns how many were
// left out.
size_t ProxyMetadataFrom(const sniff::ProxyHeader& header,
                         handoff::ProxyMetadata* out);

// Reads and drops the `bytes` of a PROXY header still queued on `fd` (the
// master only peeked them), without copying them (MSG_TRUNC). For Node
// workers: Node's cluster code gives the socket to the app as it is, so
// the app's first read must be the client's own first byte.
absl::Status DiscardProxyHeader(int fd, uint32_t bytes);

// What the ddv-worker package gives a Node app of `proxy`, as the JSON
// object a `newconn` message carries ({"proxy": {...}}, docs/node.md); ""
// when the header said nothing (no addresses, no TLVs).
std::string NodeProxyJson(const handoff::ProxyMetadata& proxy);

}  // namespace master
}  // namespace ddv

#endif  // DDV_SRC_MASTER_PROXY_SOURCE_H_
