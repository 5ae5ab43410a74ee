// ClientHelloBuilder: generates TLS ClientHellos (record framing included) for
// sniffer, master and TLS tests, so tests state what a hello offers instead of
// pasting hex. Deterministic: the same calls always give the same bytes.
//
//   std::string hello = ClientHelloBuilder()
//                           .Sni("a.test")
//                           .Alpn({"h2", "http/1.1"})
//                           .PadTo(16384)
//                           .SplitRecords({100, 3})
//                           .Build();
#ifndef DDV_TESTS_TESTING_CLIENT_HELLO_BUILDER_H_
#define DDV_TESTS_TESTING_CLIENT_HELLO_BUILDER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace ddv {
namespace test {

// ProtocolVersion values (RFC 8446 §4.2.1, Appendix D).
inline constexpr uint16_t kSsl30 = 0x0300;
inline constexpr uint16_t kTls10 = 0x0301;
inline constexpr uint16_t kTls11 = 0x0302;
inline constexpr uint16_t kTls12 = 0x0303;
inline constexpr uint16_t kTls13 = 0x0304;

// Extension types the builder writes (IANA TLS ExtensionType registry).
inline constexpr uint16_t kExtServerName = 0;            // RFC 6066 §3
inline constexpr uint16_t kExtSupportedGroups = 10;      // RFC 8446 §4.2.7
inline constexpr uint16_t kExtEcPointFormats = 11;       // RFC 8422 §5.1.2
inline constexpr uint16_t kExtSignatureAlgorithms = 13;  // RFC 8446 §4.2.3
inline constexpr uint16_t kExtAlpn = 16;                 // RFC 7301 §3.1
inline constexpr uint16_t kExtPadding = 21;              // RFC 7685
inline constexpr uint16_t kExtSupportedVersions = 43;    // RFC 8446 §4.2.1
inline constexpr uint16_t kExtPskKeyExchangeModes = 45;  // RFC 8446 §4.2.9
inline constexpr uint16_t kExtKeyShare = 51;             // RFC 8446 §4.2.8
inline constexpr uint16_t kExtEncryptedClientHello = 0xfe0d;  // ECH draft §5
inline constexpr uint16_t kExtRenegotiationInfo = 0xff01;     // RFC 5746

// Named groups for key shares (RFC 8446 §4.2.7, draft-kwiatkowski-tls-ecdhe-
// mlkem): X25519 shares are 32 bytes, X25519MLKEM768 ones 1216.
inline constexpr uint16_t kGroupX25519 = 0x001d;
inline constexpr uint16_t kGroupSecp256r1 = 0x0017;
inline constexpr uint16_t kGroupX25519MlKem768 = 0x11ec;

class ClientHelloBuilder {
 public:
  // A TLS 1.3 hello shaped like a modern client's: legacy_version 1.2, a
  // 32-byte legacy_session_id, supported_versions {1.3, 1.2}, an X25519 key
  // share, no SNI and no ALPN. Shape presets (Tls12, Tls13) reset the
  // version-related extensions, so call them first.
  ClientHelloBuilder();

  // --- Shapes ---
  // TLS 1.3 (the default): supported_versions, supported_groups,
  // signature_algorithms, psk_key_exchange_modes, key_share.
  ClientHelloBuilder& Tls13();
  // TLS 1.2 only: no supported_versions and no key_share; ec_point_formats,
  // supported_groups, signature_algorithms and renegotiation_info.
  ClientHelloBuilder& Tls12();
  // No extensions block at all (RFC 5246 §7.4.1.2 allows it): the hello ends
  // after compression_methods, whatever else was asked for.
  ClientHelloBuilder& NoExtensions();
  // An SSLv2-compatible hello (RFC 5246 Appendix E.2): a two-byte header,
  // cipher specs, a 32-byte challenge; never extensions or record framing.
  ClientHelloBuilder& SslV2();

  // --- Fields ---
  // server_name with one host_name entry, bytes as given (not normalised).
  // Empty: no server_name extension.
  ClientHelloBuilder& Sni(std::string host);
  // ALPN protocol names in order. Empty: no ALPN extension.
  ClientHelloBuilder& Alpn(std::vector<std::string> protocols);
  // supported_versions entries. Empty: no supported_versions extension.
  ClientHelloBuilder& Versions(std::vector<uint16_t> versions);
  // key_share entries: (group, key_exchange length); the key bytes are a
  // fixed pattern. Empty: no key_share extension.
  ClientHelloBuilder& KeyShares(
      std::vector<std::pair<uint16_t, size_t>> shares);
  ClientHelloBuilder& LegacyVersion(uint16_t version);
  ClientHelloBuilder& SessionIdLength(size_t length);  // 0..255 (32 valid)
  ClientHelloBuilder& CipherSuites(std::vector<uint16_t> suites);
  // An encrypted_client_hello extension as an outer hello sends it
  // (ECHClientHello type outer, HPKE suite, config id, 32-byte enc,
  // `payload_length` bytes of payload).
  ClientHelloBuilder& Ech(size_t payload_length = 176);
  // Any extension, raw, written after the builder's own ones and before
  // ECH and padding. May repeat a type (for malformed tests).
  ClientHelloBuilder& Extension(uint16_t type, std::string data);
  // Pads the handshake message (its 4-byte header included) to at least
  // `size` bytes with a padding extension (RFC 7685), the last extension.
  // The extensions block cannot pass 2^16-1 bytes, so size must be ~64 KiB
  // at most. Larger than 2^14, the hello spans several records.
  ClientHelloBuilder& PadTo(size_t size);
  // Record framing: the first records carry these many handshake bytes
  // each (0 makes an empty record; sizes are clamped to what is left and
  // stop once the message is out); the rest goes into records of at most
  // 2^14 bytes (RFC 8446 §5.1).
  ClientHelloBuilder& SplitRecords(std::vector<size_t> sizes);
  // TLSPlaintext.legacy_record_version; 0x0301 as most clients send.
  ClientHelloBuilder& RecordVersion(uint16_t version);

  // --- Output ---
  // The ClientHello handshake message: msg_type, uint24 length, body. For
  // SslV2(), the V2ClientHello without its two-byte header.
  std::string BuildHandshake() const;
  // The bytes a client sends first: the handshake message in TLS records,
  // or the SSLv2-compatible hello with its header.
  std::string Build() const;

 private:
  std::string BuildExtensions(size_t message_size_without) const;

  bool tls13_ = true;
  bool no_extensions_ = false;
  bool sslv2_ = false;
  std::string sni_;
  std::vector<std::string> alpn_;
  std::vector<uint16_t> versions_;
  std::vector<std::pair<uint16_t, size_t>> key_shares_;
  uint16_t legacy_version_ = kTls12;
  size_t session_id_length_ = 32;
  std::vector<uint16_t> cipher_suites_;
  bool ech_ = false;
  size_t ech_payload_length_ = 0;
  std::vector<std::pair<uint16_t, std::string>> extra_extensions_;
  size_t pad_to_ = 0;
  std::vector<size_t> split_;
  uint16_t record_version_ = kTls10;
};

// Frames a handshake message into handshake records: the first records
// carry `sizes` bytes each (0 = an empty record; clamped, and no records
// once the message is out), the rest at most 2^14.
std::string FrameRecords(absl::string_view handshake,
                         const std::vector<size_t>& sizes = {},
                         uint16_t record_version = kTls10);

// The handshake message carried by leading handshake records (their
// fragments joined, up to the message's own length), e.g. to re-frame a
// captured hello. Empty if `records` does not hold one whole message.
std::string HandshakeFromRecords(absl::string_view records);

// Encoders for building extension data by hand in malformed tests.
void AppendU8(std::string* out, uint8_t value);
void AppendU16(std::string* out, uint16_t value);
void AppendU24(std::string* out, uint32_t value);
// A uint16-length-prefixed vector (opaque data<0..2^16-1>).
std::string U16Prefixed(absl::string_view data);
// server_name extension_data with one host_name entry.
std::string ServerNameData(absl::string_view host);
// ALPN extension_data for these protocol names.
std::string AlpnData(const std::vector<std::string>& protocols);

}  // namespace test
}  // namespace ddv

#endif  // DDV_TESTS_TESTING_CLIENT_HELLO_BUILDER_H_
