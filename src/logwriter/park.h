// Park: where the log writer keeps a copy of every pipe it reads, so that a
// writer restarted after a crash gets them back. It is a SOCK_SEQPACKET
// socketpair whose two ends the watchdog holds and never reads: a pipe sent
// into it with SCM_RIGHTS stays open inside the queued message for as long
// as the socket lives (the trick the master's handoff channel relies on,
// docs/master.md). The records are a log: kPark adds a pipe under an id,
// kUnpark removes it; a new writer replays them, then rewrites the park with
// what is still open, and compacts it the same way when it grows.
#ifndef DDV_SRC_LOGWRITER_PARK_H_
#define DDV_SRC_LOGWRITER_PARK_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "src/base/unique_fd.h"
#include "src/logwriter/wire.h"

namespace ddv {
namespace logwriter {

class Park {
 public:
  // The two ends of the socketpair; not owned (the watchdog's, inherited).
  Park(int send_fd, int recv_fd) : send_fd_(send_fd), recv_fd_(recv_fd) {}

  struct Entry {
    uint64_t id = 0;
    PipeRoute route;
    UniqueFd fd;
  };

  // Reads every record earlier writers left and returns the pipes still
  // parked, by id. The park is empty afterwards: Add them back.
  std::vector<Entry> Replay();

  // Parks a copy of `fd`. Unavailable when the park is full (the pipe is
  // then not recoverable after a crash; the caller logs it).
  absl::Status Add(uint64_t id, const PipeRoute& route, int fd);
  // Records that pipe `id` has ended.
  absl::Status Remove(uint64_t id);

  // Records queued in the park now.
  size_t records() const { return records_; }
  // Whether the park holds enough dead records to be worth rewriting for
  // `live` open pipes.
  bool WantsCompaction(size_t live) const { return records_ > 2 * live + 64; }
  // Empties the park (closing the copies it held) so the caller can Add the
  // live pipes again. Between the two, only the writer's own fds keep the
  // pipes open: a crash exactly there loses them, as any crash of a writer
  // without a park would.
  void Clear();

 private:
  int send_fd_;
  int recv_fd_;
  size_t records_ = 0;
};

}  // namespace logwriter
}  // namespace ddv

#endif  // DDV_SRC_LOGWRITER_PARK_H_
