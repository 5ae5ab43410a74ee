// ddvctl top: the live view of a running master (per-site connection and
// refusal rates, outstanding handoffs, restarts), from `status` asked over
// the control socket every interval; and --once, one frame on standard
// output for scripts. docs/ddvctl.md describes what each column means.
#ifndef DDV_SRC_CONTROL_TOP_H_
#define DDV_SRC_CONTROL_TOP_H_

#include <string>

#include "absl/time/time.h"

namespace ddv {
namespace control {

struct TopOptions {
  std::string control_socket;
  absl::Duration interval = absl::Seconds(1);
  // For each status request; the live view keeps answering keys meanwhile
  // no longer than this.
  absl::Duration timeout = absl::Seconds(5);
};

// The live view until q, Ctrl-C, SIGTERM or SIGHUP; returns ddvctl's exit
// code: 0 after q or Ctrl-C, 128 + the signal after SIGTERM or SIGHUP, 1
// without a terminal. A master that stops answering is shown as such and
// asked again every interval.
int RunTop(const TopOptions& options);

// Two samples `interval` apart, then one frame on standard output; exit
// code as for any ddvctl command (3: not running, ...).
int RunTopOnce(const TopOptions& options);

}  // namespace control
}  // namespace ddv

#endif  // DDV_SRC_CONTROL_TOP_H_
