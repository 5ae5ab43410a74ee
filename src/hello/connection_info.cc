// Peer addresses for response bodies and logs: src/base's formatter, with
// "-" where the body has nothing to show.
#include "src/hello/connection_info.h"

#include <sys/socket.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "src/base/socket_address.h"

namespace ddv {
namespace hello {

std::string FormatSockaddr(const sockaddr_storage& address) {
  return FormatSocketAddress(address).value_or("-");
}

std::string EscapeProxyValue(absl::string_view value) {
  std::string out;
  for (char c : value) {
    if (c > 0x20 && c < 0x7f && c != '\\') {
      out.push_back(c);
    } else {
      absl::StrAppendFormat(&out, "\\x%02x", static_cast<uint8_t>(c));
    }
  }
  return out;
}

std::string ProxyLines(const ProxyFields& f) {
  std::string out = "proxy=1\n";
  auto line = [&out](absl::string_view key, absl::string_view value) {
    if (!value.empty()) absl::StrAppend(&out, key, "=", value, "\n");
  };
  line("source", f.source);
  line("destination", f.destination);
  line("alpn", EscapeProxyValue(f.alpn));
  line("authority", EscapeProxyValue(f.authority));
  line("unique_id", absl::BytesToHexString(f.unique_id));
  if (f.ssl) {
    absl::StrAppend(&out, "ssl_client=", f.ssl_client, "\nssl_verify=",
                    f.ssl_verify, "\n");
  }
  line("ssl_version", EscapeProxyValue(f.ssl_version));
  line("ssl_cn", EscapeProxyValue(f.ssl_cn));
  line("ssl_cipher", EscapeProxyValue(f.ssl_cipher));
  line("ssl_sig_alg", EscapeProxyValue(f.ssl_sig_alg));
  line("ssl_key_alg", EscapeProxyValue(f.ssl_key_alg));
  line("netns", EscapeProxyValue(f.netns));
  for (const auto& [type, value] : f.other_tlvs) {
    absl::StrAppendFormat(&out, "tlv_0x%02x=%s\n", type,
                          absl::BytesToHexString(value));
  }
  if (f.tlvs_truncated) out.append("tlvs_truncated=1\n");
  return out;
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
