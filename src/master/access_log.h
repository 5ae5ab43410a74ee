// The listeners' access logs (docs/metrics.md): one line per connection the
// master is done with, saying where it went or why not. The loop only
// formats a line into its file's buffer; the bytes reach the file through
// the master's ring (one write in flight per file, of kBatchBytes or every
// kBatchNs, run by the kernel's io-wq when the file system would block), so
// a slow disk never holds up routing and a busy listener costs a few writes
// a second. A file that falls more than kMaxPendingBytes behind drops
// lines, counted.
//
// Files are opened O_APPEND, mode 0640 when created, and reopened by path
// on SIGUSR1 / `ddvctl reopen`: a write in flight finishes in the old file,
// every later line goes to the new one, so the two hold every line once.
#ifndef DDV_SRC_MASTER_ACCESS_LOG_H_
#define DDV_SRC_MASTER_ACCESS_LOG_H_

#include <sys/socket.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "src/base/unique_fd.h"
#include "src/config/config.h"

namespace ddv {
namespace master {

// What one line says. Absent values are nullptr, empty or 0.
struct AccessLogEntry {
  int64_t unix_ns = 0;  // when the master was done with it (wall clock)
  absl::string_view listener;
  const sockaddr_storage* peer = nullptr;        // the TCP peer
  const sockaddr_storage* proxy_peer = nullptr;  // the PROXY header's source
  absl::string_view host;                        // Host or SNI, normal form
  absl::string_view alpn;                        // offered, comma-joined
  absl::string_view site;
  pid_t worker_pid = 0;
  absl::string_view outcome;  // OutcomeName()
  int64_t micros = 0;         // from accept to the outcome
};

// Appends one line, newline included:
//   json:   {"time":"2025-06-01T12:00:00.000123Z","listener":"http",
//            "peer":"127.0.0.1:40000","proxy_peer":null,"host":"a.example",
//            "alpn":null,"site":"a","worker_pid":4242,"outcome":"routed",
//            "us":57}
//   logfmt: time=2025-06-01T12:00:00.000123Z listener=http
//           peer=127.0.0.1:40000 host=a.example site=a worker_pid=4242
//           outcome=routed us=57
// JSON has every key (null when absent); logfmt leaves absent keys out and
// quotes values that need it. Bytes that are not UTF-8 (an ALPN name is
// any bytes) become U+FFFD.
void FormatAccessLogLine(config::AccessLogFormat format,
                         const AccessLogEntry& entry, std::string* out);

class AccessLogs {
 public:
  // A file falling this far behind drops lines instead of growing.
  static constexpr size_t kMaxPendingBytes = 4 << 20;
  // A file's lines go out when this many bytes wait, or when its last write
  // is this old: a line reaches its file within about 0.1 s (one loop turn
  // more), in writes of up to 64 KiB.
  static constexpr size_t kBatchBytes = 64 << 10;
  static constexpr int64_t kBatchNs = 100000000;

  AccessLogs();
  ~AccessLogs();

  // The file for `path` (absolute): the one already open, or opened now
  // (O_WRONLY|O_APPEND|O_CREAT, 0640). Failure names the call and path.
  absl::StatusOr<int> Open(const std::string& path);
  // Listener slot `listener` logs as `config` says, into `file` (from Open;
  // -1: it logs nothing).
  void Bind(uint32_t listener, const config::ListenerConfig& config, int file);
  // Files no listener is bound to any more are closed once their last
  // write is done.
  void CloseUnbound();

  // Whether a connection on `listener` is to be logged: it has a file and
  // the sample says yes (a fresh draw per connection).
  bool Wants(uint32_t listener) {
    if (listener >= bindings_.size() || bindings_[listener].file < 0) {
      return false;
    }
    const double sample = bindings_[listener].sample;
    return sample >= 1.0 || (sample > 0.0 && NextUniform() < sample);
  }
  // Formats the line into its file's buffer (or drops it, counted).
  void Append(uint32_t listener, const AccessLogEntry& entry);

  // The ring's side. The next write of `file` at `now_ns` (monotonic),
  // moving what is buffered into the write: false when one is in flight,
  // nothing waits, or the batch is neither full nor due.
  struct Write {
    int fd;
    const char* data;
    size_t size;
  };
  bool NextWrite(int file, int64_t now_ns, Write* write);
  // The write of `file` completed with `result` (bytes, or -errno). A short
  // write goes on with the rest (NextWrite again).
  void OnWritten(int file, int result);
  // Files with something to write (for the loop's flush).
  int file_count() const { return static_cast<int>(files_.size()); }

  // Reopens every file by its path now, or after its write in flight.
  // Returns how many files there are and, for those that could not be
  // reopened (they keep their old file), why.
  absl::Status Reopen(int* reopened);
  // Whether any write is in flight (a stop waits for none).
  bool Busy() const;
  // At exit, with nothing in flight: writes what is buffered, blocking.
  void FlushBlocking();

  uint64_t lines() const { return lines_; }
  uint64_t dropped() const { return dropped_; }
  uint64_t write_errors() const { return write_errors_; }
  uint64_t reopen_errors() const { return reopen_errors_; }

 private:
  struct File;
  struct Binding {
    int file = -1;
    config::AccessLogFormat format = config::AccessLogFormat::kJson;
    double sample = 1.0;
    std::string listener;
  };
  absl::Status ReopenFile(File& file);
  // Uniform in [0, 1): xorshift64*, seeded from getrandom() (sampling
  // needs no more, and no lock or syscall per draw).
  double NextUniform() {
    random_ ^= random_ >> 12;
    random_ ^= random_ << 25;
    random_ ^= random_ >> 27;
    return static_cast<double>((random_ * 0x2545f4914f6cdd1dULL) >> 11) *
           0x1.0p-53;
  }
  void MaybeClose(int file);

  std::vector<std::unique_ptr<File>> files_;  // null once closed
  std::vector<Binding> bindings_;             // by listener slot
  uint64_t random_ = 0;
  uint64_t lines_ = 0;
  uint64_t dropped_ = 0;
  uint64_t write_errors_ = 0;
  uint64_t reopen_errors_ = 0;
};

}  // namespace master
}  // namespace ddv

#endif  // DDV_SRC_MASTER_ACCESS_LOG_H_
