// Shard: one more master event loop, on a thread of its own with its own
// ring, peek buffers and connection table (docs/shards.md). It accepts on
// its own socket of each listener's SO_REUSEPORT group (or, without one,
// on the primary's, where io_uring's accept waits exclusively: one loop is
// woken per connection), peeks, sniffs, routes
// by the primary's ShardSnapshot and sends SCM_RIGHTS batches straight
// into the workers' channels. Everything else — refusals, timeouts, sites
// with caps or without a worker it may use, Node workers, logged
// listeners, a full channel — it forwards to the primary as the accepted
// socket, unread (the master only ever peeks), which the primary then
// handles as if it had accepted it.
//
// Thread contract: Start, Publish, TakeReport and State are called by the
// primary's thread; everything else runs on the shard's own. They share
// only the snapshot pointer, the report and the state, each under mu_.
#ifndef DDV_SRC_MASTER_SHARD_H_
#define DDV_SRC_MASTER_SHARD_H_

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "src/base/unique_fd.h"
#include "src/handoff/wire.h"
#include "src/master/connection.h"
#include "src/master/accept_gate.h"
#include "src/master/counters.h"
#include "src/master/head_reading.h"
#include "src/master/histogram.h"
#include "src/master/shard_snapshot.h"
#include "src/master/silent_peeks.h"
#include "src/uring/buffer_ring.h"
#include "src/uring/op_tag.h"
#include "src/uring/ring.h"

namespace ddv {
namespace master {

struct ShardOptions {
  int id = 1;  // 1..N-1; the primary is shard 0
  uring::RingOptions ring;
  uint32_t peek_buffers = 1024;
  uint32_t peek_buffer_size = 4096;
  uint32_t max_connections = 8192;
  uint32_t handoff_batch = 32;
  int primary_wake_fd = -1;  // an eventfd the primary polls; not owned
  // Set by the primary while its table is full: no new accept is armed
  // (what a shard forwards would have nowhere to go). Not owned.
  const std::atomic<bool>* hold_off = nullptr;
  // Fault injection for tests (--shard_fault_after, --shard_fault): once
  // the shard has accepted this many connections, its loop fails as a
  // failed io_uring_enter makes it fail, or (fault_hangs) stops turning
  // until the shard is destroyed. 0: never.
  uint64_t fault_after_accepts = 0;
  bool fault_hangs = false;
};

// A connection the shard gives to the primary, unread.
struct ForwardedConnection {
  UniqueFd fd;
  uint32_t listener = 0;
  int64_t accept_ns = 0;
  bool timed_out = false;  // its peek deadline passed: 408, or close
  bool peeked = false;     // TCP_DEFER_ACCEPT's hold counted already
  bool silent = false;     // timed out before a single byte came
  // Its peek deadline as the shard kept it (CLOCK_MONOTONIC), with that
  // hold counted; 0 for one never admitted (accept_ns + peek_timeout).
  int64_t deadline_ns = 0;
};

// What the shard did since the primary last asked, for the counters and
// histograms the primary serves (docs/metrics.md) and the connections it
// forwards.
struct ShardReport {
  std::vector<ForwardedConnection> forwarded;
  // What the primary counts for its own connections (Host found, SNI, ALPN,
  // PROXY, closed before a decision, batches, accept errors); accepted
  // and handed off come by listener and by worker below.
  Counters counters;
  struct ListenerDelta {
    uint64_t accepted = 0;
    uint64_t closed = 0;  // Outcome::kClosed: gone before a decision
    Histogram handoff_latency{LatencyBounds()};
    Histogram peek_bytes{PeekBytesBounds()};
  };
  std::vector<ListenerDelta> listeners;  // by slot
  struct Routed {
    uint32_t listener = 0;
    int site = -1;
    int worker = -1;
    uint64_t count = 0;
  };
  std::vector<Routed> routed;
};

// The shard's figures, for the primary's barriers and `ddvctl status`.
struct ShardState {
  int id = 0;
  uint64_t adopted_epoch = 0;
  std::vector<bool> accepting;  // by listener slot: accepts in flight
  std::vector<uint32_t> holding;  // by listener slot: its connections
  bool snapshot_accepting = true;  // the snapshot it runs accepts
  uint32_t connections = 0;     // in its table
  uint64_t accepted = 0;
  uint64_t handed_off = 0;
  uint64_t forwarded = 0;
  uint64_t batches = 0;
  uint64_t closed_before_decision = 0;
  bool failed = false;  // its loop stopped on an error (logged)
  // Loop turns so far: at least ten a second while it runs (its wait ends
  // after 100 ms), so a count that stops moving is a stuck loop.
  uint64_t turns = 0;
};

class Shard {
 public:
  // Starts the thread; returns once its ring is set up (or why it is not).
  static absl::StatusOr<std::unique_ptr<Shard>> Start(
      const ShardOptions& options,
      std::shared_ptr<const ShardSnapshot> snapshot);
  // Stops the loop and joins it. What it still held is closed: the primary
  // destroys its shards only after a stop drained them (or on a fatal end).
  ~Shard();

  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  int id() const { return options_.id; }
  // The shard adopts `snapshot` at its next loop turn (woken now).
  void Publish(std::shared_ptr<const ShardSnapshot> snapshot);
  // Ends its wait now (it may arm accepts again: the primary has room).
  void Wake();
  // Moves what the shard reported since the last call into `into`, and
  // its state as of that report into `state`, in one critical section.
  void TakeReport(ShardReport* into, ShardState* state);

 private:
  enum Op : uint8_t {
    kOpAccept = 1,   // index: listener slot
    kOpPeek,         // index: connection (generation checked)
    kOpPeekTimeout,  // index: connection (generation checked)
    kOpClose,        // index: connection; only failures complete
    kOpWake,         // the shard's eventfd
    kOpCancel,       // nothing to do
  };

  explicit Shard(const ShardOptions& options);

  void Run(std::shared_ptr<const ShardSnapshot> first);
  absl::Status Init();
  io_uring_sqe* Sqe(Op op, uint32_t index, uint32_t generation = 0);
  void OnCompletion(io_uring_cqe* cqe);

  void Adopt();
  void UpdateAccepts();
  // Cancels every accept of `listener` in flight (they share one tag).
  void CancelAccepts(uint32_t listener);
  // Free slots a multishot accept needs.
  uint32_t MultishotRoom() const;
  void OnAccept(uint32_t listener, io_uring_cqe* cqe);
  void Admit(UniqueFd fd, uint32_t listener, int64_t now_ns);
  Connection* CompletedOp(const uring::OpTag& tag);
  void SubmitPeek(uint32_t index, bool dont_wait);
  void OnPeek(const uring::OpTag& tag, io_uring_cqe* cqe);
  // Sniffs `prefix`: true when the connection moved on (queued for a
  // worker or forwarded), false when it needs more bytes.
  bool Decide(uint32_t index, absl::string_view prefix);
  void Route(uint32_t index, int site);
  // Gives the socket to the primary, unread; the slot is freed.
  // `silent`: timed out with nothing received (the primary closes it
  // without a lingering close after its 408).
  void Forward(uint32_t index, bool timed_out = false, bool silent = false);
  void ForwardUnadmitted(UniqueFd fd, uint32_t listener, int64_t now_ns);
  // A peer gone before the decision, counted as the primary counts its own.
  void CountClosed(const Connection& c);
  // What the sniff found, counted only when the connection is sent from
  // here: one the shard forwards is sniffed and counted by the primary.
  struct SniffCounts {
    SniffFlags flags;
    uint32_t peek_bytes = 0;  // the prefix that decided; 0: none
  };
  SniffCounts& Sniffed(uint32_t index);
  void CountSent(uint32_t index, uint32_t listener);
  void SendBatches();
  void SendBatch(int worker, int channel, std::vector<uint32_t>& queue);
  void CloseConnection(uint32_t index);
  void MaybeFree(uint32_t index);
  // At the loop's end: closes queued, then every op cancelled; sockets
  // accepted meanwhile go to the primary.
  void TearDown();
  void ArmWake();
  void PublishState();

  const ShardOptions options_;
  std::thread thread_;
  std::atomic<bool> exit_{false};
  UniqueFd wake_fd_;
  uint64_t wake_value_ = 0;

  // Owned by the shard's thread.
  std::unique_ptr<uring::Ring> ring_;
  std::unique_ptr<uring::BufferRing> peek_buffers_;
  ConnectionTable connections_;
  SilentPeeks silent_;  // peeks of connections that sent nothing yet
  std::shared_ptr<const ShardSnapshot> snapshot_;
  // Single-shot accepts in flight per listener: on a socket shared with
  // other loops each completion re-queues its wait behind theirs
  // (AcceptGate::set_shared), and several let one loop turn take several
  // connections (bigger batches, fewer turns per connection). On a socket
  // of its own, with room, one multishot instead.
  static constexpr uint32_t kAcceptsPerListener = 8;
  struct AcceptSlot {
    uint32_t inflight = 0;
    bool cancelled = false;  // all of them, until the last completes
    bool multishot = false;  // the one in flight is a multishot
    // The backlog a single-shot accept last saw behind it; unknown at
    // start, after a hold and after a multishot (AcceptGate's rule).
    uint32_t queued = AcceptGate::kQueuedUnknown;
  };
  std::vector<AcceptSlot> accepts_;
  std::vector<uint32_t> holding_;  // connections in the table by listener
  std::vector<SniffCounts> sniffed_;  // by connection slot

  // After EMFILE/ENFILE (the connection stays in the backlog): no new
  // accept until then, or the loop would spin on the same failure.
  int64_t accepts_paused_until_ns_ = 0;
  // Per worker: connections for this turn's batches, and the channel.
  absl::flat_hash_map<int, std::vector<uint32_t>> queues_;
  absl::flat_hash_map<int, int> channels_;
  std::vector<handoff::HandoffEntry> entries_;  // scratch
  std::vector<int> fds_;                        // scratch
  uint32_t round_robin_ = 0;
  bool wake_primary_ = false;
  ShardReport local_;  // this turn's, moved into report_ at its end
  ShardState local_state_;

  mutable absl::Mutex mu_;
  std::shared_ptr<const ShardSnapshot> published_ ABSL_GUARDED_BY(mu_);
  ShardReport report_ ABSL_GUARDED_BY(mu_);
  ShardState state_ ABSL_GUARDED_BY(mu_);
  // Start's wait for Init.
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status start_status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace master
}  // namespace ddv

#endif  // DDV_SRC_MASTER_SHARD_H_
