// Master: the io_uring loop that accepts, peeks, sniffs, routes and hands
// connections to site workers, and supervises those workers.
//
// Path of a connection (DESIGN.md): multishot accept → peek (MSG_PEEK into a
// provided buffer; SO_RCVLOWAT + POLL_FIRST to wait for more; an absolute
// link timeout at the peek deadline) → sniff (PROXY, then HTTP or TLS) →
// route → a worker's next handoff batch (SCM_RIGHTS sendmsg, after which the
// master closes its copy; or a pidfd offer the worker pulls and
// acknowledges). The master holds both ends of every worker channel, so a
// worker that dies with batches unread loses nothing: the master reads them
// back and hands those sockets to another worker of the site.
#ifndef DDV_SRC_MASTER_MASTER_H_
#define DDV_SRC_MASTER_MASTER_H_

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "src/base/unique_fd.h"
#include "src/config/config.h"
#include "src/handoff/wire.h"
#include "src/master/connection.h"
#include "src/master/counters.h"
#include "src/master/worker_pool.h"
#include "src/route/route_table.h"
#include "src/sniff/sniff_status.h"
#include "src/uring/buffer_ring.h"
#include "src/uring/ring.h"

namespace ddv {
namespace master {

struct MasterOptions {
  uring::RingOptions ring;
  uint32_t peek_buffers = 1024;      // power of two
  uint32_t peek_buffer_size = 4096;  // most heads fit; bigger ones grow
  uint32_t max_connections = 16384;  // below the 20000 fd limit
  int defer_accept_seconds = 1;      // the kernel's TCP_DEFER_ACCEPT hold
  absl::Duration linger = absl::Seconds(1);       // after a refusal
  absl::Duration worker_wait = absl::Seconds(1);  // for a live worker
  uint32_t handoff_batch = 32;       // connections per handoff message
  absl::Duration stop_grace = absl::Seconds(10);
  // The master probes each worker this often; a worker that has said
  // nothing for heartbeat_timeout (a stopped or deadlocked process) is
  // killed, its connections go to another worker and it is restarted.
  absl::Duration heartbeat_interval = absl::Seconds(5);
  absl::Duration heartbeat_timeout = absl::Seconds(20);
  WorkerPoolOptions workers;
};

class Master {
 public:
  // Takes the listening sockets (one per config listener, in order).
  static absl::StatusOr<std::unique_ptr<Master>> Create(
      const MasterOptions& options, config::Config config,
      std::vector<UniqueFd> listeners);
  ~Master();

  // Runs until SIGTERM/SIGINT (graceful drain) or a fatal error.
  absl::Status Run();

  // JSON for `ddvctl status --json`, Prometheus text for `ddvctl metrics`.
  std::string StatusJson() const;
  std::string MetricsText() const;
  const config::Config& config() const { return config_; }

 private:
  enum Op : uint8_t {
    kOpAccept = 1,
    kOpPeek,
    kOpPeekTimeout,
    kOpRefuseSend,
    kOpRefuseShutdown,
    kOpLingerRecv,
    kOpLingerTimeout,
    kOpClose,
    kOpHandoffSend,
    kOpChannelPoll,
    kOpWorkerExitPoll,
    kOpSignalPoll,
    kOpControlPoll,
    kOpCancel,
    kOpChannelWritable,
    kOpControlRecv,
    kOpControlTimeout,
  };

  Master(const MasterOptions& options, config::Config config);

  absl::Status Init(std::vector<UniqueFd> listeners);
  absl::Status BuildRoutes(const config::Config& config,
                           std::shared_ptr<const route::RouteTable>* out);

  // One completion; `tag` decoded from its user_data.
  void Dispatch(io_uring_cqe* cqe);
  void SubmitAccept(uint32_t listener);
  void OnAccept(uint32_t listener, io_uring_cqe* cqe);
  void SubmitPeek(uint32_t index, bool dont_wait);
  void OnPeek(uint32_t index, io_uring_cqe* cqe);
  // Sniffs `prefix`; returns true when the connection moved on (routed,
  // refused or closed), false when it needs more bytes.
  bool Decide(uint32_t index, absl::string_view prefix);
  void Route(uint32_t index, int site);
  void RefuseUnparsable(uint32_t index, sniff::SniffStatus status);
  void Refuse(uint32_t index, Refusal refusal);
  void OnRefuseStep(Op op, uint32_t index, io_uring_cqe* cqe);
  void SubmitLinger(uint32_t index);
  void Close(uint32_t index);
  void MaybeFree(uint32_t index);
  void RestoreRcvlowat(Connection& c);

  // Handoff side (master_handoff.cc).
  void Dispatch(uint32_t index);  // to a worker of c.site, or wait
  void FlushBatches();
  void SubmitBatch(int worker);
  void OnHandoffSent(int worker, io_uring_cqe* cqe);
  void OnChannelReadable(int worker);
  void OnAcknowledged(int worker, uint64_t id);
  void OnPullFailed(int worker, uint64_t id, int error);
  void ReleaseRetired(int worker);
  void OnWorkerExit(int worker);
  void ReclaimFromWorker(int worker);
  void ArmWorker(int worker);
  void ArmWorkerChannel(int worker);
  void ReclaimFromDeadWorkers();
  void RecoverUnread(int worker);
  void OnWorkerRequest(int worker, const handoff::Request& request);
  void ForwardMessage(int worker, handoff::Message message);
  void Reply(int worker, uint64_t id, absl::Status status,
             const std::string& body);
  absl::Status UpdateServerConf(int worker, const std::string& body);
  void CheckWaiting(int64_t now_ns);
  void CheckHeartbeats(int64_t now_ns);

  // Signals and control (master_control.cc).
  absl::Status InitSignals();
  void OnSignals();
  void OnControlReadable();
  void Reload();
  absl::Status ApplyConfig(config::Config loaded);
  void BeginStop();
  int RollingRestart(int site);

  io_uring_sqe* Sqe(Op op, uint32_t index, uint32_t generation = 0);

  // A ddvctl connection, served through the ring.
  struct ControlClient {
    UniqueFd fd;
    char buffer[512];
    size_t length = 0;
    uint32_t generation = 0;
    uint8_t inflight = 0;
    bool resubmit = false;
    __kernel_timespec deadline{};
  };
  void SubmitControlRecv(uint32_t slot);
  void OnControlCompletion(Op op, uint32_t slot, io_uring_cqe* cqe);
  std::string ControlCommand(absl::string_view line);
  void ArmSignalPoll();
  void ArmControlPoll();

  MasterOptions options_;
  config::Config config_;
  std::shared_ptr<const route::RouteTable> routes_;
  std::unique_ptr<uring::Ring> ring_;
  std::unique_ptr<uring::BufferRing> peek_buffers_;
  ConnectionTable connections_;
  std::vector<UniqueFd> listeners_;
  std::vector<bool> accepting_;
  std::unique_ptr<WorkerPool> workers_;
  std::vector<uint32_t> waiting_;      // connections waiting for a worker
  std::vector<uint32_t> no_buffer_;    // peeks to retry when buffers return
  std::vector<char> linger_scratch_;   // discarded bytes of refused peers
  UniqueFd signal_fd_;
  UniqueFd control_fd_;
  std::array<ControlClient, 16> control_clients_;
  int64_t accept_resume_ns_ = 0;  // accepts paused (out of fds) until then
  int64_t next_heartbeat_ns_ = 0;
  Counters counters_;
  bool stopping_ = false;
  int64_t stop_deadline_ns_ = 0;
  int64_t started_ns_ = 0;
};

// CLOCK_MONOTONIC now, in nanoseconds (the clock of link timeouts).
int64_t MonotonicNowNs();
__kernel_timespec ToTimespecNs(int64_t ns);

}  // namespace master
}  // namespace ddv

#endif  // DDV_SRC_MASTER_MASTER_H_
