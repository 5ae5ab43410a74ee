// Node.js cluster IPC, as spoken by the primary: the messages a stock Node
// cluster worker (`NODE_UNIQUE_ID` set, `NODE_CHANNEL_FD` inherited,
// `NODE_CHANNEL_SERIALIZATION_MODE=json`) sends and expects, so that an
// unmodified app calling `server.listen(port)` receives ddv's connections
// through Node's own round-robin worker code. Pure encode/decode, no I/O;
// docs/node.md has the conversation and the facts it relies on.
//
// On the wire each message is one line of JSON ending in '\n' over an
// AF_UNIX SOCK_STREAM socket. A connection travels as one `sendmsg` carrying
// the `newconn` line and exactly one fd in SCM_RIGHTS: libuv pairs fds with
// NODE_HANDLE lines in order, and two fds in one message get mismatched.
#ifndef DDV_SRC_HANDOFF_NODE_CLUSTER_H_
#define DDV_SRC_HANDOFF_NODE_CLUSTER_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ddv {
namespace handoff {
namespace node {

// Environment of a Node cluster worker (lib/internal/child_process.js and
// lib/internal/cluster/child.js read these).
inline constexpr char kEnvChannelFd[] = "NODE_CHANNEL_FD";
inline constexpr char kEnvSerialization[] = "NODE_CHANNEL_SERIALIZATION_MODE";
inline constexpr char kEnvUniqueId[] = "NODE_UNIQUE_ID";

// A line longer than this is a broken or hostile child: Node's own messages
// are a few hundred bytes; user messages (process.send) are capped here so a
// worker cannot make the master buffer without bound.
inline constexpr size_t kMaxLineBytes = 64 * 1024;

// What a line from the child is, as far as the primary cares.
enum class ChildMessageKind {
  kOnline,       // {"cmd":"NODE_CLUSTER","act":"online"}
  kQueryServer,  // server.listen(): wants a handle or the round-robin key
  kListening,    // the server is listening (after our queryServer answer)
  kHandleAck,    // {"cmd":"NODE_HANDLE_ACK"}: the fd was received
  kAccepted,     // {"cmd":"NODE_CLUSTER","ack":M,"accepted":bool}
  kClose,        // {"act":"close","key":K}: a server closed
  kExitedAfterDisconnect,  // {"act":"exitedAfterDisconnect"}
  kInternal,     // any other NODE_* message: ignored
  kUser,         // not a NODE_* message: process.send() from the app
};

struct ChildMessage {
  ChildMessageKind kind = ChildMessageKind::kInternal;
  // The child's own sequence number ("seq"), echoed as "ack" in answers.
  int64_t seq = -1;
  // kQueryServer, kListening: what the app asked to listen on. `address` is
  // empty when the app gave none (all interfaces); address_type 4, 6, or -1
  // for a Unix path or a handle (which ddv refuses).
  int port = -1;
  int address_type = 0;
  std::string address;
  // kQueryServer: the server's own data as JSON text ("null" when none). A
  // TLS server sends its session-ticket keys here, and Node's primary
  // answers every worker of the key with the first worker's data, which is
  // how a cluster's processes share tickets.
  std::string data = "null";
  // kAccepted: the primary's newconn seq this answers, and the outcome.
  int64_t ack = -1;
  bool accepted = false;
  // kClose: the key of the closed server.
  std::string key;
};

// Parses one line (without its '\n'). An error means the line is not a JSON
// object or a NODE_CLUSTER message has fields of the wrong type.
absl::StatusOr<ChildMessage> DecodeChildLine(absl::string_view line);

// The round-robin key Node's primary would use for a listen request; the
// worker only compares it, so any stable string works. Ours names the port.
std::string ServerKey(int port, int address_type, absl::string_view address);

// Answer to a kQueryServer: no fd, a key, so the worker takes the
// round-robin path. `sockname_port` must equal the requested port or Node
// fails the listen with EADDRINUSE; `seq` is the primary's own counter.
// `data` is JSON text (see ChildMessage::data); it must parse.
std::string EncodeQueryServerReply(int64_t ack, absl::string_view key,
                                   int address_type,
                                   absl::string_view address, int port,
                                   int64_t seq,
                                   absl::string_view data = "null");

// Answer to a kQueryServer ddv cannot serve (a Unix path, a handle):
// errno is a libuv error name, e.g. "EADDRNOTAVAIL"; listen() then fails.
std::string EncodeQueryServerError(int64_t ack, absl::string_view uv_errno,
                                   int64_t seq);

// One connection: send with exactly one fd attached.
std::string EncodeNewConnection(absl::string_view key, int64_t seq);
// The same line built from a prefix made once per server key, for the hot
// path: AppendNewConnection(NewConnectionPrefix(key), seq, &line) equals
// EncodeNewConnection(key, seq).
std::string NewConnectionPrefix(absl::string_view key);
// `ddv`, when not empty, is a JSON object added to the message as its
// "ddv" member (Node's cluster code ignores it; the ddv-worker package and
// its preload read it: NewConnectionDdv, docs/node.md).
void AppendNewConnection(absl::string_view prefix, int64_t seq,
                         std::string* out, absl::string_view ddv = {});

// A `newconn` message's "ddv" member: {"host":H,...}, H the normal form of
// the Host or SNI the master routed the connection by (left out when it
// had none), for the 421 guard's first-request rule (docs/isolation.md),
// then the members of `more`, a JSON object's text or empty (the PROXY
// header's {"proxy":{...}}). Empty when there is nothing to say.
std::string NewConnectionDdv(absl::string_view host, absl::string_view more);

// Drain: the worker closes its servers and exits 0 once idle.
std::string EncodeDisconnect(int64_t seq);

// Splits the byte stream from a child into lines. Lines are views into the
// reader's buffer, valid until the next Append.
class LineReader {
 public:
  // Adds bytes read from the channel. Fails (and keeps failing) once a line
  // without '\n' exceeds kMaxLineBytes.
  absl::Status Append(absl::string_view bytes);
  // The next complete line, without its '\n'; nullopt when none is left.
  std::optional<absl::string_view> Next();
  size_t buffered() const { return buffer_.size() - start_; }

 private:
  std::string buffer_;
  size_t start_ = 0;      // first byte not yet returned
  size_t scanned_ = 0;    // bytes before this hold no '\n'
  bool overflow_ = false;
};

}  // namespace node
}  // namespace handoff
}  // namespace ddv

#endif  // DDV_SRC_HANDOFF_NODE_CLUSTER_H_
