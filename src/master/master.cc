// Master: ring set-up, the batched loop, and a connection's path from accept
// to a decision (handed on to master_handoff.cc, or refused here).
#include "src/master/master.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "glog/logging.h"
#include "src/base/errno_status.h"
#include "src/sniff/http_sniffer.h"
#include "src/sniff/proxy_protocol.h"
#include "src/sniff/tls_sniffer.h"
#include "src/uring/op_tag.h"

namespace ddv {
namespace master {
namespace {

constexpr uint16_t kPeekBufferGroup = 1;

__kernel_timespec ToTimespec(int64_t ns) { return ToTimespecNs(ns); }

int64_t FromTimespec(const __kernel_timespec& ts) {
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

}  // namespace

__kernel_timespec ToTimespecNs(int64_t ns) {
  __kernel_timespec ts{};
  ts.tv_sec = ns / 1000000000;
  ts.tv_nsec = ns % 1000000000;
  return ts;
}

int64_t MonotonicNowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

Master::Master(const MasterOptions& options, config::Config config)
    : options_(options),
      config_(std::move(config)),
      connections_(options.max_connections),
      linger_scratch_(16384) {}

Master::~Master() = default;

absl::StatusOr<std::unique_ptr<Master>> Master::Create(
    const MasterOptions& options, config::Config config,
    std::vector<UniqueFd> listeners) {
  std::unique_ptr<Master> master(new Master(options, std::move(config)));
  absl::Status status = master->Init(std::move(listeners));
  if (!status.ok()) return status;
  return master;
}

absl::Status Master::BuildRoutes(
    const config::Config& config,
    std::shared_ptr<const route::RouteTable>* out) {
  route::RouteTableSpec spec;
  for (const config::ListenerConfig& listener : config.listeners) {
    spec.listener_names.push_back(listener.name);
  }
  for (const config::ListenerConfig& listener : config.listeners) {
    int site = -1;
    for (size_t s = 0; s < config.sites.size(); ++s) {
      if (config.sites[s].id == listener.default_site) site = s;
    }
    spec.listener_default_site.push_back(site);
  }
  for (const config::SiteConfig& site : config.sites) {
    route::SiteSpec s;
    s.id = site.id;
    s.hosts = site.hosts;
    for (const std::string& name : site.listeners) {
      for (size_t l = 0; l < config.listeners.size(); ++l) {
        if (config.listeners[l].name == name) s.listeners.push_back(l);
      }
    }
    s.is_default = site.is_default;
    s.alpn = site.alpn;
    spec.sites.push_back(std::move(s));
  }
  absl::StatusOr<std::shared_ptr<const route::RouteTable>> table =
      route::RouteTable::Build(spec);
  if (!table.ok()) return table.status();
  *out = std::move(*table);
  return absl::OkStatus();
}

absl::Status Master::Init(std::vector<UniqueFd> listeners) {
  started_ns_ = MonotonicNowNs();
  if (listeners.size() != config_.listeners.size()) {
    return absl::InvalidArgumentError("one listening socket per listener");
  }
  listeners_ = std::move(listeners);
  accepting_.assign(listeners_.size(), false);
  absl::Status status = BuildRoutes(config_, &routes_);
  if (!status.ok()) return status;

  absl::StatusOr<std::unique_ptr<uring::Ring>> ring =
      uring::Ring::Create(options_.ring);
  if (!ring.ok()) return ring.status();
  ring_ = std::move(*ring);
  absl::StatusOr<std::unique_ptr<uring::BufferRing>> buffers =
      uring::BufferRing::Create(ring_->get(), kPeekBufferGroup,
                                options_.peek_buffers,
                                options_.peek_buffer_size);
  if (!buffers.ok()) return buffers.status();
  peek_buffers_ = std::move(*buffers);

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

  absl::StatusOr<std::unique_ptr<WorkerPool>> workers =
      WorkerPool::Create(options_.workers, config_);
  if (!workers.ok()) return workers.status();
  workers_ = std::move(*workers);
  status = workers_->StartAll();
  if (!status.ok()) return status;
  for (int w = 0; w < workers_->size(); ++w) ArmWorker(w);

  for (uint32_t l = 0; l < listeners_.size(); ++l) SubmitAccept(l);
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
    peek_buffers_->Publish();
    __kernel_timespec wait = ToTimespec(100 * 1000000LL);  // periodic checks
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
      for (unsigned i = 0; i < n; ++i) Dispatch(cqes[i]);
      io_uring_cq_advance(ring_->get(), n);
    }
    int64_t now = MonotonicNowNs();
    CheckWaiting(now);
    CheckHeartbeats(now);
    if (accept_resume_ns_ != 0 && now >= accept_resume_ns_ && !stopping_) {
      accept_resume_ns_ = 0;
      for (uint32_t l = 0; l < listeners_.size(); ++l) {
        if (!accepting_[l]) SubmitAccept(l);
      }
    }
    if (!no_buffer_.empty()) {
      std::vector<uint32_t> retry;
      retry.swap(no_buffer_);
      for (uint32_t index : retry) SubmitPeek(index, false);
    }
    workers_->Tick(absl::Now());
    for (int w : workers_->TakeRestarted()) ArmWorker(w);
    ReclaimFromDeadWorkers();
    if (stopping_) {
      bool drained = connections_.in_use() == 0;
      if (drained || now >= stop_deadline_ns_) {
        if (!drained) {
          LOG(WARNING) << "stopping with " << connections_.in_use()
                       << " connections still undecided";
        }
        break;
      }
    }
  }
  workers_->StopAll(options_.stop_grace);
  LOG(INFO) << "master stopped";
  return absl::OkStatus();
}

void Master::Dispatch(io_uring_cqe* cqe) {
  uring::OpTag tag = uring::OpTag::Decode(io_uring_cqe_get_data64(cqe));
  switch (static_cast<Op>(tag.op)) {
    case kOpAccept:
      OnAccept(tag.index, cqe);
      return;
    case kOpPeek:
    case kOpPeekTimeout:
    case kOpRefuseSend:
    case kOpRefuseShutdown:
    case kOpLingerRecv:
    case kOpLingerTimeout:
    case kOpClose: {
      // A slot is freed only when none of its ops is in flight, so every
      // connection completion finds its own slot (never a reused one).
      Connection& c = connections_.at(tag.index);
      DCHECK_GT(c.inflight, 0);
      --c.inflight;
      Op op = static_cast<Op>(tag.op);
      if (op == kOpPeek) {
        OnPeek(tag.index, cqe);
      } else if (op != kOpPeekTimeout && op != kOpClose &&
                 op != kOpLingerTimeout) {
        // A link timeout's own completion (-ETIME when it fired, -ECANCELED
        // or -ENOENT when its op finished first) needs no action.
        OnRefuseStep(op, tag.index, cqe);
      }
      MaybeFree(tag.index);
      return;
    }
    case kOpHandoffSend:
      // Not filtered by generation: one send per worker slot is in flight,
      // whichever process of the slot will read it.
      OnHandoffSent(tag.index, cqe);
      return;
    case kOpChannelPoll:
      // The channel outlives the slot's processes: no generation either.
      if (!(cqe->flags & IORING_CQE_F_MORE) &&
          workers_->at(tag.index).channel) {
        workers_->at(tag.index).channel_poll_armed = false;
        ArmWorkerChannel(tag.index);
      }
      OnChannelReadable(tag.index);
      return;
    case kOpChannelWritable:
      workers_->at(tag.index).channel_full = false;
      return;
    case kOpWorkerExitPoll:
      if (workers_->Current(tag.index, tag.generation)) {
        OnWorkerExit(tag.index);
      }
      return;
    case kOpSignalPoll:
      if (!(cqe->flags & IORING_CQE_F_MORE)) ArmSignalPoll();
      OnSignals();
      return;
    case kOpControlPoll:
      if (!(cqe->flags & IORING_CQE_F_MORE)) ArmControlPoll();
      OnControlReadable();
      return;
    case kOpControlRecv:
    case kOpControlTimeout:
      OnControlCompletion(static_cast<Op>(tag.op), tag.index, cqe);
      return;
    case kOpCancel:
      return;
  }
  LOG(DFATAL) << "completion with unknown op " << int{tag.op};
}

void Master::SubmitAccept(uint32_t listener) {
  io_uring_sqe* sqe = Sqe(kOpAccept, listener);
  // SOCK_CLOEXEC: accepted sockets must never leak into spawned workers
  // except through a handoff. Blocking mode is kept: the worker gets the
  // socket as accept(2) would have given it.
  io_uring_prep_multishot_accept(sqe, listeners_[listener].get(), nullptr,
                                 nullptr, SOCK_CLOEXEC);
  accepting_[listener] = true;
}

void Master::OnAccept(uint32_t listener, io_uring_cqe* cqe) {
  if (!(cqe->flags & IORING_CQE_F_MORE)) {
    accepting_[listener] = false;
    if (cqe->res == -EMFILE || cqe->res == -ENFILE) {
      // Out of fds: re-arming at once would spin. Pause accepts briefly
      // (connections queue in the backlog) and re-arm from the loop.
      accept_resume_ns_ = MonotonicNowNs() + 100000000LL;
    } else if (!stopping_) {
      SubmitAccept(listener);  // the kernel ended the multishot
    }
  }
  if (cqe->res < 0) {
    if (cqe->res != -ECANCELED) {
      ++counters_.accept_errors;
      LOG_EVERY_N(WARNING, 100)
          << "accept() failed on listener \"" << config_.listeners[listener].name
          << "\": " << strerror(-cqe->res);
    }
    return;
  }
  int fd = cqe->res;
  ++counters_.connections_accepted;
  if (stopping_) {
    ::close(fd);  // accepted just before the cancel took effect
    return;
  }
  uint32_t index;
  Connection* c = connections_.Allocate(&index);
  if (c == nullptr) {
    // Over capacity: closing at once is the only bounded answer.
    LOG_EVERY_N(WARNING, 1000) << "connection table full ("
                               << connections_.capacity() << "); closing";
    ::close(fd);
    return;
  }
  c->fd = fd;
  c->listener = listener;
  c->accept_ns = MonotonicNowNs();
  c->deadline =
      ToTimespec(c->accept_ns + config_.master.peek_timeout_ms * 1000000LL);
  c->state = ConnState::kPeeking;
  if (config_.listeners[listener].protocol == config::Protocol::kTcp) {
    Route(index, routes_->Lookup(listener, "", {}).site);
    return;
  }
  // The first peek does not wait: if nothing is queued, TCP_DEFER_ACCEPT's
  // timer released the connection, and the deadline is shortened by that
  // hold (OnPeek) so an idle peer is closed on time.
  SubmitPeek(index, /*dont_wait=*/true);
}

void Master::SubmitPeek(uint32_t index, bool dont_wait) {
  Connection& c = connections_.at(index);
  ring_->Reserve(2);
  io_uring_sqe* sqe = Sqe(kOpPeek, index, c.generation);
  int flags = MSG_PEEK | (dont_wait ? MSG_DONTWAIT : 0);
  if (c.big) {
    io_uring_prep_recv(sqe, c.fd, c.big.get(), c.big_size, flags);
  } else {
    io_uring_prep_recv(sqe, c.fd, nullptr, peek_buffers_->buffer_size(),
                       flags);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = kPeekBufferGroup;
  }
  ++c.inflight;
  if (dont_wait) return;
  // SO_RCVLOWAT was raised past what we saw: poll first, so the peek
  // completes only when more bytes arrived (no spinning on the same prefix).
  if (c.seen > 0) sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
  sqe->flags |= IOSQE_IO_LINK;
  io_uring_sqe* timeout = Sqe(kOpPeekTimeout, index, c.generation);
  io_uring_prep_link_timeout(timeout, &c.deadline, IORING_TIMEOUT_ABS);
  ++c.inflight;
}

void Master::OnPeek(uint32_t index, io_uring_cqe* cqe) {
  Connection& c = connections_.at(index);
  const bool has_buffer = cqe->flags & IORING_CQE_F_BUFFER;
  const uint16_t buffer_id = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
  if (c.state != ConnState::kPeeking) {
    if (has_buffer) peek_buffers_->Recycle(buffer_id);
    return;
  }
  int res = cqe->res;
  if (res == -EAGAIN) {
    // Nothing queued at accept: the kernel held this connection for the
    // whole TCP_DEFER_ACCEPT period. Count that hold against the deadline.
    if (!c.deadline_shortened) {
      c.deadline_shortened = true;
      int64_t deadline = FromTimespec(c.deadline) -
                         options_.defer_accept_seconds * 1000000000LL;
      c.deadline = ToTimespec(std::max(deadline, c.accept_ns + 1000000));
    }
    SubmitPeek(index, false);
    return;
  }
  if (res == -ECANCELED) {
    ++counters_.peek_timeout;
    Refuse(index, Refusal::kTimeout);
    return;
  }
  if (res == -ENOBUFS) {
    ++counters_.peek_buffer_exhausted;
    no_buffer_.push_back(index);
    return;
  }
  if (res <= 0) {
    // 0: the peer closed before sending; <0: reset and the like.
    ++counters_.closed_before_decision;
    Close(index);
    return;
  }
  const char* data = has_buffer ? peek_buffers_->Buffer(buffer_id) : c.big.get();
  uint32_t capacity =
      has_buffer ? peek_buffers_->buffer_size() : c.big_size;
  absl::string_view prefix(data, res);
  if (static_cast<uint32_t>(res) <= c.seen) {
    // POLL_FIRST completed without new bytes: only EOF (or an error) makes
    // the socket readable below SO_RCVLOWAT. The peer gave up mid-head.
    if (has_buffer) peek_buffers_->Recycle(buffer_id);
    ++counters_.closed_before_decision;
    Close(index);
    return;
  }
  bool decided = Decide(index, prefix);
  if (has_buffer) peek_buffers_->Recycle(buffer_id);
  if (decided) return;

  const uint32_t max_bytes = config_.master.max_peek_bytes;
  if (static_cast<uint32_t>(res) >= max_bytes) {
    ++counters_.too_large;
    Refuse(index, Refusal::kTooLarge);
    return;
  }
  if (static_cast<uint32_t>(res) == capacity) {
    // The prefix filled its buffer: grow (doubling, capped) and peek again.
    uint32_t size = std::min<uint32_t>(std::max(capacity * 2, 8192u), max_bytes);
    c.big.reset(new char[size]);
    c.big_size = size;
    ++counters_.peek_grown;
  }
  c.seen = res;
  int lowat = res + 1;
  if (setsockopt(c.fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat)) < 0) {
    PLOG_EVERY_N(WARNING, 1000) << "setsockopt(SO_RCVLOWAT) failed";
    Close(index);
    return;
  }
  c.rcvlowat_raised = true;
  SubmitPeek(index, false);
}

bool Master::Decide(uint32_t index, absl::string_view prefix) {
  Connection& c = connections_.at(index);
  const config::ListenerConfig& listener = config_.listeners[c.listener];
  const uint32_t max_bytes = config_.master.max_peek_bytes;
  size_t offset = 0;
  if (listener.proxy_protocol) {
    sniff::ProxyHeader proxy;
    switch (sniff::SniffProxyHeader(prefix, &proxy)) {
      case sniff::SniffStatus::kNeedMore:
        return false;
      case sniff::SniffStatus::kFound:
        ++counters_.proxy_header_found;
        offset = proxy.header_length;
        c.skip_bytes = proxy.header_length;
        if (!proxy.local && proxy.family != AF_UNSPEC) {
          c.has_proxy_source = true;
          c.proxy_source = proxy.source;
        }
        break;
      case sniff::SniffStatus::kNotThisProtocol:
      case sniff::SniffStatus::kMalformed:
      case sniff::SniffStatus::kTooLarge:
        // A listener that expects PROXY must not trust a client's bytes.
        ++counters_.malformed;
        Refuse(index, Refusal::kMalformed);
        return true;
    }
  }
  absl::string_view payload = prefix.substr(offset);
  size_t budget = max_bytes > offset ? max_bytes - offset : 0;

  if (listener.protocol == config::Protocol::kHttp) {
    sniff::HttpRequestInfo info;
    sniff::SniffStatus status = sniff::SniffHttpRequest(payload, budget, &info);
    switch (status) {
      case sniff::SniffStatus::kNeedMore:
        return false;
      case sniff::SniffStatus::kFound: {
        if (info.host.empty()) {
          ++counters_.http_host_absent;
        } else {
          ++counters_.http_host_found;
        }
        c.host = info.host;
        Route(index, routes_->Lookup(c.listener, info.host.view(), {}).site);
        return true;
      }
      case sniff::SniffStatus::kTooLarge:
      case sniff::SniffStatus::kNotThisProtocol:
      case sniff::SniffStatus::kMalformed:
        RefuseUnparsable(index, status);
        return true;
    }
    return true;
  }

  sniff::ClientHelloInfo info;
  const sniff::SniffStatus status =
      sniff::SniffTlsClientHello(payload, budget, &info);
  switch (status) {
    case sniff::SniffStatus::kNeedMore:
      return false;
    case sniff::SniffStatus::kFound: {
      if (info.sni.empty()) {
        ++counters_.tls_sni_absent;
      } else {
        ++counters_.tls_sni_found;
      }
      std::array<absl::string_view, sniff::kMaxAlpnProtocols> offered;
      for (size_t i = 0; i < info.alpn_count; ++i) offered[i] = info.alpn(i);
      absl::Span<const absl::string_view> alpn(offered.data(), info.alpn_count);
      if (alpn.empty()) {
        ++counters_.tls_alpn_absent;
      } else {
        ++counters_.tls_alpn_found;
        c.alpn = absl::StrJoin(alpn, ",");
      }
      c.host = info.sni;
      Route(index, routes_->Lookup(c.listener, info.sni.view(), alpn).site);
      return true;
    }
    case sniff::SniffStatus::kTooLarge:
    case sniff::SniffStatus::kNotThisProtocol:
    case sniff::SniffStatus::kMalformed:
      RefuseUnparsable(index, status);
      return true;
  }
  return true;
}

// The three sniffer answers that end in a refusal, counted apart.
void Master::RefuseUnparsable(uint32_t index, sniff::SniffStatus status) {
  switch (status) {
    case sniff::SniffStatus::kTooLarge:
      ++counters_.too_large;
      Refuse(index, Refusal::kTooLarge);
      return;
    case sniff::SniffStatus::kNotThisProtocol:
      ++counters_.not_this_protocol;
      Refuse(index, Refusal::kMalformed);
      return;
    case sniff::SniffStatus::kMalformed:
      ++counters_.malformed;
      Refuse(index, Refusal::kMalformed);
      return;
    case sniff::SniffStatus::kNeedMore:
    case sniff::SniffStatus::kFound:
      break;
  }
  LOG(DFATAL) << "RefuseUnparsable(" << sniff::SniffStatusName(status) << ")";
}

void Master::Route(uint32_t index, int site) {
  Connection& c = connections_.at(index);
  if (site < 0) {
    ++counters_.no_site;
    LOG_EVERY_N(INFO, 1000) << "no site for \"" << c.host.view()
                            << "\" on listener \""
                            << config_.listeners[c.listener].name << "\"";
    Refuse(index, Refusal::kNoSite);
    return;
  }
  RestoreRcvlowat(c);
  c.site = site;
  c.big.reset();
  c.big_size = 0;
  Dispatch(index);
}

void Master::RestoreRcvlowat(Connection& c) {
  if (!c.rcvlowat_raised) return;
  // The worker must see the socket as accept(2) gave it.
  int one = 1;
  setsockopt(c.fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one));
  c.rcvlowat_raised = false;
}

void Master::Refuse(uint32_t index, Refusal refusal) {
  Connection& c = connections_.at(index);
  RestoreRcvlowat(c);
  c.state = ConnState::kRefusing;
  switch (config_.listeners[c.listener].protocol) {
    case config::Protocol::kHttp:
      c.refusal = HttpRefusal(refusal);
      break;
    case config::Protocol::kTls:
      c.refusal = TlsRefusal(refusal);
      break;
    case config::Protocol::kTcp:
      c.refusal = {};  // no protocol to answer in: just close
      break;
  }
  if (c.refusal.empty()) {
    Close(index);
    return;
  }
  io_uring_sqe* sqe = Sqe(kOpRefuseSend, index, c.generation);
  io_uring_prep_send(sqe, c.fd, c.refusal.data(), c.refusal.size(),
                     MSG_NOSIGNAL);
  ++c.inflight;
}

// Refusal: send → shutdown(SHUT_WR) → read and discard until EOF or the
// linger time → close. Closing with unread bytes would make the kernel send
// RST, and the client could lose the response (nginx's lingering close).
void Master::OnRefuseStep(Op op, uint32_t index, io_uring_cqe* cqe) {
  Connection& c = connections_.at(index);
  if (c.state != ConnState::kRefusing) return;
  switch (op) {
    case kOpRefuseSend: {
      if (cqe->res < 0) {
        Close(index);
        return;
      }
      if (static_cast<size_t>(cqe->res) < c.refusal.size()) {
        // A short send of a few hundred bytes to a fresh socket is rare but
        // legal: send the rest.
        c.refusal.remove_prefix(cqe->res);
        io_uring_sqe* sqe = Sqe(kOpRefuseSend, index, c.generation);
        io_uring_prep_send(sqe, c.fd, c.refusal.data(), c.refusal.size(),
                           MSG_NOSIGNAL);
        ++c.inflight;
        return;
      }
      io_uring_sqe* sqe = Sqe(kOpRefuseShutdown, index, c.generation);
      io_uring_prep_shutdown(sqe, c.fd, SHUT_WR);
      ++c.inflight;
      c.deadline = ToTimespec(MonotonicNowNs() +
                              absl::ToInt64Nanoseconds(options_.linger));
      return;
    }
    case kOpRefuseShutdown:
      if (cqe->res < 0) {
        Close(index);
        return;
      }
      SubmitLinger(index);
      return;
    case kOpLingerRecv:
      if (cqe->res > 0) {
        SubmitLinger(index);
      } else {
        Close(index);  // EOF, error, or cancelled by the linger timeout
      }
      return;
    default:
      return;
  }
}

void Master::SubmitLinger(uint32_t index) {
  Connection& c = connections_.at(index);
  ring_->Reserve(2);
  io_uring_sqe* sqe = Sqe(kOpLingerRecv, index, c.generation);
  io_uring_prep_recv(sqe, c.fd, linger_scratch_.data(), linger_scratch_.size(),
                     0);
  sqe->flags |= IOSQE_IO_LINK;
  io_uring_sqe* timeout = Sqe(kOpLingerTimeout, index, c.generation);
  io_uring_prep_link_timeout(timeout, &c.deadline, IORING_TIMEOUT_ABS);
  c.inflight += 2;
}

void Master::Close(uint32_t index) {
  Connection& c = connections_.at(index);
  if (c.state == ConnState::kClosing) return;
  c.state = ConnState::kClosing;
  if (c.fd >= 0) {
    io_uring_sqe* sqe = Sqe(kOpClose, index, c.generation);
    io_uring_prep_close(sqe, c.fd);
    c.fd = -1;
    ++c.inflight;
    return;
  }
  MaybeFree(index);
}

void Master::MaybeFree(uint32_t index) {
  Connection& c = connections_.at(index);
  if (c.state == ConnState::kClosing && c.inflight == 0) {
    connections_.Free(index);
  }
}

}  // namespace master
}  // namespace ddv
