// Ring: the one io_uring a loop owns. Setup flags and feature probing live in
// one place (Ring::Create) so a kernel that lacks something fails at start-up
// with a message naming it, never later with an odd errno.
#ifndef DDV_SRC_URING_RING_H_
#define DDV_SRC_URING_RING_H_

#include <liburing.h>

#include <memory>

#include "absl/status/statusor.h"

namespace ddv {
namespace uring {

struct RingOptions {
  unsigned entries = 4096;      // SQ size; the CQ is twice that
  bool single_issuer = true;    // only the loop thread submits
  bool defer_taskrun = true;    // run completions only when we wait: batching
  bool sqpoll = false;          // a kernel thread polls the SQ (costs a core)
  unsigned sqpoll_idle_ms = 1000;
  unsigned cq_entries = 0;      // 0: twice `entries`
  bool coop_taskrun = true;     // task work waits for the next syscall
  bool submit_all = false;      // one bad SQE does not strand its batch
  bool register_ring_fd = false;  // io_uring_enter skips the fd lookup
};

class Ring {
 public:
  // Sets the ring up and probes every opcode ddv uses. Flags the kernel does
  // not know are dropped (logged); a missing opcode is an error that names it.
  static absl::StatusOr<std::unique_ptr<Ring>> Create(const RingOptions& options);
  ~Ring();

  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  io_uring* get() { return &ring_; }
  unsigned setup_flags() const { return ring_.flags; }

  // Returns a free SQE, submitting the queued ones first if the SQ is full
  // (as Reserve(1)).
  io_uring_sqe* GetSqe();
  // Guarantees `count` free SQEs, to be taken in a row: submits until the
  // kernel has taken enough. Linked ops (an op and its LINK_TIMEOUT) must
  // not be split by a submit: the op would go out alone, with no deadline.
  // The process dies (CHECK, saying why) if the kernel keeps refusing
  // entries for about a second, or persistently (a dead ring): there is no
  // correct way on from there.
  void Reserve(unsigned count);

  // Cancels every op in flight and returns once none is (synchronous
  // cancel, bounded at a second): after it, the kernel no longer writes into
  // any buffer an op pointed at. For teardown: the memory ops point into
  // may be freed next. Their completions stay in the CQ, unread.
  void CancelAll();

 private:
  Ring() = default;
  io_uring ring_{};
  bool initialised_ = false;
};

}  // namespace uring
}  // namespace ddv

#endif  // DDV_SRC_URING_RING_H_
