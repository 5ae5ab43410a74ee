// The peeks of connections that have sent nothing yet, in deadline order,
// for the primary loop and every shard.
//
// Such a peek waits without a link timeout: a link timeout that fires
// cancels its peek through the ring's cancel hash (at most 256 buckets), a
// walk of about n/256 cold requests with n peeks waiting, which was 13% of
// the master's samples with 15k idle peers (benchmarks/RESULTS.md, "floor
// work"). The loop ends each one at its deadline instead, with a
// shutdown(SHUT_RD) that completes the peek directly; the peek's handler
// sees Connection::expired and treats it as a timeout.
#ifndef DDV_SRC_MASTER_SILENT_PEEKS_H_
#define DDV_SRC_MASTER_SILENT_PEEKS_H_

#include <liburing.h>

#include <cstdint>
#include <deque>

#include "absl/functional/function_ref.h"
#include "src/master/connection.h"

namespace ddv {
namespace master {

class SilentPeeks {
 public:
  // How the waiting peek `peek` of `c` (slot `index`), just prepared and
  // counted in flight, ends at c.deadline, the same in every loop. With
  // nothing received yet it waits here (Add). With some received (and
  // SO_RCVLOWAT raised past them) it polls first, so it completes only once
  // more bytes came, not again on the same prefix, and gets a link timeout
  // at the deadline, in the sqe `next_sqe` gives, counted in flight.
  void ArmDeadline(Connection& c, uint32_t index, io_uring_sqe* peek,
                   absl::FunctionRef<io_uring_sqe*()> next_sqe);

  // Marks `c` (slot `index`) as waiting here until its deadline.
  void Add(Connection& c, uint32_t index);

  // Shuts for reading every connection whose deadline passed by `now_ns`
  // and that is still waiting silently (not decided, not freed, no bytes
  // yet), and returns how long the loop may wait for the next deadline,
  // at most `max_wait_ns`.
  int64_t Expire(int64_t now_ns, int64_t max_wait_ns,
                 ConnectionTable& connections);

  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    int64_t deadline_ns;
    uint32_t index;
    uint32_t generation;
  };
  std::deque<Entry> entries_;
};

}  // namespace master
}  // namespace ddv

#endif  // DDV_SRC_MASTER_SILENT_PEEKS_H_
