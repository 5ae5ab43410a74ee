// SniffProxyHeader: recognises a PROXY protocol v1 (text) or v2 (binary)
// header at the start of a connection, as sent by an L4 tier (HAProxy,
// Katran, cloud load balancers) so workers still see the real client.
// Spec: haproxy doc/proxy-protocol.txt.
#ifndef DDV_SRC_SNIFF_PROXY_PROTOCOL_H_
#define DDV_SRC_SNIFF_PROXY_PROTOCOL_H_

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "src/sniff/sniff_status.h"

namespace ddv {
namespace sniff {

// v1 §2.1: "a receiver must not wait for more than 107 bytes", CRLF included.
inline constexpr size_t kProxyV1MaxLength = 107;
// v2 §2.2: the fixed part (signature, ver_cmd, fam, len) is 16 bytes.
inline constexpr size_t kProxyV2FixedLength = 16;

// v2 §2.2.1 - §2.2.8: the TLV types ddv knows. Types 0x21 - 0x25 live only
// inside PP2_TYPE_SSL's value, as its sub-TLVs.
inline constexpr uint8_t kPp2TypeAlpn = 0x01;
inline constexpr uint8_t kPp2TypeAuthority = 0x02;
inline constexpr uint8_t kPp2TypeCrc32c = 0x03;
inline constexpr uint8_t kPp2TypeNoop = 0x04;
inline constexpr uint8_t kPp2TypeUniqueId = 0x05;
inline constexpr uint8_t kPp2TypeSsl = 0x20;
inline constexpr uint8_t kPp2SubtypeSslVersion = 0x21;
inline constexpr uint8_t kPp2SubtypeSslCn = 0x22;
inline constexpr uint8_t kPp2SubtypeSslCipher = 0x23;
inline constexpr uint8_t kPp2SubtypeSslSigAlg = 0x24;
inline constexpr uint8_t kPp2SubtypeSslKeyAlg = 0x25;
inline constexpr uint8_t kPp2TypeNetns = 0x30;
// v2 §2.2.5: "The unique ID ... must not exceed 128 bytes".
inline constexpr size_t kPp2MaxUniqueIdLength = 128;
// v2 §2.2.1: a TLV's type (1 byte) and length (2 bytes, network order).
inline constexpr size_t kPp2TlvHeaderLength = 3;
// v2 §2.2.6: PP2_TYPE_SSL's value starts with client (1) and verify (4).
inline constexpr size_t kPp2SslFixedLength = 5;

// What the TLVs of a v2 header say, as views into the block they were parsed
// from. Empty views: the TLV was absent (an empty value reads the same).
// When a type appears twice, the first one counts.
struct ProxyTlvs {
  absl::string_view alpn;       // PP2_TYPE_ALPN: the protocol the client chose
  absl::string_view authority;  // PP2_TYPE_AUTHORITY: the host name (SNI)
  absl::string_view unique_id;  // PP2_TYPE_UNIQUE_ID: at most 128 bytes
  absl::string_view netns;      // PP2_TYPE_NETNS: the namespace's name
  bool has_crc32c = false;      // PP2_TYPE_CRC32C
  size_t crc32c_offset = 0;     // of its 4-byte value within the block
  uint32_t crc32c = 0;          // as sent (network order decoded)
  // PP2_TYPE_SSL: the client's TLS session with the L4 tier, if it had one.
  bool has_ssl = false;
  uint8_t ssl_client = 0;   // PP2_CLIENT_SSL 0x01, _CERT_CONN 0x02, _SESS 0x04
  uint32_t ssl_verify = 0;  // 0: the client presented a certificate that
                            // verified
  absl::string_view ssl_version, ssl_cn, ssl_cipher, ssl_sig_alg, ssl_key_alg;
};

// Takes the next TLV off the front of `*rest`: true with its type and value,
// false at the end or when what is left is not a whole TLV.
bool NextProxyTlv(absl::string_view* rest, uint8_t* type,
                  absl::string_view* value);

// Checks a TLV block (the bytes after a v2 header's addresses) and fills
// `*tlvs` (always reset first): the TLVs must tile it exactly, CRC32C is 4
// bytes, UNIQUE_ID at most 128, SSL at least its 5 fixed bytes followed by
// sub-TLVs that tile the rest. Unknown types are skipped. Returns nullptr,
// or a static string saying what is wrong. (The CRC32C value itself is
// checked by SniffProxyHeader, which has the whole header.) Pure.
const char* ParseProxyTlvs(absl::string_view block, ProxyTlvs* tlvs);

// CRC-32C (Castagnoli), as PP2_TYPE_CRC32C uses it (v2 §2.2.3).
uint32_t ProxyCrc32c(absl::string_view data);

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
  // The v2 TLVs (PROXY command only; LOCAL's block is ignored, v2 §2.2): the
  // bytes after the addresses, a view into the prefix, checked and decoded
  // into `tlv`. Empty for v1 and a header without TLVs.
  absl::string_view tlvs;
  ProxyTlvs tlv;
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
//                     family, transport (only STREAM is accepted), TLVs
//                     that break ParseProxyTlvs, or a PP2_TYPE_CRC32C that
//                     does not match the header;
//   kFound            a complete valid header of `header_length` bytes.
// Never kTooLarge: a v2 header is at most 16 + 65535 bytes and it is the
// caller's peek cap that decides whether to wait that long.
// Pure: no I/O, no logging, no allocation.
SniffStatus SniffProxyHeader(absl::string_view prefix, ProxyHeader* header);

}  // namespace sniff
}  // namespace ddv

#endif  // DDV_SRC_SNIFF_PROXY_PROTOCOL_H_
