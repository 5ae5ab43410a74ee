// MasterHangCheck: tells a master that hangs (a stuck loop, SIGSTOP, a
// deadlock, a blocking syscall) from one that is starting, busy or
// stopping, for the watchdog, which kills a hung master so the normal
// restart path runs (docs/lifecycle.md, "A master that hangs"). Two
// clocks, one at a time:
// - A master just started must say `serving` within the start timeout
//   (--master_start_timeout): every master version says it, so a start
//   stuck before it (adopting, binding, starting workers) is a hang.
// - A serving master that says so (`alive_every_ms` in its `serving`)
//   sends `alive` on the link from its event loop every second, and one
//   silent for the timeout (--master_hang_timeout) hangs. Only `alive`
//   counts as heard. One that does not say so (older than the check) is
//   not judged once it serves.
//
// Only silence the watchdog could have heard counts: when one turn of the
// watchdog's own loop took longer than kMaxWatchdogTurn (an upgrade's
// binary check blocks it for up to 15 s; it may itself be stopped or
// starved), what the master sent meanwhile (a heartbeat, its `serving`)
// may still be unread, so the count starts again from the end of that
// turn.
#ifndef DDV_SRC_WATCHDOG_HANG_CHECK_H_
#define DDV_SRC_WATCHDOG_HANG_CHECK_H_

#include <optional>

#include "absl/time/time.h"

namespace ddv {
namespace watchdog {

// The watchdog's loop wakes at least every 100 ms; a turn longer than this
// means it was not reading the link.
inline constexpr absl::Duration kMaxWatchdogTurn = absl::Seconds(1);

// Why a master is judged hung, and for how long it was.
struct HangVerdict {
  enum class Kind {
    kNoHeartbeat,  // it served, then sent no `alive` for the timeout
    kNotServing,   // started, it did not say `serving` in the start timeout
  };
  Kind kind;
  // Since the last `alive` (or `serving`), or since the start: counted
  // only while the watchdog could read.
  absl::Duration silence;

  friend bool operator==(const HangVerdict& a, const HangVerdict& b) {
    return a.kind == b.kind && a.silence == b.silence;
  }
};

// Times are CLOCK_MONOTONIC (MonotonicNow), which a step of the wall clock
// does not move.
class MasterHangCheck {
 public:
  // A zero timeout never judges that clock: `timeout` a serving master's
  // silence, `start_timeout` a start.
  explicit MasterHangCheck(absl::Duration timeout = absl::ZeroDuration(),
                           absl::Duration start_timeout = absl::ZeroDuration())
      : timeout_(timeout), start_timeout_(start_timeout) {}

  absl::Duration timeout() const { return timeout_; }
  absl::Duration start_timeout() const { return start_timeout_; }
  // Whether the running master is judged now (starting or serving).
  bool armed() const { return phase_ != Phase::kOff; }
  // Whether it is judged as starting: it has not said `serving` yet.
  bool starting() const { return phase_ == Phase::kStarting; }

  // A master was started: it must say `serving` within the start timeout.
  // It sends nothing else that counts until then: heartbeats start with
  // `serving`.
  void Started(absl::Duration now);
  // The master said it serves: its start is over. `heartbeats`: it said it
  // sends `alive` (`alive_every_ms`), so from now on it must be heard
  // within the timeout; a master without (older than the check) is not
  // judged any more.
  void Serving(absl::Duration now, bool heartbeats = true);
  // An `alive` was read from the master; only a serving one's counts.
  void Heard(absl::Duration now);
  // Not judged any more: it is stopping, handing over, gone or killed.
  // The next master is judged from its own Started.
  void Off() { phase_ = Phase::kOff; }

  // Once per turn of the watchdog's loop, after the link was read. When
  // the master hangs (silent for the timeout, or not serving within the
  // start timeout): why and how long, and the check is off (one verdict
  // per master).
  std::optional<HangVerdict> Check(absl::Duration now);

  // CLOCK_MONOTONIC as a duration since an arbitrary start.
  static absl::Duration MonotonicNow();

 private:
  enum class Phase { kOff, kStarting, kServing };

  absl::Duration timeout_;
  absl::Duration start_timeout_;
  Phase phase_ = Phase::kOff;
  // kStarting: the start; kServing: the last message read. Either moved
  // to the end of a turn too long to count.
  absl::Duration since_ = absl::ZeroDuration();
  std::optional<absl::Duration> last_check_;
};

}  // namespace watchdog
}  // namespace ddv

#endif  // DDV_SRC_WATCHDOG_HANG_CHECK_H_
