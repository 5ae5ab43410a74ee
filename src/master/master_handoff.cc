// Master, worker side: batching connections per worker, sending them
// (SCM_RIGHTS through the ring, or a pidfd offer), acknowledgements, what
// workers send, their deaths and re-routing. Worker ops carry the worker's
// index; only the exit poll is per process (generation-checked): the
// channel belongs to the worker slot for its whole life.
#include <poll.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "glog/logging.h"
#include "src/handoff/wire.h"
#include "src/master/master.h"
#include "src/master/wire_protocol.h"
#include "src/sniff/host_name.h"
#include "src/uring/op_tag.h"

namespace ddv {
namespace master {
void Master::QueueForWorker(uint32_t index) {
  Connection& c = connections_.at(index);
  DCHECK(c.state == ConnState::kRouted ||
         c.state == ConnState::kWaitingForWorker)
      << ConnStateName(c.state);
  int w = workers_->Pick(c.site, c.worker);
  if (w < 0) w = workers_->Pick(c.site);  // the excluded one is all there is
  if (w < 0) {
    // No live worker (all restarting, or the site failed): wait briefly for
    // one, then refuse. CheckWaiting retries every loop turn.
    if (c.state != ConnState::kWaitingForWorker) {
      c.state = ConnState::kWaitingForWorker;
      c.waiting_since_ns = MonotonicNowNs();
      waiting_.push_back(index);
    }
    return;
  }
  c.state = ConnState::kQueued;
  c.worker = w;
  Worker& worker = workers_->at(w);
  ++worker.outstanding;
  worker.queue.push_back(index);
}

void Master::CheckWaiting(int64_t now_ns) {
  if (waiting_.empty()) return;
  std::vector<uint32_t> still;
  std::vector<uint32_t> waiting;
  waiting.swap(waiting_);
  for (uint32_t index : waiting) {
    Connection& c = connections_.at(index);
    if (c.state != ConnState::kWaitingForWorker) continue;
    // A live worker wins even if a sibling slot is in a crash loop.
    int w = workers_->Pick(c.site);
    bool failed = w < 0 && workers_->SiteFailed(c.site);
    if (w >= 0) {
      QueueForWorker(index);
    } else if (failed || now_ns - c.waiting_since_ns >=
                             absl::ToInt64Nanoseconds(options_.worker_wait)) {
      CountUnavailable(c.site);
      RecordOutcome(index, Outcome::kUnavailable, now_ns);
      Refuse(index, Refusal::kUnavailable);
    } else {
      still.push_back(index);
    }
  }
  waiting_.insert(waiting_.end(), still.begin(), still.end());
}

void Master::FlushBatches() {
  for (int w = 0; w < workers_->size(); ++w) {
    Worker& worker = workers_->at(w);
    if (worker.node) {
      // Node workers: one line per connection, and replies and messages
      // wait in the same outbox.
      if (worker.draining && !worker.queue.empty()) RequeueFromDraining(w);
      FlushNode(w);
      continue;
    }
    if (worker.queue.empty() || worker.send_in_flight) continue;
    if (worker.draining) {
      RequeueFromDraining(w);
    } else if (!SiteViewPending(w)) {
      // A worker whose view is not out yet (its channel was full) gets its
      // batches on a turn after the view: never a connection before it.
      SubmitBatch(w);
    }
  }
}

// A worker asked to shut down (kShutdown) takes no new connections; the ones
// queued before it was asked have not left the master, so they simply go
// to another worker of the site (or wait for one).
void Master::RequeueFromDraining(int w) {
  Worker& worker = workers_->at(w);
  std::vector<uint32_t> queued;
  queued.swap(worker.queue);
  for (uint32_t index : queued) {
    Connection& c = connections_.at(index);
    if (c.state != ConnState::kQueued || c.worker != w) continue;
    if (worker.outstanding > 0) --worker.outstanding;
    ++counters_.connections_rerouted;
    ++stats_.site(c.site).handoff_retries;
    c.state = ConnState::kRouted;
    QueueForWorker(index);  // excludes c.worker
  }
}

void Master::SubmitBatch(int w) {
  Worker& worker = workers_->at(w);
  const bool pidfd = config_.master.handoff == config::HandoffMode::kPidfd &&
                    !worker.scm_rights_only;
  // SCM_RIGHTS: the send and one close per socket go out as one chain, so
  // it must fit the submission queue (a test ring has 8 entries).
  const size_t room = pidfd ? handoff::kMaxEntriesPerBatch
                            : ring_->get()->sq.ring_entries - 1;
  const size_t n = std::min<size_t>(
      {worker.queue.size(), options_.handoff_batch,
       handoff::kMaxEntriesPerBatch, room});
  std::vector<handoff::HandoffEntry> entries(n);
  std::vector<int> fds;
  fds.reserve(n);
  worker.sending.assign(worker.queue.begin(), worker.queue.begin() + n);
  worker.queue.erase(worker.queue.begin(), worker.queue.begin() + n);
  for (size_t i = 0; i < n; ++i) {
    uint32_t index = worker.sending[i];
    Connection& c = connections_.at(index);
    c.state = ConnState::kSending;
    FillHandoffEntry(c, c.Id(index),
                     listeners_[c.listener].config.protocol, &entries[i]);
    fds.push_back(c.fd.get());
    if (!pidfd && !c.peer && access_logs_.Wants(c.listener)) {
      // The close linked to the send may run before its log line is made.
      c.peer = std::make_unique<sockaddr_storage>();
      socklen_t length = sizeof(sockaddr_storage);
      if (getpeername(c.fd.get(), reinterpret_cast<sockaddr*>(c.peer.get()),
                      &length) != 0) {
        c.peer.reset();
      }
    }
  }
  std::string frame;
  absl::Status status = handoff::EncodeHandoffBatch(
      pidfd ? handoff::HandoffMode::kPidfd : handoff::HandoffMode::kScmRights,
      entries, &frame);
  if (status.ok()) {
    if (!worker.message) {
      worker.message = std::make_unique<handoff::ScmRightsMessage>();
    }
    status = worker.message->Assign(
        std::move(frame), pidfd ? absl::Span<const int>() : fds);
  }
  if (!status.ok()) {
    // Only a bug gets here (the encoder rejects what it was given).
    LOG(DFATAL) << "cannot encode a handoff batch: " << status;
    for (uint32_t index : worker.sending) {
      --worker.outstanding;
      CountUnavailable(connections_.at(index).site);
      RecordOutcome(index, Outcome::kUnavailable);
      Refuse(index, Refusal::kUnavailable);
    }
    worker.sending.clear();
    return;
  }
  // No generation: the send belongs to the channel, whichever process of
  // the slot reads it (see OpTag).
  ring_->Reserve(pidfd ? 1 : n + 1);  // the chain must not be split
  io_uring_sqe* sqe = Sqe(kOpHandoffSend, w);
  // MSG_DONTWAIT: a full channel must fail at once (EAGAIN) so the batch
  // goes to another worker instead of waiting behind a slow one.
  io_uring_prep_sendmsg(sqe, worker.channel.get(), &worker.message->header(),
                        MSG_DONTWAIT | MSG_NOSIGNAL);
  worker.send_in_flight = true;
  if (pidfd) return;
  // SCM_RIGHTS: the master's copy of each socket is closed by ops linked to
  // the send, run as task work of the same io_uring_enter (DEFER_TASKRUN:
  // before it returns, unless the turn's task work is unusually long), so
  // before the woken worker can run on this CPU. Closed later (a separate op after
  // the send's completion, as before), the worker had often served and
  // closed its copy first, and the master paid the whole TCP close (FIN,
  // and on loopback the peer's receive of it). A failed send cancels the
  // closes (the sockets stay the slots', OnHandoffSent re-routes them);
  // hard links between the closes keep one failed close from cancelling
  // the rest. Success posts no completion (IOSQE_CQE_SKIP_SUCCESS).
  sqe->flags |= IOSQE_IO_LINK;
  for (size_t i = 0; i < n; ++i) {
    connections_.at(worker.sending[i]).close_linked = true;
    io_uring_sqe* close = Sqe(kOpHandoffClose, w);
    io_uring_prep_close(close, fds[i]);
    close->flags |= IOSQE_CQE_SKIP_SUCCESS;
    if (i + 1 < n) close->flags |= IOSQE_IO_HARDLINK;
  }
}

// Only a failed close linked to a handoff send completes: cancelled because
// the send failed (the sockets were never given up), or a close that failed
// by itself, which leaves nothing to do either.
void Master::OnHandoffClosed(int w, io_uring_cqe* cqe) {
  if (cqe->res == -ECANCELED) return;
  LOG_EVERY_N(WARNING, 100) << "closing a handed-off socket failed: "
                            << strerror(-cqe->res);
}

void Master::OnHandoffSent(int w, io_uring_cqe* cqe) {
  Worker& worker = workers_->at(w);
  worker.send_in_flight = false;
  std::vector<uint32_t> sent;
  sent.swap(worker.sending);
  if (cqe->res >= 0) {
    ++counters_.handoff_batches;
    // Decided per message: the batch's own mode byte says which it was.
    const bool pidfd = worker.message->fd_count() == 0;
    const int64_t now = MonotonicNowNs();  // one clock read per batch
    for (uint32_t index : sent) {
      Connection& c = connections_.at(index);
      // Sent: the close linked to the send (SubmitBatch) owns the fd now.
      if (c.close_linked) (void)c.fd.Release();
      if (c.state != ConnState::kSending) continue;
      if (pidfd) {
        c.state = ConnState::kSent;  // the worker pulls it, then acknowledges
        continue;
      }
      // SCM_RIGHTS: the socket now also lives in the message, which the
      // master can always get back through the channel's child end (see
      // RecoverUnread), so our copy goes: the close linked to the send
      // took it above, and the slot is free at once. No
      // acknowledgement, no second wake-up, and the worker's close is the
      // last one.
      --worker.outstanding;
      CountHandedOff(w);
      site_caps_.HandedOff(CapsRef(w));
      RecordOutcome(index, Outcome::kRouted, now);
      Close(index);
    }
    // A retired worker that exited while this was in flight: its exit left
    // the channel open for us; the batch comes back, then the channel goes.
    ReleaseRetired(w);
    return;
  }
  // Not sent: the fds never left. Hand them to another worker of the site.
  if (cqe->res == -EAGAIN || cqe->res == -ENOBUFS) {
    counters_.handoff_channel_full += sent.size();
    // Park the worker until its channel has room again: Pick skips it, so
    // the batch goes to a sibling, or waits (worker_wait) if there is none.
    // Without this, a stuck only-worker would make the loop spin.
    if (!worker.channel_full) {
      worker.channel_full = true;
      io_uring_sqe* sqe = Sqe(kOpChannelWritable, w, 0);
      io_uring_prep_poll_add(sqe, worker.channel.get(), POLLOUT);
    }
  } else {
    counters_.handoff_worker_gone += sent.size();
    LOG_EVERY_N(WARNING, 100) << "handoff to worker " << workers_->site_id(worker.site)
                              << "#" << worker.index
                              << " failed: " << strerror(-cqe->res);
  }
  for (uint32_t index : sent) {
    Connection& c = connections_.at(index);
    if (c.state != ConnState::kSending) continue;
    c.close_linked = false;  // the failed send cancelled the closes
    --worker.outstanding;
    ++counters_.connections_rerouted;
    ++stats_.site(c.site).handoff_retries;
    c.state = ConnState::kRouted;
    QueueForWorker(index);  // excludes c.worker when another one is alive
  }
  ReleaseRetired(w);  // as above
}

void Master::OnAcknowledged(int w, uint64_t id) {
  Connection* c = connections_.Find(id);
  if (c == nullptr || c->worker != w ||
      (c->state != ConnState::kSent && c->state != ConnState::kSending)) {
    return;  // a stale or duplicate acknowledgement
  }
  Worker& worker = workers_->at(w);
  if (worker.outstanding > 0) --worker.outstanding;
  CountHandedOff(w);
  site_caps_.HandedOff(CapsRef(w));
  RecordOutcome(static_cast<uint32_t>(id), Outcome::kRouted);
  Close(static_cast<uint32_t>(id));
}

// The worker could not pull the socket (pidfd mode: usually ptrace rights,
// e.g. a worker running as another user). Another worker of the site will
// fail the same way, so refuse rather than loop.
void Master::OnPullFailed(int w, uint64_t id, int error) {
  LOG_EVERY_N(WARNING, 100)
      << "worker " << workers_->site_id(workers_->at(w).site) << "#"
      << workers_->at(w).index << " could not take a connection: "
      << strerror(error)
      << (error == EPERM ? " (pidfd_getfd needs ptrace rights over the "
                           "master; use handoff = \"scm_rights\")"
                         : "");
  Connection* c = connections_.Find(id);
  if (c == nullptr || c->worker != w ||
      (c->state != ConnState::kSent && c->state != ConnState::kSending)) {
    return;
  }
  Worker& worker = workers_->at(w);
  if (worker.outstanding > 0) --worker.outstanding;
  CountUnavailable(c->site);
  RecordOutcome(static_cast<uint32_t>(id), Outcome::kUnavailable);
  Refuse(static_cast<uint32_t>(id), Refusal::kUnavailable);
}

void Master::OnChannelPoll(int w, io_uring_cqe* cqe) {
  // Multishot: re-armed only when the kernel ended it, and never for a
  // retired worker whose channel is closed.
  if (!(cqe->flags & IORING_CQE_F_MORE) && workers_->at(w).channel) {
    workers_->at(w).channel_poll_armed = false;
    ArmWorkerChannel(w);
  }
  OnChannelReadable(w);
}

void Master::OnChannelWritable(int w) {
  workers_->at(w).channel_full = false;  // Pick may choose it again
}

void Master::OnChannelReadable(int w) {
  Worker& worker = workers_->at(w);
  if (!worker.channel) return;  // released (a retired worker)
  if (worker.node) {
    OnNodeReadable(w);
    return;
  }
  // Bounded per turn so one chatty worker cannot starve the loop.
  for (int i = 0; i < 256; ++i) {
    absl::StatusOr<handoff::ReceivedFrame> received =
        handoff::ReceiveFrame(worker.channel.get(), absl::ZeroDuration());
    if (!received.ok()) {
      if (!handoff::IsWouldBlock(received.status())) {
        LOG_EVERY_N(WARNING, 100)
            << "bad frame from worker " << workers_->site_id(worker.site) << "#"
            << worker.index << ": " << received.status();
        continue;
      }
      break;
    }
    handoff::Frame& frame = received->frame;
    worker.last_heard_ns = MonotonicNowNs();
    if (auto* hello = std::get_if<handoff::Hello>(&frame)) {
      worker.ready = true;
      RecordWorkerReady(w);
      VLOG(1) << "worker " << hello->site << "#" << hello->worker_index
              << " pid " << hello->pid << " ready";
    } else if (auto* ack = std::get_if<handoff::PidfdAck>(&frame)) {
      for (const handoff::PidfdAckEntry& entry : ack->entries) {
        if (entry.error == 0) {
          OnAcknowledged(w, entry.connection_id);
        } else {
          OnPullFailed(w, entry.connection_id, entry.error);
        }
      }
    } else if (auto* beat = std::get_if<handoff::Heartbeat>(&frame)) {
      if (!beat->is_reply) {
        handoff::Heartbeat reply{beat->sequence, true};
        absl::StatusOr<std::string> bytes = handoff::EncodeFrame(reply);
        if (bytes.ok()) {
          (void)handoff::SendFrame(worker.channel.get(), *bytes, {},
                                   absl::ZeroDuration());
        }
      }
    } else if (auto* request = std::get_if<handoff::Request>(&frame)) {
      OnWorkerRequest(w, *request);
    } else if (auto* message = std::get_if<handoff::Message>(&frame)) {
      ForwardMessage(w, std::move(*message));
    }
  }
}

void Master::CheckHeartbeats(int64_t now_ns) {
  if (now_ns < next_heartbeat_ns_) return;
  next_heartbeat_ns_ =
      now_ns + absl::ToInt64Nanoseconds(options_.heartbeat_interval);
  const int64_t timeout = absl::ToInt64Nanoseconds(options_.heartbeat_timeout);
  for (int w = 0; w < workers_->size(); ++w) {
    Worker& worker = workers_->at(w);
    const pid_t pid = workers_->pid(w);
    if (pid <= 0 || !workers_->Alive(w) || !worker.channel) continue;
    // A worker asked to shut down may stop reading its channel (the
    // library's Run() returns) while it finishes its connections: its
    // deadline is the drain grace, after which it gets SIGTERM, not this.
    if (worker.draining) continue;
    if (worker.node) {
      // Any Node worker that leaves a connection unanswered past the
      // timeout is hung (its event loop never took the message): killed,
      // its connections go to another worker.
      const int64_t oldest = worker.node->OldestUnansweredNs();
      if (oldest != 0 && now_ns - oldest > timeout) {
        LOG(ERROR) << "Node worker " << workers_->site_id(worker.site) << "#"
                   << worker.index << " pid " << pid
                   << " has not taken a connection for "
                   << options_.heartbeat_timeout
                   << "; killing it (its connections go to another worker)";
        workers_->Signal(w, SIGKILL);
        continue;
      }
      // A stock Node app cannot answer pings; one using the ddv-worker
      // package said so ({"ddv":"hello"}) and answers them.
      if (!worker.node->speaks_ddv) continue;
    }
    if (worker.last_heard_ns == 0) worker.last_heard_ns = now_ns;  // started
    if (now_ns - worker.last_heard_ns > timeout) {
      LOG(ERROR) << "worker " << workers_->site_id(worker.site) << "#"
                 << worker.index << " pid " << pid << " said nothing for "
                 << options_.heartbeat_timeout
                 << "; killing it (its connections go to another worker)";
      workers_->Signal(w, SIGKILL);
      worker.last_heard_ns = 0;
      continue;
    }
    if (worker.node) {
      SendToNode(w, NodePingLine(++worker.heartbeat_sequence));
      continue;
    }
    handoff::Heartbeat beat{++worker.heartbeat_sequence, false};
    absl::StatusOr<std::string> bytes = handoff::EncodeFrame(beat);
    if (bytes.ok()) {
      (void)handoff::SendFrame(worker.channel.get(), *bytes, {},
                               absl::ZeroDuration());
    }
  }
}

void Master::ArmWorker(int w) {
  Worker& worker = workers_->at(w);
  int pidfd = workers_->pidfd(w);
  if (pidfd >= 0) {
    io_uring_sqe* sqe = Sqe(kOpWorkerExitPoll, w, worker.generation);
    io_uring_prep_poll_add(sqe, pidfd, POLLIN);
  }
  ArmWorkerChannel(w);
}

void Master::ArmWorkerChannel(int w) {
  Worker& worker = workers_->at(w);
  if (worker.channel_poll_armed) return;
  // The channel outlives processes: re-armed only when the kernel ends the
  // multishot, never per process.
  io_uring_sqe* sqe = Sqe(kOpChannelPoll, w, 0);
  io_uring_prep_poll_multishot(sqe, worker.channel.get(), POLLIN);
  worker.channel_poll_armed = true;
}

void Master::OnWorkerExitPoll(const uring::OpTag& tag) {
  // The poll of a process that is gone and replaced: the new process has
  // its own poll.
  if (!workers_->Current(tag.index, tag.generation)) {
    ++counters_.stale_completions;
    VLOG(1) << "stale exit poll for worker slot " << tag.index;
    return;
  }
  OnWorkerExit(tag.index);
}

void Master::OnWorkerExit(int w) {
  const pid_t pid = workers_->pid(w);
  if (!workers_->Reap(w)) {
    // The poll fired for a process that is not gone (spurious): re-arm.
    if (workers_->pid(w) == pid && pid != 0) ArmWorker(w);
    return;
  }
  // Its claims go with it, at the control point (routes change only
  // there). The generation is still this process's: a successor's start
  // (ContinueRestart below, or the supervisor later) bumps it.
  pending_.exited.emplace_back(w, workers_->at(w).generation);
  {
    const Worker& worker = workers_->at(w);
    if (!worker.retired && !worker.restart_pending && !worker.draining) {
      ++counters_.worker_restarts;
    }
  }
  // Acknowledgements it sent before dying (pidfd) count: read them first. Then
  // discard what it never read, and give its connections to another worker
  // (Pick no longer sees it: it was reaped). Only then may a new process
  // start on this channel, or it could take a batch being re-routed.
  OnChannelReadable(w);
  // What it held is closed; what it left unread comes back as pending.
  OnSiteWorkerExit(w);
  RecoverUnread(w);
  if (!workers_->at(w).send_in_flight) ReclaimFromWorker(w);
  workers_->ContinueRestart(w);
  if (workers_->at(w).retired) ReleaseRetired(w);
}

// A retired worker whose process is gone (or that had none when it was
// retired: back-off, failed) closes its channel for good. Not while a send
// is in flight: OnHandoffSent calls this again when it completes.
void Master::ReleaseRetired(int w) {
  Worker& worker = workers_->at(w);
  if (!worker.retired || !worker.channel || worker.send_in_flight ||
      workers_->pid(w) != 0) {
    return;
  }
  // A shard may still send to it by an older snapshot: the loop calls
  // this again every turn until none can (docs/shards.md).
  if (!ShardsDoneWith(w)) return;
  // What it never read (a batch sent as it died) goes to another worker
  // first: closing the child end would close those sockets with it.
  RecoverUnread(w);
  ReclaimFromWorker(w);
  // Cancel its channel polls before the fds close; their completions are
  // ignored once the channel is gone.
  io_uring_sqe* sqe = Sqe(kOpCancel, w);
  io_uring_prep_poll_remove(sqe, uring::OpTag{kOpChannelPoll, uint32_t(w), 0}.Encode());
  worker.channel_poll_armed = true;  // never re-armed
  ForgetWorker(w);
  workers_->ReleaseIfRetired(w);
}

void Master::ReleaseRetiredWithoutProcess() {
  for (int w = 0; w < workers_->size(); ++w) {
    const Worker& worker = workers_->at(w);
    if (worker.retired && worker.channel && workers_->pid(w) == 0) {
      ReleaseRetired(w);
    }
  }
}

void Master::ReclaimFromDeadWorkers() {
  for (int w = 0; w < workers_->size(); ++w) {
    Worker& worker = workers_->at(w);
    // Only once the process is gone: a stopping worker (rolling restart,
    // retirement) is still reading its channel and serving what it took.
    if (worker.send_in_flight || workers_->pid(w) != 0) continue;
    if (worker.outstanding == 0 && worker.queue.empty() &&
        workers_->UnreadBytes(w) == 0) {
      continue;
    }
    RecoverUnread(w);
    ReclaimFromWorker(w);
  }
}

// What a dead worker never read comes back through the child end of its
// channel, which the master holds: SCM_RIGHTS batches with their sockets
// inside. Each socket becomes a connection again, with what the master knew
// about it, and goes to another worker of its site.
void Master::RecoverUnread(int w) {
  std::vector<handoff::ReceivedFrame> frames = workers_->DrainChildEnd(w);
  size_t recovered = 0;
  for (handoff::ReceivedFrame& received : frames) {
    auto* batch = std::get_if<handoff::HandoffBatch>(&received.frame);
    if (batch == nullptr || batch->mode != handoff::HandoffMode::kScmRights ||
        batch->entries.size() != received.fds.size()) {
      continue;  // pidfd offers (the master still holds those sockets)
    }
    for (size_t i = 0; i < batch->entries.size(); ++i) {
      const handoff::HandoffEntry& e = batch->entries[i];
      // Written by this master, or (a worker adopted after a crash) by the
      // one before it, whose listener indexes may name other listeners if
      // a reload changed them. The entry's protocol is what the connection
      // speaks: it stays with a listener of that protocol.
      uint32_t listener = e.listener_index;
      if (listener >= listeners_.size() ||
          WireProtocol(listeners_[listener].config.protocol) != e.protocol) {
        listener = listeners_.size();
        for (uint32_t l = 0; l < listeners_.size(); ++l) {
          if (listeners_[l].config_index >= 0 &&
              WireProtocol(listeners_[l].config.protocol) == e.protocol) {
            listener = l;
            break;
          }
        }
      }
      if (listener >= listeners_.size()) {
        LOG_EVERY_N(WARNING, 100) << "cannot take back a connection from a "
                                     "dead worker; closing it";
        continue;  // received.fds[i] closes with `frames`
      }
      // Everything in a worker's channel was for its site. The entry's own
      // site_index may be an earlier master's numbering (an adopted
      // worker's unread batch), which need not be ours. Routed again by
      // its name: a reload since may have moved the name elsewhere, and
      // the site's other workers, which have the new names, would answer
      // 421 (a batch a shard sent a worker that had begun to drain is
      // left unread this way: docs/shards.md).
      uint32_t site = static_cast<uint32_t>(workers_->at(w).site);
      if (e.protocol != handoff::Protocol::kTcp) {
        std::vector<absl::string_view> offered;
        if (!e.alpn.empty()) offered = absl::StrSplit(e.alpn, ',');
        const int now = RouteOn(listener, e.host, offered).site;
        if (now >= 0) site = static_cast<uint32_t>(now);
      }
      uint32_t index;
      Connection* c = site < config_.sites.size()
                          ? connections_.Allocate(&index)
                          : nullptr;
      if (c == nullptr) {
        // The table is full: closing would reset a client whose request
        // is still unread in the socket. It waits for a slot like a
        // connection accepted at the limit, and is peeked and routed again.
        held_.push_back({std::move(received.fds[i]), listener});
        ++counters_.handoff_worker_gone;
        ++counters_.connections_rerouted;
        ++stats_.site(site).handoff_retries;
        ++recovered;
        continue;
      }
      c->fd = std::move(received.fds[i]);
      c->listener = listener;
      ++stats_.listener(listener).pending;
      c->site = site;
      c->accept_ns = e.accept_time_ns;
      (void)sniff::NormalizeHost(e.host, sniff::HostSyntax::kHttpHost, &c->host);
      c->alpn = e.alpn;
      c->skip_bytes = e.skip_bytes;
      c->proxy = e.proxy;
      c->state = ConnState::kRouted;
      // Admitted once already: pending again, whatever the caps say now.
      c->site_pending = true;
      site_caps_.AddPending(static_cast<int>(site));
      ++counters_.handoff_worker_gone;
      ++counters_.connections_rerouted;
      ++stats_.site(site).handoff_retries;
      ++recovered;
      QueueForWorker(index);
    }
  }
  if (!frames.empty()) {
    LOG(INFO) << "worker " << workers_->site_id(workers_->at(w).site) << "#"
              << workers_->at(w).index << " left " << frames.size()
              << " unread messages; " << recovered
              << " connections go to another worker";
  }
}

void Master::ReclaimFromWorker(int w) {
  Worker& worker = workers_->at(w);
  std::vector<uint32_t> reclaimed;
  for (uint32_t index = 0; index < connections_.capacity(); ++index) {
    Connection& c = connections_.at(index);
    if (c.worker != w) continue;
    if (c.state == ConnState::kSent || c.state == ConnState::kQueued ||
        c.state == ConnState::kSending) {
      reclaimed.push_back(index);
    }
  }
  worker.queue.clear();
  worker.outstanding = 0;
  for (uint32_t index : reclaimed) {
    Connection& c = connections_.at(index);
    ++counters_.handoff_worker_gone;
    ++counters_.connections_rerouted;
    ++stats_.site(c.site).handoff_retries;
    c.state = ConnState::kRouted;
    QueueForWorker(index);
  }
}

}  // namespace master
}  // namespace ddv
