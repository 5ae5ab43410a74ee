// SniffProxyHeader: a single pass over the peeked bytes, no allocation. v1 is
// validated field by field as it arrives, so garbage after "PROXY " is
// refused without waiting for 107 bytes.
#include "src/sniff/proxy_protocol.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>

namespace ddv {
namespace sniff {
namespace {

constexpr absl::string_view kV1Signature("PROXY ", 6);
// v2 §2.2: chosen to be invalid as the start of any text protocol.
constexpr absl::string_view kV2Signature("\r\n\r\n\0\r\nQUIT\n", 12);

// v2 §2.2, the byte after the signature and the one after that.
constexpr int kV2Version = 0x2;
constexpr int kV2CommandLocal = 0x0;
constexpr int kV2CommandProxy = 0x1;
constexpr int kV2FamilyUnspec = 0x0;
constexpr int kV2FamilyInet = 0x1;
constexpr int kV2FamilyInet6 = 0x2;
constexpr int kV2FamilyUnix = 0x3;
constexpr int kV2TransportStream = 0x1;
constexpr int kV2TransportDgram = 0x2;
// v2 §2.2: the address block sizes of proxy_addr's ipv4_addr, ipv6_addr and
// unix_addr members.
constexpr size_t kV2Inet4AddressLength = 4 + 4 + 2 + 2;
constexpr size_t kV2Inet6AddressLength = 16 + 16 + 2 + 2;
constexpr size_t kV2UnixAddressLength = 108 + 108;

// Text forms, without the terminating NUL inet_pton needs: at most 15 bytes
// for "255.255.255.255", 45 for an IPv6 address with an embedded IPv4 tail.
constexpr size_t kMaxInet4TextLength = 15;
constexpr size_t kMaxInet6TextLength = 45;
constexpr size_t kMaxPortTextLength = 5;

enum class SignatureMatch { kNo, kPartial, kFull };

// Compares the bytes we have with the start of `signature`.
SignatureMatch MatchSignature(absl::string_view prefix,
                              absl::string_view signature) {
  size_t n = std::min(prefix.size(), signature.size());
  if (prefix.substr(0, n) != signature.substr(0, n)) return SignatureMatch::kNo;
  return n == signature.size() ? SignatureMatch::kFull
                               : SignatureMatch::kPartial;
}

SniffStatus Malformed(ProxyHeader* header, const char* reason) {
  *header = ProxyHeader();
  header->reason = reason;
  return SniffStatus::kMalformed;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsHex(char c) {
  return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// --- v1 -------------------------------------------------------------------

// v1 §2.1: the protocol field is one of exactly these words.
constexpr absl::string_view kV1Tcp4 = "TCP4";
constexpr absl::string_view kV1Tcp6 = "TCP6";
constexpr absl::string_view kV1Unknown = "UNKNOWN";

bool IsPrefixOf(absl::string_view part, absl::string_view word) {
  return part.size() <= word.size() && word.substr(0, part.size()) == part;
}

// Checks one address field. A complete field must parse with inet_pton (which
// refuses leading zeros in IPv4 and anything but the strict forms); a partial
// one, still arriving, only has to use the right characters and fit.
const char* ParseV1Address(absl::string_view text, bool complete, int family,
                           sockaddr_storage* out) {
  const bool inet4 = family == AF_INET;
  const size_t max_length = inet4 ? kMaxInet4TextLength : kMaxInet6TextLength;
  if (text.size() > max_length) return "PROXY v1 address too long";
  for (char c : text) {
    bool ok = inet4 ? (IsDigit(c) || c == '.')
                    : (IsHex(c) || c == ':' || c == '.');
    if (!ok) return "invalid character in PROXY v1 address";
  }
  if (!complete) return nullptr;
  char buffer[kMaxInet6TextLength + 1];
  std::memcpy(buffer, text.data(), text.size());
  buffer[text.size()] = '\0';
  if (inet4) {
    auto* sin = reinterpret_cast<sockaddr_in*>(out);
    sin->sin_family = AF_INET;
    if (inet_pton(AF_INET, buffer, &sin->sin_addr) != 1) {
      return "bad PROXY v1 IPv4 address";
    }
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(out);
    sin6->sin6_family = AF_INET6;
    if (inet_pton(AF_INET6, buffer, &sin6->sin6_addr) != 1) {
      return "bad PROXY v1 IPv6 address";
    }
  }
  return nullptr;
}

// v1 §2.1: "a decimal integer in the range [0..65535]". Leading zeros are
// refused: no sender writes them, and one form per value keeps this strict.
const char* ParseV1Port(absl::string_view text, bool complete, int family,
                        sockaddr_storage* out) {
  if (text.size() > kMaxPortTextLength) return "PROXY v1 port too long";
  if (text.size() > 1 && text[0] == '0') return "leading zero in PROXY v1 port";
  uint32_t port = 0;
  for (char c : text) {
    if (!IsDigit(c)) return "invalid character in PROXY v1 port";
    port = port * 10 + static_cast<uint32_t>(c - '0');
  }
  if (port > 65535) return "PROXY v1 port out of range";
  if (!complete) return nullptr;
  uint16_t network_port = htons(static_cast<uint16_t>(port));
  if (family == AF_INET) {
    reinterpret_cast<sockaddr_in*>(out)->sin_port = network_port;
  } else {
    reinterpret_cast<sockaddr_in6*>(out)->sin6_port = network_port;
  }
  return nullptr;
}

// Parses the fields after "PROXY " up to (not including) the CR. When
// `complete` is false the line is still arriving: every field followed by a
// space is checked in full, the last one only as a possible prefix.
const char* ParseV1Fields(absl::string_view line, bool complete,
                          ProxyHeader* out) {
  // Fields: protocol, source address, destination address, source port,
  // destination port, each separated by exactly one space.
  constexpr int kFieldCount = 5;
  int field = 0;
  size_t pos = 0;
  while (true) {
    size_t space = line.find(' ', pos);
    const bool last = space == absl::string_view::npos;
    absl::string_view token =
        line.substr(pos, last ? absl::string_view::npos : space - pos);
    const bool token_complete = !last || complete;
    if (field == 0) {
      if (!token_complete) {
        if (IsPrefixOf(token, kV1Tcp4) || IsPrefixOf(token, kV1Tcp6) ||
            IsPrefixOf(token, kV1Unknown)) {
          return nullptr;
        }
        return "unknown PROXY v1 protocol";
      }
      if (token == kV1Unknown) {
        // v1 §2.1: with UNKNOWN "the receiver must ignore anything presented
        // before the CRLF is found" and use the real connection's addresses.
        out->local = true;
        out->family = AF_UNSPEC;
        return nullptr;
      }
      if (token == kV1Tcp4) {
        out->family = AF_INET;
      } else if (token == kV1Tcp6) {
        out->family = AF_INET6;
      } else {
        return "unknown PROXY v1 protocol";
      }
    } else {
      if (field >= kFieldCount) return "too many fields in PROXY v1 line";
      if (token.empty() && token_complete) {
        return "empty field in PROXY v1 line";
      }
      sockaddr_storage* address =
          (field == 1 || field == 3) ? &out->source : &out->destination;
      const char* error =
          field <= 2
              ? ParseV1Address(token, token_complete, out->family, address)
              : ParseV1Port(token, token_complete, out->family, address);
      if (error != nullptr) return error;
    }
    if (last) break;
    pos = space + 1;
    ++field;
  }
  if (complete && field != kFieldCount - 1) {
    return "missing fields in PROXY v1 line";
  }
  return nullptr;
}

SniffStatus SniffV1(absl::string_view prefix, ProxyHeader* header) {
  // The CR must leave room for its LF within the 107 bytes.
  const size_t cr_limit = std::min(prefix.size(), kProxyV1MaxLength - 1);
  size_t cr = kV1Signature.size();
  for (; cr < cr_limit; ++cr) {
    const char c = prefix[cr];
    if (c == '\r') break;
    // The line is printable ASCII; a stray LF or binary means this is not a
    // PROXY header, however it started.
    if (c < 0x20 || c > 0x7e) {
      return Malformed(header, "invalid character in PROXY v1 line");
    }
  }
  const bool complete = cr < cr_limit;
  if (!complete && prefix.size() >= kProxyV1MaxLength - 1) {
    return Malformed(header, "PROXY v1 line longer than 107 bytes");
  }

  ProxyHeader parsed;
  parsed.version = 1;
  absl::string_view line =
      prefix.substr(kV1Signature.size(), cr - kV1Signature.size());
  if (const char* error = ParseV1Fields(line, complete, &parsed)) {
    return Malformed(header, error);
  }
  if (!complete || cr + 1 == prefix.size()) return SniffStatus::kNeedMore;
  if (prefix[cr + 1] != '\n') {
    return Malformed(header, "PROXY v1 line: CR not followed by LF");
  }
  parsed.header_length = cr + 2;
  *header = parsed;
  return SniffStatus::kFound;
}

// --- v2 -------------------------------------------------------------------

uint16_t ReadBigEndian16(const char* p) {
  return static_cast<uint16_t>((static_cast<uint8_t>(p[0]) << 8) |
                               static_cast<uint8_t>(p[1]));
}

uint32_t ReadBigEndian32(const char* p) {
  return (static_cast<uint32_t>(ReadBigEndian16(p)) << 16) |
         ReadBigEndian16(p + 2);
}

// CRC-32C, reflected, polynomial 0x1EDC6F41 (0x82F63B78 reversed), one table
// lookup per byte: headers are short.
constexpr std::array<uint32_t, 256> MakeCrc32cTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t crc = i;
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
    }
    table[i] = crc;
  }
  return table;
}
constexpr std::array<uint32_t, 256> kCrc32cTable = MakeCrc32cTable();

uint32_t Crc32cUpdate(uint32_t crc, uint8_t byte) {
  return kCrc32cTable[(crc ^ byte) & 0xff] ^ (crc >> 8);
}

// The CRC-32C of `header` with the 4 bytes at `zeroed` read as zeros.
uint32_t HeaderCrc32c(absl::string_view header, size_t zeroed) {
  uint32_t crc = 0xffffffffu;
  for (size_t i = 0; i < header.size(); ++i) {
    const bool in_value = i >= zeroed && i < zeroed + 4;
    crc = Crc32cUpdate(crc, in_value ? 0 : static_cast<uint8_t>(header[i]));
  }
  return ~crc;
}

// v2 §2.2.6: PP2_TYPE_SSL is client (1 byte), verify (4 bytes, network
// order), then sub-TLVs of the same shape as TLVs.
const char* ParseSslTlv(absl::string_view value, ProxyTlvs* tlvs) {
  if (value.size() < kPp2SslFixedLength) {
    return "PROXY v2 SSL TLV shorter than its client and verify fields";
  }
  tlvs->has_ssl = true;
  tlvs->ssl_client = static_cast<uint8_t>(value[0]);
  tlvs->ssl_verify = ReadBigEndian32(value.data() + 1);
  absl::string_view rest = value.substr(kPp2SslFixedLength);
  uint8_t type = 0;
  absl::string_view sub;
  while (NextProxyTlv(&rest, &type, &sub)) {
    absl::string_view* field = nullptr;
    switch (type) {
      case kPp2SubtypeSslVersion:
        field = &tlvs->ssl_version;
        break;
      case kPp2SubtypeSslCn:
        field = &tlvs->ssl_cn;
        break;
      case kPp2SubtypeSslCipher:
        field = &tlvs->ssl_cipher;
        break;
      case kPp2SubtypeSslSigAlg:
        field = &tlvs->ssl_sig_alg;
        break;
      case kPp2SubtypeSslKeyAlg:
        field = &tlvs->ssl_key_alg;
        break;
      default:
        break;
    }
    if (field != nullptr && field->empty()) *field = sub;
  }
  if (!rest.empty()) return "PROXY v2 SSL sub-TLV overruns its TLV";
  return nullptr;
}

SniffStatus SniffV2(absl::string_view prefix, ProxyHeader* header) {
  const size_t kVersionCommandOffset = kV2Signature.size();
  const size_t kFamilyOffset = kVersionCommandOffset + 1;
  const size_t kLengthOffset = kFamilyOffset + 1;

  // Judge each fixed byte as soon as it arrives.
  if (prefix.size() <= kVersionCommandOffset) return SniffStatus::kNeedMore;
  const uint8_t version_command =
      static_cast<uint8_t>(prefix[kVersionCommandOffset]);
  if ((version_command >> 4) != kV2Version) {
    return Malformed(header, "unsupported PROXY v2 version");
  }
  const int command = version_command & 0x0f;
  if (command != kV2CommandLocal && command != kV2CommandProxy) {
    return Malformed(header, "unknown PROXY v2 command");
  }

  // v2 §2.2: with LOCAL "the receiver must accept this connection as valid
  // and must use the real connection endpoints and discard the protocol
  // block including the family which is ignored". So for LOCAL nothing past
  // the length is looked at, TLVs included.
  int family = kV2FamilyUnspec;
  if (command == kV2CommandProxy && prefix.size() > kFamilyOffset) {
    const uint8_t family_transport = static_cast<uint8_t>(prefix[kFamilyOffset]);
    family = family_transport >> 4;
    const int transport = family_transport & 0x0f;
    if (family > kV2FamilyUnix) {
      return Malformed(header, "unknown PROXY v2 address family");
    }
    if (transport > kV2TransportDgram) {
      return Malformed(header, "unknown PROXY v2 transport");
    }
    // ddv listens on TCP only: a proxied datagram flow cannot be behind a
    // stream socket. UNSPEC and UNIX carry no address we use, so their
    // transport does not matter.
    if ((family == kV2FamilyInet || family == kV2FamilyInet6) &&
        transport != kV2TransportStream) {
      return Malformed(header, "PROXY v2 transport is not STREAM");
    }
  }
  if (prefix.size() < kProxyV2FixedLength) return SniffStatus::kNeedMore;

  const size_t block_length = ReadBigEndian16(prefix.data() + kLengthOffset);
  const size_t total = kProxyV2FixedLength + block_length;
  size_t address_length = 0;
  if (command == kV2CommandProxy) {
    switch (family) {
      case kV2FamilyInet:
        address_length = kV2Inet4AddressLength;
        break;
      case kV2FamilyInet6:
        address_length = kV2Inet6AddressLength;
        break;
      case kV2FamilyUnix:
        address_length = kV2UnixAddressLength;
        break;
      default:
        address_length = 0;
        break;
    }
    if (block_length < address_length) {
      return Malformed(header, "PROXY v2 length shorter than its addresses");
    }
  }
  if (prefix.size() < total) {
    // Tells the caller how far to peek; see ProxyHeader::header_length.
    header->header_length = total;
    return SniffStatus::kNeedMore;
  }

  ProxyHeader parsed;
  parsed.version = 2;
  parsed.header_length = total;
  const char* block = prefix.data() + kProxyV2FixedLength;
  if (command == kV2CommandLocal || family == kV2FamilyUnspec ||
      family == kV2FamilyUnix) {
    // AF_UNSPEC: "the receiver is free to accept the connection anyway and
    // use the real endpoint addresses". AF_UNIX paths mean nothing to a
    // worker behind a TCP socket, so they get the same treatment.
    parsed.local = true;
  } else if (family == kV2FamilyInet) {
    auto* source = reinterpret_cast<sockaddr_in*>(&parsed.source);
    auto* destination = reinterpret_cast<sockaddr_in*>(&parsed.destination);
    source->sin_family = AF_INET;
    destination->sin_family = AF_INET;
    // Addresses and ports are already in network order, as sockaddr wants.
    std::memcpy(&source->sin_addr, block, 4);
    std::memcpy(&destination->sin_addr, block + 4, 4);
    std::memcpy(&source->sin_port, block + 8, 2);
    std::memcpy(&destination->sin_port, block + 10, 2);
    parsed.family = AF_INET;
  } else {
    auto* source = reinterpret_cast<sockaddr_in6*>(&parsed.source);
    auto* destination = reinterpret_cast<sockaddr_in6*>(&parsed.destination);
    source->sin6_family = AF_INET6;
    destination->sin6_family = AF_INET6;
    std::memcpy(&source->sin6_addr, block, 16);
    std::memcpy(&destination->sin6_addr, block + 16, 16);
    std::memcpy(&source->sin6_port, block + 32, 2);
    std::memcpy(&destination->sin6_port, block + 34, 2);
    parsed.family = AF_INET6;
  }

  if (command == kV2CommandProxy) {
    // v2 §2.2.1: the rest of the block is TLVs. Checking that they tile it
    // exactly catches a corrupt length here rather than taking it as payload.
    parsed.tlvs = absl::string_view(block + address_length,
                                    block_length - address_length);
    if (const char* error = ParseProxyTlvs(parsed.tlvs, &parsed.tlv)) {
      return Malformed(header, error);
    }
    // v2 §2.2.3: the checksum covers the whole header with its own value
    // zeroed; "if the checksum doesn't match, the connection must be
    // dropped".
    if (parsed.tlv.has_crc32c &&
        HeaderCrc32c(prefix.substr(0, total),
                     kProxyV2FixedLength + address_length +
                         parsed.tlv.crc32c_offset) != parsed.tlv.crc32c) {
      return Malformed(header, "PROXY v2 CRC32C does not match the header");
    }
  }
  *header = parsed;
  return SniffStatus::kFound;
}

}  // namespace

bool NextProxyTlv(absl::string_view* rest, uint8_t* type,
                  absl::string_view* value) {
  if (rest->size() < kPp2TlvHeaderLength) return false;
  const size_t length = ReadBigEndian16(rest->data() + 1);
  if (rest->size() - kPp2TlvHeaderLength < length) return false;
  *type = static_cast<uint8_t>((*rest)[0]);
  *value = rest->substr(kPp2TlvHeaderLength, length);
  rest->remove_prefix(kPp2TlvHeaderLength + length);
  return true;
}

const char* ParseProxyTlvs(absl::string_view block, ProxyTlvs* tlvs) {
  *tlvs = ProxyTlvs();
  absl::string_view rest = block;
  uint8_t type = 0;
  absl::string_view value;
  while (NextProxyTlv(&rest, &type, &value)) {
    switch (type) {
      case kPp2TypeAlpn:
        if (tlvs->alpn.empty()) tlvs->alpn = value;
        break;
      case kPp2TypeAuthority:
        if (tlvs->authority.empty()) tlvs->authority = value;
        break;
      case kPp2TypeUniqueId:
        if (value.size() > kPp2MaxUniqueIdLength) {
          return "PROXY v2 UNIQUE_ID longer than 128 bytes";
        }
        if (tlvs->unique_id.empty()) tlvs->unique_id = value;
        break;
      case kPp2TypeNetns:
        if (tlvs->netns.empty()) tlvs->netns = value;
        break;
      case kPp2TypeCrc32c:
        if (value.size() != 4) return "PROXY v2 CRC32C TLV is not 4 bytes";
        if (tlvs->has_crc32c) return "PROXY v2 header has two CRC32C TLVs";
        tlvs->has_crc32c = true;
        tlvs->crc32c_offset = static_cast<size_t>(value.data() - block.data());
        tlvs->crc32c = ReadBigEndian32(value.data());
        break;
      case kPp2TypeSsl:
        if (tlvs->has_ssl) break;
        if (const char* error = ParseSslTlv(value, tlvs)) return error;
        break;
      default:
        break;  // NOOP, vendor and future types: the worker may read them
    }
  }
  if (rest.empty()) return nullptr;
  return rest.size() < kPp2TlvHeaderLength ? "truncated PROXY v2 TLV"
                                           : "PROXY v2 TLV overruns the header";
}

uint32_t ProxyCrc32c(absl::string_view data) {
  return HeaderCrc32c(data, data.size());
}

SniffStatus SniffProxyHeader(absl::string_view prefix, ProxyHeader* header) {
  *header = ProxyHeader();
  const SignatureMatch v1 = MatchSignature(prefix, kV1Signature);
  if (v1 == SignatureMatch::kFull) return SniffV1(prefix, header);
  const SignatureMatch v2 = MatchSignature(prefix, kV2Signature);
  if (v2 == SignatureMatch::kFull) return SniffV2(prefix, header);
  // The two signatures differ in their first byte, so at most one is partial
  // and a single byte that is neither 'P' nor CR already rules both out.
  if (v1 == SignatureMatch::kPartial || v2 == SignatureMatch::kPartial) {
    return SniffStatus::kNeedMore;
  }
  header->reason = "no PROXY protocol signature";
  return SniffStatus::kNotThisProtocol;
}

}  // namespace sniff
}  // namespace ddv
