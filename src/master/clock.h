// The master's clock: CLOCK_MONOTONIC in nanoseconds, the clock of io_uring's
// absolute timeouts. Every deadline in the loop (peek, linger, worker wait,
// heartbeats, worker back-off and stop grace) uses it, so a wall-clock step
// (NTP, an operator's `date`) never fires or delays one. absl::Now() is for
// display only.
#ifndef DDV_SRC_MASTER_CLOCK_H_
#define DDV_SRC_MASTER_CLOCK_H_

#include <linux/time_types.h>

#include <cstdint>

#include "absl/time/time.h"

namespace ddv {
namespace master {

int64_t MonotonicNowNs();

__kernel_timespec ToTimespecNs(int64_t ns);
int64_t FromTimespecNs(const __kernel_timespec& ts);

// Monotonic time dressed as an absl::Time, for APIs that take one (the
// supervisor's clock). Its epoch is the boot, not 1970: never print it.
absl::Time MonotonicTime();

}  // namespace master
}  // namespace ddv

#endif  // DDV_SRC_MASTER_CLOCK_H_
