// PeerMaySendProxy, ResetUnread, ProxyMetadataFrom.
#include "src/master/proxy_source.h"

#include <sys/socket.h>

#include <cstring>

#include "src/base/ip_network.h"

namespace ddv {
namespace master {

bool PeerMaySendProxy(const config::ListenerConfig& listener, int fd,
                      sockaddr_storage* peer) {
  *peer = sockaddr_storage{};
  if (listener.proxy_protocol_from.empty()) return true;
  socklen_t length = sizeof(*peer);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(peer), &length) != 0) {
    return false;
  }
  return AnyNetworkContains(listener.proxy_protocol_from, *peer);
}

void ResetUnread(UniqueFd fd) {
  // A zero linger time makes close() send RST and drop what is queued: no
  // FIN handshake, no TIME_WAIT, nothing read from a peer we do not trust.
  linger reset{1, 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
}

size_t ProxyMetadataFrom(const sniff::ProxyHeader& header,
                         handoff::ProxyMetadata* out) {
  *out = handoff::ProxyMetadata();
  if (!header.local && header.family != AF_UNSPEC) {
    out->has_addresses = true;
    out->source = header.source;
    out->destination = header.destination;
  }
  size_t dropped = 0;
  absl::string_view rest = header.tlvs;
  uint8_t type = 0;
  absl::string_view value;
  while (sniff::NextProxyTlv(&rest, &type, &value)) {
    if (type == sniff::kPp2TypeNoop || type == sniff::kPp2TypeCrc32c) continue;
    // The whole TLV as sent: its header is the 3 bytes before the value.
    const absl::string_view tlv(value.data() - sniff::kPp2TlvHeaderLength,
                                sniff::kPp2TlvHeaderLength + value.size());
    if (out->tlvs.size() + tlv.size() > handoff::kMaxProxyTlvLength) {
      ++dropped;
      out->tlvs_truncated = true;
      continue;
    }
    out->tlvs.append(tlv.data(), tlv.size());
  }
  return dropped;
}

}  // namespace master
}  // namespace ddv
