// LogFile: one destination file of the log writer, shared by every pipe
// routed to its path (a site's workers, stdout and stderr for log_all).
// It queues whole lines, hands out one write at a time (so lines keep their
// order and no two writes to one file race), and reopens and rotates by
// path. It makes no io_uring calls itself: the writer's loop submits the
// writes it asks for, and reports back.
#ifndef DDV_SRC_LOGWRITER_LOG_FILE_H_
#define DDV_SRC_LOGWRITER_LOG_FILE_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "src/base/unique_fd.h"
#include "src/logwriter/rotation.h"

namespace ddv {
namespace logwriter {

// Opens `path` for appending as ddv always has: O_WRONLY | O_APPEND |
// O_CREAT | O_CLOEXEC, mode 0640 when it is created (by the caller's user).
absl::StatusOr<UniqueFd> OpenLogForAppend(const std::string& path);

struct LogFileCounters {
  uint64_t bytes_written = 0;
  uint64_t write_errors = 0;  // failed writes (their bytes are dropped)
  uint64_t bytes_dropped = 0;  // no open file, a failed write, a stall
  uint64_t rotations = 0;
  uint64_t reopens = 0;
};

class LogFile {
 public:
  LogFile(std::string path, RotationPolicy policy);

  const std::string& path() const { return path_; }
  // The last registered pipe's settings win: one file, one policy.
  void set_policy(const RotationPolicy& policy) { policy_ = policy; }

  // Opens the file (again) by its path. On failure the fd in use, if any,
  // stays: lines keep going to the file that is known to work (nginx does
  // the same). A write in flight finishes on the fd it was given, which is
  // closed after it.
  absl::Status Open();
  bool is_open() const { return fd_.valid(); }

  // Where the pipes' lines go (LineBuffer::Commit appends here). Lines added
  // while the file cannot take them (not open, or stalled) are dropped at
  // the next StartWrite and counted.
  std::string* queue() { return &queue_; }
  size_t queued() const { return queue_.size(); }

  struct Write {
    int fd;
    const char* data;
    size_t size;
  };
  // The next write for the loop to submit, if one is due: none in flight,
  // lines queued, the file open. Rotates first when the policy says so.
  // `now` times stalls (below). The data stays valid until WriteDone.
  std::optional<Write> StartWrite(absl::Time now);
  // The write's result: bytes written, or -errno (the bytes are dropped and
  // counted; the error is returned once for the loop to log).
  absl::Status WriteDone(int result);
  bool write_in_flight() const { return in_flight_; }
  // A write in flight for longer than `limit` (a hung disk): the pipes of
  // this file must not wait for it forever, so their lines are dropped
  // (counted) until it completes.
  bool Stalled(absl::Time now, absl::Duration limit) const;
  // Drops what is queued (counted), e.g. while the file is stalled.
  void DropQueue();
  // For the writer's forced exit: forgets the write in flight (cancelled,
  // or done unseen) and writes the queue with plain blocking write()s. What
  // is not written is dropped and counted.
  void WriteQueueBlocking();

  // Pipes routed here; the file is forgotten once none is left and nothing
  // is queued or in flight.
  int pipes = 0;
  bool Idle() const { return pipes == 0 && queue_.empty() && !in_flight_; }

  const LogFileCounters& counters() const { return counters_; }
  uint64_t size() const { return size_; }

 private:
  std::string path_;
  RotationPolicy policy_;
  UniqueFd fd_;
  // The fd a write in flight was given, when Open replaced it meanwhile.
  UniqueFd retired_fd_;
  uint64_t size_ = 0;  // of the file fd_ writes to, as far as we know
  std::string queue_;
  std::string writing_;  // the bytes of the write in flight
  bool in_flight_ = false;
  absl::Time write_started_ = absl::InfinitePast();
  // A failed rotation (a read-only directory, say) is not retried before
  // this, so the file keeps growing instead of failing every write.
  absl::Time retry_rotation_at_ = absl::InfinitePast();
  LogFileCounters counters_;
};

}  // namespace logwriter
}  // namespace ddv

#endif  // DDV_SRC_LOGWRITER_LOG_FILE_H_
