// ServiceNotifier: what ddv tells systemd about the service, and when
// (docs/lifecycle.md, "systemd"). The watchdog is the main process systemd
// knows (NotifyAccess=main; it keeps its pid across an upgrade), so it
// alone sends, from what the master tells it over the link; a master
// running alone (--watchdog=false) sends the same itself.
//
//   READY=1       a master serves: the first time, and to end RELOADING=1
//   RELOADING=1   a reload (with MONOTONIC_USEC) or an upgrade began
//   STOPPING=1    a stop began; once
//   STATUS=...    what runs, what just happened (a master died, ...)
//   WATCHDOG=1    every half of WATCHDOG_USEC
#ifndef DDV_SRC_WATCHDOG_SERVICE_NOTIFIER_H_
#define DDV_SRC_WATCHDOG_SERVICE_NOTIFIER_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "src/base/sd_notify.h"

namespace ddv {
namespace watchdog {

struct ServiceNotifierOptions {
  std::string notify_socket;                     // empty: tell nobody
  absl::Duration watchdog = absl::ZeroDuration();  // WATCHDOG_USEC
  // What systemd was told before an upgrade re-executed the watchdog: a
  // READY=1 it has is not sent again, a RELOADING=1 still gets its READY=1.
  bool ready_sent = false;
  bool reloading = false;
};

class ServiceNotifier {
 public:
  ServiceNotifier() = default;  // tells nobody anything
  // InvalidArgument for a NOTIFY_SOCKET that is not an AF_UNIX address.
  static absl::StatusOr<ServiceNotifier> Create(
      const ServiceNotifierOptions& options);

  bool enabled() const { return socket_.enabled(); }

  // A master serves (its workers are up, or it stopped waiting for them):
  // READY=1 the first time and after RELOADING=1, STATUS= only otherwise
  // (a master restarted after a crash: systemd never saw it go).
  void Ready(absl::string_view status);
  // A reload began at `monotonic_usec` (CLOCK_MONOTONIC): RELOADING=1,
  // once the service has been ready (before, STATUS= only: READY=1 is
  // still to come anyway).
  void Reloading(int64_t monotonic_usec, absl::string_view status);
  // It ended, applied or refused: READY=1 if RELOADING=1 was sent.
  void Reloaded(absl::string_view status);
  // STOPPING=1 with its status, once (later calls do nothing); from then on
  // Ready and Reloading send only STATUS=.
  void Stopping(absl::string_view status);
  void Status(absl::string_view status);
  // The master's news, as it sends them on the link (docs/lifecycle.md),
  // or as a master alone passes them here: {"op": "serving" | "status" |
  // "reloading" | "reloaded" | "stopping", "status": text} and, for
  // "reloading", "monotonic_usec". Calls the method of that name; false
  // (nothing done) for another op.
  bool Handle(const nlohmann::json& message);

  // WATCHDOG=1 when half of WATCHDOG_USEC has passed since the last one,
  // or now with `force` (before a step that may block the caller).
  void Ping(bool force = false);
  // Until the next ping is due; InfiniteDuration without a watchdog.
  absl::Duration UntilPing() const;

  bool ready_sent() const { return ready_sent_; }
  bool reloading() const { return reloading_; }
  bool stopping() const { return stopping_; }
  absl::Duration ping_interval() const { return ping_interval_; }

  // CLOCK_MONOTONIC in microseconds, as MONOTONIC_USEC wants it.
  static int64_t MonotonicNowUsec();

 private:
  void Send(const std::string& message);

  NotifySocket socket_;
  absl::Duration ping_interval_ = absl::ZeroDuration();  // zero: none
  int64_t next_ping_usec_ = 0;
  bool ready_sent_ = false;
  bool reloading_ = false;
  bool stopping_ = false;
};

}  // namespace watchdog
}  // namespace ddv

#endif  // DDV_SRC_WATCHDOG_SERVICE_NOTIFIER_H_
