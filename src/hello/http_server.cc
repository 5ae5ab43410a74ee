// HttpServer: one io_uring, one thread. Reads arrive as multishot recv
// completions in provided buffers (parsed in place, returned at once); the
// responses to every request found in a read are batched into one send.
#include "src/hello/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "src/base/errno_status.h"
#include "src/base/socket_address.h"
#include "src/base/status_macros.h"
#include "src/tls/tls_context.h"
#include "src/tls/tls_session.h"
#include "src/uring/op_tag.h"

namespace ddv {
namespace hello {
namespace {

// What a completion is for: the op of its uring::OpTag; the index names the
// connection, listener or external fd. No generation is needed: a slot is
// reused only after its last operation completed.
enum Op : uint8_t {
  kOpAccept = 1,
  kOpRecv,
  kOpSend,
  kOpExternal,
  kOpWake,
  kOpIgnore,  // cancels and closes; posted only when they fail
};

uint64_t Tag(Op op, uint32_t index) {
  return uring::OpTag{op, index, 0}.Encode();
}

constexpr uint16_t kBufferGroup = 1;
// Stop parsing pipelined requests (and reading) once this much response is
// queued, so a client that writes without reading cannot grow our memory.
constexpr size_t kOutputHighWater = 256 * 1024;
// Per-connection strings keep their capacity across requests and reuse of
// the slot; only unusually large ones are given back.
constexpr size_t kShrinkAbove = 1024 * 1024;
constexpr size_t kSingleShotRecvBytes = 16 * 1024;
// GET /bytes/N: N is capped so a typo cannot ask for a petabyte.
constexpr uint64_t kMaxBytesResponse = uint64_t{1} << 30;
// /bytes/N bodies are sent from one shared read-only block, chunk by chunk.
constexpr size_t kFillerBytes = 256 * 1024;
// A TLS /bytes/N body is encrypted this much at a time, when the previous
// piece has been sent: a streaming connection holds at most this much
// ciphertext (plus one TLS record of overhead per 16 KiB).
constexpr size_t kTlsStreamChunk = 64 * 1024;
// The largest TLS record's plaintext (RFC 8446 §5.1): one read's worth.
constexpr size_t kTlsPlaintextBytes = 16 * 1024;
constexpr int64_t kAcceptRetryNanos = 100 * 1000 * 1000;
constexpr int64_t kMaxWaitNanos = 1000 * 1000 * 1000;

const char* Filler() {
  static const char* const filler = [] {
    static char block[kFillerBytes];
    for (size_t i = 0; i < kFillerBytes; ++i) {
      // 64-byte lines, so a curl of /bytes/N to a terminal stays readable.
      block[i] = i % 64 == 63 ? '\n' : static_cast<char>('a' + i % 64 % 26);
    }
    return block;
  }();
  return filler;
}

// The idle deadlines only need millisecond precision; the coarse clock is a
// plain memory read in the vDSO.
int64_t NowNanos() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

std::string PeerOf(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return "-";
  }
  return FormatSockaddr(ss);
}

// N of /bytes/N: 1 to 10 decimal digits, at most kMaxBytesResponse.
bool ParseByteCount(absl::string_view text, uint64_t* count) {
  if (text.empty() || text.size() > 10) return false;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  if (value > kMaxBytesResponse) return false;
  *count = value;
  return true;
}

// True when the socket's receive queue is empty, so close() sends a FIN and
// not an RST.
bool NothingUnread(int fd) {
  int unread = 0;
  return ioctl(fd, FIONREAD, &unread) == 0 && unread == 0;
}

absl::string_view OrDash(absl::string_view s) { return s.empty() ? "-" : s; }

void ShrinkIfHuge(std::string* s) {
  if (s->capacity() > kShrinkAbove) std::string().swap(*s);
}

}  // namespace

std::string FormatSockaddr(const sockaddr_storage& ss) {
  return FormatSocketAddress(ss).value_or("-");
}

enum class ConnState : uint8_t {
  kOpen,       // reading requests, writing responses
  kLingering,  // last response sent, write side shut: discarding input
  kClosed,     // waiting for its in-flight recv/send to end
  kFree,       // slot on the free list
};

struct HttpServer::Connection {
  uint32_t index = 0;
  UniqueFd fd;
  ConnState state = ConnState::kFree;

  // In-flight operations: a slot is reused only when none is left, so a
  // completion never reaches the wrong connection.
  bool recv_armed = false;
  bool recv_cancelled = false;
  bool send_armed = false;
  bool sending_filler = false;

  uint64_t requests = 0;           // answered on this connection
  bool read_closed = false;        // the client sent FIN (or reset)
  bool close_after_flush = false;  // answer what is queued, then close
  // The client may still be sending (we rejected its request mid-stream), so
  // the close must linger even if nothing is unread right now.
  bool must_linger = false;

  // Input: bytes to skip (PROXY header), the body of the request just
  // answered, and unparsed bytes (a partial head, or pipelined requests
  // waiting for output space).
  uint64_t skip_remaining = 0;
  uint64_t body_remaining = 0;
  bool body_chunked = false;
  ChunkedBodySkipper chunked;
  size_t scan_from = 0;
  std::string in;

  // Output, in order: out_inflight (being sent), out_pending (queued), then
  // stream_remaining bytes of filler (a /bytes/N body). Parsing stops while
  // a stream is queued, so nothing can be queued after it.
  std::string out_inflight;
  size_t inflight_sent = 0;
  std::string out_pending;
  uint64_t stream_remaining = 0;

  // Who the connection is: the body is prefix + Host + suffix.
  ConnectionInfo info;
  bool identity_ready = false;
  std::string body_prefix;
  std::string body_suffix;

  // The last 200 response, reused while the Host header and the Connection
  // header stay the same (they do for every keep-alive benchmark client).
  bool cache_valid = false;
  ConnectionHeader cached_header = ConnectionHeader::kNone;
  bool cached_head_only = false;
  std::string cached_host;
  std::string cached_response;

  std::unique_ptr<char[]> recv_buffer;  // single-shot recv mode only

  // TLS connections: received ciphertext goes into the session, decrypted
  // requests into the parser; out_pending then holds plaintext, encrypted
  // into out_inflight at send time.
  std::unique_ptr<tls::TlsSession> tls;
  bool tls_close_queued = false;  // close_notify is on its way

  // Intrusive deadline list (idle or linger), ordered by deadline.
  TimerList* timer_list = nullptr;
  Connection* timer_prev = nullptr;
  Connection* timer_next = nullptr;
  int64_t deadline_ns = 0;

  void Reset(UniqueFd new_fd, ConnectionInfo new_info) {
    fd = std::move(new_fd);
    state = ConnState::kOpen;
    recv_armed = recv_cancelled = send_armed = sending_filler = false;
    requests = 0;
    read_closed = close_after_flush = must_linger = false;
    skip_remaining = new_info.skip_bytes;
    body_remaining = 0;
    body_chunked = false;
    chunked.Reset();
    scan_from = 0;
    in.clear();
    out_inflight.clear();
    inflight_sent = 0;
    out_pending.clear();
    stream_remaining = 0;
    info = std::move(new_info);
    identity_ready = false;
    cache_valid = false;
    tls.reset();
    tls_close_queued = false;
    ShrinkIfHuge(&in);
    ShrinkIfHuge(&out_inflight);
    ShrinkIfHuge(&out_pending);
  }

  bool Backlogged() const {
    return stream_remaining > 0 || out_pending.size() >= kOutputHighWater;
  }
  bool InBody() const { return body_remaining > 0 || body_chunked; }
};

struct HttpServer::TimerList {
  int64_t timeout_ns = 0;
  Connection* head = nullptr;
  Connection* tail = nullptr;
};

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

HttpServer::HttpServer(Options options)
    : options_(std::move(options)),
      idle_timers_(new TimerList),
      linger_timers_(new TimerList) {
  idle_timers_->timeout_ns = absl::ToInt64Nanoseconds(options_.idle_timeout);
  linger_timers_->timeout_ns =
      absl::ToInt64Nanoseconds(options_.linger_timeout);
}

HttpServer::~HttpServer() {
  // The provided buffers are unregistered while the ring still exists, then
  // the ring goes, before the members: once it is gone the kernel holds no
  // pointer into the connections' buffers.
  buffers_.reset();
  ring_.reset();
}

absl::Status HttpServer::Init() {
  pid_ = static_cast<int>(getpid());
  now_ns_ = NowNanos();

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

  if (options_.tls_context != nullptr) {
    tls_plaintext_.reset(new char[kTlsPlaintextBytes]);
  }
  wake_fd_.Reset(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wake_fd_.valid()) {
    return ErrnoStatus(errno, "eventfd", "creating the stop wake-up fd");
  }
  ArmWake();
  return absl::OkStatus();
}

void HttpServer::SubmitCancel(uint64_t user_data) {
  io_uring_sqe* sqe = ring_->GetSqe();
  io_uring_prep_cancel64(sqe, user_data, 0);
  io_uring_sqe_set_data64(sqe, Tag(kOpIgnore, 0));
  io_uring_sqe_set_flags(sqe, IOSQE_CQE_SKIP_SUCCESS);
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
  if (cqe.res >= 0) {
    UniqueFd fd(cqe.res);
    if (draining_) return;  // raced with the stop; the fd closes here
    ++stats_.connections_accepted;
    ConnectionInfo info;
    info.site_id = options_.site_id;
    info.worker_index = options_.worker_index;
    info.tls = listener.tls;
    Connection* c = NewConnection(std::move(fd), std::move(info));
    if (!listener.tls || StartTls(c)) Drive(c);
  } else if (cqe.res != -ECANCELED) {
    // EMFILE and friends: retry later rather than spin on the error.
    LOG_EVERY_N(WARNING, 100) << ErrnoStatus(
        -cqe.res, "accept", absl::StrCat("accepting on ", listener.address));
    if (!listener.armed) accept_retry_ns_ = now_ns_ + kAcceptRetryNanos;
    return;
  }
  if (!listener.armed && !draining_ && listener.fd.valid()) ArmAccept(index);
}

void HttpServer::AddConnection(UniqueFd fd, ConnectionInfo info) {
  if (!fd.valid()) return;
  now_ns_ = NowNanos();
  // While stopping, a handed-over socket is still served (its answer says
  // Connection: close): the master may not know yet, and dropping it would
  // lose a client that did nothing wrong.
  if (info.tls && options_.tls_context == nullptr) {
    // Without certificates a TLS connection is refused rather than
    // answered in plaintext.
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
  const bool tls = info.tls;
  Connection* c = NewConnection(std::move(fd), std::move(info));
  if (!tls || StartTls(c)) Drive(c);
}

HttpServer::Connection* HttpServer::NewConnection(UniqueFd fd,
                                                  ConnectionInfo info) {
  Connection* c;
  if (!free_slots_.empty()) {
    c = connections_[free_slots_.back()].get();
    free_slots_.pop_back();
  } else {
    connections_.push_back(std::make_unique<Connection>());
    c = connections_.back().get();
    c->index = static_cast<uint32_t>(connections_.size() - 1);
  }
  c->Reset(std::move(fd), std::move(info));
  ++stats_.open_connections;
  TimerInsert(idle_timers_.get(), c);
  return c;
}

void HttpServer::ArmRecv(Connection* c) {
  io_uring_sqe* sqe = ring_->GetSqe();
  if (options_.recv_multishot) {
    io_uring_prep_recv_multishot(sqe, c->fd.get(), nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = kBufferGroup;
  } else {
    if (c->recv_buffer == nullptr) {
      c->recv_buffer.reset(new char[kSingleShotRecvBytes]);
    }
    io_uring_prep_recv(sqe, c->fd.get(), c->recv_buffer.get(),
                       kSingleShotRecvBytes, 0);
  }
  io_uring_sqe_set_data64(sqe, Tag(kOpRecv, c->index));
  c->recv_armed = true;
  c->recv_cancelled = false;
}

void HttpServer::UpdateRecv(Connection* c) {
  if (c->state != ConnState::kOpen && c->state != ConnState::kLingering) {
    return;
  }
  // While output is backlogged, stop reading: the client's unread requests
  // then wait in the kernel and TCP flow control pushes back on it. After
  // the last response the input is only discarded, so reading goes on.
  bool want = c->state == ConnState::kLingering ||
              (!c->read_closed && (c->close_after_flush || !c->Backlogged()));
  if (want && !c->recv_armed) {
    ArmRecv(c);
  } else if (!want && c->recv_armed && options_.recv_multishot &&
             !c->recv_cancelled) {
    SubmitCancel(Tag(kOpRecv, c->index));
    c->recv_cancelled = true;
  }
}

void HttpServer::OnRecv(Connection* c, const io_uring_cqe& cqe) {
  const int result = cqe.res;
  if ((cqe.flags & IORING_CQE_F_MORE) == 0) {
    c->recv_armed = false;
    c->recv_cancelled = false;
  }
  int buffer_id = -1;
  const char* data = nullptr;
  if (cqe.flags & IORING_CQE_F_BUFFER) {
    buffer_id = static_cast<int>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
    data = buffers_->Buffer(static_cast<uint16_t>(buffer_id));
  } else {
    data = c->recv_buffer.get();
  }

  if (result > 0) {
    if (c->state == ConnState::kOpen && !c->close_after_flush && c->tls) {
      Touch(c);
      absl::string_view chunk(data, static_cast<size_t>(result));
      // A PROXY header precedes the TLS stream.
      size_t skip = static_cast<size_t>(
          std::min<uint64_t>(c->skip_remaining, chunk.size()));
      c->skip_remaining -= skip;
      chunk.remove_prefix(skip);
      // Decrypted and parsed in Drive(), as far as output space allows.
      if (!chunk.empty()) c->tls->FeedCiphertext(chunk);
    } else if (c->state == ConnState::kOpen && !c->close_after_flush) {
      Touch(c);
      absl::string_view chunk(data, static_cast<size_t>(result));
      if (c->in.empty() && !c->Backlogged()) {
        // The common case: parse straight out of the recv buffer and copy
        // only an incomplete tail.
        size_t used = Process(c, chunk);
        if (used < chunk.size() && !c->close_after_flush) {
          c->in.append(chunk.data() + used, chunk.size() - used);
        }
      } else {
        c->in.append(chunk.data(), chunk.size());
      }
    }
    // Lingering or closed: input is discarded.
  } else if (result == 0) {
    c->read_closed = true;
    if (c->state == ConnState::kLingering) CloseNow(c);
  } else if (result != -ENOBUFS && result != -ECANCELED) {
    // ENOBUFS only ends a multishot recv (all buffers were in use); it is
    // re-armed below. Anything else (ECONNRESET, ...) ends the connection.
    c->read_closed = true;
    CloseNow(c);
  }
  // Given back at once, parsed in place; published once per loop pass.
  if (buffer_id >= 0) buffers_->Recycle(static_cast<uint16_t>(buffer_id));
  Drive(c);
}

void HttpServer::OnSend(Connection* c, int result) {
  c->send_armed = false;
  if (c->state != ConnState::kOpen) {
    MaybeFree(c);
    return;
  }
  if (result <= 0) {
    // EPIPE/ECONNRESET: the client is gone.
    CloseNow(c);
    return;
  }
  Touch(c);
  if (c->sending_filler) {
    c->stream_remaining -= static_cast<uint64_t>(result);
  } else {
    c->inflight_sent += static_cast<size_t>(result);
  }
  Drive(c);
}

// After any event: parse what can be parsed, send what is queued, decide
// whether the connection ends, and keep the recv armed (or not) to match.
void HttpServer::Drive(Connection* c) {
  if (c->state == ConnState::kOpen) {
    if (c->tls) {
      PumpTls(c);
    } else if (!c->in.empty() && !c->close_after_flush && !c->Backlogged()) {
      size_t used = Process(c, c->in);
      c->in.erase(0, used);
    }
    if (!c->send_armed && c->state == ConnState::kOpen) StartSend(c);
    // Everything queued has been sent. Before a graceful close a TLS
    // connection first sends its close_notify (QueueTlsClose starts that
    // send; the close happens when it completes).
    if (!c->send_armed && c->state == ConnState::kOpen) {
      if (c->close_after_flush) {
        if (!QueueTlsClose(c)) LingeringClose(c);
      } else if (c->read_closed) {
        // The client half-closed and every request is answered.
        if (!QueueTlsClose(c)) CloseNow(c);
      } else if (draining_ && c->requests > 0 && !HasUnreadInput(c) &&
                 !c->InBody()) {
        // An idle keep-alive connection at stop. One that has not sent its
        // first request yet gets to (bounded by the stop timeout).
        if (!QueueTlsClose(c)) CloseNow(c);
      }
    }
  }
  UpdateRecv(c);
  MaybeFree(c);
}

bool HttpServer::StartTls(Connection* c) {
  absl::StatusOr<std::unique_ptr<tls::TlsSession>> session =
      tls::TlsSession::Create(*options_.tls_context);
  if (!session.ok()) {
    LOG_EVERY_N(ERROR, 100) << session.status();
    CloseNow(c);
    return false;
  }
  c->tls = std::move(*session);
  return true;
}

// TLS input: finish the handshake, then decrypt and parse requests until
// the input runs out or output backs up (the rest stays encrypted in the
// session, and recv is paused by UpdateRecv, so memory stays bounded).
void HttpServer::PumpTls(Connection* c) {
  tls::TlsSession& session = *c->tls;
  // After a fatal error only the alert is still to go out.
  if (session.failed()) return;
  if (!session.handshake_done()) {
    switch (session.Handshake()) {
      case tls::TlsSession::HandshakeStatus::kWantMore:
        return;
      case tls::TlsSession::HandshakeStatus::kError:
        // The alert (if OpenSSL made one) goes out, then the close.
        ++stats_.tls_handshake_failures;
        LOG_EVERY_N(WARNING, 100)
            << "TLS handshake failed with " << PeerOf(c->fd.get()) << ": "
            << session.error() << " (" << google::COUNTER << " so far)";
        c->close_after_flush = true;
        return;
      case tls::TlsSession::HandshakeStatus::kDone:
        ++stats_.tls_handshakes;
        // The body reports what was negotiated, not what the master saw
        // offered.
        c->info.sni = session.sni();
        c->info.alpn = session.alpn();
        c->identity_ready = false;
        c->cache_valid = false;
        break;
    }
  }
  while (!c->close_after_flush && !c->Backlogged()) {
    if (!c->in.empty()) {
      size_t used = Process(c, c->in);
      c->in.erase(0, used);
      if (c->close_after_flush || c->Backlogged()) return;
    }
    tls::TlsSession::ReadResult read =
        session.ReadPlaintext(tls_plaintext_.get(), kTlsPlaintextBytes);
    switch (read.status) {
      case tls::TlsSession::ReadStatus::kData:
        FeedPlaintext(c, absl::string_view(tls_plaintext_.get(), read.bytes));
        break;
      case tls::TlsSession::ReadStatus::kWantMore:
        return;
      case tls::TlsSession::ReadStatus::kClosed:
        // close_notify: like a FIN, answer what came before it.
        c->read_closed = true;
        return;
      case tls::TlsSession::ReadStatus::kError:
        ++stats_.tls_errors;
        LOG_EVERY_N(WARNING, 100) << "TLS error with " << PeerOf(c->fd.get())
                                  << ": " << session.error();
        c->close_after_flush = true;
        c->must_linger = true;
        return;
    }
  }
}

// Decrypted bytes: parsed in place when nothing is waiting before them,
// as OnRecv does with a plaintext recv buffer.
void HttpServer::FeedPlaintext(Connection* c, absl::string_view plaintext) {
  if (c->in.empty() && !c->Backlogged()) {
    size_t used = Process(c, plaintext);
    if (used < plaintext.size() && !c->close_after_flush) {
      c->in.append(plaintext.data() + used, plaintext.size() - used);
    }
  } else if (!c->close_after_flush) {
    c->in.append(plaintext.data(), plaintext.size());
  }
}

// Starts sending close_notify once before a graceful close; true while that
// send is in flight (the caller closes when it completes).
bool HttpServer::QueueTlsClose(Connection* c) {
  if (!c->tls || c->tls_close_queued) return false;
  c->tls_close_queued = true;
  c->tls->Shutdown();
  StartSend(c);
  return c->send_armed;
}

bool HttpServer::HasUnreadInput(const Connection* c) const {
  return !c->in.empty() || (c->tls && c->tls->HasBufferedInput());
}

size_t HttpServer::Process(Connection* c, absl::string_view data) {
  size_t pos = 0;
  while (pos < data.size() && !c->close_after_flush && !c->Backlogged()) {
    absl::string_view rest = data.substr(pos);
    if (c->skip_remaining > 0 || c->body_remaining > 0) {
      uint64_t& remaining =
          c->skip_remaining > 0 ? c->skip_remaining : c->body_remaining;
      size_t take =
          static_cast<size_t>(std::min<uint64_t>(remaining, rest.size()));
      remaining -= take;
      pos += take;
      continue;
    }
    if (c->body_chunked) {
      size_t used = 0;
      switch (c->chunked.Feed(rest, &used)) {
        case ChunkedBodySkipper::Status::kNeedMore:
          break;
        case ChunkedBodySkipper::Status::kDone:
          c->body_chunked = false;
          break;
        case ChunkedBodySkipper::Status::kBad:
          // The request was answered already; with its end unknown the
          // stream cannot be read further.
          c->body_chunked = false;
          c->close_after_flush = true;
          c->must_linger = true;
          return data.size();
      }
      pos += used;
      continue;
    }
    RequestHead head;
    switch (
        ParseRequestHead(rest, options_.max_head_bytes, &c->scan_from, &head)) {
      case ParseStatus::kNeedMore:
        return pos;
      case ParseStatus::kBadRequest:
        ++stats_.bad_requests;
        AppendError(c, "400 Bad Request", "bad request\n",
                    ConnectionHeader::kClose);
        c->close_after_flush = true;
        c->must_linger = true;
        return data.size();
      case ParseStatus::kHeadTooLarge:
        ++stats_.heads_too_large;
        AppendError(c, "431 Request Header Fields Too Large",
                    "request head too large\n", ConnectionHeader::kClose);
        c->close_after_flush = true;
        c->must_linger = true;
        return data.size();
      case ParseStatus::kComplete:
        break;
    }
    c->scan_from = 0;
    pos += head.size;
    Respond(c, head);
    if (head.framing == BodyFraming::kContentLength) {
      c->body_remaining = head.content_length;
    } else if (head.framing == BodyFraming::kChunked) {
      c->body_chunked = true;
    }
  }
  return pos;
}

void HttpServer::Respond(Connection* c, const RequestHead& request) {
  ++stats_.requests;
  ++c->requests;
  const bool keep_alive = request.keep_alive && !draining_;
  ConnectionHeader header = ConnectionHeader::kNone;
  if (!keep_alive) {
    header = ConnectionHeader::kClose;
    c->close_after_flush = true;
  } else if (request.minor_version == 0) {
    header = ConnectionHeader::kKeepAlive;  // HTTP/1.0 needs it said
  }
  // RFC 9110 §10.1.1: a client waiting for 100 Continue would otherwise sit
  // out its timeout before sending the body we still have to skip.
  if (request.expect_continue && request.minor_version >= 1 &&
      request.framing != BodyFraming::kNone) {
    c->out_pending.append("HTTP/1.1 100 Continue\r\n\r\n");
  }
  const bool head_only = request.method == "HEAD";
  absl::string_view path = request.target.substr(0, request.target.find('?'));
  if (absl::StartsWith(path, "/bytes/")) {
    uint64_t count = 0;
    if (!ParseByteCount(path.substr(7), &count)) {
      AppendError(c, "400 Bad Request",
                  "/bytes/N wants N from 0 to 1073741824\n", header);
      return;
    }
    absl::StrAppend(&c->out_pending,
                    "HTTP/1.1 200 OK\r\n"
                    "Content-Type: application/octet-stream\r\n"
                    "Content-Length: ",
                    count, "\r\n", HeaderLine(header), "\r\n");
    if (!head_only) c->stream_remaining = count;
    return;
  }
  AppendHello(c, request.host.empty() ? absl::string_view("-") : request.host,
              header, head_only);
}

const char* HttpServer::HeaderLine(ConnectionHeader header) {
  switch (header) {
    case ConnectionHeader::kNone:
      return "";
    case ConnectionHeader::kClose:
      return "Connection: close\r\n";
    case ConnectionHeader::kKeepAlive:
      return "Connection: keep-alive\r\n";
  }
  return "";
}

void HttpServer::BuildIdentity(Connection* c) {
  const ConnectionInfo& info = c->info;
  std::string peer = info.peer.empty() ? PeerOf(c->fd.get()) : info.peer;
  c->body_prefix =
      absl::StrCat("site=", OrDash(info.site_id), " worker=", info.worker_index,
                   " pid=", pid_, " host=");
  c->body_suffix =
      absl::StrCat(" sni=", OrDash(info.sni), " alpn=", OrDash(info.alpn),
                   " tls=", info.tls ? 1 : 0, " peer=", peer, "\n");
  c->identity_ready = true;
}

void HttpServer::AppendHello(Connection* c, absl::string_view host,
                             ConnectionHeader connection_header,
                             bool head_only) {
  if (c->cache_valid && c->cached_header == connection_header &&
      c->cached_head_only == head_only && c->cached_host == host) {
    c->out_pending.append(c->cached_response);
    return;
  }
  if (!c->identity_ready) BuildIdentity(c);
  std::string& response = c->cached_response;
  response.clear();
  size_t body_size =
      c->body_prefix.size() + host.size() + c->body_suffix.size();
  absl::StrAppend(&response,
                  "HTTP/1.1 200 OK\r\n"
                  "Content-Type: text/plain\r\n"
                  "Content-Length: ",
                  body_size, "\r\n", HeaderLine(connection_header), "\r\n");
  if (!head_only)
    absl::StrAppend(&response, c->body_prefix, host, c->body_suffix);
  c->cached_host.assign(host.data(), host.size());
  c->cached_header = connection_header;
  c->cached_head_only = head_only;
  c->cache_valid = true;
  c->out_pending.append(response);
}

void HttpServer::AppendError(Connection* c, absl::string_view status,
                             absl::string_view body,
                             ConnectionHeader connection_header) {
  absl::StrAppend(
      &c->out_pending, "HTTP/1.1 ", status,
      "\r\nContent-Type: text/plain\r\nContent-Length: ", body.size(), "\r\n",
      HeaderLine(connection_header), "\r\n", body);
}

void HttpServer::StartSend(Connection* c) {
  const char* data;
  size_t size;
  if (c->tls && c->inflight_sent >= c->out_inflight.size()) {
    // Encrypt what is queued (or the next piece of a /bytes/N body) and send
    // it after whatever the session produced before it (handshake flights,
    // tickets), all in wire order.
    c->out_inflight.clear();
    c->inflight_sent = 0;
    tls::TlsSession& session = *c->tls;
    if (session.handshake_done() && !session.failed()) {
      absl::Status status;
      if (!c->out_pending.empty()) {
        status = session.WritePlaintext(c->out_pending);
        c->out_pending.clear();
        ShrinkIfHuge(&c->out_pending);
      } else if (c->stream_remaining > 0) {
        size_t piece = static_cast<size_t>(
            std::min<uint64_t>(c->stream_remaining, kTlsStreamChunk));
        status = session.WritePlaintext(absl::string_view(Filler(), piece));
        c->stream_remaining -= piece;
      }
      if (!status.ok()) {
        LOG_EVERY_N(WARNING, 100) << "TLS: " << status;
        CloseNow(c);
        return;
      }
    }
    if (session.TakeCiphertext(&c->out_inflight) == 0) return;
    data = c->out_inflight.data();
    size = c->out_inflight.size();
    c->sending_filler = false;
  } else if (c->inflight_sent < c->out_inflight.size()) {
    // A short send: the rest of the same buffer.
    data = c->out_inflight.data() + c->inflight_sent;
    size = c->out_inflight.size() - c->inflight_sent;
    c->sending_filler = false;
  } else {
    c->out_inflight.clear();
    c->inflight_sent = 0;
    if (!c->out_pending.empty()) {
      // Everything queued since the last send goes out as one: the answers
      // to all pipelined requests of a read share a send.
      c->out_inflight.swap(c->out_pending);
      ShrinkIfHuge(&c->out_pending);
      data = c->out_inflight.data();
      size = c->out_inflight.size();
      c->sending_filler = false;
    } else if (c->stream_remaining > 0) {
      data = Filler();
      size = static_cast<size_t>(
          std::min<uint64_t>(c->stream_remaining, kFillerBytes));
      c->sending_filler = true;
    } else {
      return;
    }
  }
  io_uring_sqe* sqe = ring_->GetSqe();
  io_uring_prep_send(sqe, c->fd.get(), data, size, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, Tag(kOpSend, c->index));
  c->send_armed = true;
}

void HttpServer::LingeringClose(Connection* c) {
  // No linger is needed when the client already closed its side, or when it
  // asked for the close (Connection: close, HTTP/1.0) and has nothing more
  // in flight, or when we are stopping and cannot wait for every client's
  // FIN: with nothing unread, close() sends a FIN, not an RST. This is
  // nginx's lingering_close heuristic; it saves a wake-up per connection
  // for clients that close after each request.
  if (c->read_closed ||
      ((draining_ || (!c->must_linger && !HasUnreadInput(c) && !c->InBody())) &&
       NothingUnread(c->fd.get()))) {
    CloseNow(c);
    return;
  }
  // FIN after the last response, then read and discard until the client's
  // own close (recv returns 0), so an RST cannot race the response.
  if (shutdown(c->fd.get(), SHUT_WR) != 0) {
    CloseNow(c);
    return;
  }
  c->state = ConnState::kLingering;
  c->in.clear();
  TimerInsert(linger_timers_.get(), c);
}

void HttpServer::CloseNow(Connection* c) {
  if (c->state == ConnState::kClosed || c->state == ConnState::kFree) return;
  c->state = ConnState::kClosed;
  TimerRemove(c);
  if (c->recv_armed && !c->recv_cancelled) {
    SubmitCancel(Tag(kOpRecv, c->index));
    c->recv_cancelled = true;
  }
  // A send blocked on a client that stopped reading.
  if (c->send_armed) SubmitCancel(Tag(kOpSend, c->index));
  MaybeFree(c);
}

void HttpServer::MaybeFree(Connection* c) {
  if (c->state != ConnState::kClosed || c->recv_armed || c->send_armed) return;
  // Closing through the ring batches the close with the other submissions.
  io_uring_sqe* sqe = ring_->GetSqe();
  io_uring_prep_close(sqe, c->fd.Release());
  io_uring_sqe_set_data64(sqe, Tag(kOpIgnore, 0));
  io_uring_sqe_set_flags(sqe, IOSQE_CQE_SKIP_SUCCESS);
  c->state = ConnState::kFree;
  c->info = ConnectionInfo();
  c->tls.reset();  // its SSL and buffers go now, not at the slot's reuse
  free_slots_.push_back(c->index);
  --stats_.open_connections;
}

void HttpServer::TimerInsert(TimerList* list, Connection* c) {
  TimerRemove(c);
  c->deadline_ns = now_ns_ + list->timeout_ns;
  c->timer_list = list;
  c->timer_prev = list->tail;
  c->timer_next = nullptr;
  if (list->tail != nullptr) {
    list->tail->timer_next = c;
  } else {
    list->head = c;
  }
  list->tail = c;
}

void HttpServer::TimerRemove(Connection* c) {
  TimerList* list = c->timer_list;
  if (list == nullptr) return;
  if (c->timer_prev != nullptr) {
    c->timer_prev->timer_next = c->timer_next;
  } else {
    list->head = c->timer_next;
  }
  if (c->timer_next != nullptr) {
    c->timer_next->timer_prev = c->timer_prev;
  } else {
    list->tail = c->timer_prev;
  }
  c->timer_list = nullptr;
  c->timer_prev = c->timer_next = nullptr;
}

void HttpServer::Touch(Connection* c) {
  // Every list has one timeout, so appending keeps it sorted by deadline.
  // Within one clock tick the position would not change: skip the relink.
  if (c->timer_list == idle_timers_.get() &&
      c->deadline_ns == now_ns_ + idle_timers_->timeout_ns) {
    return;
  }
  TimerInsert(idle_timers_.get(), c);
}

void HttpServer::ExpireTimers() {
  while (idle_timers_->head != nullptr &&
         idle_timers_->head->deadline_ns <= now_ns_) {
    ++stats_.idle_timeouts;
    CloseNow(idle_timers_->head);
  }
  while (linger_timers_->head != nullptr &&
         linger_timers_->head->deadline_ns <= now_ns_) {
    CloseNow(linger_timers_->head);
  }
  if (accept_retry_ns_ != 0 && accept_retry_ns_ <= now_ns_) {
    accept_retry_ns_ = 0;
    for (size_t i = 0; i < listeners_.size(); ++i) {
      if (!listeners_[i]->armed && listeners_[i]->fd.valid() && !draining_) {
        ArmAccept(i);
      }
    }
  }
}

int64_t HttpServer::NextWakeNanos() const {
  int64_t next = now_ns_ + kMaxWaitNanos;
  if (idle_timers_->head != nullptr) {
    next = std::min(next, idle_timers_->head->deadline_ns);
  }
  if (linger_timers_->head != nullptr) {
    next = std::min(next, linger_timers_->head->deadline_ns);
  }
  if (accept_retry_ns_ != 0) next = std::min(next, accept_retry_ns_);
  if (draining_) next = std::min(next, stop_deadline_ns_);
  // The coarse clock ticks every few ms; waking earlier finds nothing due.
  return std::max<int64_t>(next - now_ns_, 1000 * 1000);
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
  if (external.armed) SubmitCancel(Tag(kOpExternal, static_cast<uint32_t>(id)));
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
  stop_requests_.fetch_add(1, std::memory_order_release);
  uint64_t one = 1;
  // Async-signal-safe; a full counter (EAGAIN) already means "wake up".
  ssize_t ignored = write(wake_fd_.get(), &one, sizeof(one));
  (void)ignored;
}

void HttpServer::BeginDrain() {
  draining_ = true;
  stop_deadline_ns_ = now_ns_ + absl::ToInt64Nanoseconds(options_.stop_timeout);
  for (size_t i = 0; i < listeners_.size(); ++i) {
    Listener& listener = *listeners_[i];
    if (listener.armed) {
      SubmitCancel(Tag(kOpAccept, static_cast<uint32_t>(i)));
    }
    // Connections still in the backlog get an RST, as from any server that
    // stops listening; the accept holds its own reference to the file.
    listener.fd.Reset();
  }
  // External fds stay polled: the worker channel still owes the master its
  // heartbeats and may carry a late handoff, and a second stop signal must
  // still be read.
  for (const auto& c : connections_) {
    if (c->state == ConnState::kOpen) {
      Drive(c.get());
    } else if (c->state == ConnState::kLingering &&
               NothingUnread(c->fd.get())) {
      CloseNow(c.get());  // see LingeringClose
    }
  }
  LOG(INFO) << "stopping: " << stats_.open_connections
            << " connections to finish";
}

void HttpServer::Dispatch(const io_uring_cqe& cqe) {
  const Op op = static_cast<Op>(cqe.user_data >> 56);
  const uint32_t index = static_cast<uint32_t>(cqe.user_data);
  switch (op) {
    case kOpAccept:
      OnAccept(index, cqe);
      return;
    case kOpRecv:
      OnRecv(connections_[index].get(), cqe);
      return;
    case kOpSend:
      OnSend(connections_[index].get(), cqe.res);
      return;
    case kOpExternal:
      OnExternal(index, cqe);
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
  now_ns_ = NowNanos();
  for (;;) {
    const int stops = stop_requests_.load(std::memory_order_acquire);
    if (stops > 0 && !draining_) BeginDrain();
    if (stops > 1 && draining_ && stop_deadline_ns_ > now_ns_) {
      // Asked twice (a second Ctrl-C): do not wait for busy connections.
      stop_deadline_ns_ = now_ns_;
    }
    if (draining_) {
      if (stats_.open_connections == 0) break;
      if (now_ns_ >= stop_deadline_ns_) {
        if (!forced_) {
          forced_ = true;
          LOG(WARNING) << "stop timeout: closing " << stats_.open_connections
                       << " busy connections";
          for (const auto& c : connections_) CloseNow(c.get());
        } else if (now_ns_ >= stop_deadline_ns_ + kMaxWaitNanos) {
          break;  // cancellations did not come back; the ring's exit ends them
        }
      }
    }
    if (buffers_ != nullptr) buffers_->Publish();
    const int64_t wait_ns = NextWakeNanos();
    __kernel_timespec timeout;
    timeout.tv_sec = wait_ns / 1000000000;
    timeout.tv_nsec = wait_ns % 1000000000;
    io_uring_cqe* first = nullptr;
    int ret =
        io_uring_submit_and_wait_timeout(ring_->get(), &first, 1, &timeout, nullptr);
    if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EBUSY &&
        ret != -EAGAIN) {
      return ErrnoStatus(-ret, "io_uring_submit_and_wait_timeout",
                         "waiting for completions");
    }
    now_ns_ = NowNanos();
    // Walk every completion, advance once.
    unsigned head;
    unsigned seen = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(ring_->get(), head, cqe) {
      Dispatch(*cqe);
      ++seen;
    }
    io_uring_cq_advance(ring_->get(), seen);
    ExpireTimers();
  }
  // Hand the last closes and cancellations to the kernel before returning.
  io_uring_submit(ring_->get());
  return absl::OkStatus();
}

}  // namespace hello
}  // namespace ddv
