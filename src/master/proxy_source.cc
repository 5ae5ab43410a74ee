// PeerMaySendProxy, ResetUnread, ProxyMetadataFrom.
#include "src/master/proxy_source.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "src/base/errno_status.h"
#include "src/base/ip_network.h"
#include "src/base/socket_address.h"

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

absl::Status DiscardProxyHeader(int fd, uint32_t bytes) {
  // A TCP socket discards what MSG_TRUNC asks for without copying it. The
  // bytes are queued already (peeked), so one call takes them all.
  while (true) {
    const ssize_t n = recv(fd, nullptr, bytes, MSG_TRUNC | MSG_DONTWAIT);
    if (n == static_cast<ssize_t>(bytes)) return absl::OkStatus();
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return ErrnoStatus(errno, "recv(MSG_TRUNC)",
                         "dropping a PROXY header for a Node worker");
    }
    return absl::DataLossError(absl::StrCat(
        "dropping a PROXY header for a Node worker: ", n, " of ", bytes,
        " bytes were there"));
  }
}

namespace {

// {"address": ..., "port": ..., "family": "IPv4"|"IPv6"}, as Node's
// socket.address() says it; an IPv4-mapped address as the IPv4 it is.
nlohmann::json NodeAddress(const sockaddr_storage& address) {
  char text[INET6_ADDRSTRLEN] = "";
  int port = SocketAddressPort(address);
  const char* family = "IPv4";
  if (address.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(address).sin_addr,
              text, sizeof(text));
  } else {
    const in6_addr& ip = reinterpret_cast<const sockaddr_in6&>(address).sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&ip)) {
      inet_ntop(AF_INET, &ip.s6_addr[12], text, sizeof(text));
    } else {
      inet_ntop(AF_INET6, &ip, text, sizeof(text));
      family = "IPv6";
    }
  }
  return {{"address", text}, {"port", port}, {"family", family}};
}

}  // namespace

std::string NodeProxyJson(const handoff::ProxyMetadata& proxy) {
  if (!proxy.has_addresses && proxy.tlvs.empty()) return "";
  nlohmann::json out = nlohmann::json::object();
  if (proxy.has_addresses) {
    out["source"] = NodeAddress(proxy.source);
    out["destination"] = NodeAddress(proxy.destination);
  }
  sniff::ProxyTlvs t;
  if (!proxy.tlvs.empty() && sniff::ParseProxyTlvs(proxy.tlvs, &t) == nullptr) {
    // Binary or not, each value goes as text JSON can carry: names as
    // they are (invalid UTF-8 replaced), the unique id and the raw TLVs in
    // hex.
    auto text = [&out](const char* key, absl::string_view value) {
      if (!value.empty()) out[key] = std::string(value);
    };
    text("alpn", t.alpn);
    text("authority", t.authority);
    if (!t.unique_id.empty()) {
      out["uniqueId"] = absl::BytesToHexString(t.unique_id);
    }
    text("netns", t.netns);
    if (t.has_ssl) {
      nlohmann::json ssl = {{"client", t.ssl_client},
                            {"verify", t.ssl_verify}};
      auto sub = [&ssl](const char* key, absl::string_view value) {
        if (!value.empty()) ssl[key] = std::string(value);
      };
      sub("version", t.ssl_version);
      sub("cn", t.ssl_cn);
      sub("cipher", t.ssl_cipher);
      sub("sigAlg", t.ssl_sig_alg);
      sub("keyAlg", t.ssl_key_alg);
      out["ssl"] = std::move(ssl);
    }
    out["tlvs"] = absl::BytesToHexString(proxy.tlvs);
  }
  if (proxy.tlvs_truncated) out["tlvsTruncated"] = true;
  return nlohmann::json({{"proxy", std::move(out)}})
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace master
}  // namespace ddv
