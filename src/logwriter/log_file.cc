// LogFile: queue, one write at a time, reopen and rotation by path.
#include "src/logwriter/log_file.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "src/base/errno_status.h"

namespace ddv {
namespace logwriter {

absl::StatusOr<UniqueFd> OpenLogForAppend(const std::string& path) {
  UniqueFd fd(
      open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640));
  if (!fd) {
    return ErrnoStatus(errno, "open",
                       absl::StrCat("opening log \"", path, "\""));
  }
  return fd;
}

LogFile::LogFile(std::string path, RotationPolicy policy)
    : path_(std::move(path)), policy_(policy) {}

absl::Status LogFile::Open() {
  absl::StatusOr<UniqueFd> fd = OpenLogForAppend(path_);
  if (!fd.ok()) return fd.status();
  struct stat st {};
  const uint64_t size = fstat(fd->get(), &st) == 0 ? st.st_size : 0;
  if (in_flight_ && fd_.valid() && !retired_fd_.valid()) {
    retired_fd_ = std::move(fd_);
  }
  if (fd_.valid()) ++counters_.reopens;
  fd_ = *std::move(fd);
  size_ = size;
  return absl::OkStatus();
}

std::optional<LogFile::Write> LogFile::StartWrite(absl::Time now) {
  if (in_flight_ || queue_.empty()) return std::nullopt;
  if (!fd_.valid()) {
    DropQueue();
    return std::nullopt;
  }
  RotationPolicy policy = policy_;
  if (now < retry_rotation_at_) policy.max_bytes = 0;
  WritePlan plan = PlanWrite(queue_, size_, policy);
  if (plan.rotate_first) {
    absl::Status rotated = RotateFiles(path_, policy.keep);
    if (rotated.ok()) rotated = Open();
    if (rotated.ok()) {
      ++counters_.rotations;
    } else {
      LOG(ERROR) << "log writer: " << rotated.message()
                 << "; the file grows past log_max_bytes, next try in a "
                    "minute";
      retry_rotation_at_ = now + absl::Minutes(1);
      policy.max_bytes = 0;
    }
    plan = PlanWrite(queue_, size_, policy);
  }
  writing_.assign(queue_, 0, plan.bytes);
  queue_.erase(0, plan.bytes);
  in_flight_ = true;
  write_started_ = now;
  return Write{fd_.get(), writing_.data(), writing_.size()};
}

absl::Status LogFile::WriteDone(int result) {
  in_flight_ = false;
  retired_fd_.Reset();
  absl::Status status;
  // No progress on a non-empty write would only come back: treat as an error.
  if (result == 0 && !writing_.empty()) result = -EIO;
  if (result < 0) {
    ++counters_.write_errors;
    counters_.bytes_dropped += writing_.size();
    status = ErrnoStatus(-result, "write",
                         absl::StrCat("appending ", writing_.size(),
                                      " bytes to log \"", path_, "\""));
    writing_.clear();
    return status;
  }
  counters_.bytes_written += result;
  size_ += result;
  writing_.erase(0, result);
  if (!writing_.empty()) {
    // A short write (a full disk, a signal): the rest goes first next time.
    queue_.insert(0, writing_);
    writing_.clear();
  }
  return status;
}

bool LogFile::Stalled(absl::Time now, absl::Duration limit) const {
  return in_flight_ && now - write_started_ > limit;
}

void LogFile::WriteQueueBlocking() {
  in_flight_ = false;
  writing_.clear();
  retired_fd_.Reset();
  size_t done = 0;
  while (fd_.valid() && done < queue_.size()) {
    ssize_t n = write(fd_.get(), queue_.data() + done, queue_.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += n;
  }
  counters_.bytes_written += done;
  size_ += done;
  queue_.erase(0, done);
  DropQueue();
}

void LogFile::DropQueue() {
  counters_.bytes_dropped += queue_.size();
  queue_.clear();
}

}  // namespace logwriter
}  // namespace ddv
