// CLOCK_MONOTONIC helpers.
#include "src/master/clock.h"

#include <time.h>

namespace ddv {
namespace master {

int64_t MonotonicNowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

__kernel_timespec ToTimespecNs(int64_t ns) {
  __kernel_timespec ts{};
  ts.tv_sec = ns / 1000000000;
  ts.tv_nsec = ns % 1000000000;
  return ts;
}

int64_t FromTimespecNs(const __kernel_timespec& ts) {
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

absl::Time MonotonicTime() {
  return absl::UnixEpoch() + absl::Nanoseconds(MonotonicNowNs());
}

}  // namespace master
}  // namespace ddv
