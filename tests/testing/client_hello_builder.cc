// ClientHelloBuilder: byte-exact encodings of RFC 8446 §4.1.2 ClientHellos
// (and RFC 5246 Appendix E.2 SSLv2-compatible ones) in TLS records.
#include "tests/testing/client_hello_builder.h"

#include <algorithm>
#include <utility>

namespace ddv {
namespace test {
namespace {

constexpr size_t kMaxRecordPayload = 1 << 14;  // RFC 8446 §5.1
constexpr uint8_t kContentTypeHandshake = 22;
constexpr uint8_t kHandshakeClientHello = 1;

// Filler that is not all zeros, so an off-by-one read of the wrong field
// shows up as a strange value rather than a plausible 0.
std::string Pattern(size_t length, uint8_t seed) {
  std::string out(length, '\0');
  for (size_t i = 0; i < length; ++i) {
    out[i] = static_cast<char>(seed + 7 * i);
  }
  return out;
}

std::string U8Prefixed(absl::string_view data) {
  std::string out;
  AppendU8(&out, static_cast<uint8_t>(data.size()));
  out.append(data.data(), data.size());
  return out;
}

std::string Uint16List(const std::vector<uint16_t>& values) {
  std::string out;
  for (uint16_t value : values) AppendU16(&out, value);
  return out;
}

void AppendExtension(std::string* out, uint16_t type, absl::string_view data) {
  AppendU16(out, type);
  out->append(U16Prefixed(data));
}

// Cipher suites a modern client offers: TLS 1.3 ones (RFC 8446 §B.4), then
// ECDHE-GCM for TLS 1.2 (RFC 5289).
const std::vector<uint16_t>& DefaultCipherSuites() {
  static const auto* suites = new std::vector<uint16_t>{
      0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8};
  return *suites;
}

}  // namespace

void AppendU8(std::string* out, uint8_t value) {
  out->push_back(static_cast<char>(value));
}

void AppendU16(std::string* out, uint16_t value) {
  out->push_back(static_cast<char>(value >> 8));
  out->push_back(static_cast<char>(value & 0xff));
}

void AppendU24(std::string* out, uint32_t value) {
  out->push_back(static_cast<char>((value >> 16) & 0xff));
  AppendU16(out, static_cast<uint16_t>(value & 0xffff));
}

std::string U16Prefixed(absl::string_view data) {
  std::string out;
  AppendU16(&out, static_cast<uint16_t>(data.size()));
  out.append(data.data(), data.size());
  return out;
}

std::string ServerNameData(absl::string_view host) {
  // ServerNameList { NameType name_type = host_name(0); HostName name; }
  std::string entry;
  AppendU8(&entry, 0);
  entry += U16Prefixed(host);
  return U16Prefixed(entry);
}

std::string AlpnData(const std::vector<std::string>& protocols) {
  std::string list;
  for (const std::string& protocol : protocols) list += U8Prefixed(protocol);
  return U16Prefixed(list);
}

ClientHelloBuilder::ClientHelloBuilder() { Tls13(); }

ClientHelloBuilder& ClientHelloBuilder::Tls13() {
  tls13_ = true;
  versions_ = {kTls13, kTls12};
  key_shares_ = {{kGroupX25519, 32}};
  legacy_version_ = kTls12;
  return *this;
}

ClientHelloBuilder& ClientHelloBuilder::Tls12() {
  tls13_ = false;
  versions_.clear();
  key_shares_.clear();
  legacy_version_ = kTls12;
  return *this;
}

ClientHelloBuilder& ClientHelloBuilder::NoExtensions() {
  no_extensions_ = true;
  return *this;
}

ClientHelloBuilder& ClientHelloBuilder::SslV2() {
  sslv2_ = true;
  return *this;
}

ClientHelloBuilder& ClientHelloBuilder::Sni(std::string host) {
  sni_ = std::move(host);
  return *this;
}

ClientHelloBuilder& ClientHelloBuilder::Alpn(
    std::vector<std::string> protocols) {
  alpn_ = std::move(protocols);
  return *this;
}

ClientHelloBuilder& ClientHelloBuilder::Versions(
    std::vector<uint16_t> versions) {
  versions_ = std::move(versions);
  return *this;
}

ClientHelloBuilder& ClientHelloBuilder::KeyShares(
    std::vector<std::pair<uint16_t, size_t>> shares) {
  key_shares_ = std::move(shares);
  return *this;
}

ClientHelloBuilder& ClientHelloBuilder::LegacyVersion(uint16_t version) {
  legacy_version_ = version;
  return *this;
}

ClientHelloBuilder& ClientHelloBuilder::SessionIdLength(size_t length) {
  session_id_length_ = length;
  return *this;
}

ClientHelloBuilder& ClientHelloBuilder::CipherSuites(
    std::vector<uint16_t> suites) {
  cipher_suites_ = std::move(suites);
  return *this;
}

ClientHelloBuilder& ClientHelloBuilder::Ech(size_t payload_length) {
  ech_ = true;
  ech_payload_length_ = payload_length;
  return *this;
}

ClientHelloBuilder& ClientHelloBuilder::Extension(uint16_t type,
                                                  std::string data) {
  extra_extensions_.emplace_back(type, std::move(data));
  return *this;
}

ClientHelloBuilder& ClientHelloBuilder::PadTo(size_t size) {
  pad_to_ = size;
  return *this;
}

ClientHelloBuilder& ClientHelloBuilder::SplitRecords(
    std::vector<size_t> sizes) {
  split_ = std::move(sizes);
  return *this;
}

ClientHelloBuilder& ClientHelloBuilder::RecordVersion(uint16_t version) {
  record_version_ = version;
  return *this;
}

std::string ClientHelloBuilder::BuildExtensions(
    size_t message_size_without) const {
  std::string ext;
  if (!sni_.empty())
    AppendExtension(&ext, kExtServerName, ServerNameData(sni_));
  if (!tls13_) {
    // ec_point_formats: uncompressed only (RFC 8422 §5.1.2).
    AppendExtension(&ext, kExtEcPointFormats, U8Prefixed(std::string(1, 0)));
  }
  AppendExtension(&ext, kExtSupportedGroups,
                  U16Prefixed(Uint16List({kGroupX25519, kGroupSecp256r1})));
  // ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, rsa_pkcs1_sha256.
  AppendExtension(&ext, kExtSignatureAlgorithms,
                  U16Prefixed(Uint16List({0x0403, 0x0804, 0x0401})));
  if (!alpn_.empty()) AppendExtension(&ext, kExtAlpn, AlpnData(alpn_));
  if (!versions_.empty()) {
    AppendExtension(&ext, kExtSupportedVersions,
                    U8Prefixed(Uint16List(versions_)));
  }
  if (tls13_) {
    // psk_dhe_ke only.
    AppendExtension(&ext, kExtPskKeyExchangeModes,
                    U8Prefixed(std::string(1, 1)));
  }
  if (!key_shares_.empty()) {
    std::string shares;
    for (const auto& [group, length] : key_shares_) {
      AppendU16(&shares, group);
      shares += U16Prefixed(Pattern(length, static_cast<uint8_t>(group)));
    }
    AppendExtension(&ext, kExtKeyShare, U16Prefixed(shares));
  }
  if (!tls13_) {
    // Initial handshake: empty renegotiated_connection (RFC 5746 §3.4).
    AppendExtension(&ext, kExtRenegotiationInfo, U8Prefixed(""));
  }
  for (const auto& [type, data] : extra_extensions_) {
    AppendExtension(&ext, type, data);
  }
  if (ech_) {
    // ECHClientHello (draft-ietf-tls-esni §5): type outer(0),
    // HpkeSymmetricCipherSuite {HKDF-SHA256, AES-128-GCM}, config_id,
    // enc<0..2^16-1>, payload<1..2^16-1>.
    std::string ech;
    AppendU8(&ech, 0);
    AppendU16(&ech, 0x0001);
    AppendU16(&ech, 0x0001);
    AppendU8(&ech, 0x42);
    ech += U16Prefixed(Pattern(32, 0x11));
    ech += U16Prefixed(Pattern(ech_payload_length_, 0x22));
    AppendExtension(&ext, kExtEncryptedClientHello, ech);
  }
  // The extensions block adds its 2-byte length to the message.
  const size_t size = message_size_without + 2 + ext.size();
  if (pad_to_ > size) {
    const size_t missing = pad_to_ - size;
    const size_t zeros = missing > 4 ? missing - 4 : 0;
    AppendExtension(&ext, kExtPadding, std::string(zeros, '\0'));
  }
  return ext;
}

std::string ClientHelloBuilder::BuildHandshake() const {
  const std::vector<uint16_t>& suites =
      cipher_suites_.empty() ? DefaultCipherSuites() : cipher_suites_;
  if (sslv2_) {
    // V2ClientHello from msg_type on; V2CipherSpecs are 3 bytes, TLS suites
    // written as {0x00, suite} (RFC 5246 Appendix E.2).
    std::string specs;
    for (uint16_t suite : suites) {
      AppendU8(&specs, 0);
      AppendU16(&specs, suite);
    }
    const std::string challenge = Pattern(32, 0x33);
    std::string out;
    AppendU8(&out, kHandshakeClientHello);
    AppendU16(&out, legacy_version_);
    AppendU16(&out, static_cast<uint16_t>(specs.size()));
    AppendU16(&out, 0);  // session_id_length
    AppendU16(&out, static_cast<uint16_t>(challenge.size()));
    return out + specs + challenge;
  }
  std::string body;
  AppendU16(&body, legacy_version_);
  body += Pattern(32, 0x55);  // random
  AppendU8(&body, static_cast<uint8_t>(session_id_length_));
  body += Pattern(session_id_length_, 0x77);
  body += U16Prefixed(Uint16List(suites));
  body += U8Prefixed(std::string(1, 0));  // compression_methods: null only
  if (!no_extensions_) {
    body += U16Prefixed(BuildExtensions(4 + body.size()));
  }
  std::string out;
  AppendU8(&out, kHandshakeClientHello);
  AppendU24(&out, static_cast<uint32_t>(body.size()));
  return out + body;
}

std::string ClientHelloBuilder::Build() const {
  const std::string handshake = BuildHandshake();
  if (sslv2_) {
    // Two-byte header: high bit set, 15-bit length of what follows.
    std::string out;
    AppendU16(&out, static_cast<uint16_t>(0x8000 | handshake.size()));
    return out + handshake;
  }
  return FrameRecords(handshake, split_, record_version_);
}

std::string FrameRecords(absl::string_view handshake,
                         const std::vector<size_t>& sizes,
                         uint16_t record_version) {
  std::string out;
  auto append_record = [&](size_t length) {
    AppendU8(&out, kContentTypeHandshake);
    AppendU16(&out, record_version);
    AppendU16(&out, static_cast<uint16_t>(length));
    out.append(handshake.data(), length);
    handshake.remove_prefix(length);
  };
  for (size_t size : sizes) {
    if (handshake.empty()) break;  // no empty records after the message
    append_record(std::min(size, handshake.size()));
  }
  while (!handshake.empty()) {
    append_record(std::min(kMaxRecordPayload, handshake.size()));
  }
  return out;
}

std::string HandshakeFromRecords(absl::string_view records) {
  std::string handshake;
  while (records.size() >= 5 &&
         static_cast<uint8_t>(records[0]) == kContentTypeHandshake) {
    const size_t length = (static_cast<uint8_t>(records[3]) << 8) |
                          static_cast<uint8_t>(records[4]);
    if (records.size() < 5 + length) return "";
    handshake.append(records.data() + 5, length);
    records.remove_prefix(5 + length);
    if (handshake.size() >= 4) {
      const size_t message = 4 + ((static_cast<uint8_t>(handshake[1]) << 16) |
                                  (static_cast<uint8_t>(handshake[2]) << 8) |
                                  static_cast<uint8_t>(handshake[3]));
      if (handshake.size() >= message) return handshake.substr(0, message);
    }
  }
  return "";
}

}  // namespace test
}  // namespace ddv
