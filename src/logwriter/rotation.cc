// Rotation decisions, and the renames that carry them out.
#include "src/logwriter/rotation.h"

#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "src/base/errno_status.h"

namespace ddv {
namespace logwriter {

WritePlan PlanWrite(absl::string_view queue, uint64_t size,
                    const RotationPolicy& policy) {
  WritePlan plan;
  if (queue.empty()) return plan;
  if (policy.max_bytes == 0 || size + queue.size() <= policy.max_bytes) {
    plan.bytes = queue.size();
    return plan;
  }
  const uint64_t room = size < policy.max_bytes ? policy.max_bytes - size : 0;
  // The last line end within the room.
  size_t fits = 0;
  if (room > 0) {
    size_t end = queue.rfind('\n', static_cast<size_t>(room) - 1);
    if (end != absl::string_view::npos) fits = end + 1;
  }
  if (fits > 0) {
    plan.bytes = fits;
    return plan;
  }
  if (size > 0) {
    plan.rotate_first = true;
    return plan;
  }
  // An empty file and a first line longer than max_bytes: write that line
  // alone (it cannot fit anywhere), so the queue moves on.
  const size_t end = queue.find('\n');
  plan.bytes = end == absl::string_view::npos ? queue.size() : end + 1;
  return plan;
}

std::vector<std::pair<std::string, std::string>> RotationRenames(
    const std::string& path, uint32_t keep) {
  std::vector<std::pair<std::string, std::string>> renames;
  for (uint32_t i = keep; i > 1; --i) {
    renames.emplace_back(absl::StrCat(path, ".", i - 1),
                         absl::StrCat(path, ".", i));
  }
  if (keep > 0) renames.emplace_back(path, path + ".1");
  return renames;
}

absl::Status RotateFiles(const std::string& path, uint32_t keep) {
  if (keep == 0) {
    if (unlink(path.c_str()) != 0 && errno != ENOENT) {
      return ErrnoStatus(errno, "unlink",
                         absl::StrCat("rotating log \"", path, "\""));
    }
    return absl::OkStatus();
  }
  for (const auto& [from, to] : RotationRenames(path, keep)) {
    if (rename(from.c_str(), to.c_str()) != 0 && errno != ENOENT) {
      return ErrnoStatus(errno, "rename",
                         absl::StrCat("rotating log \"", from, "\" to \"", to,
                                      "\""));
    }
  }
  return absl::OkStatus();
}

}  // namespace logwriter
}  // namespace ddv
