// MasterHangCheck: tells a master that hangs (a stuck loop, SIGSTOP, a
// deadlock, a blocking syscall) from one that is starting, busy or
// stopping, for the watchdog, which kills a hung master so the normal
// restart path runs (--master_hang_timeout; docs/lifecycle.md, "A master
// that hangs"). A serving master that says so (`alive_every_ms` in its
// `serving`) sends `alive` on the link from its event loop every second,
// and only those count as heard.
//
// Only silence the watchdog could have heard counts: when one turn of the
// watchdog's own loop took longer than kMaxWatchdogTurn (an upgrade's
// binary check blocks it for up to 15 s; it may itself be stopped or
// starved), what the master sent meanwhile may still be unread, so the
// silence is counted again from the end of that turn.
#ifndef DDV_SRC_WATCHDOG_HANG_CHECK_H_
#define DDV_SRC_WATCHDOG_HANG_CHECK_H_

#include <optional>

#include "absl/time/time.h"

namespace ddv {
namespace watchdog {

// The watchdog's loop wakes at least every 100 ms; a turn longer than this
// means it was not reading the link.
inline constexpr absl::Duration kMaxWatchdogTurn = absl::Seconds(1);

// Times are CLOCK_MONOTONIC (MonotonicNow), which a step of the wall clock
// does not move.
class MasterHangCheck {
 public:
  // `timeout` zero: never judges.
  explicit MasterHangCheck(absl::Duration timeout = absl::ZeroDuration())
      : timeout_(timeout) {}

  absl::Duration timeout() const { return timeout_; }
  // Whether the running master is judged now.
  bool armed() const { return armed_; }

  // The master said it serves: from now on it must be heard within the
  // timeout. Before, it is starting (adopting, waiting for its workers'
  // hello) and sends nothing.
  void Serving(absl::Duration now);
  // An `alive` was read from the master.
  void Heard(absl::Duration now);
  // Not judged any more: it is stopping, handing over, gone or killed.
  // The next master is judged from its own Serving.
  void Off() { armed_ = false; }

  // Once per turn of the watchdog's loop, after the link was read. When
  // the master has been silent for the timeout: how long, and the check is
  // off (one verdict per master).
  std::optional<absl::Duration> Check(absl::Duration now);

  // CLOCK_MONOTONIC as a duration since an arbitrary start.
  static absl::Duration MonotonicNow();

 private:
  absl::Duration timeout_;
  bool armed_ = false;
  // The last message read, or the end of a turn too long to count.
  absl::Duration heard_ = absl::ZeroDuration();
  std::optional<absl::Duration> last_check_;
};

}  // namespace watchdog
}  // namespace ddv

#endif  // DDV_SRC_WATCHDOG_HANG_CHECK_H_
