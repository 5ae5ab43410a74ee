// MasterHangCheck: the start of a master and the silence of a serving one,
// counted only while the watchdog could have heard it.
#include "src/watchdog/hang_check.h"

#include <time.h>

#include <algorithm>

namespace ddv {
namespace watchdog {

void MasterHangCheck::Started(absl::Duration now) {
  phase_ = start_timeout_ > absl::ZeroDuration() ? Phase::kStarting
                                                 : Phase::kOff;
  since_ = now;
}

void MasterHangCheck::Serving(absl::Duration now, bool heartbeats) {
  phase_ = heartbeats && timeout_ > absl::ZeroDuration() ? Phase::kServing
                                                         : Phase::kOff;
  since_ = now;
}

void MasterHangCheck::Heard(absl::Duration now) {
  // A starting master's start ends only with `serving`.
  if (phase_ == Phase::kServing) since_ = std::max(since_, now);
}

std::optional<HangVerdict> MasterHangCheck::Check(absl::Duration now) {
  const std::optional<absl::Duration> last = last_check_;
  last_check_ = now;
  if (phase_ == Phase::kOff) return std::nullopt;
  if (last.has_value() && now - *last > kMaxWatchdogTurn) {
    // The watchdog itself was away: heartbeats or a `serving` sent
    // meanwhile may wait unread in the link. Judge from now on what it
    // can read.
    since_ = std::max(since_, now);
    return std::nullopt;
  }
  const bool starting = phase_ == Phase::kStarting;
  const absl::Duration silence = now - since_;
  if (silence < (starting ? start_timeout_ : timeout_)) return std::nullopt;
  phase_ = Phase::kOff;
  return HangVerdict{starting ? HangVerdict::Kind::kNotServing
                              : HangVerdict::Kind::kNoHeartbeat,
                     silence};
}

absl::Duration MasterHangCheck::MonotonicNow() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return absl::DurationFromTimespec(now);
}

}  // namespace watchdog
}  // namespace ddv
