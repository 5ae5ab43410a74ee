// Master: ring set-up, the batched loop and its one dispatch switch, and the
// graceful stop. What each op does lives in master_connection.cc (accept to
// decision), master_handoff.cc (workers) and master_control.cc (signals,
// ddvctl, the control point).
#include "src/master/master.h"

#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>

#include "glog/logging.h"
#include "src/base/errno_status.h"
#include "src/master/routes_from_config.h"

namespace ddv {
namespace master {
namespace {


}  // namespace

Master::Master(const MasterOptions& options, config::Config config)
    : options_(options),
      config_(std::move(config)),
      connections_(options.max_connections),
      accept_gate_(static_cast<uint32_t>(config_.listeners.size()),
                   options.max_connections),
      linger_scratch_(16384) {}

Master::~Master() {
  // The ring goes first. Members die in reverse order, and ring_ is
  // declared before what its ops point into: the provided peek buffers, the
  // connections (their sockets and grown peek buffers), the linger scratch.
  // Left to the default order, a recv still in flight could write into
  // freed memory. Cancel everything (synchronously), unregister the peek
  // buffers while the ring is still open, then close it.
  // The shards first: they use the listeners and the workers' channels.
  shards_.clear();
  if (ring_) ring_->CancelAll();
  peek_buffers_.reset();
  ring_.reset();
  // Under a watchdog, any end but a requested stop (an error out of Run,
  // a handover) leaves the workers to the next master: the pool's table
  // would SIGKILL them.
  if (watchdog_link_ && workers_ && !(stopping_ && !handing_over_)) {
    workers_->AbandonAll();
  }
}

absl::StatusOr<std::unique_ptr<Master>> Master::Create(
    const MasterOptions& options, config::Config config,
    std::vector<UniqueFd> listeners,
    std::vector<std::vector<UniqueFd>> group_members) {
  std::unique_ptr<Master> master(new Master(options, std::move(config)));
  absl::Status status =
      master->Init(std::move(listeners), std::move(group_members));
  if (!status.ok()) return status;
  return master;
}

absl::Status Master::Init(std::vector<UniqueFd> listeners,
                          std::vector<std::vector<UniqueFd>> group_members) {
  started_ns_ = MonotonicNowNs();
  if (listeners.size() != config_.listeners.size()) {
    return absl::InvalidArgumentError("one listening socket per listener");
  }
  group_members.resize(listeners.size());
  if (options_.watchdog_fd >= 0) {
    watchdog_link_ = UniqueFd(options_.watchdog_fd);
    options_.workers.workers_outlive_master = true;
  } else {
    // Alone, the master is the process systemd watches and tells it itself.
    absl::StatusOr<watchdog::ServiceNotifier> notifier =
        watchdog::ServiceNotifier::Create(options_.notify);
    if (notifier.ok()) {
      service_ = *std::move(notifier);
    } else {
      LOG(ERROR) << "systemd is not told about the service: "
                 << notifier.status().message();
    }
  }
  // Before the workers are adopted: a listener missing from --listen_fds
  // is bound through the watchdog, and the worker offers it sends
  // meanwhile wait in watchdog_inbox_.
  absl::Status status =
      TakeListeners(std::move(listeners), std::move(group_members));
  if (!status.ok()) return status;
  absl::StatusOr<std::shared_ptr<const route::RouteTable>> routes =
      RoutesFromConfig(config_);
  if (!routes.ok()) return routes.status();
  routes_ = std::move(*routes);

  status = CreatePeekRing(options_.ring, options_.peek_buffers,
                          options_.peek_buffer_size, &ring_, &peek_buffers_);
  if (!status.ok()) return status;

  status = InitSignals();
  if (!status.ok()) return status;

  if (config_.master.handoff == config::HandoffMode::kPidfd &&
      access("/proc/sys/kernel/yama/ptrace_scope", F_OK) == 0) {
    // Yama (ptrace_scope=1, Ubuntu's default) lets a process take fds with
    // pidfd_getfd only from its descendants' tracees; our workers are our
    // children, the wrong way round. Allow them explicitly.
    if (prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0) < 0) {
      return ErrnoStatus(errno, "prctl(PR_SET_PTRACER)",
                         "allowing workers to pull sockets with pidfd_getfd");
    }
  }

  // Node workers are told their site's port (PORT) for server.listen.
  UpdateListenerPorts(config_);
  // Each worker starts in its site's cgroup, so they exist first.
  InitIsolation();
  // kShutdown waits until no shard can send the worker a batch any more.
  options_.workers.shutdown_gate = [this](int w) { return ShardsDoneWith(w); };
  absl::StatusOr<std::unique_ptr<WorkerPool>> workers =
      WorkerPool::Create(options_.workers, config_);
  if (!workers.ok()) return workers.status();
  workers_ = std::move(*workers);
  status = AdoptWorkers();
  if (!status.ok()) return status;
  status = workers_->StartAll();
  if (!status.ok()) return status;
  // Each started worker once, as the loop does for every later start: arming
  // them all here and again from the loop's TakeRestarted gave each initial
  // worker two exit polls, and the second came back stale. A worker whose
  // start failed gets its polls when the supervisor starts it.
  for (int w : workers_->TakeRestarted()) {
    ArmWorker(w);
    RecordWorker(w);
  }
  // Tests: a start stuck after its workers started, before it serves.
  status = HangAtStartIfAsked();
  if (!status.ok()) return status;
  ReplayAdoptedConfUpdates();
  // Every worker, adopted or new, learns its site's names before the loop
  // sends it a connection.
  UpdateSiteViews();
  GrowListenerGroups();
  UpdateAcceptSharing();
  status = StartShards();
  if (!status.ok()) return status;

  StartObservability();
  if (watchdog_link_) ArmWatchdogPoll();
  UpdateAccepts(MonotonicNowNs());
  SaveConfigSnapshot();
  return absl::OkStatus();
}

io_uring_sqe* Master::Sqe(Op op, uint32_t index, uint32_t generation) {
  io_uring_sqe* sqe = ring_->GetSqe();
  uring::OpTag tag{op, index, generation};
  io_uring_sqe_set_data64(sqe, tag.Encode());
  return sqe;
}

absl::Status Master::Run() {
  LOG(INFO) << "master running: " << listeners_.size() << " listeners, "
            << workers_->size() << " workers";
  std::array<io_uring_cqe*, 256> cqes;
  while (true) {
    FlushBatches();
    FlushAccessLogs();
    peek_buffers_->Publish();
    // Wake at least this often for the periodic checks below, and at the
    // next silent peek's deadline.
    __kernel_timespec wait = ToTimespecNs(
        silent_.empty()
            ? 100 * 1000000LL
            : silent_.Expire(MonotonicNowNs(), 100 * 1000000LL, connections_));
    io_uring_cqe* first = nullptr;
    int ret = io_uring_submit_and_wait_timeout(ring_->get(), &first, 1, &wait,
                                               nullptr);
    if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EBUSY) {
      return ErrnoStatus(-ret, "io_uring_submit_and_wait_timeout",
                         "running the master loop");
    }
    unsigned n;
    while ((n = io_uring_peek_batch_cqe(ring_->get(), cqes.data(),
                                       cqes.size())) > 0) {
      for (unsigned i = 0; i < n; ++i) OnCompletion(cqes[i]);
      io_uring_cq_advance(ring_->get(), n);
    }
    // Between batches: nothing is mid-way through a handler here.
    RunControlPoint();

    const int64_t now = MonotonicNowNs();
    CheckWaiting(now);
    CheckHeartbeats(now);
    CheckScrapes(now);
    // Slots freed in this batch go first to held connections, then to
    // the backlog: the gate re-arms accepts only for the room left.
    AdmitHeld();
    UpdateAccepts(now);
    if (!no_buffer_.empty()) {
      std::vector<uint32_t> retry;
      retry.swap(no_buffer_);
      for (uint32_t index : retry) SubmitPeek(index, false);
    }
    workers_->Tick(now);
    for (int w : workers_->TakeRestarted()) {
      ArmWorker(w);
      RecordWorker(w);
      site_views_.due = true;
    }
    // After the control point's changes and the restarts, before the next
    // turn's batches.
    UpdateSiteViews();
    if (!shards_.empty()) {
      // After the views went out (synchronously), so that no shard sends
      // a worker a connection routed by names its view does not have yet.
      TakeShardReports();
      PublishShardSnapshot();
      ReleaseRetiredWithoutProcess();
    }
    for (int w : workers_->TakeDrainStarted()) RecordWorkerReady(w);
    ReportServiceState(now);
    if (!watchdog_outbox_.empty()) FlushWatchdogLink();
    // Read while a reload waited for the watchdog: handled between
    // handlers, as if polled.
    if (adopted_ && !watchdog_inbox_.empty()) HandleWatchdogInbox();
    CheckUpgradeAnswer(now);
    ReclaimFromDeadWorkers();
    uint64_t held = connections_.in_use() + held_.size();
    for (const ShardState& shard : shard_states_) held += shard.connections;
    held_gauge_.Set(held);
    // Shards accept nothing new while the primary has no room for what
    // they forward (docs/shards.md, "Backpressure").
    const bool hold_off =
        connections_.in_use() + held_.size() >= connections_.capacity();
    if (shards_hold_off_.exchange(hold_off, std::memory_order_relaxed) &&
        !hold_off) {
      for (const std::unique_ptr<Shard>& shard : shards_) shard->Wake();
    }
    if (stopping_ && StopStep(now) && AccessLogsDrained(now)) break;
  }
  // Nothing of theirs is in flight now (or it is given up on): the lines
  // still buffered are written here, blocking.
  access_logs_.FlushBlocking();
  if (handing_over_) {
    // The workers are the next master's: the watchdog holds their records,
    // so what is still queued for it must get there first.
    const absl::Time deadline = absl::Now() + absl::Seconds(2);
    held_gauge_.Set(0);  // what it held was handed off, or is lost anyway
    FlushWatchdogLink();
    while (!watchdog_outbox_.empty() && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));
      FlushWatchdogLink();
    }
    workers_->AbandonAll();
    LOG(INFO) << "master handed over: " << workers_->size()
              << " workers left running for the next master";
    return absl::OkStatus();
  }
  // Whatever did not exit within the grace: SIGTERM, then SIGKILL.
  workers_->StopAll(options_.workers.term_grace);
  LOG(INFO) << "master stopped";
  return absl::OkStatus();
}

void Master::OnCompletion(io_uring_cqe* cqe) {
  const uring::OpTag tag = uring::OpTag::Decode(io_uring_cqe_get_data64(cqe));
  switch (static_cast<Op>(tag.op)) {
    case kOpAccept:
      OnAccept(tag.index, cqe);
      return;
    case kOpPeek:
      OnPeek(tag, cqe);
      return;
    case kOpPeekTimeout:
      OnPeekTimeout(tag, cqe);
      return;
    case kOpRefuseSend:
      OnRefuseSent(tag, cqe);
      return;
    case kOpLingerRecv:
      OnLingerRecv(tag, cqe);
      return;
    case kOpLingerTimeout:
      OnLingerTimeout(tag, cqe);
      return;
    case kOpClose:
      OnClosed(tag, cqe);
      return;
    case kOpHandoffSend:
      OnHandoffSent(tag.index, cqe);
      return;
    case kOpHandoffClose:
      OnHandoffClosed(tag.index, cqe);
      return;
    case kOpChannelPoll:
      OnChannelPoll(tag.index, cqe);
      return;
    case kOpChannelWritable:
      OnChannelWritable(tag.index);
      return;
    case kOpWorkerExitPoll:
      OnWorkerExitPoll(tag);
      return;
    case kOpSignalPoll:
      OnSignalPoll(cqe);
      return;
    case kOpWatchdogPoll:
      OnWatchdogPoll(cqe);
      return;
    case kOpControlPoll:
      OnControlPoll(cqe);
      return;
    case kOpControlRecv:
      OnControlRecv(tag, cqe);
      return;
    case kOpControlTimeout:
      OnControlTimeout(tag);
      return;
    case kOpMetricsPoll:
      OnMetricsPoll(tag, cqe);
      return;
    case kOpScrapeRecv:
      OnScrapeRecv(tag, cqe);
      return;
    case kOpScrapeSend:
      OnScrapeSent(tag, cqe);
      return;
    case kOpAccessLogWrite:
      OnAccessLogWritten(tag.index, cqe);
      return;
    case kOpShardInbox:
      if (!(cqe->flags & IORING_CQE_F_MORE)) ArmShardInbox();
      TakeShardReports();
      return;
    case kOpCancel:
      return;  // a cancel's own result: whatever it found, nothing to do
  }
  LOG(DFATAL) << "completion with unknown op " << int{tag.op};
}

void Master::BeginStop() {
  // systemd hears of a stop once (STOPPING=1), also when it overrides a
  // handover.
  if (!stopping_ || handing_over_) ReportStopping();
  if (handing_over_) {
    // A stop asked during a handover wins: the workers drain and stop, and
    // the exit status tells the watchdog not to re-execute.
    LOG(INFO) << "stop asked during a handover: stopping instead";
    handing_over_ = false;
  }
  StopAccepting();
}

void Master::StopAccepting() {
  if (stopping_) return;
  stopping_ = true;
  stop_phase_ = StopPhase::kDrainingConnections;
  // The whole stop fits in --drain_timeout. Within it, undecided
  // connections get until their peek deadline and routed ones until a
  // worker has them (plus the wait for a live worker).
  const int64_t now = MonotonicNowNs();
  drain_deadline_ns_ =
      now + absl::ToInt64Nanoseconds(options_.workers.drain_timeout);
  stop_deadline_ns_ = std::min<int64_t>(
      drain_deadline_ns_, now + config_.master.peek_timeout_ms * 1000000LL +
                              absl::ToInt64Nanoseconds(options_.worker_wait));
  UpdateAccepts(now);  // stopping_: every accept is cancelled
}

// Stop, in order: no more accepts (BeginStop); the connections the master
// holds are decided and handed off; then the workers get kShutdown with
// what is left of --drain_timeout and finish what they hold; whatever is
// still running at the drain deadline is signalled by Run()'s StopAll.
bool Master::StopStep(int64_t now_ns) {
  switch (stop_phase_) {
    case StopPhase::kRunning:
      return false;
    case StopPhase::kDrainingConnections: {
      const bool drained =
          connections_.in_use() == 0 && held_.empty() && ShardsDrained();
      if (!drained && now_ns < stop_deadline_ns_) return false;
      if (!drained) {
        uint64_t undecided = connections_.in_use() + held_.size();
        for (const ShardState& shard : shard_states_) {
          undecided += shard.connections;
        }
        LOG(WARNING) << "stopping with " << undecided
                     << " connections still undecided";
      }
      if (handing_over_) {
        stop_phase_ = StopPhase::kDone;
        return true;
      }
      workers_->ShutdownAll(
          absl::Nanoseconds(std::max<int64_t>(0, drain_deadline_ns_ - now_ns)));
      stop_phase_ = StopPhase::kStoppingWorkers;
      stop_deadline_ns_ = drain_deadline_ns_;
      return false;
    }
    case StopPhase::kStoppingWorkers:
      if (workers_->LiveProcesses() > 0 && now_ns < stop_deadline_ns_) {
        return false;
      }
      stop_phase_ = StopPhase::kDone;
      return true;
    case StopPhase::kDone:
      return true;
  }
  return true;
}

}  // namespace master
}  // namespace ddv
