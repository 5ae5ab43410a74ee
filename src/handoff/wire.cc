// Wire format encode/decode. Every integer is little-endian, written byte by
// byte so the code says exactly what goes on the wire; the decoder checks
// each length against what is left before it reads.
#include "src/handoff/wire.h"

#include <netinet/in.h>

#include <cstddef>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "src/base/status_macros.h"

namespace ddv {
namespace handoff {
namespace {

// Fixed part of one HandoffEntry; the five variable fields follow it.
constexpr size_t kEntryFixedSize = 44;
static_assert(kMaxEntryBytes == kEntryFixedSize + kMaxHostLength +
                                    kMaxAlpnLength + 2 * sizeof(sockaddr_in6) +
                                    kMaxProxyTlvLength,
              "wire.h's kMaxEntryBytes counts every field");
constexpr uint8_t kEntryFlagProxyAddresses = 0x01;
constexpr uint8_t kEntryFlagProxyTlvsTruncated = 0x02;
constexpr uint8_t kEntryFlags =
    kEntryFlagProxyAddresses | kEntryFlagProxyTlvsTruncated;
// A PROXY v2 TLV's type and big-endian length (haproxy proxy-protocol.txt
// §2.2.1).
constexpr size_t kTlvHeaderSize = 3;
constexpr uint8_t kMaxStatusCode = 16;  // absl::StatusCode::kUnauthenticated

void PutU8(std::string* out, uint8_t v) { out->push_back(static_cast<char>(v)); }

void PutU16(std::string* out, uint16_t v) {
  char b[2] = {static_cast<char>(v), static_cast<char>(v >> 8)};
  out->append(b, 2);
}

void PutU32(std::string* out, uint32_t v) {
  char b[4];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<char>(v >> (8 * i));
  out->append(b, 4);
}

void PutU64(std::string* out, uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(v >> (8 * i));
  out->append(b, 8);
}

void PutHeader(std::string* out, FrameType type) {
  PutU32(out, kMagic);
  PutU16(out, kProtocolVersion);
  PutU16(out, static_cast<uint16_t>(type));
  PutU32(out, 0);  // payload length, patched by FinishFrame
}

absl::Status FinishFrame(std::string* out, FrameType type) {
  if (out->size() > kMaxFrameBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        FrameTypeName(type), " frame is ", out->size(),
        " bytes, over the limit of ", kMaxFrameBytes));
  }
  uint32_t payload = static_cast<uint32_t>(out->size() - kHeaderSize);
  for (int i = 0; i < 4; ++i) {
    (*out)[8 + i] = static_cast<char>(payload >> (8 * i));
  }
  return absl::OkStatus();
}

// Reads fields off a payload. Every read names its field so a truncated frame
// says which field ran out and where.
class Reader {
 public:
  Reader(absl::string_view data, FrameType type) : data_(data), type_(type) {}

  absl::Status U8(const char* field, uint8_t* v) {
    if (absl::Status s = Need(field, 1); !s.ok()) return s;
    *v = Byte(0);
    pos_ += 1;
    return absl::OkStatus();
  }
  absl::Status U16(const char* field, uint16_t* v) {
    if (absl::Status s = Need(field, 2); !s.ok()) return s;
    *v = static_cast<uint16_t>(Byte(0) | (Byte(1) << 8));
    pos_ += 2;
    return absl::OkStatus();
  }
  absl::Status U32(const char* field, uint32_t* v) {
    if (absl::Status s = Need(field, 4); !s.ok()) return s;
    uint32_t r = 0;
    for (int i = 0; i < 4; ++i) r |= static_cast<uint32_t>(Byte(i)) << (8 * i);
    *v = r;
    pos_ += 4;
    return absl::OkStatus();
  }
  absl::Status U64(const char* field, uint64_t* v) {
    if (absl::Status s = Need(field, 8); !s.ok()) return s;
    uint64_t r = 0;
    for (int i = 0; i < 8; ++i) r |= static_cast<uint64_t>(Byte(i)) << (8 * i);
    *v = r;
    pos_ += 8;
    return absl::OkStatus();
  }
  absl::Status Bytes(const char* field, size_t n, std::string* v) {
    if (absl::Status s = Need(field, n); !s.ok()) return s;
    v->assign(data_.data() + pos_, n);
    pos_ += n;
    return absl::OkStatus();
  }
  absl::Status Raw(const char* field, size_t n, void* v) {
    if (absl::Status s = Need(field, n); !s.ok()) return s;
    std::memcpy(v, data_.data() + pos_, n);
    pos_ += n;
    return absl::OkStatus();
  }

  // A payload must be consumed exactly: trailing bytes mean the two sides
  // disagree on the layout, which is worse than a short frame.
  absl::Status Done() const {
    if (pos_ == data_.size()) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat(FrameTypeName(type_), " payload has ",
                     data_.size() - pos_, " trailing bytes at offset ", pos_));
  }

  absl::Status Invalid(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(
        FrameTypeName(type_), " payload: ", what, " (before offset ", pos_,
        ")"));
  }

 private:
  absl::Status Need(const char* field, size_t n) const {
    if (data_.size() - pos_ >= n) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        "truncated ", FrameTypeName(type_), " payload: ", field, " needs ", n,
        " bytes at offset ", pos_, ", ", data_.size() - pos_, " left"));
  }
  uint32_t Byte(size_t i) const {
    return static_cast<uint8_t>(data_[pos_ + i]);
  }

  absl::string_view data_;
  FrameType type_;
  size_t pos_ = 0;
};

bool IsHostByte(char c) { return c > 0x20 && c < 0x7f; }

absl::Status CheckHost(absl::string_view host) {
  if (host.size() > kMaxHostLength) {
    return absl::InvalidArgumentError(absl::StrCat(
        "host is ", host.size(), " bytes, over ", kMaxHostLength));
  }
  for (char c : host) {
    if (!IsHostByte(c)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "host contains byte 0x%02x (only printable ASCII)",
          static_cast<uint8_t>(c)));
    }
  }
  return absl::OkStatus();
}

bool IsMethodByte(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.';
}

absl::Status CheckMethod(absl::string_view method) {
  if (method.empty() || method.size() > kMaxMethodLength) {
    return absl::InvalidArgumentError(absl::StrCat(
        "method length ", method.size(), " not in 1..", kMaxMethodLength));
  }
  for (char c : method) {
    if (!IsMethodByte(c)) {
      return absl::InvalidArgumentError(
          absl::StrCat("method \"", method, "\" has a byte outside [a-z0-9_.]"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckSite(absl::string_view site, const char* field) {
  if (site.size() > kMaxSiteIdLength) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, " is ", site.size(), " bytes, over ", kMaxSiteIdLength));
  }
  return absl::OkStatus();
}

// A PROXY address is a raw sockaddr of this machine's layout (both ends run
// on the same kernel): AF_INET or AF_INET6, with its family's exact size.
absl::Status CheckInetSockaddr(const sockaddr_storage& addr, socklen_t length,
                               const char* field) {
  const socklen_t want = InetSockaddrLength(addr);
  if (want == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, " family ", addr.ss_family, " is not inet/inet6"));
  }
  if (length != want) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, " length ", length, " does not fit family ", addr.ss_family));
  }
  return absl::OkStatus();
}

// The TLV bytes tile exactly: each header's length fits what is left.
absl::Status CheckTlvs(absl::string_view tlvs) {
  if (tlvs.size() > kMaxProxyTlvLength) {
    return absl::InvalidArgumentError(absl::StrCat(
        "proxy TLVs are ", tlvs.size(), " bytes, over ", kMaxProxyTlvLength));
  }
  size_t pos = 0;
  while (pos < tlvs.size()) {
    if (tlvs.size() - pos < kTlvHeaderSize) {
      return absl::InvalidArgumentError(
          absl::StrCat("truncated proxy TLV at byte ", pos));
    }
    const size_t length = (static_cast<uint8_t>(tlvs[pos + 1]) << 8) |
                          static_cast<uint8_t>(tlvs[pos + 2]);
    if (tlvs.size() - pos - kTlvHeaderSize < length) {
      return absl::InvalidArgumentError(
          absl::StrCat("proxy TLV at byte ", pos, " overruns the TLVs"));
    }
    pos += kTlvHeaderSize + length;
  }
  return absl::OkStatus();
}

absl::Status CheckProxy(const ProxyMetadata& proxy) {
  if (proxy.has_addresses) {
    DDV_RETURN_IF_ERROR(CheckInetSockaddr(
        proxy.source, InetSockaddrLength(proxy.source), "proxy source"));
    DDV_RETURN_IF_ERROR(CheckInetSockaddr(proxy.destination,
                                          InetSockaddrLength(proxy.destination),
                                          "proxy destination"));
    if (proxy.source.ss_family != proxy.destination.ss_family) {
      return absl::InvalidArgumentError(
          "proxy source and destination families differ");
    }
  }
  return CheckTlvs(proxy.tlvs);
}

absl::Status EncodeEntry(const HandoffEntry& e, HandoffMode mode, size_t index,
                         std::string* out) {
  auto bad = [index](const absl::Status& s) {
    return absl::InvalidArgumentError(
        absl::StrCat("handoff entry ", index, ": ", s.message()));
  };
  if (absl::Status s = CheckHost(e.host); !s.ok()) return bad(s);
  if (static_cast<uint8_t>(e.protocol) > static_cast<uint8_t>(Protocol::kTls)) {
    return bad(absl::InvalidArgumentError("unknown protocol"));
  }
  if (absl::Status s = CheckProxy(e.proxy); !s.ok()) return bad(s);
  if (mode == HandoffMode::kPidfd && e.master_fd < 0) {
    return bad(absl::InvalidArgumentError("pidfd mode needs master_fd >= 0"));
  }
  absl::string_view alpn = TruncateAlpnList(e.alpn);
  const socklen_t address_length =
      e.proxy.has_addresses ? InetSockaddrLength(e.proxy.source) : 0;
  const uint8_t flags =
      (e.proxy.has_addresses ? kEntryFlagProxyAddresses : 0) |
      (e.proxy.tlvs_truncated ? kEntryFlagProxyTlvsTruncated : 0);

  PutU64(out, e.connection_id);
  PutU32(out, e.listener_index);
  PutU32(out, e.site_index);
  PutU64(out, static_cast<uint64_t>(e.accept_time_ns));
  PutU32(out, e.skip_bytes);
  PutU32(out, static_cast<uint32_t>(mode == HandoffMode::kPidfd ? e.master_fd
                                                                 : -1));
  PutU8(out, static_cast<uint8_t>(e.protocol));
  PutU8(out, flags);
  PutU16(out, static_cast<uint16_t>(e.host.size()));
  PutU16(out, static_cast<uint16_t>(alpn.size()));
  PutU16(out, static_cast<uint16_t>(address_length));  // source
  PutU16(out, static_cast<uint16_t>(address_length));  // destination
  PutU16(out, static_cast<uint16_t>(e.proxy.tlvs.size()));
  out->append(e.host);
  out->append(alpn.data(), alpn.size());
  out->append(reinterpret_cast<const char*>(&e.proxy.source), address_length);
  out->append(reinterpret_cast<const char*>(&e.proxy.destination),
              address_length);
  out->append(e.proxy.tlvs);
  return absl::OkStatus();
}

absl::Status DecodeEntry(Reader& r, HandoffMode mode, HandoffEntry* e) {
  uint64_t accept_time = 0;
  uint32_t master_fd = 0;
  uint8_t protocol = 0, flags = 0;
  uint16_t host_length = 0, alpn_length = 0, source_length = 0,
           destination_length = 0, tlvs_length = 0;
  DDV_RETURN_IF_ERROR(r.U64("connection_id", &e->connection_id));
  DDV_RETURN_IF_ERROR(r.U32("listener_index", &e->listener_index));
  DDV_RETURN_IF_ERROR(r.U32("site_index", &e->site_index));
  DDV_RETURN_IF_ERROR(r.U64("accept_time_ns", &accept_time));
  DDV_RETURN_IF_ERROR(r.U32("skip_bytes", &e->skip_bytes));
  DDV_RETURN_IF_ERROR(r.U32("master_fd", &master_fd));
  DDV_RETURN_IF_ERROR(r.U8("protocol", &protocol));
  DDV_RETURN_IF_ERROR(r.U8("flags", &flags));
  DDV_RETURN_IF_ERROR(r.U16("host_length", &host_length));
  DDV_RETURN_IF_ERROR(r.U16("alpn_length", &alpn_length));
  DDV_RETURN_IF_ERROR(r.U16("source_length", &source_length));
  DDV_RETURN_IF_ERROR(r.U16("destination_length", &destination_length));
  DDV_RETURN_IF_ERROR(r.U16("tlvs_length", &tlvs_length));
  e->accept_time_ns = static_cast<int64_t>(accept_time);
  e->master_fd = static_cast<int32_t>(master_fd);
  if (protocol > static_cast<uint8_t>(Protocol::kTls)) {
    return r.Invalid(absl::StrCat("unknown protocol ", protocol));
  }
  e->protocol = static_cast<Protocol>(protocol);
  if ((flags & ~kEntryFlags) != 0) {
    return r.Invalid(absl::StrFormat("reserved entry flag bits 0x%02x set",
                                     flags));
  }
  ProxyMetadata& proxy = e->proxy;
  proxy = ProxyMetadata();
  proxy.has_addresses = (flags & kEntryFlagProxyAddresses) != 0;
  proxy.tlvs_truncated = (flags & kEntryFlagProxyTlvsTruncated) != 0;
  if (host_length > kMaxHostLength) {
    return r.Invalid(absl::StrCat("host_length ", host_length, " over ",
                                  kMaxHostLength));
  }
  if (alpn_length > kMaxAlpnLength) {
    return r.Invalid(absl::StrCat("alpn_length ", alpn_length, " over ",
                                  kMaxAlpnLength));
  }
  if (proxy.has_addresses ? source_length == 0 || destination_length == 0
                          : source_length != 0 || destination_length != 0) {
    return r.Invalid(absl::StrCat(
        "source_length ", source_length, " and destination_length ",
        destination_length, " contradict the proxy-addresses flag"));
  }
  if (source_length > sizeof(sockaddr_in6) ||
      destination_length > sizeof(sockaddr_in6)) {
    return r.Invalid(absl::StrCat("source_length ", source_length,
                                  " or destination_length ",
                                  destination_length, " over ",
                                  sizeof(sockaddr_in6)));
  }
  if (tlvs_length > kMaxProxyTlvLength) {
    return r.Invalid(absl::StrCat("tlvs_length ", tlvs_length, " over ",
                                  kMaxProxyTlvLength));
  }
  if (mode == HandoffMode::kPidfd ? e->master_fd < 0 : e->master_fd != -1) {
    return r.Invalid(absl::StrCat("master_fd ", e->master_fd,
                                  " is wrong for the batch mode"));
  }
  DDV_RETURN_IF_ERROR(r.Bytes("host", host_length, &e->host));
  if (absl::Status s = CheckHost(e->host); !s.ok()) {
    return r.Invalid(s.message());
  }
  DDV_RETURN_IF_ERROR(r.Bytes("alpn", alpn_length, &e->alpn));
  DDV_RETURN_IF_ERROR(r.Raw("proxy_source", source_length, &proxy.source));
  DDV_RETURN_IF_ERROR(
      r.Raw("proxy_destination", destination_length, &proxy.destination));
  DDV_RETURN_IF_ERROR(r.Bytes("proxy_tlvs", tlvs_length, &proxy.tlvs));
  if (proxy.has_addresses) {
    if (absl::Status s =
            CheckInetSockaddr(proxy.source, source_length, "proxy source");
        !s.ok()) {
      return r.Invalid(s.message());
    }
    if (absl::Status s = CheckInetSockaddr(
            proxy.destination, destination_length, "proxy destination");
        !s.ok()) {
      return r.Invalid(s.message());
    }
    if (proxy.source.ss_family != proxy.destination.ss_family) {
      return r.Invalid("proxy source and destination families differ");
    }
  }
  if (absl::Status s = CheckTlvs(proxy.tlvs); !s.ok()) {
    return r.Invalid(s.message());
  }
  return absl::OkStatus();
}

// Payload encoders, one per frame type; the header is already in `out`.
// Never reached: EncodeFrame sends batches to EncodeHandoffBatch before the
// visit. It exists so the visit covers every alternative.
absl::Status EncodePayload(const HandoffBatch& f, std::string* out) {
  return absl::InternalError("handoff batch must use EncodeHandoffBatch");
}

absl::Status EncodePayload(const Hello& f, std::string* out) {
  if (f.site.empty()) return absl::InvalidArgumentError("hello without site");
  DDV_RETURN_IF_ERROR(CheckSite(f.site, "site"));
  PutU32(out, f.pid);
  PutU32(out, f.worker_index);
  PutU16(out, f.protocol_version);
  PutU16(out, static_cast<uint16_t>(f.site.size()));
  out->append(f.site);
  return absl::OkStatus();
}

absl::Status EncodePayload(const PidfdAck& f, std::string* out) {
  if (f.entries.empty() || f.entries.size() > kMaxEntriesPerBatch) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pidfd ack with ", f.entries.size(), " entries, not 1..",
        kMaxEntriesPerBatch));
  }
  PutU16(out, static_cast<uint16_t>(f.entries.size()));
  PutU16(out, 0);  // reserved
  for (const PidfdAckEntry& e : f.entries) {
    PutU64(out, e.connection_id);
    PutU32(out, static_cast<uint32_t>(e.error));
  }
  return absl::OkStatus();
}

absl::Status EncodePayload(const Heartbeat& f, std::string* out) {
  PutU64(out, f.sequence);
  PutU8(out, f.is_reply ? 1 : 0);
  return absl::OkStatus();
}

absl::Status EncodePayload(const Request& f, std::string* out) {
  DDV_RETURN_IF_ERROR(CheckMethod(f.method));
  PutU64(out, f.id);
  PutU16(out, static_cast<uint16_t>(f.method.size()));
  out->append(f.method);
  PutU32(out, static_cast<uint32_t>(f.body.size()));
  out->append(f.body);
  return absl::OkStatus();
}

absl::Status EncodePayload(const Response& f, std::string* out) {
  uint32_t code = static_cast<uint32_t>(f.code);
  if (code > kMaxStatusCode) {
    return absl::InvalidArgumentError(absl::StrCat("status code ", code));
  }
  if (code == 0 && !f.error.empty()) {
    return absl::InvalidArgumentError("OK response with an error message");
  }
  PutU64(out, f.id);
  PutU32(out, code);
  PutU32(out, static_cast<uint32_t>(f.error.size()));
  out->append(f.error);
  PutU32(out, static_cast<uint32_t>(f.body.size()));
  out->append(f.body);
  return absl::OkStatus();
}

absl::Status EncodePayload(const Message& f, std::string* out) {
  DDV_RETURN_IF_ERROR(CheckSite(f.target_site, "target_site"));
  DDV_RETURN_IF_ERROR(CheckSite(f.source_site, "source_site"));
  PutU16(out, static_cast<uint16_t>(f.target_site.size()));
  out->append(f.target_site);
  PutU32(out, f.target_worker);
  PutU16(out, static_cast<uint16_t>(f.source_site.size()));
  out->append(f.source_site);
  PutU32(out, f.source_worker);
  PutU32(out, static_cast<uint32_t>(f.body.size()));
  out->append(f.body);
  return absl::OkStatus();
}

absl::Status EncodePayload(const Shutdown& f, std::string* out) {
  PutU32(out, f.grace_ms);
  return absl::OkStatus();
}

// Payload decoders.
absl::Status DecodePayload(Reader& r, HandoffBatch* f) {
  uint8_t mode = 0, reserved = 0;
  uint16_t count = 0;
  DDV_RETURN_IF_ERROR(r.U8("mode", &mode));
  DDV_RETURN_IF_ERROR(r.U8("reserved", &reserved));
  DDV_RETURN_IF_ERROR(r.U16("count", &count));
  if (mode > static_cast<uint8_t>(HandoffMode::kPidfd)) {
    return r.Invalid(absl::StrCat("unknown handoff mode ", mode));
  }
  if (reserved != 0) return r.Invalid("reserved byte is not zero");
  if (count == 0 || count > kMaxEntriesPerBatch) {
    return r.Invalid(absl::StrCat("count ", count, " not in 1..",
                                  kMaxEntriesPerBatch));
  }
  f->mode = static_cast<HandoffMode>(mode);
  f->entries.resize(count);
  for (uint16_t i = 0; i < count; ++i) {
    if (absl::Status s = DecodeEntry(r, f->mode, &f->entries[i]); !s.ok()) {
      return absl::Status(s.code(),
                          absl::StrCat("entry ", i, ": ", s.message()));
    }
  }
  return absl::OkStatus();
}

absl::Status DecodePayload(Reader& r, Hello* f) {
  uint16_t site_length = 0;
  DDV_RETURN_IF_ERROR(r.U32("pid", &f->pid));
  DDV_RETURN_IF_ERROR(r.U32("worker_index", &f->worker_index));
  DDV_RETURN_IF_ERROR(r.U16("protocol_version", &f->protocol_version));
  DDV_RETURN_IF_ERROR(r.U16("site_length", &site_length));
  if (site_length == 0 || site_length > kMaxSiteIdLength) {
    return r.Invalid(absl::StrCat("site_length ", site_length, " not in 1..",
                                  kMaxSiteIdLength));
  }
  return r.Bytes("site", site_length, &f->site);
}

absl::Status DecodePayload(Reader& r, PidfdAck* f) {
  uint16_t count = 0, reserved = 0;
  DDV_RETURN_IF_ERROR(r.U16("count", &count));
  DDV_RETURN_IF_ERROR(r.U16("reserved", &reserved));
  if (count == 0 || count > kMaxEntriesPerBatch) {
    return r.Invalid(absl::StrCat("count ", count, " not in 1..",
                                  kMaxEntriesPerBatch));
  }
  if (reserved != 0) return r.Invalid("reserved field is not zero");
  f->entries.resize(count);
  for (PidfdAckEntry& e : f->entries) {
    uint32_t error = 0;
    DDV_RETURN_IF_ERROR(r.U64("connection_id", &e.connection_id));
    DDV_RETURN_IF_ERROR(r.U32("error", &error));
    e.error = static_cast<int32_t>(error);
  }
  return absl::OkStatus();
}

absl::Status DecodePayload(Reader& r, Heartbeat* f) {
  uint8_t reply = 0;
  DDV_RETURN_IF_ERROR(r.U64("sequence", &f->sequence));
  DDV_RETURN_IF_ERROR(r.U8("is_reply", &reply));
  if (reply > 1) return r.Invalid(absl::StrCat("is_reply is ", reply));
  f->is_reply = reply == 1;
  return absl::OkStatus();
}

absl::Status DecodePayload(Reader& r, Request* f) {
  uint16_t method_length = 0;
  uint32_t body_length = 0;
  DDV_RETURN_IF_ERROR(r.U64("id", &f->id));
  DDV_RETURN_IF_ERROR(r.U16("method_length", &method_length));
  DDV_RETURN_IF_ERROR(r.Bytes("method", method_length, &f->method));
  if (absl::Status s = CheckMethod(f->method); !s.ok()) {
    return r.Invalid(s.message());
  }
  DDV_RETURN_IF_ERROR(r.U32("body_length", &body_length));
  return r.Bytes("body", body_length, &f->body);
}

absl::Status DecodePayload(Reader& r, Response* f) {
  uint32_t code = 0, error_length = 0, body_length = 0;
  DDV_RETURN_IF_ERROR(r.U64("id", &f->id));
  DDV_RETURN_IF_ERROR(r.U32("code", &code));
  if (code > kMaxStatusCode) {
    return r.Invalid(absl::StrCat("unknown status code ", code));
  }
  f->code = static_cast<absl::StatusCode>(code);
  DDV_RETURN_IF_ERROR(r.U32("error_length", &error_length));
  DDV_RETURN_IF_ERROR(r.Bytes("error", error_length, &f->error));
  if (code == 0 && !f->error.empty()) {
    return r.Invalid("OK response carries an error message");
  }
  DDV_RETURN_IF_ERROR(r.U32("body_length", &body_length));
  return r.Bytes("body", body_length, &f->body);
}

absl::Status DecodePayload(Reader& r, Message* f) {
  uint16_t length = 0;
  uint32_t body_length = 0;
  DDV_RETURN_IF_ERROR(r.U16("target_site_length", &length));
  if (length > kMaxSiteIdLength) return r.Invalid("target_site too long");
  DDV_RETURN_IF_ERROR(r.Bytes("target_site", length, &f->target_site));
  DDV_RETURN_IF_ERROR(r.U32("target_worker", &f->target_worker));
  DDV_RETURN_IF_ERROR(r.U16("source_site_length", &length));
  if (length > kMaxSiteIdLength) return r.Invalid("source_site too long");
  DDV_RETURN_IF_ERROR(r.Bytes("source_site", length, &f->source_site));
  DDV_RETURN_IF_ERROR(r.U32("source_worker", &f->source_worker));
  DDV_RETURN_IF_ERROR(r.U32("body_length", &body_length));
  return r.Bytes("body", body_length, &f->body);
}

absl::Status DecodePayload(Reader& r, Shutdown* f) {
  return r.U32("grace_ms", &f->grace_ms);
}

template <typename T>
absl::StatusOr<Frame> DecodeAs(absl::string_view payload, FrameType type) {
  Reader r(payload, type);
  T value;
  DDV_RETURN_IF_ERROR(DecodePayload(r, &value));
  DDV_RETURN_IF_ERROR(r.Done());
  return Frame(std::move(value));
}

bool SameInetSockaddr(const sockaddr_storage& a, const sockaddr_storage& b) {
  const socklen_t length = InetSockaddrLength(a);
  return length == InetSockaddrLength(b) && std::memcmp(&a, &b, length) == 0;
}

}  // namespace

const char* FrameTypeName(FrameType type) {
  switch (type) {
    case FrameType::kHello:
      return "hello";
    case FrameType::kHandoffBatch:
      return "handoff_batch";
    case FrameType::kPidfdAck:
      return "pidfd_ack";
    case FrameType::kHeartbeat:
      return "heartbeat";
    case FrameType::kRequest:
      return "request";
    case FrameType::kResponse:
      return "response";
    case FrameType::kMessage:
      return "message";
    case FrameType::kShutdown:
      return "shutdown";
  }
  return "unknown";
}

const char* ProtocolName(Protocol protocol) {
  switch (protocol) {
    case Protocol::kTcp:
      return "tcp";
    case Protocol::kHttp:
      return "http";
    case Protocol::kTls:
      return "tls";
  }
  return "unknown";
}

socklen_t InetSockaddrLength(const sockaddr_storage& address) {
  switch (address.ss_family) {
    case AF_INET:
      return sizeof(sockaddr_in);
    case AF_INET6:
      return sizeof(sockaddr_in6);
    default:
      return 0;
  }
}

bool operator==(const ProxyMetadata& a, const ProxyMetadata& b) {
  if (a.has_addresses != b.has_addresses || a.tlvs != b.tlvs ||
      a.tlvs_truncated != b.tlvs_truncated) {
    return false;
  }
  return !a.has_addresses || (SameInetSockaddr(a.source, b.source) &&
                              SameInetSockaddr(a.destination, b.destination));
}

bool operator==(const HandoffEntry& a, const HandoffEntry& b) {
  return a.connection_id == b.connection_id &&
         a.listener_index == b.listener_index &&
         a.site_index == b.site_index && a.protocol == b.protocol &&
         a.accept_time_ns == b.accept_time_ns && a.host == b.host &&
         a.alpn == b.alpn && a.proxy == b.proxy &&
         a.skip_bytes == b.skip_bytes && a.master_fd == b.master_fd;
}
bool operator==(const HandoffBatch& a, const HandoffBatch& b) {
  return a.mode == b.mode && a.entries == b.entries;
}
bool operator==(const Hello& a, const Hello& b) {
  return a.pid == b.pid && a.worker_index == b.worker_index &&
         a.protocol_version == b.protocol_version && a.site == b.site;
}
bool operator==(const PidfdAckEntry& a, const PidfdAckEntry& b) {
  return a.connection_id == b.connection_id && a.error == b.error;
}
bool operator==(const PidfdAck& a, const PidfdAck& b) {
  return a.entries == b.entries;
}
bool operator==(const Heartbeat& a, const Heartbeat& b) {
  return a.sequence == b.sequence && a.is_reply == b.is_reply;
}
bool operator==(const Request& a, const Request& b) {
  return a.id == b.id && a.method == b.method && a.body == b.body;
}
bool operator==(const Response& a, const Response& b) {
  return a.id == b.id && a.code == b.code && a.error == b.error &&
         a.body == b.body;
}
bool operator==(const Message& a, const Message& b) {
  return a.target_site == b.target_site && a.target_worker == b.target_worker &&
         a.source_site == b.source_site && a.source_worker == b.source_worker &&
         a.body == b.body;
}
bool operator==(const Shutdown& a, const Shutdown& b) {
  return a.grace_ms == b.grace_ms;
}

FrameType TypeOf(const Frame& frame) {
  // The variant's alternatives are declared in FrameType order from 1.
  return static_cast<FrameType>(frame.index() + 1);
}

size_t ExpectedFdCount(const Frame& frame) {
  const HandoffBatch* batch = std::get_if<HandoffBatch>(&frame);
  if (batch == nullptr || batch->mode != HandoffMode::kScmRights) return 0;
  return batch->entries.size();
}

absl::string_view TruncateAlpnList(absl::string_view alpn, size_t limit) {
  if (alpn.size() <= limit) return alpn;
  // A comma right at `limit` means the protocol before it is whole.
  size_t cut = alpn.rfind(',', limit);
  if (cut == absl::string_view::npos) return absl::string_view();
  return alpn.substr(0, cut);
}

absl::Status EncodeHandoffBatch(HandoffMode mode,
                                absl::Span<const HandoffEntry> entries,
                                std::string* out) {
  out->clear();
  if (entries.empty() || entries.size() > kMaxEntriesPerBatch) {
    return absl::InvalidArgumentError(absl::StrCat(
        "handoff batch with ", entries.size(), " entries, not 1..",
        kMaxEntriesPerBatch));
  }
  PutHeader(out, FrameType::kHandoffBatch);
  PutU8(out, static_cast<uint8_t>(mode));
  PutU8(out, 0);  // reserved
  PutU16(out, static_cast<uint16_t>(entries.size()));
  for (size_t i = 0; i < entries.size(); ++i) {
    DDV_RETURN_IF_ERROR(EncodeEntry(entries[i], mode, i, out));
  }
  return FinishFrame(out, FrameType::kHandoffBatch);
}

absl::Status EncodeFrame(const Frame& frame, std::string* out) {
  if (const auto* batch = std::get_if<HandoffBatch>(&frame)) {
    return EncodeHandoffBatch(batch->mode, batch->entries, out);
  }
  out->clear();
  FrameType type = TypeOf(frame);
  PutHeader(out, type);
  absl::Status status = std::visit(
      [out](const auto& f) { return EncodePayload(f, out); }, frame);
  if (!status.ok()) {
    out->clear();
    return absl::Status(status.code(), absl::StrCat("encoding ",
                                                    FrameTypeName(type), ": ",
                                                    status.message()));
  }
  return FinishFrame(out, type);
}

absl::StatusOr<std::string> EncodeFrame(const Frame& frame) {
  std::string out;
  DDV_RETURN_IF_ERROR(EncodeFrame(frame, &out));
  return out;
}

absl::StatusOr<FrameHeader> DecodeHeader(absl::string_view frame) {
  if (frame.size() < kHeaderSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "truncated frame: ", frame.size(), " bytes, the header needs ",
        kHeaderSize));
  }
  // The header is read with the same Reader so its errors look the same.
  Reader r(frame.substr(0, kHeaderSize), FrameType::kHello);
  uint32_t magic = 0, payload_length = 0;
  uint16_t version = 0, type = 0;
  DDV_RETURN_IF_ERROR(r.U32("magic", &magic));
  DDV_RETURN_IF_ERROR(r.U16("version", &version));
  DDV_RETURN_IF_ERROR(r.U16("type", &type));
  DDV_RETURN_IF_ERROR(r.U32("payload_length", &payload_length));
  if (magic != kMagic) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "bad magic 0x%08x (expected 0x%08x, \"DDV1\"): not a ddv channel",
        magic, kMagic));
  }
  if (version != kProtocolVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "unsupported protocol version ", version, " (this build speaks ",
        kProtocolVersion, "): master and worker library differ"));
  }
  if (type < static_cast<uint16_t>(FrameType::kHello) ||
      type > static_cast<uint16_t>(FrameType::kShutdown)) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown frame type ", type));
  }
  if (payload_length > kMaxFrameBytes - kHeaderSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "payload length ", payload_length, " over the limit of ",
        kMaxFrameBytes - kHeaderSize));
  }
  if (payload_length != frame.size() - kHeaderSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "payload length ", payload_length, " but the message holds ",
        frame.size() - kHeaderSize, " payload bytes (truncated or padded)"));
  }
  FrameHeader header;
  header.version = version;
  header.type = static_cast<FrameType>(type);
  header.payload_length = payload_length;
  return header;
}

absl::StatusOr<Frame> DecodeFrame(absl::string_view frame) {
  absl::StatusOr<FrameHeader> header = DecodeHeader(frame);
  if (!header.ok()) return header.status();
  absl::string_view payload = frame.substr(kHeaderSize);
  switch (header->type) {
    case FrameType::kHello:
      return DecodeAs<Hello>(payload, header->type);
    case FrameType::kHandoffBatch:
      return DecodeAs<HandoffBatch>(payload, header->type);
    case FrameType::kPidfdAck:
      return DecodeAs<PidfdAck>(payload, header->type);
    case FrameType::kHeartbeat:
      return DecodeAs<Heartbeat>(payload, header->type);
    case FrameType::kRequest:
      return DecodeAs<Request>(payload, header->type);
    case FrameType::kResponse:
      return DecodeAs<Response>(payload, header->type);
    case FrameType::kMessage:
      return DecodeAs<Message>(payload, header->type);
    case FrameType::kShutdown:
      return DecodeAs<Shutdown>(payload, header->type);
  }
  return absl::InvalidArgumentError("unknown frame type");
}

}  // namespace handoff
}  // namespace ddv
