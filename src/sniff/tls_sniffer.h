// TLS ClientHello sniffer: reads the SNI, ALPN and versions a client offers
// from the first bytes of a connection, without running a handshake, so the
// master can route the socket and hand it to a worker that terminates TLS.
#ifndef DDV_SRC_SNIFF_TLS_SNIFFER_H_
#define DDV_SRC_SNIFF_TLS_SNIFFER_H_

#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "src/sniff/host_name.h"
#include "src/sniff/sniff_status.h"

namespace ddv {
namespace sniff {

// ALPN names kept per hello; real clients offer two or three (RFC 7301 §3.1).
inline constexpr size_t kMaxAlpnProtocols = 16;
// supported_versions entries kept; clients offer at most five plus GREASE.
inline constexpr size_t kMaxSupportedVersions = 8;

namespace internal {
class ClientHelloParser;
}  // namespace internal

// What a ClientHello offers. Fixed-size (no heap): SniffTlsClientHello fills it
// in place and its views stay valid as long as the struct lives.
struct ClientHelloInfo {
  // server_name host_name (RFC 6066 §3), normalised with HostSyntax::kTlsSni.
  // Empty: the client sent no SNI. With `ech` set this is the outer, public
  // name (draft-ietf-tls-esni §6.1), not the name the client really wants.
  HostName sni;

  // ALPN protocol names (RFC 7301 §3.1) in the client's order. The first
  // kMaxAlpnProtocols are kept (alpn_count); alpn_total counts all of them.
  size_t alpn_count = 0;
  size_t alpn_total = 0;
  // The i-th kept protocol name, i < alpn_count; a view into this struct.
  absl::string_view alpn(size_t i) const;
  // True if `protocol` is among the kept names (exact, case-sensitive match:
  // RFC 7301 §3.1 compares protocol names as bytes).
  bool OffersAlpn(absl::string_view protocol) const;

  // ClientHello.legacy_version (0x0303 for TLS 1.2 and 1.3, RFC 8446 §4.1.2),
  // or the version of an SSLv2-compatible hello.
  uint16_t legacy_version = 0;

  // supported_versions (RFC 8446 §4.2.1), the first kMaxSupportedVersions
  // kept in order, GREASE values (RFC 8701) included; _total counts all.
  bool has_supported_versions = false;
  uint16_t supported_versions[kMaxSupportedVersions] = {};
  size_t supported_versions_count = 0;
  size_t supported_versions_total = 0;
  // True if `version` is among the kept supported_versions entries.
  bool OffersVersion(uint16_t version) const;

  // encrypted_client_hello (type 0xfe0d, draft-ietf-tls-esni §5) is present:
  // this is an outer ClientHello (or ECH GREASE, which looks the same from
  // here).
  bool ech = false;
  // An SSLv2-compatible hello (RFC 5246 Appendix E.2): it cannot carry
  // extensions, so there is never an SNI or ALPN.
  bool sslv2 = false;

  // With kNeedMore: a lower bound on the total prefix length (from the
  // connection start) that the complete hello needs, from the record and
  // handshake lengths seen so far. Never more than a valid hello needs, so a
  // caller may wait for that many bytes (SO_RCVLOWAT) before peeking again.
  size_t bytes_needed = 0;
  // With kMalformed, kNotThisProtocol or kTooLarge: static text saying why.
  const char* reason = nullptr;

  // Clears every field (the ALPN storage is reused, not zeroed).
  void Reset();

 private:
  friend class internal::ClientHelloParser;

  // Stores one ALPN name (1..255 bytes) if fewer than kMaxAlpnProtocols are
  // kept, and counts it either way.
  void AddAlpn(absl::string_view protocol);

  // Room for kMaxAlpnProtocols names of the longest length (255, RFC 7301
  // §3.1 opaque ProtocolName<1..2^8-1>), so no name is ever dropped for room.
  char alpn_storage_[kMaxAlpnProtocols * 255];
  uint16_t alpn_offset_[kMaxAlpnProtocols] = {};
  uint8_t alpn_length_[kMaxAlpnProtocols] = {};
  size_t alpn_storage_used_ = 0;
};

// Sniffs a TLS ClientHello at the start of a connection.
//
// `prefix` is every byte peeked so far from the connection start, TLS record
// headers included; the ClientHello may be split over several handshake
// records and the prefix may end anywhere. `max_bytes` caps the prefix: when
// no decision is possible within it the answer is kTooLarge (bytes past it
// are ignored). `info` is reset and filled.
//
//   kFound            the whole ClientHello (or SSLv2-compatible hello) was
//                     read and is well-formed; `info` describes it (the SNI
//                     may be empty). Only this answer fills the name, ALPN
//                     and version fields: every other one leaves them empty,
//                     so a half-read hello never yields a name.
//   kNeedMore         a valid prefix; `info->bytes_needed` may say how much.
//   kNotThisProtocol  the first bytes are not a TLS handshake record.
//   kMalformed        TLS, but breaks the ClientHello grammar.
//   kTooLarge         the hello needs more than `max_bytes`: answered as
//                     soon as the record or handshake lengths show it, so
//                     the caller can stop peeking (later bytes might have
//                     shown it malformed or not TLS, never found).
//
// Pure: no I/O, no logging, no heap allocation; about 9 KiB of stack.
SniffStatus SniffTlsClientHello(absl::string_view prefix, size_t max_bytes,
                                ClientHelloInfo* info);

}  // namespace sniff
}  // namespace ddv

#endif  // DDV_SRC_SNIFF_TLS_SNIFFER_H_
