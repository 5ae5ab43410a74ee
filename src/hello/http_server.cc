// HttpServer: the loop of ddv_hello's one io_uring on one thread. It owns the
// ring, the listeners, the external fds and the stop; the connections are
// ConnectionIo's. Each pass submits and waits in one io_uring_enter, walks
// every completion, advances once, then expires deadlines.
#include "src/hello/http_server.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "src/base/errno_status.h"
#include "src/base/socket_address.h"
#include "src/base/status_macros.h"
#include "src/hello/connection_io.h"
#include "src/hello/ring_ops.h"
#include "src/tls/tls_context.h"

namespace ddv {
namespace hello {
namespace {

constexpr uint16_t kBufferGroup = 1;
constexpr int64_t kAcceptRetryNanos = 100 * 1000 * 1000;
constexpr int64_t kMaxWaitNanos = 1000 * 1000 * 1000;

absl::string_view OrDash(absl::string_view s) { return s.empty() ? "-" : s; }

}  // namespace

struct HttpServer::Listener {
  UniqueFd fd;
  std::string address;
  bool tls = false;
  bool armed = false;
};

struct HttpServer::ExternalFd {
  int fd = -1;
  std::function<void()> on_readable;
  bool active = true;
  bool armed = false;
};

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Create(
    Options options) {
  DDV_RETURN_IF_ERROR(uring::BufferRing::CheckCount(options.buffer_count));
  if (options.buffer_size < 512) {
    return absl::InvalidArgumentError("buffer_size must be at least 512");
  }
  std::unique_ptr<HttpServer> server(new HttpServer(std::move(options)));
  DDV_RETURN_IF_ERROR(server->Init());
  return server;
}

HttpServer::HttpServer(Options options) : options_(std::move(options)) {}

HttpServer::~HttpServer() {
  // The provided buffers are unregistered while the ring still exists, then
  // the ring goes, before the members: once it is gone the kernel holds no
  // pointer into the connections' buffers.
  buffers_.reset();
  ring_.reset();
}

absl::Status HttpServer::Init() {
  uring::RingOptions ring_options;
  ring_options.entries = options_.ring_entries;
  // Room for every connection's recv and send completion between two
  // passes of the loop; the kernel also never drops (FEAT_NODROP).
  ring_options.cq_entries = options_.ring_entries * 4;
  // With SQPOLL a kernel thread submits; it sleeps after 1 s without work.
  ring_options.sqpoll = options_.sqpoll;
  ring_options.sqpoll_idle_ms = 1000;
  // Otherwise SINGLE_ISSUER + DEFER_TASKRUN: completions are produced only
  // when we wait for them, in our own context, instead of interrupting the
  // loop with task work; fewer context switches per request. SUBMIT_ALL:
  // one bad SQE must not strand the rest of the batch. COOP_TASKRUN adds
  // nothing to DEFER_TASKRUN and SQPOLL refuses it.
  ring_options.single_issuer = !options_.sqpoll;
  ring_options.defer_taskrun = true;
  ring_options.submit_all = !options_.sqpoll;
  ring_options.coop_taskrun = false;
  ring_options.register_ring_fd = true;
  DDV_ASSIGN_OR_RETURN(ring_, uring::Ring::Create(ring_options));

  if (options_.recv_multishot) {
    absl::StatusOr<std::unique_ptr<uring::BufferRing>> buffers =
        uring::BufferRing::Create(ring_->get(), kBufferGroup,
                                  options_.buffer_count, options_.buffer_size);
    if (buffers.ok()) {
      buffers_ = std::move(*buffers);
    } else {
      LOG(WARNING) << buffers.status() << "; falling back to single-shot recv";
      options_.recv_multishot = false;
    }
  }

  ConnectionIo::Options io_options;
  io_options.idle_timeout = options_.idle_timeout;
  io_options.linger_timeout = options_.linger_timeout;
  io_options.drain_idle_grace = options_.drain_idle_grace;
  io_options.max_head_bytes = options_.max_head_bytes;
  io_options.tls_context = options_.tls_context;
  connections_ = std::make_unique<ConnectionIo>(
      io_options, ring_.get(), buffers_.get(), &clock_, &stats_);

  wake_fd_.Reset(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wake_fd_.valid()) {
    return ErrnoStatus(errno, "eventfd", "creating the stop wake-up fd");
  }
  ArmWake();
  return absl::OkStatus();
}

absl::Status HttpServer::Listen(absl::string_view address, bool tls) {
  if (tls && options_.tls_context == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("a TLS listener on ", address, " needs a TLS context"));
  }
  DDV_ASSIGN_OR_RETURN(SocketAddress parsed, ParseSocketAddress(address));
  UniqueFd fd(socket(parsed.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  std::string doing = absl::StrCat("listening on ", address);
  if (!fd.valid()) return ErrnoStatus(errno, "socket", doing);
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  // Accepted sockets inherit TCP_NODELAY: a response's last segment must not
  // wait for the client's delayed ACK (Nagle), and it saves a setsockopt per
  // connection.
  setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&parsed.addr),
           parsed.addr_len) != 0) {
    return ErrnoStatus(errno, "bind", doing);
  }
  if (listen(fd.get(), SOMAXCONN) != 0) {
    return ErrnoStatus(errno, "listen", doing);
  }
  sockaddr_storage bound{};
  socklen_t bound_len = sizeof(bound);
  if (getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &bound_len) !=
      0) {
    return ErrnoStatus(errno, "getsockname", doing);
  }
  port_ = SocketAddressPort(bound);
  auto listener = std::make_unique<Listener>();
  listener->fd = std::move(fd);
  listener->address = FormatSockaddr(bound);
  listener->tls = tls;
  listeners_.push_back(std::move(listener));
  ArmAccept(listeners_.size() - 1);
  return absl::OkStatus();
}

void HttpServer::ArmAccept(size_t index) {
  Listener& listener = *listeners_[index];
  io_uring_sqe* sqe = ring_->GetSqe();
  io_uring_prep_multishot_accept(sqe, listener.fd.get(), nullptr, nullptr,
                                 SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, Tag(kOpAccept, static_cast<uint32_t>(index)));
  listener.armed = true;
}

void HttpServer::OnAccept(size_t index, const io_uring_cqe& cqe) {
  Listener& listener = *listeners_[index];
  if ((cqe.flags & IORING_CQE_F_MORE) == 0) listener.armed = false;
  const bool draining = connections_->draining();
  if (cqe.res >= 0) {
    UniqueFd fd(cqe.res);
    // Raced with the stop. The fd closes here, directly: the ring never
    // saw it, so there is nothing to batch its close with.
    if (draining) return;
    ++stats_.connections_accepted;
    ConnectionInfo info;
    info.site_id = options_.site_id;
    info.worker_index = options_.worker_index;
    info.tls = listener.tls;
    connections_->Open(std::move(fd), std::move(info));
  } else if (cqe.res != -ECANCELED) {
    // EMFILE and friends: retry later rather than spin on the error.
    LOG_EVERY_N(WARNING, 100) << ErrnoStatus(
        -cqe.res, "accept", absl::StrCat("accepting on ", listener.address));
    if (!listener.armed) {
      accept_retry_ns_ = clock_.now_ns() + kAcceptRetryNanos;
    }
    return;
  }
  if (!listener.armed && !draining && listener.fd.valid()) ArmAccept(index);
}

void HttpServer::RetryAccepts() {
  if (accept_retry_ns_ == 0 || accept_retry_ns_ > clock_.now_ns()) return;
  accept_retry_ns_ = 0;
  for (size_t i = 0; i < listeners_.size(); ++i) {
    if (!listeners_[i]->armed && listeners_[i]->fd.valid() &&
        !connections_->draining()) {
      ArmAccept(i);
    }
  }
}

void HttpServer::SetHostGate(HostGate* gate) {
  connections_->SetHostGate(gate);
}

void HttpServer::AddConnection(UniqueFd fd, ConnectionInfo info) {
  if (!fd.valid()) return;
  clock_.Update();
  // While stopping, a handed-over socket is still served (its answer says
  // Connection: close): the master may not know yet, and dropping it would
  // lose a client that did nothing wrong.
  if (info.tls && options_.tls_context == nullptr) {
    // Without certificates a TLS connection is refused rather than
    // answered in plaintext. `fd` closes here, directly: the ring never
    // saw it.
    ++stats_.tls_connections_refused;
    LOG_EVERY_N(WARNING, 100)
        << "no TLS certificate configured (--tls_cert/--tls_key or "
        << tls::kEnvTlsCert << "); closing a TLS connection for site \""
        << info.site_id << "\" (sni " << OrDash(info.sni) << ")";
    return;
  }
  ++stats_.connections_added;
  // The master's listener may not have set TCP_NODELAY; see Listen().
  int one = 1;
  setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  connections_->Open(std::move(fd), std::move(info));
}

int HttpServer::RegisterExternalFd(int fd, std::function<void()> on_readable) {
  auto external = std::make_unique<ExternalFd>();
  external->fd = fd;
  external->on_readable = std::move(on_readable);
  externals_.push_back(std::move(external));
  size_t id = externals_.size() - 1;
  ArmExternal(id);
  return static_cast<int>(id);
}

void HttpServer::UnregisterExternalFd(int id) {
  if (id < 0 || static_cast<size_t>(id) >= externals_.size()) return;
  ExternalFd& external = *externals_[id];
  if (!external.active) return;
  external.active = false;
  if (external.armed) {
    SubmitCancel(ring_.get(), Tag(kOpExternal, static_cast<uint32_t>(id)));
  }
}

void HttpServer::ArmExternal(size_t id) {
  io_uring_sqe* sqe = ring_->GetSqe();
  io_uring_prep_poll_multishot(sqe, externals_[id]->fd, POLLIN);
  io_uring_sqe_set_data64(sqe, Tag(kOpExternal, static_cast<uint32_t>(id)));
  externals_[id]->armed = true;
}

void HttpServer::OnExternal(size_t id, const io_uring_cqe& cqe) {
  ExternalFd* external = externals_[id].get();
  if ((cqe.flags & IORING_CQE_F_MORE) == 0) external->armed = false;
  if (cqe.res < 0) {
    if (cqe.res != -ECANCELED) {
      LOG(ERROR) << ErrnoStatus(
          -cqe.res, "poll", absl::StrCat("polling external fd ", external->fd));
      external->active = false;
    }
    return;
  }
  // The callback may unregister this fd or register others; `external`
  // stays valid because the table holds pointers.
  if (external->active) external->on_readable();
  if (external->active && !external->armed) ArmExternal(id);
}

void HttpServer::ArmWake() {
  io_uring_sqe* sqe = ring_->GetSqe();
  io_uring_prep_poll_multishot(sqe, wake_fd_.get(), POLLIN);
  io_uring_sqe_set_data64(sqe, Tag(kOpWake, 0));
  wake_armed_ = true;
}

void HttpServer::OnWake(const io_uring_cqe& cqe) {
  if ((cqe.flags & IORING_CQE_F_MORE) == 0) wake_armed_ = false;
  uint64_t value;
  while (read(wake_fd_.get(), &value, sizeof(value)) > 0) {
  }
  if (!wake_armed_ && cqe.res >= 0) ArmWake();
}

void HttpServer::Stop() {
  stop_requested_.store(true, std::memory_order_release);
  uint64_t one = 1;
  // Async-signal-safe; a full counter (EAGAIN) already means "wake up".
  ssize_t ignored = write(wake_fd_.get(), &one, sizeof(one));
  (void)ignored;
}

void HttpServer::StopWithin(absl::Duration timeout) {
  stop_timeout_ns_.store(absl::ToInt64Nanoseconds(timeout),
                         std::memory_order_relaxed);
  Stop();
}

void HttpServer::StopNow() {
  stop_now_requested_.store(true, std::memory_order_release);
  Stop();
}

void HttpServer::BeginDrain() {
  const int64_t timeout = stop_timeout_ns_.load(std::memory_order_relaxed);
  stop_deadline_ns_ =
      clock_.now_ns() + (timeout >= 0
                             ? timeout
                             : absl::ToInt64Nanoseconds(options_.stop_timeout));
  for (size_t i = 0; i < listeners_.size(); ++i) {
    Listener& listener = *listeners_[i];
    if (listener.armed) {
      SubmitCancel(ring_.get(), Tag(kOpAccept, static_cast<uint32_t>(i)));
    }
    // Connections still in the backlog get an RST, as from any server that
    // stops listening; the accept holds its own reference to the file, so
    // the close can go in the same batch as its cancel.
    if (listener.fd.valid()) SubmitClose(ring_.get(), std::move(listener.fd));
  }
  // External fds stay polled: the worker channel still owes the master its
  // heartbeats and may carry a late handoff, and a second stop signal must
  // still be read.
  connections_->BeginDrain();
  LOG(INFO) << "stopping: " << stats_.open_connections
            << " connections to finish";
}

int64_t HttpServer::NextWakeNanos() const {
  const int64_t now = clock_.now_ns();
  int64_t next = connections_->NextDeadline(now + kMaxWaitNanos);
  if (accept_retry_ns_ != 0) next = std::min(next, accept_retry_ns_);
  if (connections_->draining()) next = std::min(next, stop_deadline_ns_);
  // The coarse clock ticks every few ms; waking earlier finds nothing due.
  return std::max<int64_t>(next - now, 1000 * 1000);
}

// One case per op, each calling one handler.
void HttpServer::Dispatch(const io_uring_cqe& cqe) {
  const uring::OpTag tag = uring::OpTag::Decode(cqe.user_data);
  switch (static_cast<Op>(tag.op)) {
    case kOpAccept:
      OnAccept(tag.index, cqe);
      return;
    case kOpRecv:
      connections_->OnRecv(tag.index, cqe);
      return;
    case kOpSend:
      connections_->OnSend(tag.index, cqe.res);
      return;
    case kOpExternal:
      OnExternal(tag.index, cqe);
      return;
    case kOpWake:
      OnWake(cqe);
      return;
    case kOpIgnore:
      // A cancel that found nothing (the op had just ended) is expected.
      if (cqe.res < 0 && cqe.res != -ENOENT && cqe.res != -EALREADY) {
        LOG_EVERY_N(WARNING, 100)
            << ErrnoStatus(-cqe.res, "io_uring", "cancelling or closing");
      }
      return;
  }
  LOG(DFATAL) << "completion with unknown tag " << cqe.user_data;
}

absl::Status HttpServer::Run() {
  if (running_) return absl::FailedPreconditionError("Run() called twice");
  running_ = true;
  io_uring* ring = ring_->get();
  clock_.Update();
  for (;;) {
    const int64_t now = clock_.now_ns();
    if (stop_requested_.load(std::memory_order_acquire) &&
        !connections_->draining()) {
      BeginDrain();
    }
    if (stop_now_requested_.load(std::memory_order_acquire) &&
        stop_deadline_ns_ > now) {
      // A second Ctrl-C: do not wait for busy connections.
      stop_deadline_ns_ = now;
    }
    if (connections_->draining()) {
      if (stats_.open_connections == 0) break;
      if (now >= stop_deadline_ns_) {
        if (!forced_) {
          forced_ = true;
          LOG(WARNING) << "stop timeout: closing " << stats_.open_connections
                       << " busy connections";
          connections_->CloseAll();
        } else if (now >= stop_deadline_ns_ + kMaxWaitNanos) {
          break;  // cancellations did not come back; the ring's exit ends them
        }
      }
    }
    // Buffers recycled during the last pass go back to the kernel before
    // it can need them: it only takes buffers while we wait.
    if (buffers_ != nullptr) buffers_->Publish();
    const int64_t wait_ns = NextWakeNanos();
    __kernel_timespec timeout;
    timeout.tv_sec = wait_ns / 1000000000;
    timeout.tv_nsec = wait_ns % 1000000000;
    io_uring_cqe* first = nullptr;
    int ret = io_uring_submit_and_wait_timeout(ring, &first, 1, &timeout,
                                               nullptr);
    if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EBUSY &&
        ret != -EAGAIN) {
      return ErrnoStatus(-ret, "io_uring_submit_and_wait_timeout",
                         "waiting for completions");
    }
    clock_.Update();
    // Walk every completion, advance once.
    unsigned head;
    unsigned seen = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(ring, head, cqe) {
      Dispatch(*cqe);
      ++seen;
    }
    io_uring_cq_advance(ring, seen);
    connections_->ExpireDeadlines();
    RetryAccepts();
  }
  // Hand the last closes and cancellations to the kernel before returning.
  io_uring_submit(ring);
  return absl::OkStatus();
}

}  // namespace hello
}  // namespace ddv
