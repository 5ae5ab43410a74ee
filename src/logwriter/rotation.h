// Size-based rotation of a log file (a site's `log_max_bytes` and
// `log_keep`): when to rotate, how much of the queue fits first, and the
// renames (`a.log` → `a.log.1` → `a.log.2` ...). The decisions are pure;
// RotateFiles does the renames.
#ifndef DDV_SRC_LOGWRITER_ROTATION_H_
#define DDV_SRC_LOGWRITER_ROTATION_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace ddv {
namespace logwriter {

struct RotationPolicy {
  uint64_t max_bytes = 0;  // 0: never rotate
  uint32_t keep = 0;       // rotated files kept: path.1 (newest) .. path.keep
};

// What to do with the head of `queue` (whole lines) for a file of `size`
// bytes now.
struct WritePlan {
  bool rotate_first = false;  // rotate, then ask again with size 0
  size_t bytes = 0;           // write queue[0, bytes) (ends after a '\n')
};

// The file stays within max_bytes: as many whole lines as fit are written;
// when not even one fits, the file rotates first. Only a single line longer
// than max_bytes, written to an empty file, makes it bigger.
WritePlan PlanWrite(absl::string_view queue, uint64_t size,
                    const RotationPolicy& policy);

// The renames that rotate `path`, oldest first, so none overwrites a file
// still to be moved: {path.(keep-1) → path.keep, ..., path → path.1}. Empty
// when keep is 0 (the file is removed instead).
std::vector<std::pair<std::string, std::string>> RotationRenames(
    const std::string& path, uint32_t keep);

// Rotates `path` on disk (RotationRenames, or unlink when keep is 0). A
// missing older file is not an error (ENOENT skipped); the first other
// failure is returned, naming the call and both paths.
absl::Status RotateFiles(const std::string& path, uint32_t keep);

}  // namespace logwriter
}  // namespace ddv

#endif  // DDV_SRC_LOGWRITER_ROTATION_H_
