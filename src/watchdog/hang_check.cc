// MasterHangCheck: the silence of a serving master, counted only while the
// watchdog could have heard it.
#include "src/watchdog/hang_check.h"

#include <time.h>

#include <algorithm>

namespace ddv {
namespace watchdog {

void MasterHangCheck::Serving(absl::Duration now) {
  if (timeout_ == absl::ZeroDuration()) return;
  armed_ = true;
  heard_ = now;
}

void MasterHangCheck::Heard(absl::Duration now) {
  heard_ = std::max(heard_, now);
}

std::optional<absl::Duration> MasterHangCheck::Check(absl::Duration now) {
  const std::optional<absl::Duration> last = last_check_;
  last_check_ = now;
  if (!armed_) return std::nullopt;
  if (last.has_value() && now - *last > kMaxWatchdogTurn) {
    // The watchdog itself was away: heartbeats sent meanwhile may wait
    // unread in the link. Judge from now on what it can read.
    heard_ = std::max(heard_, now);
    return std::nullopt;
  }
  const absl::Duration silence = now - heard_;
  if (silence < timeout_) return std::nullopt;
  armed_ = false;
  return silence;
}

absl::Duration MasterHangCheck::MonotonicNow() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return absl::DurationFromTimespec(now);
}

}  // namespace watchdog
}  // namespace ddv
