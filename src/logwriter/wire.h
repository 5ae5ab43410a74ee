// The log writer's messages: what a master sends it (pipes to route, a
// reopen request) and the records it parks with the watchdog to get its
// pipes back after a restart (docs/logs.md). One SOCK_SEQPACKET message is
// one encoded Message; fds ride along in SCM_RIGHTS, exactly FdCount() of
// them, in the order of `routes`. Pure encode/decode, no I/O.
#ifndef DDV_SRC_LOGWRITER_WIRE_H_
#define DDV_SRC_LOGWRITER_WIRE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ddv {
namespace logwriter {

// "DDVL" as bytes ('D' first), read as a little-endian u32.
inline constexpr uint32_t kMagic = 0x4c564444;
// Bumped on any layout change; the writer and the masters are one binary,
// so a mismatch means a stale process and is refused.
inline constexpr uint8_t kVersion = 1;
// A message must fit a seqpacket send (SO_SNDBUF, 212992 by default).
inline constexpr size_t kMaxMessageBytes = 64 * 1024;
// One message carries at most this many pipes (a worker has two).
inline constexpr size_t kMaxRoutesPerMessage = 16;
inline constexpr size_t kMaxWorkerNameLength = 512;
inline constexpr size_t kMaxPathLength = 4096;  // PATH_MAX

// kBoth: log_all, one pipe for stdout and stderr (one file, as before, in
// the order the worker writes).
enum class Stream : uint8_t { kStdout = 1, kStderr = 2, kBoth = 3 };
const char* StreamName(Stream stream);  // "stdout", "stderr", "output"

// Where one pipe's lines go.
struct PipeRoute {
  std::string worker;  // "a#0", for the writer's own log lines
  Stream stream = Stream::kStdout;
  std::string path;        // absolute; the file is appended to
  uint64_t max_bytes = 0;  // log_max_bytes: rotate at this size, 0 never
  uint32_t keep = 0;       // log_keep: rotated files kept
};

enum class MessageType : uint8_t {
  // master -> writer: one pipe read end per route, in order.
  kRegister = 1,
  // master (or watchdog) -> writer: reopen every file by its path. With
  // `has_reply`, one fd: a ddvctl client the writer answers and closes.
  kReopen = 2,
  // writer -> its park: one route and its pipe, under `park_id`.
  kPark = 3,
  // writer -> its park: the pipe `park_id` reached its end.
  kUnpark = 4,
};

struct Message {
  MessageType type = MessageType::kRegister;
  std::vector<PipeRoute> routes;  // kRegister: 1..16; kPark: exactly 1
  bool has_reply = false;         // kReopen
  uint64_t park_id = 0;           // kPark, kUnpark
};

// How many fds travel with `message`.
size_t FdCount(const Message& message);

// Encodes `message`; InvalidArgument when it breaks a limit above (too many
// routes, a name or path too long, a kPark without exactly one route).
absl::StatusOr<std::string> EncodeMessage(const Message& message);

// Decodes one message; InvalidArgument naming what is wrong (bad magic,
// another version, an unknown type or flag, a truncated field, trailing
// bytes, a relative path). No slack: what decodes re-encodes to the same
// bytes.
absl::StatusOr<Message> DecodeMessage(absl::string_view bytes);

}  // namespace logwriter
}  // namespace ddv

#endif  // DDV_SRC_LOGWRITER_WIRE_H_
