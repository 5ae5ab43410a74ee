// NodeChannel: the master's side of one Node.js worker slot's channel, a
// SOCK_STREAM socketpair carrying Node's cluster IPC (JSON lines, one fd per
// handed-off connection; src/handoff/node_cluster.h). It holds what a
// SOCK_SEQPACKET channel does not need: an outbox, because a stream write
// can be partial and every line must reach the child whole and in order,
// and the line reader for what the child sends. docs/node.md has the
// conversation.
#ifndef DDV_SRC_MASTER_NODE_CHANNEL_H_
#define DDV_SRC_MASTER_NODE_CHANNEL_H_

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "src/handoff/node_cluster.h"

namespace ddv {
namespace master {

// The default cap on handed-off connections a Node worker may hold without
// having answered `accepted` (--node_max_unaccepted). A stopped Node child's
// channel takes ~278 such messages before the socket buffer is full; past
// the cap connections wait in the worker's queue (and the balance prefers
// its siblings) instead. 1 is what Node's own primary does.
inline constexpr size_t kNodeMaxUnaccepted = 128;

// Replies, pings and messages a Node worker may have waiting in the master.
inline constexpr size_t kMaxOutboxBytes = 4 << 20;

class NodeChannel {
 public:
  // A new process in the slot: what the old one said or was sent is gone
  // with it. The sequence number keeps counting, so a late answer from the
  // old process can never match a connection sent to the new one.
  void Reset();

  // A process started by an earlier master, now ours (docs/lifecycle.md):
  // what it listens on, whether it speaks ddv, and a sequence start far
  // above anything the earlier master used, so an `accepted` meant for that
  // one never matches a connection of ours. The first line read may be the
  // tail of one the earlier master had half read: if it does not decode it
  // is dropped, not taken as a broken stream.
  void Adopt(std::string server_key, bool speaks_ddv_package,
             int64_t first_seq);

  // Queues a whole line (ending in '\n') to the child. False (nothing
  // queued) when the outbox already holds kMaxOutboxBytes: a child that
  // does not read must not make the master buffer without bound.
  bool QueueLine(std::string line);
  // Queues a connection: its `newconn` line, written with `fd` attached,
  // and `ddv` (a JSON object, or empty) in it for the ddv-worker package.
  // Returns the sequence number the child's `accepted` will carry.
  // `now_ns` starts its clock for OldestUnansweredNs.
  int64_t QueueConnection(int fd, uint32_t connection, int64_t now_ns,
                          absl::string_view ddv = {});
  // Our next message's sequence number (every message we send takes one).
  int64_t NextSeq() { return next_seq_++; }

  enum class FlushResult {
    kDone,     // the outbox is empty
    kBlocked,  // the socket buffer is full: wait for POLLOUT
    kClosed,   // the child end is gone (EPIPE, ECONNRESET)
  };
  // Writes what the outbox holds, in order, without blocking. Connections
  // whose line (with their fd) went out are appended to `sent`.
  FlushResult Flush(int channel_fd, std::vector<uint32_t>* sent);

  // Reads what the child sent (non-blocking, bounded) into `messages`.
  // Fds the child should never send are closed. Returns an error when the
  // stream is broken (a line over the limit); the caller kills the worker.
  absl::Status Read(int channel_fd,
                    std::vector<handoff::node::ChildMessage>* messages,
                    std::vector<std::string>* user_lines);

  // The connection an `accepted` answers, or -1; forgets it.
  int64_t TakeAccepted(int64_t ack);
  // Connections written or queued and not yet answered.
  size_t unaccepted() const { return unaccepted_.size(); }
  // When the longest-waiting unanswered connection was queued (monotonic
  // ns), or 0 when none waits. A stock Node app answers `accepted` as soon
  // as its event loop takes the message: one that has not for long is hung
  // (or, at its fd limit, got the line without its fd and said NACK).
  int64_t OldestUnansweredNs() const;
  bool outbox_empty() const { return outbox_.empty(); }

  // What the app listens on, once it asked (queryServer) and we answered.
  void SetServerKey(std::string key);
  const std::string& server_key() const { return server_key_; }
  bool listening = false;
  // The process loaded the ddv-worker package: it said {"ddv":"hello"} and
  // answers {"ddv":"ping"}, so heartbeats apply to it.
  bool speaks_ddv = false;

 private:
  struct Outgoing {
    std::string bytes;
    size_t written = 0;
    int fd = -1;               // attached to the first byte, if any
    int64_t connection = -1;   // the connection index the fd belongs to
  };
  std::string server_key_;
  std::string newconn_prefix_;  // node::NewConnectionPrefix(server_key_)
  std::deque<Outgoing> outbox_;
  handoff::node::LineReader reader_;
  struct Unanswered {
    uint32_t connection;
    int64_t queued_ns;
  };
  absl::flat_hash_map<int64_t, Unanswered> unaccepted_;  // by seq
  size_t outbox_bytes_ = 0;
  int64_t next_seq_ = 0;
  bool broken_ = false;
  bool resync_ = false;  // adopted: the first line may be a torn one
};

}  // namespace master
}  // namespace ddv

#endif  // DDV_SRC_MASTER_NODE_CHANNEL_H_
