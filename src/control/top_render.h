// ddvctl top's frame: a TopView as lines of plain text (ASCII only), cut to
// a terminal's width and height. Pure, so --once and the tests see exactly
// what the live view draws.
#ifndef DDV_SRC_CONTROL_TOP_RENDER_H_
#define DDV_SRC_CONTROL_TOP_RENDER_H_

#include <string>
#include <vector>

#include "src/control/top_model.h"

namespace ddv {
namespace control {

struct FrameOptions {
  // 0: no limit (--once). Lines are cut to `width` columns; past `height`
  // lines the last one says how many rows did not fit.
  int width = 0;
  int height = 0;
  // Shown in the first line: "every 1s", and in the live view the keys.
  absl::Duration refresh = absl::Seconds(1);
  bool live = false;
  // Instead of the master's numbers (it did not answer): why, in one line.
  std::string problem;
};

// The table's columns, for a reader (tests, scripts) of --once output.
inline constexpr char kSiteHeader[] =
    "SITE/WORKER        PID  STATE      CONN/S  OUTST   UNREAD  RESTARTS  "
    "503/S";

std::vector<std::string> RenderTopFrame(const TopView& view,
                                        const FrameOptions& options);

}  // namespace control
}  // namespace ddv

#endif  // DDV_SRC_CONTROL_TOP_RENDER_H_
