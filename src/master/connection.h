// Connection: the master's state for one accepted socket between accept and
// its handoff (sent with SCM_RIGHTS, or pulled and acknowledged in pidfd
// mode), or until the master refuses and closes it.
// Slots live in a ConnectionTable, a slab with a free list: no allocation per
// connection on the hot path. The socket is owned by the slot (UniqueFd)
// and leaves it only through Release() into an IORING_OP_CLOSE, so the
// close costs the loop no syscall of its own.
#ifndef DDV_SRC_MASTER_CONNECTION_H_
#define DDV_SRC_MASTER_CONNECTION_H_

#include <linux/time_types.h>
#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "src/base/unique_fd.h"
#include "src/handoff/wire.h"
#include "src/master/error_response.h"
#include "src/sniff/host_name.h"

namespace ddv {
namespace master {

// A connection's life:
//   kPeeking → kRouted → kQueued → kSending → (pidfd, Node: kSent →) kClosing
// kRouted ⇄ kWaitingForWorker while its site has no live worker; a handoff
// that fails, or a worker that dies or shuts down, sends it back to kRouted.
// Any state before the handoff can end in kRefusing → kClosing.
enum class ConnState : uint8_t {
  kFree,
  kPeeking,           // a peek (and its deadline) is in flight
  kRouted,            // site chosen; QueueForWorker gives it a worker next
  kWaitingForWorker,  // routed, but its site has no live worker right now
  kQueued,            // in a worker's next handoff batch
  kSending,           // in a handoff message being sent
  kSent,              // pidfd or Node: offered; kept until the worker answers
  kRefusing,          // sending a refusal, then a lingering close
  kClosing,           // close submitted; freed when no op is in flight
};

// "peeking", "routed", ... for logs and tests.
absl::string_view ConnStateName(ConnState state);

struct Connection {
  UniqueFd fd;
  uint32_t generation = 0;
  ConnState state = ConnState::kFree;
  uint8_t inflight = 0;          // submitted ops not yet completed
  bool rcvlowat_raised = false;  // SO_RCVLOWAT must go back to 1 before handoff
  // Its peek (nothing received yet) waits in its loop's SilentPeeks, not on a
  // link timeout; `expired`: shut for reading at its deadline.
  bool silent_wait = false;
  bool expired = false;
  bool deadline_shortened = false;
  uint16_t listener = 0;
  int32_t site = -1;
  int32_t worker = -1;
  // Counted in its site's pending connections (SiteCaps) until the master
  // lets it go.
  bool site_pending = false;
  uint32_t seen = 0;  // bytes the last peek returned
  // Node workers that answered `accepted: false` (at their maxConnections):
  // it goes to another one, and is refused once every worker has said no.
  uint16_t node_refusals = 0;
  int64_t accept_ns = 0;
  int64_t waiting_since_ns = 0;
  __kernel_timespec deadline{};  // CLOCK_MONOTONIC, absolute

  // The rare prefix that outgrows a ring buffer (up to max_peek_bytes).
  std::unique_ptr<char[]> big;
  uint32_t big_size = 0;

  // What the worker is told.
  sniff::HostName host;
  std::string alpn;  // offered ALPN, comma-joined (TLS only)
  uint32_t skip_bytes = 0;  // PROXY header length
  handoff::ProxyMetadata proxy;  // what the PROXY header said

  absl::string_view refusal;  // bytes being sent while kRefusing
  // Timed out before a single byte arrived: once its 408 is sent, it is
  // closed without a lingering close if still nothing is unread.
  bool silent = false;

  // SCM_RIGHTS: the master's copy is closed by an op linked to the handoff
  // send (SubmitBatch), which owns the fd once the send succeeds.
  bool close_linked = false;
  // The peer's address, read before such a send on an access-logged
  // listener: by the time the log line is made, the fd may be closed.
  std::unique_ptr<sockaddr_storage> peer;

  // The first peek found nothing: the kernel held the connection for the
  // whole TCP_DEFER_ACCEPT period (`hold_ns`) before accept. That hold
  // counts against the deadline, once, leaving at least 1 ms.
  void CountDeferAcceptHold(int64_t hold_ns);

  // Puts SO_RCVLOWAT back to 1 if a peek raised it: whoever gets the
  // socket next (a worker, or the primary from a shard) must see it as
  // accept(2) gave it.
  void RestoreRcvlowat();

  uint64_t Id(uint32_t index) const {
    return (static_cast<uint64_t>(generation) << 32) | index;
  }
};

class ConnectionTable {
 public:
  explicit ConnectionTable(uint32_t capacity);

  // nullptr when full. The slot comes back clean, its generation one past
  // the previous occupant's.
  Connection* Allocate(uint32_t* index);
  // Closes the socket if the slot still owns it (normally it was released
  // into an IORING_OP_CLOSE first) and bumps the generation, so the id and
  // the op tags of the old occupant no longer match.
  void Free(uint32_t index);

  Connection& at(uint32_t index) { return slots_[index]; }
  // The slot a connection id names, if that connection is still there.
  Connection* Find(uint64_t id);

  uint32_t capacity() const { return static_cast<uint32_t>(slots_.size()); }
  uint32_t in_use() const { return in_use_; }

 private:
  std::vector<Connection> slots_;
  std::vector<uint32_t> free_;
  uint32_t in_use_ = 0;
};

}  // namespace master
}  // namespace ddv

#endif  // DDV_SRC_MASTER_CONNECTION_H_
