// SniffTlsClientHello: TLS record framing (RFC 8446 §5.1) on the outside, a
// resumable ClientHello state machine (RFC 8446 §4.1.2) on the inside, fed
// one record fragment at a time so a hello split over records or TCP
// segments anywhere parses the same. Modelled on nginx's ssl_preread.
#include "src/sniff/tls_sniffer.h"

#include <cstring>

namespace ddv {
namespace sniff {
namespace {

// RFC 8446 §5.1: ContentType handshake; a record header is type(1),
// legacy_record_version(2), length(2); plaintext fragments are at most 2^14.
constexpr uint8_t kContentTypeHandshake = 22;
constexpr size_t kRecordHeaderSize = 5;
constexpr size_t kMaxRecordPayload = 1 << 14;

// RFC 8446 §4: msg_type(1) length(3); HandshakeType client_hello = 1.
constexpr uint8_t kHandshakeClientHello = 1;
constexpr size_t kHandshakeHeaderSize = 4;

// Extension types we read (RFC 8446 §4.2, RFC 7301 §3.1, draft-ietf-tls-esni).
constexpr uint16_t kExtServerName = 0;
constexpr uint16_t kExtAlpn = 16;
constexpr uint16_t kExtSupportedVersions = 43;
constexpr uint16_t kExtEncryptedClientHello = 0xfe0d;

// RFC 6066 §3: NameType host_name.
constexpr uint8_t kNameTypeHostName = 0;

uint16_t ReadU16(const uint8_t* p) {
  return static_cast<uint16_t>((p[0] << 8) | p[1]);
}

uint32_t ReadU24(const uint8_t* p) {
  return (static_cast<uint32_t>(p[0]) << 16) | (p[1] << 8) | p[2];
}

// The set of extension types seen so far, for RFC 8446 §4.2 "There MUST NOT
// be more than one extension of the same type". A bitmap over all 2^16 types
// whose 64-bit words are only trusted once marked valid, so a sniff clears
// 128 bytes instead of 8 KiB, and the check stays O(1) however many
// extensions a hostile hello carries.
class ExtensionTypeSet {
 public:
  ExtensionTypeSet() : valid_{} {}

  // Adds `type`; returns false if it was already there.
  bool Insert(uint16_t type) {
    const size_t word = type >> 6;
    const uint64_t bit = uint64_t{1} << (type & 63);
    uint64_t& valid = valid_[word >> 6];
    const uint64_t valid_bit = uint64_t{1} << (word & 63);
    if ((valid & valid_bit) == 0) {
      valid |= valid_bit;
      words_[word] = bit;
      return true;
    }
    if ((words_[word] & bit) != 0) return false;
    words_[word] |= bit;
    return true;
  }

 private:
  uint64_t valid_[(1 << 16) / 64 / 64];
  uint64_t words_[(1 << 16) / 64];  // read only where valid_ says so
};

SniffStatus Answer(SniffStatus status, const char* reason,
                   ClientHelloInfo* info) {
  info->reason = reason;
  return status;
}

// kNeedMore unless even a lower bound of what the hello needs is past the
// cap, in which case waiting cannot help (Envoy's client_hello_too_large).
SniffStatus NeedMore(size_t needed, size_t max_bytes, ClientHelloInfo* info) {
  if (needed > max_bytes) {
    return Answer(SniffStatus::kTooLarge,
                  "ClientHello does not fit in max_bytes", info);
  }
  info->bytes_needed = needed;
  return SniffStatus::kNeedMore;
}

// SSLv2-compatible ClientHello (RFC 5246 Appendix E.2), sent by old clients
// that still speak SSL 2.0 but offer TLS:
//   uint16 msg_length (high bit set)   uint8 msg_type = 1
//   Version version                    uint16 cipher_spec_length
//   uint16 session_id_length           uint16 challenge_length
//   cipher_specs, session_id, challenge
// It has no extensions, hence no SNI; it is read whole and reported found.
SniffStatus SniffSslV2Hello(absl::string_view prefix, size_t max_bytes,
                            ClientHelloInfo* info) {
  const auto* p = reinterpret_cast<const uint8_t*>(prefix.data());
  const size_t size = prefix.size();
  constexpr size_t kHeaderSize = 2;
  constexpr size_t kFixedSize = 9;  // msg_type through challenge_length
  if (size < kHeaderSize) {
    return NeedMore(kHeaderSize + kFixedSize, max_bytes, info);
  }
  const size_t msg_length = ((p[0] & 0x7f) << 8) | p[1];
  const size_t total = kHeaderSize + msg_length;
  const size_t lower_bound =
      kHeaderSize + (msg_length < kFixedSize ? kFixedSize : msg_length);
  if (size < 3) return NeedMore(lower_bound, max_bytes, info);
  // msg_type: SSL 2.0's CLIENT-HELLO is 1; anything else with the high bit
  // set is some other protocol.
  if (p[2] != 1) {
    return Answer(SniffStatus::kNotThisProtocol,
                  "first byte is neither a TLS record nor an SSLv2 hello",
                  info);
  }
  if (size < 4) return NeedMore(lower_bound, max_bytes, info);
  // version: major 3 means SSL 3.0 or TLS; a pure SSL 2.0 hello is not TLS.
  if (p[3] != 3) {
    return Answer(SniffStatus::kNotThisProtocol,
                  "SSLv2 hello that does not offer TLS", info);
  }
  if (msg_length < kFixedSize) {
    return Answer(SniffStatus::kMalformed, "SSLv2 hello too short", info);
  }
  if (size < kHeaderSize + kFixedSize) {
    return NeedMore(total, max_bytes, info);
  }
  const size_t cipher_spec_length = ReadU16(p + 5);
  const size_t session_id_length = ReadU16(p + 7);
  const size_t challenge_length = ReadU16(p + 9);
  // cipher_specs are 3 bytes each and at least one is needed; the session id
  // is empty or 16 bytes and the challenge 16..32 bytes (RFC 6101 App. E).
  if (cipher_spec_length == 0 || cipher_spec_length % 3 != 0) {
    return Answer(SniffStatus::kMalformed, "SSLv2 hello cipher_specs length",
                  info);
  }
  if (session_id_length != 0 && session_id_length != 16) {
    return Answer(SniffStatus::kMalformed, "SSLv2 hello session_id length",
                  info);
  }
  if (challenge_length < 16 || challenge_length > 32) {
    return Answer(SniffStatus::kMalformed, "SSLv2 hello challenge length",
                  info);
  }
  if (kFixedSize + cipher_spec_length + session_id_length + challenge_length !=
      msg_length) {
    return Answer(SniffStatus::kMalformed,
                  "SSLv2 hello length disagrees with its fields", info);
  }
  if (size < total) return NeedMore(total, max_bytes, info);
  info->sslv2 = true;
  info->legacy_version = ReadU16(p + 3);
  return SniffStatus::kFound;
}

}  // namespace

namespace internal {

// The ClientHello handshake message as a resumable state machine, in the
// style of nginx's ngx_stream_ssl_preread_parse_record: each state names the
// wire field it reads; a field is either collected (field_) or skipped,
// and when it is complete Step() checks it and sets up the next one. Record
// framing is the caller's business: Feed() takes handshake-layer bytes only,
// in any chunks. Every length is checked against the vector enclosing it
// before any of its bytes are awaited, so a lying length fails at once.
class ClientHelloParser {
 public:
  explicit ClientHelloParser(ClientHelloInfo* info) : info_(info) {}

  // Consumes the next handshake-layer bytes. kNeedMore until the whole
  // ClientHello has been read; then kFound (later bytes are ignored), or
  // kMalformed with info->reason set.
  SniffStatus Feed(absl::string_view bytes) {
    if (state_ == State::kDone) return SniffStatus::kFound;
    for (;;) {
      const size_t n = bytes.size() < need_ ? bytes.size() : need_;
      if (collect_ && n > 0) {
        if (filled_ == 0 && n == need_) {
          // The whole field is in this chunk (the usual case): read it in
          // place; Step() runs before the chunk goes away.
          field_ = reinterpret_cast<const uint8_t*>(bytes.data());
        } else {
          std::memcpy(scratch_ + filled_, bytes.data(), n);
          filled_ += n;
          field_ = scratch_;
        }
      }
      bytes.remove_prefix(n);
      need_ -= n;
      pos_ += n;
      if (need_ != 0) return SniffStatus::kNeedMore;  // out of bytes
      const SniffStatus status = Step();
      if (status != SniffStatus::kNeedMore) {
        if (status == SniffStatus::kFound) state_ = State::kDone;
        return status;
      }
    }
  }

  // A lower bound on the handshake bytes still missing: up to the end of
  // the message once its header has been read, else of the header.
  size_t BytesToMessageEnd() const {
    if (message_end_ != 0) return message_end_ - pos_;
    return kHandshakeHeaderSize - pos_;
  }

 private:
  enum class State : uint8_t {
    kMessageHeader,             // HandshakeType msg_type; uint24 length
    kLegacyVersion,             // ProtocolVersion legacy_version
    kRandom,                    // Random random (32 bytes, skipped)
    kSessionIdLength,           // legacy_session_id<0..32> length
    kSessionId,                 // legacy_session_id (skipped)
    kCipherSuitesLength,        // cipher_suites<2..2^16-2> length
    kCipherSuites,              // cipher_suites (skipped)
    kCompressionMethodsLength,  // legacy_compression_methods<1..2^8-1> length
    kCompressionMethods,        // legacy_compression_methods (skipped)
    kExtensionsLength,          // extensions<0..2^16-1> length (8.. in 1.3)
    kExtensionHeader,           // ExtensionType; extension_data length
    kExtensionBody,             // extension_data we do not read (skipped)
    kServerNameListLength,      // ServerNameList server_name_list length
    kServerNameHeader,          // NameType name_type; name length
    kServerNameHostName,        // HostName host_name
    kServerNameOther,           // a name of another NameType (skipped)
    kAlpnListLength,            // ProtocolNameList protocol_name_list length
    kAlpnNameLength,            // ProtocolName length
    kAlpnName,                  // ProtocolName
    kSupportedVersionsLength,   // ProtocolVersion versions<2..254> length
    kSupportedVersion,          // ProtocolVersion
    kDone,                      // the whole ClientHello has been read
  };

  // Collected fields are at most 255 bytes: an ALPN name (RFC 7301 §3.1)
  // or a host_name no longer than a valid one can be.
  static constexpr size_t kScratchSize = 256;

  // Sets up the next field: `size` bytes read into field_ (Read) or
  // skipped (Skip), which must end by `limit`, the end of the innermost
  // vector holding it. kNeedMore means "go on".
  SniffStatus Read(State next, size_t size, size_t limit, const char* overrun) {
    return Expect(next, size, limit, overrun, /*collect=*/true);
  }
  SniffStatus Skip(State next, size_t size, size_t limit, const char* overrun) {
    return Expect(next, size, limit, overrun, /*collect=*/false);
  }
  SniffStatus Expect(State next, size_t size, size_t limit, const char* overrun,
                     bool collect) {
    if (pos_ + size > limit) return Fail(overrun);
    state_ = next;
    need_ = size;
    field_size_ = size;
    collect_ = collect;
    filled_ = 0;
    return SniffStatus::kNeedMore;
  }

  SniffStatus Fail(const char* reason) {
    return Answer(SniffStatus::kMalformed, reason, info_);
  }

  // Called with the current field complete (at field_ if collected).
  SniffStatus Step() {
    switch (state_) {
      case State::kMessageHeader: {
        if (field_[0] != kHandshakeClientHello) {
          return Fail("first handshake message is not a ClientHello");
        }
        message_end_ = kHandshakeHeaderSize + ReadU24(field_ + 1);
        return Read(State::kLegacyVersion, 2, message_end_,
                    "ClientHello too short for legacy_version");
      }
      case State::kLegacyVersion:
        info_->legacy_version = ReadU16(field_);
        // SSL 3.0 and every TLS version have major 3 (RFC 8446 App. D).
        if (field_[0] != 3) return Fail("ClientHello version is not TLS");
        return Skip(State::kRandom, 32, message_end_,
                    "ClientHello too short for random");
      case State::kRandom:
        return Read(State::kSessionIdLength, 1, message_end_,
                    "ClientHello too short for legacy_session_id");
      case State::kSessionIdLength:
        if (field_[0] > 32) return Fail("legacy_session_id over 32 bytes");
        return Skip(State::kSessionId, field_[0], message_end_,
                    "legacy_session_id overruns the ClientHello");
      case State::kSessionId:
        return Read(State::kCipherSuitesLength, 2, message_end_,
                    "ClientHello too short for cipher_suites");
      case State::kCipherSuitesLength: {
        const size_t length = ReadU16(field_);
        // CipherSuite is uint8[2]; the vector is <2..2^16-2>.
        if (length == 0 || length % 2 != 0) {
          return Fail("cipher_suites length is zero or odd");
        }
        return Skip(State::kCipherSuites, length, message_end_,
                    "cipher_suites overrun the ClientHello");
      }
      case State::kCipherSuites:
        return Read(State::kCompressionMethodsLength, 1, message_end_,
                    "ClientHello too short for compression_methods");
      case State::kCompressionMethodsLength:
        if (field_[0] == 0) return Fail("no compression method");
        return Skip(State::kCompressionMethods, field_[0], message_end_,
                    "compression_methods overrun the ClientHello");
      case State::kCompressionMethods:
        // RFC 5246 §7.4.1.2: a TLS 1.2 hello may end here, with no
        // extensions at all; then there is no SNI to read.
        if (pos_ == message_end_) return SniffStatus::kFound;
        return Read(State::kExtensionsLength, 2, message_end_,
                    "ClientHello has one stray byte after compression");
      case State::kExtensionsLength:
        extensions_end_ = pos_ + ReadU16(field_);
        // The extensions block is the last field: bytes after it, or a
        // block longer than the message, break the grammar.
        if (extensions_end_ != message_end_) {
          return Fail("extensions length disagrees with the ClientHello");
        }
        return NextExtension();
      case State::kExtensionHeader:
        return StartExtension(ReadU16(field_), ReadU16(field_ + 2));
      case State::kExtensionBody:
        return NextExtension();

      // server_name, RFC 6066 §3.
      case State::kServerNameListLength: {
        const size_t length = ReadU16(field_);
        list_end_ = pos_ + length;
        // server_name_list<1..2^16-1> fills the extension exactly.
        if (length == 0 || list_end_ != extension_end_) {
          return Fail("server_name list length disagrees with its extension");
        }
        return NextServerName();
      }
      case State::kServerNameHeader: {
        const uint8_t name_type = field_[0];
        const size_t length = ReadU16(field_ + 1);
        if (length == 0) return Fail("empty server_name entry");
        if (name_type != kNameTypeHostName) {
          // No other NameType was ever defined; skip it as RFC 6066 §3
          // intends (each name is length-prefixed) rather than refuse.
          return Skip(State::kServerNameOther, length, list_end_,
                      "server_name entry overruns its list");
        }
        // "The ServerNameList MUST NOT contain more than one name of the
        // same name_type."
        if (seen_host_name_) return Fail("two host_name entries in SNI");
        seen_host_name_ = true;
        // A valid name is at most kMaxHostLength bytes plus a trailing dot.
        if (length > kMaxHostLength + 1) return Fail("SNI host_name too long");
        return Read(State::kServerNameHostName, length, list_end_,
                    "server_name entry overruns its list");
      }
      case State::kServerNameHostName: {
        const char* error = NormalizeHost(
            absl::string_view(reinterpret_cast<const char*>(field_),
                              field_size_),
            HostSyntax::kTlsSni, &info_->sni);
        if (error != nullptr) return Fail(error);
        return NextServerName();
      }
      case State::kServerNameOther:
        return NextServerName();

      // application_layer_protocol_negotiation, RFC 7301 §3.1.
      case State::kAlpnListLength: {
        const size_t length = ReadU16(field_);
        list_end_ = pos_ + length;
        // protocol_name_list<2..2^16-1> fills the extension exactly.
        if (length < 2 || list_end_ != extension_end_) {
          return Fail("ALPN list length disagrees with its extension");
        }
        return Read(State::kAlpnNameLength, 1, list_end_, "ALPN list overrun");
      }
      case State::kAlpnNameLength:
        // ProtocolName<1..2^8-1>: "Empty strings MUST NOT be included".
        if (field_[0] == 0) return Fail("empty ALPN protocol name");
        return Read(State::kAlpnName, field_[0], list_end_,
                    "ALPN protocol name overruns its list");
      case State::kAlpnName:
        info_->AddAlpn(absl::string_view(reinterpret_cast<const char*>(field_),
                                         field_size_));
        if (pos_ == list_end_) return NextExtension();
        return Read(State::kAlpnNameLength, 1, list_end_, "ALPN list overrun");

      // supported_versions, RFC 8446 §4.2.1.
      case State::kSupportedVersionsLength: {
        const size_t length = field_[0];
        list_end_ = pos_ + length;
        // versions<2..254>, two bytes each, filling the extension exactly.
        if (length < 2 || length % 2 != 0 || list_end_ != extension_end_) {
          return Fail("supported_versions length disagrees with its extension");
        }
        return Read(State::kSupportedVersion, 2, list_end_,
                    "supported_versions overrun");
      }
      case State::kSupportedVersion: {
        ClientHelloInfo& info = *info_;
        if (info.supported_versions_count < kMaxSupportedVersions) {
          info.supported_versions[info.supported_versions_count++] =
              ReadU16(field_);
        }
        ++info.supported_versions_total;
        if (pos_ == list_end_) return NextExtension();
        return Read(State::kSupportedVersion, 2, list_end_,
                    "supported_versions overrun");
      }

      case State::kDone:
        return SniffStatus::kFound;
    }
    return Fail("internal: unknown parser state");
  }

  // After an extension: the next header, or the end of the hello.
  SniffStatus NextExtension() {
    if (pos_ == extensions_end_) return SniffStatus::kFound;
    return Read(State::kExtensionHeader, 4, extensions_end_,
                "extension header overruns the extensions block");
  }

  // After a server_name entry: the next entry, or the end of the extension.
  SniffStatus NextServerName() {
    if (pos_ == list_end_) return NextExtension();
    return Read(State::kServerNameHeader, 3, list_end_,
                "server_name entry header overruns its list");
  }

  SniffStatus StartExtension(uint16_t type, size_t length) {
    if (!seen_types_.Insert(type)) return Fail("duplicate extension type");
    extension_end_ = pos_ + length;
    if (extension_end_ > extensions_end_) {
      return Fail("extension overruns the extensions block");
    }
    switch (type) {
      case kExtServerName:
        return Read(State::kServerNameListLength, 2, extension_end_,
                    "server_name extension too short");
      case kExtAlpn:
        return Read(State::kAlpnListLength, 2, extension_end_,
                    "ALPN extension too short");
      case kExtSupportedVersions:
        info_->has_supported_versions = true;
        return Read(State::kSupportedVersionsLength, 1, extension_end_,
                    "supported_versions extension too short");
      case kExtEncryptedClientHello:
        // Only its presence matters: the SNI read here is then the outer
        // ClientHello's public name (draft-ietf-tls-esni §6.1).
        info_->ech = true;
        break;
      default:
        break;
    }
    return Skip(State::kExtensionBody, length, extension_end_,
                "extension overruns the extensions block");
  }

  ClientHelloInfo* const info_;

  // The field being read: field_size_ bytes of which need_ are still
  // missing, collected (read in place, or gathered into scratch_ when split
  // across chunks: filled_ so far) or skipped. field_ points at a complete
  // collected field while Step() runs.
  State state_ = State::kMessageHeader;
  size_t need_ = kHandshakeHeaderSize;
  size_t field_size_ = kHandshakeHeaderSize;
  bool collect_ = true;
  size_t filled_ = 0;
  const uint8_t* field_ = nullptr;
  uint8_t scratch_[kScratchSize];

  // Positions in the handshake message (its 4-byte header included): bytes
  // consumed so far, and the ends of the vectors enclosing the field.
  size_t pos_ = 0;
  size_t message_end_ = 0;     // 0 until the message header is read
  size_t extensions_end_ = 0;  // the extensions block
  size_t extension_end_ = 0;   // the current extension's extension_data
  size_t list_end_ = 0;        // the list inside that extension

  bool seen_host_name_ = false;
  ExtensionTypeSet seen_types_;
};

}  // namespace internal

absl::string_view ClientHelloInfo::alpn(size_t i) const {
  if (i >= alpn_count) return absl::string_view();
  return absl::string_view(alpn_storage_ + alpn_offset_[i], alpn_length_[i]);
}

bool ClientHelloInfo::OffersAlpn(absl::string_view protocol) const {
  for (size_t i = 0; i < alpn_count; ++i) {
    if (alpn(i) == protocol) return true;
  }
  return false;
}

bool ClientHelloInfo::OffersVersion(uint16_t version) const {
  for (size_t i = 0; i < supported_versions_count; ++i) {
    if (supported_versions[i] == version) return true;
  }
  return false;
}

void ClientHelloInfo::Reset() {
  sni.Clear();
  alpn_count = 0;
  alpn_total = 0;
  alpn_storage_used_ = 0;
  legacy_version = 0;
  has_supported_versions = false;
  supported_versions_count = 0;
  supported_versions_total = 0;
  ech = false;
  sslv2 = false;
  bytes_needed = 0;
  reason = nullptr;
}

void ClientHelloInfo::AddAlpn(absl::string_view protocol) {
  ++alpn_total;
  if (alpn_count == kMaxAlpnProtocols) return;
  // protocol is 1..255 bytes and kMaxAlpnProtocols of those always fit.
  std::memcpy(alpn_storage_ + alpn_storage_used_, protocol.data(),
              protocol.size());
  alpn_offset_[alpn_count] = static_cast<uint16_t>(alpn_storage_used_);
  alpn_length_[alpn_count] = static_cast<uint8_t>(protocol.size());
  alpn_storage_used_ += protocol.size();
  ++alpn_count;
}

namespace {

SniffStatus SniffRecords(absl::string_view prefix, size_t max_bytes,
                         ClientHelloInfo* info) {
  const auto* p = reinterpret_cast<const uint8_t*>(prefix.data());
  if (prefix.empty()) {
    return NeedMore(kRecordHeaderSize + kHandshakeHeaderSize, max_bytes, info);
  }
  // The SSLv2-compatible hello's two-byte header has its high bit set; no
  // TLS ContentType does.
  if ((p[0] & 0x80) != 0) return SniffSslV2Hello(prefix, max_bytes, info);
  if (p[0] != kContentTypeHandshake) {
    return Answer(SniffStatus::kNotThisProtocol,
                  "first byte is not a TLS handshake record", info);
  }

  internal::ClientHelloParser parser(info);
  size_t offset = 0;  // start of the current record
  for (;;) {
    const size_t available = prefix.size() - offset;
    // TLSPlaintext.type: RFC 8446 §5.1 forbids interleaving other record
    // types with a handshake message's fragments.
    if (available >= 1 && p[offset] != kContentTypeHandshake) {
      return Answer(SniffStatus::kMalformed,
                    "non-handshake record inside the ClientHello", info);
    }
    // TLSPlaintext.legacy_record_version: any value is ignored (RFC 8446
    // §5.1) except that every SSL 3.0 / TLS version has major 3.
    if (available >= 2 && p[offset + 1] != 3) {
      if (offset == 0) {
        return Answer(SniffStatus::kNotThisProtocol,
                      "record version major is not 3", info);
      }
      return Answer(SniffStatus::kMalformed, "record version major is not 3",
                    info);
    }
    if (available < kRecordHeaderSize) {
      return NeedMore(offset + kRecordHeaderSize + parser.BytesToMessageEnd(),
                      max_bytes, info);
    }
    // TLSPlaintext.length: "MUST NOT exceed 2^14 bytes", and handshake
    // fragments must not be empty.
    const size_t length = ReadU16(p + offset + 3);
    if (length == 0) {
      return Answer(SniffStatus::kMalformed, "empty handshake record", info);
    }
    if (length > kMaxRecordPayload) {
      return Answer(SniffStatus::kMalformed, "record longer than 2^14 bytes",
                    info);
    }
    const size_t body = offset + kRecordHeaderSize;
    const size_t fragment = available - kRecordHeaderSize < length
                                ? available - kRecordHeaderSize
                                : length;
    const SniffStatus status = parser.Feed(prefix.substr(body, fragment));
    if (status != SniffStatus::kNeedMore) return status;
    if (fragment < length) {
      // The record is cut short. The hello ends in it or needs at least
      // one more record header beyond it.
      const size_t record_left = length - fragment;
      const size_t message_left = parser.BytesToMessageEnd();
      size_t needed = body + fragment + message_left;
      if (message_left > record_left) needed += kRecordHeaderSize;
      return NeedMore(needed, max_bytes, info);
    }
    offset = body + length;
  }
}

}  // namespace

SniffStatus SniffTlsClientHello(absl::string_view prefix, size_t max_bytes,
                                ClientHelloInfo* info) {
  info->Reset();
  // Bytes past the cap do not count: the answer must be the same whether
  // the caller peeked exactly max_bytes or more.
  if (prefix.size() > max_bytes) prefix = prefix.substr(0, max_bytes);
  const SniffStatus status = SniffRecords(prefix, max_bytes, info);
  if (status != SniffStatus::kFound) {
    // No half answers: a name seen in an unfinished or broken hello must
    // not be routed on.
    const size_t bytes_needed = info->bytes_needed;
    const char* reason = info->reason;
    info->Reset();
    info->bytes_needed = bytes_needed;
    info->reason = reason;
  }
  return status;
}

}  // namespace sniff
}  // namespace ddv
