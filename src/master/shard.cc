// Shard: the loop of one more master shard (docs/shards.md). The shape is
// the primary's connection path (master_connection.cc) cut down to the
// cases that end in a handoff; every other case leaves through Forward.
#include "src/master/shard.h"

#include <netinet/in.h>
#include <sys/eventfd.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "glog/logging.h"
#include "src/base/errno_status.h"
#include "src/base/listen_socket.h"
#include "src/handoff/channel.h"
#include "src/master/clock.h"
#include "src/master/peek_ring.h"
#include "src/master/proxy_source.h"
#include "src/master/silent_peeks.h"
#include "src/master/wire_protocol.h"

namespace ddv {
namespace master {
namespace {


// Bytes queued in the channel that its worker has not read (SIOCOUTQ on the
// master's end): what every shard's batches add up to, so "least loaded"
// stays one answer across shards without a shared counter.
uint64_t UnreadBytes(int channel) {
  int bytes = 0;
  if (ioctl(channel, SIOCOUTQ, &bytes) != 0 || bytes < 0) return 0;
  return static_cast<uint64_t>(bytes);
}

}  // namespace

Shard::Shard(const ShardOptions& options)
    : options_(options), connections_(options.max_connections) {}

absl::StatusOr<std::unique_ptr<Shard>> Shard::Start(
    const ShardOptions& options,
    std::shared_ptr<const ShardSnapshot> snapshot) {
  std::unique_ptr<Shard> shard(new Shard(options));
  shard->wake_fd_ = UniqueFd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!shard->wake_fd_) {
    return ErrnoStatus(errno, "eventfd", "starting a master shard");
  }
  {
    absl::MutexLock lock(&shard->mu_);
    shard->published_ = snapshot;
    shard->state_.id = options.id;
  }
  shard->thread_ = std::thread(&Shard::Run, shard.get(), std::move(snapshot));
  absl::Status status;
  {
    absl::MutexLock lock(&shard->mu_);
    shard->mu_.Await(absl::Condition(&shard->started_));
    status = shard->start_status_;
  }
  if (!status.ok()) return status;  // its thread has returned: joined here
  return shard;
}

Shard::~Shard() {
  exit_.store(true, std::memory_order_release);
  const uint64_t one = 1;
  if (wake_fd_) (void)write(wake_fd_.get(), &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
}

void Shard::Publish(std::shared_ptr<const ShardSnapshot> snapshot) {
  {
    absl::MutexLock lock(&mu_);
    published_ = std::move(snapshot);
  }
  const uint64_t one = 1;
  (void)write(wake_fd_.get(), &one, sizeof(one));
}

void Shard::Wake() {
  const uint64_t one = 1;
  (void)write(wake_fd_.get(), &one, sizeof(one));
}

void Shard::TakeReport(ShardReport* into, ShardState* state) {
  absl::MutexLock lock(&mu_);
  *state = state_;
  for (ForwardedConnection& f : report_.forwarded) {
    into->forwarded.push_back(std::move(f));
  }
  report_.forwarded.clear();
#define DDV_ADD_COUNTER(name, help) \
  into->counters.name += report_.counters.name;
  DDV_MASTER_COUNTERS(DDV_ADD_COUNTER)
#undef DDV_ADD_COUNTER
  report_.counters = Counters{};
  if (into->listeners.size() < report_.listeners.size()) {
    into->listeners.resize(report_.listeners.size());
  }
  for (size_t l = 0; l < report_.listeners.size(); ++l) {
    ShardReport::ListenerDelta& from = report_.listeners[l];
    into->listeners[l].accepted += from.accepted;
    into->listeners[l].closed += from.closed;
    into->listeners[l].handoff_latency.Merge(from.handoff_latency);
    into->listeners[l].peek_bytes.Merge(from.peek_bytes);
  }
  report_.listeners.clear();
  into->routed.insert(into->routed.end(), report_.routed.begin(),
                      report_.routed.end());
  report_.routed.clear();
}

absl::Status Shard::Init() {
  // Made on this thread: the ring is single-issuer, bound to its creator.
  absl::Status status =
      CreatePeekRing(options_.ring, options_.peek_buffers,
                     options_.peek_buffer_size, &ring_, &peek_buffers_);
  if (!status.ok()) return status;
  local_state_.id = options_.id;
  return absl::OkStatus();
}

io_uring_sqe* Shard::Sqe(Op op, uint32_t index, uint32_t generation) {
  io_uring_sqe* sqe = ring_->GetSqe();
  io_uring_sqe_set_data64(sqe, uring::OpTag{op, index, generation}.Encode());
  return sqe;
}

void Shard::Run(std::shared_ptr<const ShardSnapshot> first) {
  absl::Status status = Init();
  {
    absl::MutexLock lock(&mu_);
    start_status_ = status;
    started_ = true;
  }
  if (!status.ok()) return;
  (void)first;  // the same as published_: Adopt takes it (and its channels)
  Adopt();
  ArmWake();
  std::array<io_uring_cqe*, 256> cqes;
  PublishState();
  while (!exit_.load(std::memory_order_acquire)) {
    const uint64_t epoch = snapshot_->epoch;
    Adopt();
    // Said at once: the primary may be waiting for it, and nothing queued
    // here was routed by the old one (queues are empty between turns).
    if (snapshot_->epoch != epoch) PublishState();
    UpdateAccepts();
    peek_buffers_->Publish();
    __kernel_timespec wait = ToTimespecNs(
        silent_.empty() ? 100 * 1000000LL
                        : silent_.Expire(MonotonicNowNs(), 100 * 1000000LL,
                                         connections_));
    io_uring_cqe* cqe = nullptr;
    int ret = io_uring_submit_and_wait_timeout(ring_->get(), &cqe, 1, &wait,
                                               nullptr);
    if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EBUSY) {
      LOG(ERROR) << "master shard " << options_.id << " stopped: "
                 << ErrnoStatus(-ret, "io_uring_submit_and_wait_timeout",
                                "running a master shard");
      local_state_.failed = true;
      break;
    }
    unsigned n;
    while ((n = io_uring_peek_batch_cqe(ring_->get(), cqes.data(),
                                       cqes.size())) > 0) {
      for (unsigned i = 0; i < n; ++i) OnCompletion(cqes[i]);
      io_uring_cq_advance(ring_->get(), n);
    }
    SendBatches();
    ++local_state_.turns;
    // After the sends: the epoch it reports is the one they went by.
    PublishState();
    if (options_.fault_after_accepts > 0 &&
        local_state_.accepted >= options_.fault_after_accepts) {
      if (options_.fault_hangs) {
        LOG(ERROR) << "master shard " << options_.id
                   << " hangs: injected fault (--shard_fault_after="
                   << options_.fault_after_accepts << ")";
        while (!exit_.load(std::memory_order_acquire)) {
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        break;
      }
      LOG(ERROR) << "master shard " << options_.id
                 << " stopped: injected fault (--shard_fault_after="
                 << options_.fault_after_accepts << ")";
      local_state_.failed = true;
      break;
    }
  }
  TearDown();
}

void Shard::TearDown() {
  // Closes queued in this turn (their sockets already live in a worker's
  // message) must run, or the master would keep a copy open.
  // A ring that fails here too leaves them open (logged): which of the
  // released fds its earlier submits already closed cannot be told, and a
  // second close could hit a reused number.
  const int submitted = io_uring_submit(ring_->get());
  if (submitted < 0) {
    LOG(ERROR) << "master shard " << options_.id
               << ": its last closes were not submitted ("
               << strerror(-submitted)
               << "); handed-off sockets may stay open in the master";
  }
  ring_->CancelAll();
  // A connection accepted before the cancel is the primary's now; any
  // other completion needs nothing.
  io_uring_cqe* cqe;
  while (io_uring_peek_cqe(ring_->get(), &cqe) == 0) {
    const uring::OpTag tag =
        uring::OpTag::Decode(io_uring_cqe_get_data64(cqe));
    if (tag.op == kOpAccept && cqe->res >= 0) {
      ForwardUnadmitted(UniqueFd(cqe->res), tag.index, MonotonicNowNs());
    }
    io_uring_cqe_seen(ring_->get(), cqe);
  }
  // What is still in the table goes to the primary, unread, when it still
  // runs (a failed ring); at a stop the table is empty by now.
  for (uint32_t i = 0; i < connections_.capacity(); ++i) {
    Connection& c = connections_.at(i);
    if (c.state != ConnState::kFree && c.fd) {
      // One shut for reading at its deadline already gets its 408 there.
      c.RestoreRcvlowat();
      local_.forwarded.push_back({std::move(c.fd), c.listener, c.accept_ns,
                                  c.expired, c.deadline_shortened,
                                  c.expired && c.seen == 0,
                                  FromTimespecNs(c.deadline)});
    }
    if (c.state != ConnState::kFree) connections_.Free(i);
  }
  holding_.clear();
  accepts_.clear();
  peek_buffers_.reset();
  ring_.reset();
  wake_primary_ = true;
  PublishState();
}

void Shard::OnCompletion(io_uring_cqe* cqe) {
  const uring::OpTag tag = uring::OpTag::Decode(io_uring_cqe_get_data64(cqe));
  switch (static_cast<Op>(tag.op)) {
    case kOpAccept:
      OnAccept(tag.index, cqe);
      return;
    case kOpPeek:
      OnPeek(tag, cqe);
      return;
    case kOpPeekTimeout:
      if (CompletedOp(tag) != nullptr) MaybeFree(tag.index);
      return;
    case kOpClose:
      // Only a failed close completes (CQE_SKIP_SUCCESS): the slot was
      // freed when it was submitted.
      LOG_EVERY_N(WARNING, 1000)
          << "master shard " << options_.id
          << ": close failed: " << strerror(-cqe->res);
      return;
    case kOpWake:
      ArmWake();
      return;
    case kOpCancel:
      return;
  }
  LOG(DFATAL) << "shard completion with unknown op " << int{tag.op};
}

void Shard::ArmWake() {
  io_uring_sqe* sqe = Sqe(kOpWake, 0);
  io_uring_prep_read(sqe, wake_fd_.get(), &wake_value_, sizeof(wake_value_),
                     0);
}

void Shard::Adopt() {
  std::shared_ptr<const ShardSnapshot> next;
  {
    absl::MutexLock lock(&mu_);
    if (published_ == snapshot_) return;
    next = published_;
  }
  snapshot_ = std::move(next);
  queues_.clear();  // empty at a turn's start: SendBatches emptied them
  channels_.clear();
  for (const std::vector<ShardSnapshot::Target>& site : snapshot_->sites) {
    for (const ShardSnapshot::Target& t : site) {
      channels_[t.worker] = t.channel;
    }
  }
}

void Shard::UpdateAccepts() {
  const ShardSnapshot& s = *snapshot_;
  if (accepts_.size() < s.listeners.size()) {
    accepts_.resize(s.listeners.size());
  }
  uint32_t room = connections_.capacity() - connections_.in_use();
  for (const AcceptSlot& slot : accepts_) {
    room = room > slot.inflight ? room - slot.inflight : 0;
  }
  for (uint32_t l = 0; l < accepts_.size(); ++l) {
    AcceptSlot& slot = accepts_[l];
    // On its own socket of the listener's group when it has one, else on
    // the primary's, and there not for a logged listener (docs/shards.md).
    const bool want = s.accepting && l < s.listeners.size() &&
                      s.listeners[l].accept &&
                      s.listeners[l].SocketOf(options_.id) >= 0 &&
                      (s.listeners[l].routed_here ||
                       !s.listeners[l].Shares(options_.id));
    if (!want) {
      if (slot.inflight > 0 && !slot.cancelled) {
        CancelAccepts(l);
        slot.cancelled = true;
      }
      continue;
    }
    if (slot.cancelled) continue;  // a new one waits for the old ones' end
    // Out of fds, or the primary is full: what we would forward has no
    // room. Accepts in flight stay (each takes one more at most), a
    // multishot does not, and the backlog is unknown afterwards.
    const bool hold = MonotonicNowNs() < accepts_paused_until_ns_ ||
                      (options_.hold_off != nullptr &&
                       options_.hold_off->load(std::memory_order_relaxed));
    if (hold) slot.queued = AcceptGate::kQueuedUnknown;
    // A multishot takes everything queued at each wake-up, so, as the
    // primary's AcceptGate: only on a socket no other loop accepts on
    // (docs/shards.md), and with room for the backlog a single-shot
    // accept last measured plus a burst.
    const uint32_t headroom = MultishotRoom();
    const bool multishot =
        !hold && !s.listeners[l].Shares(options_.id) &&
        (slot.multishot
             ? room >= headroom
             : slot.queued != AcceptGate::kQueuedUnknown &&
                   room >= 2 * static_cast<uint64_t>(headroom) + slot.queued);
    if (slot.multishot) {
      if (!multishot) {
        CancelAccepts(l);
        slot.cancelled = true;
      }
      continue;
    }
    if (hold) continue;
    // Singles in flight complete first (no new ones are armed meanwhile).
    if (multishot) {
      if (slot.inflight > 0) continue;
      io_uring_sqe* sqe = Sqe(kOpAccept, l);
      io_uring_prep_multishot_accept(sqe, s.listeners[l].SocketOf(options_.id),
                                     nullptr, nullptr, SOCK_CLOEXEC);
      slot.multishot = true;
      slot.inflight = 1;
      --room;
      continue;
    }
    while (slot.inflight < kAcceptsPerListener && room > 0) {
      io_uring_sqe* sqe = Sqe(kOpAccept, l);
      // As the primary's: close-on-exec, blocking (the worker gets the
      // socket as accept(2) gives it).
      io_uring_prep_accept(sqe, s.listeners[l].SocketOf(options_.id), nullptr,
                           nullptr, SOCK_CLOEXEC);
      ++slot.inflight;
      --room;
    }
  }
}

void Shard::CancelAccepts(uint32_t listener) {
  // Every accept of the listener carries the same tag.
  io_uring_sqe* sqe = Sqe(kOpCancel, listener);
  io_uring_prep_cancel64(sqe, uring::OpTag{kOpAccept, listener, 0}.Encode(),
                         IORING_ASYNC_CANCEL_ALL);
}

uint32_t Shard::MultishotRoom() const {
  // As the primary's AcceptGate: a sixteenth of the table.
  return std::max<uint32_t>(kAcceptsPerListener,
                            connections_.capacity() / 16);
}

void Shard::OnAccept(uint32_t listener, io_uring_cqe* cqe) {
  // A multishot goes on while the kernel says MORE.
  const bool more = cqe->flags & IORING_CQE_F_MORE;
  if (listener < accepts_.size() && !more) {
    AcceptSlot& slot = accepts_[listener];
    // A single-shot accept that took one measures the backlog behind it
    // (kernels before 6.10 never set SOCK_NONEMPTY: trusted short, as the
    // primary's gate does); a multishot's end leaves it unknown.
    if (!slot.multishot && cqe->res >= 0) {
      slot.queued = 0;
      if ((cqe->flags & IORING_CQE_F_SOCK_NONEMPTY) && snapshot_ &&
          listener < snapshot_->listeners.size()) {
        const int64_t length = AcceptQueueLength(
            snapshot_->listeners[listener].SocketOf(options_.id));
        slot.queued = length < 0 ? AcceptGate::kQueuedUnknown
                                 : static_cast<uint32_t>(length);
      }
    } else {
      // A multishot's end, or a single-shot accept that took none.
      slot.queued = AcceptGate::kQueuedUnknown;
    }
    if (slot.inflight > 0 && --slot.inflight == 0) {
      slot.cancelled = false;
      slot.multishot = false;
    }
  }
  if (cqe->res < 0) {
    const int error = -cqe->res;
    if (error == EMFILE || error == ENFILE || error == ENOBUFS ||
        error == ENOMEM) {
      accepts_paused_until_ns_ = MonotonicNowNs() + 100 * 1000000LL;
    }
    if (error != ECANCELED) {
      ++local_.counters.accept_errors;
      LOG_EVERY_N(WARNING, 100) << "master shard " << options_.id
                                << ": accept() failed: " << strerror(error);
    }
    return;
  }
  UniqueFd fd(cqe->res);
  const int64_t now = MonotonicNowNs();
  ++local_state_.accepted;
  if (local_.listeners.size() <= listener) {
    local_.listeners.resize(listener + 1);
  }
  ++local_.listeners[listener].accepted;
  Admit(std::move(fd), listener, now);
}

void Shard::Admit(UniqueFd fd, uint32_t listener, int64_t now_ns) {
  const ShardSnapshot& s = *snapshot_;
  if (listener >= s.listeners.size() || !s.listeners[listener].routed_here ||
      !s.listeners[listener].routes ||
      connections_.in_use() == connections_.capacity()) {
    ForwardUnadmitted(std::move(fd), listener, now_ns);
    return;
  }
  const config::ListenerConfig& config = s.listeners[listener].config;
  sockaddr_storage peer;
  if (config.proxy_protocol && !PeerMaySendProxy(config, fd.get(), &peer)) {
    // The primary resets it, counts it and logs it: one place for that.
    ForwardUnadmitted(std::move(fd), listener, now_ns);
    return;
  }
  uint32_t index;
  Connection* c = connections_.Allocate(&index);
  Sniffed(index) = SniffCounts{};
  c->fd = std::move(fd);
  c->listener = listener;
  if (holding_.size() <= listener) holding_.resize(listener + 1);
  ++holding_[listener];
  c->accept_ns = now_ns;
  c->deadline = ToTimespecNs(now_ns + s.peek_timeout_ns);
  if (!config::IsPeeked(config)) {
    Route(index,
          s.listeners[listener].routes->Lookup(s.listeners[listener].route_index,
                                               "")
              .site);
    return;
  }
  c->state = ConnState::kPeeking;
  SubmitPeek(index, /*dont_wait=*/true);
}

Connection* Shard::CompletedOp(const uring::OpTag& tag) {
  Connection* c = tag.index < connections_.capacity()
                      ? &connections_.at(tag.index)
                      : nullptr;
  if (c == nullptr || c->state == ConnState::kFree ||
      !tag.Matches(c->generation) || c->inflight == 0) {
    return nullptr;
  }
  --c->inflight;
  return c;
}

void Shard::SubmitPeek(uint32_t index, bool dont_wait) {
  Connection& c = connections_.at(index);
  ring_->Reserve(2);
  io_uring_sqe* sqe = Sqe(kOpPeek, index, c.generation);
  io_uring_prep_recv(sqe, c.fd.get(), nullptr, peek_buffers_->buffer_size(),
                     MSG_PEEK | (dont_wait ? MSG_DONTWAIT : 0));
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = kPeekBufferGroup;
  ++c.inflight;
  if (dont_wait) return;
  silent_.ArmDeadline(c, index, sqe, [&] {
    return Sqe(kOpPeekTimeout, index, c.generation);
  });
}

void Shard::OnPeek(const uring::OpTag& tag, io_uring_cqe* cqe) {
  const bool has_buffer = cqe->flags & IORING_CQE_F_BUFFER;
  const uint16_t buffer_id = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
  Connection* c = CompletedOp(tag);
  if (c == nullptr || c->state != ConnState::kPeeking) {
    if (has_buffer) peek_buffers_->Recycle(buffer_id);
    if (c != nullptr) MaybeFree(tag.index);
    return;
  }
  const uint32_t index = tag.index;
  const int res = cqe->res;
  c->silent_wait = false;
  if (c->expired) {
    // Shut for reading at its deadline (SilentPeeks::Expire): the primary
    // answers 408, and closes at once if the peer still sent nothing.
    if (has_buffer) peek_buffers_->Recycle(buffer_id);
    Forward(index, /*timed_out=*/true, /*silent=*/res <= 0);
    return;
  }
  if (res == -EAGAIN) {
    // Held by TCP_DEFER_ACCEPT for its whole period: as the primary does,
    // that hold counts against the deadline.
    c->CountDeferAcceptHold(snapshot_->defer_accept_ns);
    SubmitPeek(index, false);
    return;
  }
  if (res == -ECANCELED) {  // the deadline: the primary answers 408
    Forward(index, /*timed_out=*/true);
    return;
  }
  if (res < 0 && res != -ENOBUFS) {
    CountClosed(*c);
    CloseConnection(index);
    return;
  }
  if (res == 0 || (res > 0 && static_cast<uint32_t>(res) <= c->seen)) {
    // The peer closed before the decision, or POLL_FIRST woke without new
    // bytes (only EOF does that below SO_RCVLOWAT).
    if (has_buffer) peek_buffers_->Recycle(buffer_id);
    CountClosed(*c);
    CloseConnection(index);
    return;
  }
  if (res < 0 || !has_buffer) {
    // Out of peek buffers: the primary, whose wait for buffers is built
    // for it, takes this one.
    Forward(index);
    return;
  }
  const absl::string_view prefix(peek_buffers_->Buffer(buffer_id), res);
  const uint32_t listener = c->listener;
  const bool decided = Decide(index, prefix);
  peek_buffers_->Recycle(buffer_id);
  if (decided) {
    // Observed when it is sent from here (SendBatch): a forwarded one is
    // peeked and observed again by the primary.
    if (c->state == ConnState::kQueued) Sniffed(index).peek_bytes = res;
    (void)listener;
    return;
  }
  if (static_cast<uint32_t>(res) >= peek_buffers_->buffer_size() ||
      static_cast<uint32_t>(res) >= snapshot_->max_peek_bytes) {
    Forward(index);  // a head that outgrows a buffer: the primary grows it
    return;
  }
  c->seen = res;
  const int lowat = res + 1;
  if (setsockopt(c->fd.get(), SOL_SOCKET, SO_RCVLOWAT, &lowat,
                 sizeof(lowat)) < 0) {
    Forward(index);
    return;
  }
  c->rcvlowat_raised = true;
  SubmitPeek(index, false);
}

bool Shard::Decide(uint32_t index, absl::string_view prefix) {
  Connection& c = connections_.at(index);
  const ShardSnapshot::Listener& slot = snapshot_->listeners[c.listener];
  if (!slot.routes) {
    // A retired listener whose routes the primary released: it decides
    // (as it does for what it holds itself).
    Forward(index);
    return true;
  }
  HeadReading head;
  ReadHead(slot.config, prefix, snapshot_->max_peek_bytes, &c, &head);
  if (head.result == HeadReading::Result::kNeedMore) return false;
  if (head.result == HeadReading::Result::kRefuse ||
      head.proxy_tlvs_dropped > 0) {
    // The primary refuses it, or counts the TLVs it left out: it reads the
    // head again, and counts it then.
    Forward(index);
    return true;
  }
  Sniffed(index).flags = head.flags;  // counted once it is sent from here
  Route(index, slot.routes->Lookup(slot.route_index, head.name, head.alpn())
                   .site);
  return true;
}

void Shard::Route(uint32_t index, int site) {
  Connection& c = connections_.at(index);
  const ShardSnapshot& s = *snapshot_;
  if (site < 0 || static_cast<size_t>(site) >= s.sites.size() ||
      s.sites[site].empty()) {
    Forward(index);  // no site (the primary refuses), or no worker for us
    return;
  }
  // Least loaded among the site's workers: this turn's queue here plus
  // what every shard sent that the worker has not read (about 100 bytes a
  // connection), from a rotating start so ties go round robin. The channel
  // is probed only when there is a choice, as the primary does.
  const std::vector<ShardSnapshot::Target>& targets = s.sites[site];
  const ShardSnapshot::Target* best = &targets[0];
  if (targets.size() > 1) {
    uint64_t best_load = UINT64_MAX;
    const size_t start = round_robin_++;
    for (size_t i = 0; i < targets.size(); ++i) {
      const ShardSnapshot::Target& t = targets[(start + i) % targets.size()];
      auto queued = queues_.find(t.worker);
      const uint64_t load =
          (queued == queues_.end() ? 0 : queued->second.size()) +
          UnreadBytes(t.channel) / 64;
      if (load < best_load) {
        best_load = load;
        best = &t;
      }
    }
  }
  c.RestoreRcvlowat();
  c.site = site;
  c.worker = best->worker;
  c.state = ConnState::kQueued;
  queues_[best->worker].push_back(index);
}

void Shard::SendBatches() {
  for (auto& [worker, queue] : queues_) {
    if (queue.empty()) continue;
    auto channel = channels_.find(worker);
    if (channel == channels_.end()) {
      // Left the snapshot adopted after it was queued: never sent.
      for (uint32_t index : queue) Forward(index);
      queue.clear();
      continue;
    }
    SendBatch(worker, channel->second, queue);
  }
}

void Shard::SendBatch(int worker, int channel, std::vector<uint32_t>& queue) {
  const int64_t now = MonotonicNowNs();
  size_t next = 0;
  while (next < queue.size()) {
    const size_t n = std::min<size_t>({queue.size() - next,
                                       options_.handoff_batch,
                                       handoff::kMaxEntriesPerBatch});
    entries_.resize(n);
    fds_.clear();
    for (size_t i = 0; i < n; ++i) {
      const uint32_t index = queue[next + i];
      Connection& c = connections_.at(index);
      handoff::HandoffEntry& e = entries_[i];
      // The id means something only to pidfd acknowledgements, which
      // SCM_RIGHTS batches never get; the shard's number keeps it apart
      // from the primary's anyway.
      FillHandoffEntry(
          c, (static_cast<uint64_t>(options_.id) << 56) | c.Id(index),
          snapshot_->listeners[c.listener].config.protocol, &e);
      fds_.push_back(c.fd.get());
    }
    std::string frame;
    absl::Status status = handoff::EncodeHandoffBatch(
        handoff::HandoffMode::kScmRights, entries_, &frame);
    if (status.ok()) {
      status = handoff::SendFrame(channel, frame, fds_, absl::ZeroDuration());
    }
    if (!status.ok()) {
      // A full channel or a worker gone: the primary has the waiting and
      // re-routing for both (and learns of the full channel itself).
      if (!handoff::IsWouldBlock(status)) {
        LOG_EVERY_N(WARNING, 100) << "master shard " << options_.id
                                  << ": handoff failed: " << status;
      }
      for (size_t i = next; i < queue.size(); ++i) Forward(queue[i]);
      break;
    }
    ++local_state_.batches;
    ++local_.counters.handoff_batches;
    for (size_t i = 0; i < n; ++i) {
      const uint32_t index = queue[next + i];
      Connection& c = connections_.at(index);
      ++local_state_.handed_off;
      CountSent(index, c.listener);
      if (local_.listeners.size() <= c.listener) {
        local_.listeners.resize(c.listener + 1);
      }
      local_.listeners[c.listener].handoff_latency.Observe(
          std::max<int64_t>(0, now - c.accept_ns));
      if (!local_.routed.empty() && local_.routed.back().worker == worker &&
          local_.routed.back().listener == c.listener) {
        ++local_.routed.back().count;
      } else {
        local_.routed.push_back({c.listener, c.site, worker, 1});
      }
      // The socket lives in the message now (the primary can take it back
      // from a dead worker's end): our copy goes.
      CloseConnection(index);
    }
    next += n;
  }
  queue.clear();
}

void Shard::Forward(uint32_t index, bool timed_out, bool silent) {
  Connection& c = connections_.at(index);
  c.RestoreRcvlowat();
  ++local_state_.forwarded;
  local_.forwarded.push_back({std::move(c.fd), c.listener, c.accept_ns,
                              timed_out, c.deadline_shortened, silent,
                              FromTimespecNs(c.deadline)});
  wake_primary_ = true;
  c.state = ConnState::kClosing;
  MaybeFree(index);
}

void Shard::ForwardUnadmitted(UniqueFd fd, uint32_t listener,
                              int64_t now_ns) {
  ++local_state_.forwarded;
  local_.forwarded.push_back(
      {std::move(fd), listener, now_ns, false, false, false});
  wake_primary_ = true;
}

Shard::SniffCounts& Shard::Sniffed(uint32_t index) {
  if (sniffed_.size() <= index) sniffed_.resize(connections_.capacity());
  return sniffed_[index];
}

void Shard::CountSent(uint32_t index, uint32_t listener) {
  const SniffCounts& s = Sniffed(index);
  s.flags.AddTo(local_.counters);
  if (s.peek_bytes > 0) {
    if (local_.listeners.size() <= listener) {
      local_.listeners.resize(listener + 1);
    }
    local_.listeners[listener].peek_bytes.Observe(s.peek_bytes);
  }
}

void Shard::CountClosed(const Connection& c) {
  ++local_state_.closed_before_decision;
  ++local_.counters.closed_before_decision;
  if (local_.listeners.size() <= c.listener) {
    local_.listeners.resize(c.listener + 1);
  }
  ++local_.listeners[c.listener].closed;
}

void Shard::CloseConnection(uint32_t index) {
  Connection& c = connections_.at(index);
  c.state = ConnState::kClosing;
  if (c.fd) {
    // Success needs no handling: the slot does not wait for it.
    io_uring_sqe* sqe = Sqe(kOpClose, index, c.generation);
    io_uring_prep_close(sqe, c.fd.Release());
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  }
  MaybeFree(index);
}

void Shard::MaybeFree(uint32_t index) {
  Connection& c = connections_.at(index);
  if (c.state == ConnState::kClosing && c.inflight == 0) {
    if (c.listener < holding_.size() && holding_[c.listener] > 0) {
      --holding_[c.listener];
    }
    connections_.Free(index);
  }
}

void Shard::PublishState() {
  local_state_.connections = connections_.in_use();
  const uint64_t epoch = snapshot_ ? snapshot_->epoch : 0;
  // The primary may be waiting for this adoption (a view, a channel, a
  // listener to close): wake it.
  if (epoch != local_state_.adopted_epoch) wake_primary_ = true;
  local_state_.adopted_epoch = epoch;
  local_state_.holding = holding_;
  local_state_.snapshot_accepting = snapshot_ ? snapshot_->accepting : true;
  local_state_.accepting.assign(accepts_.size(), false);
  for (size_t l = 0; l < accepts_.size(); ++l) {
    local_state_.accepting[l] = accepts_[l].inflight > 0;
  }
  const bool wake = wake_primary_;
  {
    absl::MutexLock lock(&mu_);
    state_ = local_state_;
    for (ForwardedConnection& f : local_.forwarded) {
      report_.forwarded.push_back(std::move(f));
    }
#define DDV_ADD_COUNTER(name, help) \
    report_.counters.name += local_.counters.name;
    DDV_MASTER_COUNTERS(DDV_ADD_COUNTER)
#undef DDV_ADD_COUNTER
    if (report_.listeners.size() < local_.listeners.size()) {
      report_.listeners.resize(local_.listeners.size());
    }
    for (size_t l = 0; l < local_.listeners.size(); ++l) {
      report_.listeners[l].accepted += local_.listeners[l].accepted;
      report_.listeners[l].closed += local_.listeners[l].closed;
      report_.listeners[l].handoff_latency.Merge(
          local_.listeners[l].handoff_latency);
      report_.listeners[l].peek_bytes.Merge(local_.listeners[l].peek_bytes);
    }
    report_.routed.insert(report_.routed.end(), local_.routed.begin(),
                          local_.routed.end());
  }
  local_.forwarded.clear();
  local_.counters = Counters{};
  local_.listeners.clear();
  local_.routed.clear();
  if (wake) {
    wake_primary_ = false;
    const uint64_t one = 1;
    (void)write(options_.primary_wake_fd, &one, sizeof(one));
  }
}

}  // namespace master
}  // namespace ddv
