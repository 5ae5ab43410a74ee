#include "src/master/silent_peeks.h"

#include <sys/socket.h>

#include <algorithm>

#include "glog/logging.h"
#include "src/master/clock.h"

namespace ddv {
namespace master {

void SilentPeeks::ArmDeadline(Connection& c, uint32_t index,
                              io_uring_sqe* peek,
                              absl::FunctionRef<io_uring_sqe*()> next_sqe) {
  if (c.seen == 0) {
    Add(c, index);
    return;
  }
  peek->ioprio |= IORING_RECVSEND_POLL_FIRST;
  peek->flags |= IOSQE_IO_LINK;
  io_uring_prep_link_timeout(next_sqe(), &c.deadline, IORING_TIMEOUT_ABS);
  ++c.inflight;
}

void SilentPeeks::Add(Connection& c, uint32_t index) {
  c.silent_wait = true;
  const Entry entry{FromTimespecNs(c.deadline), index, c.generation};
  if (entries_.empty() || entries_.back().deadline_ns <= entry.deadline_ns) {
    entries_.push_back(entry);
    return;
  }
  // Out of order (a connection a shard forwarded keeps its own accept
  // time): in its place, so the front stays the earliest.
  entries_.insert(std::upper_bound(entries_.begin(), entries_.end(), entry,
                                   [](const Entry& a, const Entry& b) {
                                     return a.deadline_ns < b.deadline_ns;
                                   }),
                  entry);
}

int64_t SilentPeeks::Expire(int64_t now_ns, int64_t max_wait_ns,
                            ConnectionTable& connections) {
  while (!entries_.empty() && entries_.front().deadline_ns <= now_ns) {
    const Entry due = entries_.front();
    entries_.pop_front();
    Connection& c = connections.at(due.index);
    // Skipped: a connection gone (the slot reused), decided, or whose bytes
    // came (its later peeks carry link timeouts).
    if (c.generation != due.generation || c.state != ConnState::kPeeking ||
        !c.silent_wait || c.expired) {
      continue;
    }
    // Wakes the peek (recv returns 0, or what came at the last moment);
    // its handler sees `expired`. Sending is not affected: a 408 still
    // goes out.
    c.expired = true;
    if (shutdown(c.fd.get(), SHUT_RD) < 0) {
      PLOG_EVERY_N(WARNING, 1000) << "shutdown(SHUT_RD) at a peek deadline";
    }
  }
  if (entries_.empty()) return max_wait_ns;
  return std::clamp<int64_t>(entries_.front().deadline_ns - now_ns, 0,
                             max_wait_ns);
}

}  // namespace master
}  // namespace ddv
