// Starting the log writer process (a role of ddv_master: `ddv_master
// --log_writer`), for its two owners (docs/logs.md):
// - the watchdog, which supervises it in its own process table beside the
//   master (restarts with back-off) and holds the link and the park, so a
//   writer that dies loses no pipe and a master that dies takes nothing
//   with it (SupervisedLogWriter);
// - a master run alone (--watchdog=false), which starts one writer as its
//   child and does not restart it (ChildLogWriter).
#ifndef DDV_SRC_LOGWRITER_WRITER_PROCESS_H_
#define DDV_SRC_LOGWRITER_WRITER_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "src/base/unique_fd.h"
#include "src/supervise/process_table.h"
#include "src/supervise/spawn.h"

namespace ddv {
namespace logwriter {

// The fd numbers the writer process gets, and its command-line flags
// (defined in src/ddv_master_main.cc).
inline constexpr int kWriterLinkFd = 3;
inline constexpr int kWriterParkSendFd = 4;
inline constexpr int kWriterParkRecvFd = 5;
inline constexpr char kWriterRoleFlag[] = "--log_writer";
inline constexpr char kWriterParkFlag[] = "--log_writer_park";

struct WriterSockets {
  UniqueFd master_end;  // the masters send here (SOCK_SEQPACKET)
  UniqueFd writer_end;  // every writer reads here
  UniqueFd park_send;   // the park's two ends (park.h), or invalid
  UniqueFd park_recv;
};

// The link, and the park when `with_park`. All CLOEXEC, non-blocking. The
// park's send buffer is raised as far as allowed (it holds a record per
// open pipe).
absl::StatusOr<WriterSockets> MakeWriterSockets(bool with_park);

// That `fd` (--log_writer_fd) is an open SOCK_SEQPACKET socket: the
// master's end of a link, as the watchdog passes it.
absl::Status CheckMasterEnd(int fd);

// `command` (ddv_master's absolute path, and flags such as glog's
// --log_dir) run as the log writer, inheriting the writer's ends of
// `sockets`. Its stdout and stderr are the caller's.
supervise::ProcessSpec WriterSpec(const std::vector<std::string>& command,
                                  const WriterSockets& sockets);

// How long a stopping writer may take to read the pipes to their end and
// write what it has (the writer's own stop grace is 5 s), before SIGKILL.
inline constexpr absl::Duration kWriterStopWait = absl::Seconds(8);

// A watchdog's writer and its sockets, kept running across the watchdog's
// re-execution for an upgrade (docs/lifecycle.md): the new image takes them
// back, so no pipe of a worker it adopts loses its reader.
struct KeptWriter {
  pid_t pid = 0;  // 0: none was running (it was in back-off)
  UniqueFd pidfd;
  WriterSockets sockets;  // no master_end: nothing was kept
};

// The watchdog's writer: a slot of the watchdog's process table (which
// restarts it with back-off, like the master; ReapOrphans routes its exit).
// Unlike a worker it has no parent-death signal: if the watchdog dies, it
// reads the workers' pipes until they end (they leave when their channels
// do), then stops at the end of its link.
class SupervisedLogWriter {
 public:
  // Starts one on new sockets; or, given what an upgraded watchdog's
  // previous image kept, takes that writer back (ProcessTable::Adopt), or
  // starts one on the kept sockets (and park) if it was not running.
  static absl::StatusOr<std::unique_ptr<SupervisedLogWriter>> Start(
      const std::vector<std::string>& command, supervise::ProcessTable* table,
      KeptWriter kept = {});
  // Stops the writer and waits for it (kWriterStopWait at most): by then
  // the master has stopped, so the pipes are ending and it writes what they
  // held. Must run before `table` is destroyed.
  ~SupervisedLogWriter();
  SupervisedLogWriter(const SupervisedLogWriter&) = delete;
  SupervisedLogWriter& operator=(const SupervisedLogWriter&) = delete;

  // The masters' end of the link, for every master the watchdog starts.
  int master_end() const { return sockets_.master_end.get(); }
  // SIGUSR1 to the watchdog: a kReopen on the link, so a writer that is
  // restarting gets it when it is back.
  void Reopen();

  // What an upgrade keeps across execve (the watchdog's state): the
  // process, 0 and -1 while it waits to restart, and every socket end.
  pid_t pid() const { return table_->pid(slot_); }
  int pidfd() const { return table_->pidfd(slot_); }
  const WriterSockets& sockets() const { return sockets_; }

 private:
  SupervisedLogWriter(supervise::ProcessTable* table, WriterSockets sockets)
      : table_(table), sockets_(std::move(sockets)) {}

  supervise::ProcessTable* table_;
  WriterSockets sockets_;
  int slot_ = -1;
};

// A master run alone: one writer, its child, not restarted. With no park,
// a writer that dies takes the pipes with it; workers then get EPIPE on
// their output, and the ones started afterwards write their files directly
// (the link has no reader).
class ChildLogWriter {
 public:
  static absl::StatusOr<std::unique_ptr<ChildLogWriter>> Start(
      const std::vector<std::string>& command);
  // Closes the link (the writer stops at its end, reads what the pipes
  // still hold), waits for it (kWriterStopWait at most) and reaps it.
  ~ChildLogWriter();
  ChildLogWriter(const ChildLogWriter&) = delete;
  ChildLogWriter& operator=(const ChildLogWriter&) = delete;

  int master_end() const { return master_end_.get(); }
  pid_t pid() const { return pid_; }

 private:
  ChildLogWriter() = default;
  UniqueFd master_end_;
  pid_t pid_ = 0;
  UniqueFd pidfd_;
};

}  // namespace logwriter
}  // namespace ddv

#endif  // DDV_SRC_LOGWRITER_WRITER_PROCESS_H_
