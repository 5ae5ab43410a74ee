// The master <-> worker wire format: one SOCK_SEQPACKET message is one frame
// (a fixed 12-byte header and a typed payload). Pure encode/decode, no I/O;
// docs/handoff.md is the byte-level reference and the versioning rule.
#ifndef DDV_SRC_HANDOFF_WIRE_H_
#define DDV_SRC_HANDOFF_WIRE_H_

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace ddv {
namespace handoff {

// "DDV1" as bytes on the wire ('D' first); read as a little-endian u32.
inline constexpr uint32_t kMagic = 0x31564444;
// Bumped on any change to a payload layout; receivers reject other versions.
// 2: handoff entries carry the PROXY destination and v2 TLVs.
inline constexpr uint16_t kProtocolVersion = 2;
inline constexpr size_t kHeaderSize = 12;
// A whole frame, header included. It must fit one seqpacket message, which is
// bounded by the sender's SO_SNDBUF (212992 by default): 128 KiB leaves room
// and still holds a full batch of worst-case entries (64 x kMaxEntryBytes).
inline constexpr size_t kMaxFrameBytes = 128 * 1024;
// SCM_MAX_FD is 253; 64 keeps the cmsg buffer small and a batch well under
// kMaxFrameBytes. One SCM_RIGHTS message never carries more fds than this.
inline constexpr size_t kMaxEntriesPerBatch = 64;
inline constexpr size_t kMaxHostLength = 253;  // RFC 1035 text form
inline constexpr size_t kMaxAlpnLength = 1024;
inline constexpr size_t kMaxSiteIdLength = 255;
inline constexpr size_t kMaxMethodLength = 64;
// The PROXY v2 TLVs one entry carries: an authority (255), a unique id
// (128), an SSL TLV with its version, CN and cipher, an ALPN and a cloud
// vendor's TLV fit; what does not is left out, whole TLVs at a time
// (ProxyMetadata::tlvs_truncated).
inline constexpr size_t kMaxProxyTlvLength = 640;
// One handoff entry at its largest: the fixed part, host, ALPN list, two
// sockaddr_in6 and the TLVs.
inline constexpr size_t kMaxEntryBytes = 44 + kMaxHostLength + kMaxAlpnLength +
                                         2 * 28 + kMaxProxyTlvLength;
static_assert(kHeaderSize + 4 + 64 * kMaxEntryBytes <= kMaxFrameBytes,
              "a full batch of worst-case entries must fit one frame");
// Message.target_worker: "any live worker of the site, master's choice".
inline constexpr uint32_t kAnyWorker = 0xFFFFFFFF;

enum class FrameType : uint16_t {
  kHello = 1,         // worker -> master, first frame on the channel
  kHandoffBatch = 2,  // master -> worker, fds in SCM_RIGHTS or pulled by pidfd
  kPidfdAck = 3,      // worker -> master, after taking a batch (both modes)
  kHeartbeat = 4,     // both ways
  kRequest = 5,       // worker -> master RPC
  kResponse = 6,      // master -> worker RPC answer
  kMessage = 7,       // worker -> worker, forwarded by the master
  kShutdown = 8,      // master -> worker: drain and exit
};

// How the sockets of a kHandoffBatch travel.
enum class HandoffMode : uint8_t {
  kScmRights = 0,  // one fd per entry in the same message, same order
  kPidfd = 1,      // no fds; each entry names its fd in the master
};

// The listener's protocol: tells the worker whether to speak TLS.
enum class Protocol : uint8_t { kTcp = 0, kHttp = 1, kTls = 2 };

const char* FrameTypeName(FrameType type);
const char* ProtocolName(Protocol protocol);

struct FrameHeader {
  uint16_t version = kProtocolVersion;
  FrameType type = FrameType::kHello;
  uint32_t payload_length = 0;
};

// What a PROXY protocol header carried, passed on to the worker. Without a
// header, or with one that carries no addresses (v1 UNKNOWN, v2 LOCAL),
// has_addresses is false and the worker asks getpeername() itself.
struct ProxyMetadata {
  // The client (source) and the address it connected to at the L4 tier
  // (destination): AF_INET or AF_INET6, the same family, ports set.
  bool has_addresses = false;
  sockaddr_storage source{};
  sockaddr_storage destination{};
  // The v2 header's TLVs as it sent them (type, u16 big-endian length,
  // value), whole and in order, without PP2_TYPE_NOOP and PP2_TYPE_CRC32C
  // (the master checked the checksum), at most kMaxProxyTlvLength bytes.
  // Empty for v1 and for a header without TLVs.
  std::string tlvs;
  bool tlvs_truncated = false;  // TLVs that did not fit were left out
};
bool operator==(const ProxyMetadata& a, const ProxyMetadata& b);

// The size of an AF_INET or AF_INET6 sockaddr; 0 for other families.
socklen_t InetSockaddrLength(const sockaddr_storage& address);

struct HandoffEntry {
  uint64_t connection_id = 0;
  uint32_t listener_index = 0;
  uint32_t site_index = 0;
  Protocol protocol = Protocol::kTcp;
  int64_t accept_time_ns = 0;  // CLOCK_MONOTONIC, same clock in every process
  std::string host;            // normalised Host or SNI; empty when none
  // Comma-joined ALPN list offered by the client. Longer than kMaxAlpnLength
  // is cut at the last whole protocol by the encoder.
  std::string alpn;
  // What the PROXY header said. Without PROXY the worker asks getpeername()
  // itself, so nothing travels.
  ProxyMetadata proxy;
  uint32_t skip_bytes = 0;  // PROXY header bytes still queued on the socket
  int32_t master_fd = -1;   // pidfd mode: the fd number in the master
};
bool operator==(const HandoffEntry& a, const HandoffEntry& b);

struct HandoffBatch {
  HandoffMode mode = HandoffMode::kScmRights;
  std::vector<HandoffEntry> entries;
};

struct Hello {
  uint32_t pid = 0;
  uint32_t worker_index = 0;
  uint16_t protocol_version = kProtocolVersion;  // highest the worker speaks
  std::string site;
};

struct PidfdAckEntry {
  uint64_t connection_id = 0;
  int32_t error = 0;  // 0: pulled; else the errno of pidfd_getfd
};
// The worker's acknowledgement of a batch, in both modes despite the name
// (kept for wire compatibility): the master keeps its copy of each socket
// until then, so a worker that dies with a batch unread loses no connection,
// and closes it on the ack, taken or not.
struct PidfdAck {
  std::vector<PidfdAckEntry> entries;
};

// A non-reply asks the other side to echo `sequence` back with is_reply set.
struct Heartbeat {
  uint64_t sequence = 0;
  bool is_reply = false;
};

struct Request {
  uint64_t id = 0;
  std::string method;  // [a-z0-9_.]+, at most kMaxMethodLength
  std::string body;    // JSON text; the wire does not parse it
};

struct Response {
  uint64_t id = 0;
  absl::StatusCode code = absl::StatusCode::kOk;
  std::string error;  // empty when code is kOk
  std::string body;   // JSON text; empty means null
};

// Worker -> master: target_* say where to deliver, source_* are ignored (the
// master fills them in). Master -> worker: source_* say who sent it.
struct Message {
  std::string target_site;
  uint32_t target_worker = kAnyWorker;
  std::string source_site;
  uint32_t source_worker = 0;
  std::string body;  // JSON text
};

// Sent when the master retires a worker (reload, fewer processes), restarts
// it (rolling) or stops: take no new work, finish, exit 0. After grace_ms
// the master falls back to SIGTERM, so a worker should be gone by then.
struct Shutdown {
  uint32_t grace_ms = 0;  // 0: no deadline given
};

bool operator==(const HandoffBatch& a, const HandoffBatch& b);
bool operator==(const Hello& a, const Hello& b);
bool operator==(const PidfdAckEntry& a, const PidfdAckEntry& b);
bool operator==(const PidfdAck& a, const PidfdAck& b);
bool operator==(const Heartbeat& a, const Heartbeat& b);
bool operator==(const Request& a, const Request& b);
bool operator==(const Response& a, const Response& b);
bool operator==(const Message& a, const Message& b);
bool operator==(const Shutdown& a, const Shutdown& b);

// Alternatives are in FrameType order.
using Frame = std::variant<Hello, HandoffBatch, PidfdAck, Heartbeat, Request,
                           Response, Message, Shutdown>;

FrameType TypeOf(const Frame& frame);

// How many SCM_RIGHTS fds must travel with `frame`: one per entry for a
// kScmRights batch, zero for everything else.
size_t ExpectedFdCount(const Frame& frame);

// Encoders clear `*out` and write one whole frame into it (reusing its
// capacity). They reject what the decoder would reject, so a bug shows up in
// the sender. The handoff encoder writes master_fd as -1 in kScmRights mode.
absl::Status EncodeHandoffBatch(HandoffMode mode,
                                absl::Span<const HandoffEntry> entries,
                                std::string* out);
absl::Status EncodeFrame(const Frame& frame, std::string* out);
absl::StatusOr<std::string> EncodeFrame(const Frame& frame);

// Checks magic, version, type and that payload_length matches `frame.size()`
// exactly (a seqpacket message is a whole frame, never more, never less).
absl::StatusOr<FrameHeader> DecodeHeader(absl::string_view frame);

// Strict decode of one whole frame: every length checked against what is
// left, reserved bits zero, no trailing bytes. Errors are InvalidArgument
// naming the frame type, field and offset; an unknown version is
// FailedPrecondition.
absl::StatusOr<Frame> DecodeFrame(absl::string_view frame);

// Cuts a comma-joined list to at most `limit` bytes at a comma, dropping any
// protocol that would be cut in half.
absl::string_view TruncateAlpnList(absl::string_view alpn,
                                   size_t limit = kMaxAlpnLength);

}  // namespace handoff
}  // namespace ddv

#endif  // DDV_SRC_HANDOFF_WIRE_H_
