// ConnectionIo: the per-connection state machine of ddv_hello's ring. Each
// connection has at most one recv and one send in flight; a slot is reused
// only after both have completed, so no completion reaches the wrong
// connection. After every event Drive() decides, in one place, what to
// parse, what to send, whether the connection ends, and whether to read.
#include "src/hello/connection_io.h"

#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"
#include "glog/logging.h"
#include "src/hello/ring_ops.h"
#include "src/hello/tls_pump.h"

namespace ddv {
namespace hello {
namespace {

constexpr size_t kSingleShotRecvBytes = 16 * 1024;

// True when the socket's receive queue is empty, so close() sends a FIN and
// not an RST.
bool NothingUnread(int fd) {
  int unread = 0;
  return ioctl(fd, FIONREAD, &unread) == 0 && unread == 0;
}

enum class ConnState : uint8_t {
  kOpen,       // reading requests, writing responses
  kLingering,  // last response sent, write side shut: discarding input
  kClosed,     // waiting for its in-flight recv/send to end
  kFree,       // slot on the free list
};

}  // namespace

// On the idle or the linger deadline list (or neither) through DeadlineNode.
struct ConnectionIo::Connection : DeadlineNode {
  explicit Connection(const ResponderContext* context) : http(context) {}

  uint32_t index = 0;
  UniqueFd fd;
  ConnState state = ConnState::kFree;

  // In-flight operations: a slot is reused only when none is left.
  bool recv_armed = false;
  bool recv_cancelled = false;
  bool send_armed = false;
  bool sending_filler = false;  // the send in flight is from StreamBlock()

  bool read_closed = false;     // the client sent FIN (or reset)
  uint64_t skip_remaining = 0;  // PROXY header bytes still to discard

  // The send in flight: out_inflight from inflight_sent on (a short send
  // continues from there).
  std::string out_inflight;
  size_t inflight_sent = 0;

  std::unique_ptr<char[]> recv_buffer;  // single-shot recv mode only

  HttpResponder http;
  // TLS connections: received ciphertext goes into the pump, decrypted
  // requests into `http`; its answers are encrypted into out_inflight at
  // send time.
  TlsPump tls;

  void Reset(UniqueFd new_fd, ConnectionInfo info) {
    fd = std::move(new_fd);
    state = ConnState::kOpen;
    recv_armed = recv_cancelled = send_armed = sending_filler = false;
    read_closed = false;
    skip_remaining = info.skip_bytes;
    out_inflight.clear();
    inflight_sent = 0;
    tls.Reset();
    http.Reset(std::move(info), fd.get());
    ShrinkIfHuge(&out_inflight);
  }
};

ConnectionIo::ConnectionIo(const Options& options, uring::Ring* ring,
                           uring::BufferRing* buffers, const LoopClock* clock,
                           HttpServerStats* stats)
    : options_(options),
      ring_(ring),
      buffers_(buffers),
      clock_(clock),
      stats_(stats),
      idle_deadlines_(absl::ToInt64Nanoseconds(options.idle_timeout)),
      linger_deadlines_(absl::ToInt64Nanoseconds(options.linger_timeout)) {
  context_.pid = static_cast<int>(getpid());
  context_.max_head_bytes = options.max_head_bytes;
  context_.stats = stats;
  if (options.tls_context != nullptr) {
    tls_plaintext_.reset(new char[kTlsPlaintextBytes]);
  }
}

ConnectionIo::~ConnectionIo() = default;

void ConnectionIo::Open(UniqueFd fd, ConnectionInfo info) {
  const bool tls = info.tls;
  Connection* c = NewConnection(std::move(fd), std::move(info));
  if (!tls || StartTls(c)) Drive(c);
}

ConnectionIo::Connection* ConnectionIo::NewConnection(UniqueFd fd,
                                                      ConnectionInfo info) {
  Connection* c;
  if (!free_slots_.empty()) {
    c = connections_[free_slots_.back()].get();
    free_slots_.pop_back();
  } else {
    connections_.push_back(std::make_unique<Connection>(&context_));
    c = connections_.back().get();
    c->index = static_cast<uint32_t>(connections_.size() - 1);
  }
  c->Reset(std::move(fd), std::move(info));
  ++stats_->open_connections;
  idle_deadlines_.Insert(c, clock_->now_ns());
  return c;
}

void ConnectionIo::ArmRecv(Connection* c) {
  io_uring_sqe* sqe = ring_->GetSqe();
  if (buffers_ != nullptr) {
    io_uring_prep_recv_multishot(sqe, c->fd.get(), nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = buffers_->group_id();
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

void ConnectionIo::UpdateRecv(Connection* c) {
  if (c->state != ConnState::kOpen && c->state != ConnState::kLingering) {
    return;
  }
  // While output is backlogged, stop reading: the client's unread requests
  // then wait in the kernel and TCP flow control pushes back on it. After
  // the last response the input is only discarded, so reading goes on.
  bool want = c->state == ConnState::kLingering ||
              (!c->read_closed &&
               (c->http.close_after_flush() || !c->http.Backlogged()));
  if (want && !c->recv_armed) {
    ArmRecv(c);
  } else if (!want && c->recv_armed && buffers_ != nullptr &&
             !c->recv_cancelled) {
    SubmitCancel(ring_, Tag(kOpRecv, c->index));
    c->recv_cancelled = true;
  }
}

void ConnectionIo::OnRecv(uint32_t index, const io_uring_cqe& cqe) {
  Connection* c = connections_[index].get();
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
    if (c->state == ConnState::kOpen && !c->http.close_after_flush()) {
      Touch(c);
      absl::string_view chunk(data, static_cast<size_t>(result));
      // A PROXY header precedes the request or the TLS stream; it is
      // discarded here, inside the ring, not with a blocking read.
      size_t skip = static_cast<size_t>(
          std::min<uint64_t>(c->skip_remaining, chunk.size()));
      c->skip_remaining -= skip;
      chunk.remove_prefix(skip);
      if (!chunk.empty()) {
        if (c->tls.active()) {
          // Decrypted and parsed in Drive(), as far as output space allows.
          c->tls.FeedCiphertext(chunk);
        } else {
          c->http.Feed(chunk);
        }
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
  // Parsed in place, so the buffer goes back at once (published to the
  // kernel once per loop pass).
  if (buffer_id >= 0) buffers_->Recycle(static_cast<uint16_t>(buffer_id));
  Drive(c);
}

void ConnectionIo::OnSend(uint32_t index, int result) {
  Connection* c = connections_[index].get();
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
    c->http.StreamSent(static_cast<uint64_t>(result));
  } else {
    c->inflight_sent += static_cast<size_t>(result);
  }
  Drive(c);
}

// After any event: parse what can be parsed, send what is queued, decide
// whether the connection ends, and keep the recv armed (or not) to match.
void ConnectionIo::Drive(Connection* c) {
  if (c->state == ConnState::kOpen) {
    if (c->tls.active()) {
      PumpTls(c);
    } else {
      c->http.Resume();
    }
    if (!c->send_armed && c->state == ConnState::kOpen) StartSend(c);
    // Everything queued has been sent. Before a graceful close a TLS
    // connection first sends its close_notify (QueueTlsClose starts that
    // send; the close happens when it completes).
    if (!c->send_armed && c->state == ConnState::kOpen) {
      if (c->http.close_after_flush()) {
        if (!QueueTlsClose(c)) LingeringClose(c);
      } else if (c->read_closed) {
        // The client half-closed and every request is answered.
        if (!QueueTlsClose(c)) CloseNow(c);
      } else if (context_.draining && drain_idle_close_ns_ == 0 &&
                 c->http.requests() > 0 && !HasUnreadInput(c) &&
                 !c->http.InBody()) {
        // An idle keep-alive connection at stop, after the idle grace. One
        // that has not sent its first request yet gets to (bounded by the
        // stop timeout).
        if (!QueueTlsClose(c)) CloseNow(c);
      }
    }
  }
  UpdateRecv(c);
  MaybeFree(c);
}

bool ConnectionIo::StartTls(Connection* c) {
  absl::Status status = c->tls.Start(*options_.tls_context);
  if (!status.ok()) {
    LOG_EVERY_N(ERROR, 100) << status;
    CloseNow(c);
    return false;
  }
  return true;
}

// TLS input: finish the handshake, then decrypt and parse requests until
// the input runs out or output backs up (the rest stays encrypted in the
// session, and recv is paused by UpdateRecv, so memory stays bounded).
void ConnectionIo::PumpTls(Connection* c) {
  TlsPump& tls = c->tls;
  // After a fatal error only the alert is still to go out.
  if (tls.session().failed()) return;
  if (!tls.session().handshake_done()) {
    switch (tls.Handshake(&c->http)) {
      case tls::TlsSession::HandshakeStatus::kWantMore:
        return;
      case tls::TlsSession::HandshakeStatus::kError:
        // The alert (if OpenSSL made one) goes out, then the close.
        ++stats_->tls_handshake_failures;
        LOG_EVERY_N(WARNING, 100)
            << "TLS handshake failed with " << PeerOf(c->fd.get()) << ": "
            << tls.session().error() << " (" << google::COUNTER
            << " so far)";
        c->http.CloseAfterFlush(/*must_linger=*/false);
        return;
      case tls::TlsSession::HandshakeStatus::kDone:
        ++stats_->tls_handshakes;
        break;
    }
  }
  switch (tls.Decrypt(&c->http, tls_plaintext_.get(), kTlsPlaintextBytes)) {
    case TlsPump::DecryptStatus::kIdle:
      return;
    case TlsPump::DecryptStatus::kPeerClosed:
      c->read_closed = true;
      return;
    case TlsPump::DecryptStatus::kError:
      ++stats_->tls_errors;
      LOG_EVERY_N(WARNING, 100) << "TLS error with " << PeerOf(c->fd.get())
                                << ": " << tls.session().error();
      c->http.CloseAfterFlush(/*must_linger=*/true);
      return;
  }
}

// Starts sending close_notify once before a graceful close; true while that
// send is in flight (the caller closes when it completes).
bool ConnectionIo::QueueTlsClose(Connection* c) {
  if (!c->tls.QueueClose()) return false;
  StartSend(c);
  return c->send_armed;
}

bool ConnectionIo::HasUnreadInput(const Connection* c) const {
  return c->http.HasUnparsedInput() || c->tls.HasBufferedInput();
}

void ConnectionIo::StartSend(Connection* c) {
  const char* data;
  size_t size;
  if (c->tls.active() && c->inflight_sent >= c->out_inflight.size()) {
    // Encrypt what is queued (or the next piece of a /bytes/N body) and send
    // it after whatever the session produced before it (handshake flights,
    // tickets), all in wire order.
    c->out_inflight.clear();
    c->inflight_sent = 0;
    absl::Status status = c->tls.Encrypt(&c->http, &c->out_inflight);
    if (!status.ok()) {
      LOG_EVERY_N(WARNING, 100) << "TLS: " << status;
      CloseNow(c);
      return;
    }
    if (c->out_inflight.empty()) return;
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
    if (!c->http.output().empty()) {
      // Everything queued since the last send goes out as one: the answers
      // to all pipelined requests of a read share a send.
      c->http.TakeOutput(&c->out_inflight);
      data = c->out_inflight.data();
      size = c->out_inflight.size();
      c->sending_filler = false;
    } else if (c->http.stream_remaining() > 0) {
      absl::string_view chunk = c->http.NextStreamChunk(SIZE_MAX);
      data = chunk.data();
      size = chunk.size();
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

void ConnectionIo::LingeringClose(Connection* c) {
  // No linger is needed when the client already closed its side, or when it
  // asked for the close (Connection: close, HTTP/1.0) and has nothing more
  // in flight, or when we are stopping and cannot wait for every client's
  // FIN: with nothing unread, close() sends a FIN, not an RST. This is
  // nginx's lingering_close heuristic; it saves a wake-up per connection
  // for clients that close after each request.
  if (c->read_closed ||
      ((context_.draining || (!c->http.must_linger() && !HasUnreadInput(c) &&
                              !c->http.InBody())) &&
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
  c->http.DropInput();
  linger_deadlines_.Insert(c, clock_->now_ns());
}

void ConnectionIo::CloseNow(Connection* c) {
  if (c->state == ConnState::kClosed || c->state == ConnState::kFree) return;
  c->state = ConnState::kClosed;
  DeadlineList::Remove(c);
  if (c->recv_armed && !c->recv_cancelled) {
    SubmitCancel(ring_, Tag(kOpRecv, c->index));
    c->recv_cancelled = true;
  }
  // A send blocked on a client that stopped reading.
  if (c->send_armed) SubmitCancel(ring_, Tag(kOpSend, c->index));
  MaybeFree(c);
}

void ConnectionIo::MaybeFree(Connection* c) {
  if (c->state != ConnState::kClosed || c->recv_armed || c->send_armed) return;
  // Closing through the ring batches the close with the other submissions.
  SubmitClose(ring_, std::move(c->fd));
  c->state = ConnState::kFree;
  c->http.Release();
  c->tls.Reset();  // its SSL and buffers go now, not at the slot's reuse
  free_slots_.push_back(c->index);
  --stats_->open_connections;
}

void ConnectionIo::Touch(Connection* c) {
  idle_deadlines_.Refresh(c, clock_->now_ns());
}

void ConnectionIo::BeginDrain() {
  context_.draining = true;
  const int64_t grace = absl::ToInt64Nanoseconds(options_.drain_idle_grace);
  drain_idle_close_ns_ = grace > 0 ? clock_->now_ns() + grace : 0;
  DriveAll();
}

void ConnectionIo::DriveAll() {
  for (const auto& c : connections_) {
    if (c->state == ConnState::kOpen) {
      Drive(c.get());
    } else if (c->state == ConnState::kLingering &&
               NothingUnread(c->fd.get())) {
      CloseNow(c.get());  // see LingeringClose
    }
  }
}

void ConnectionIo::CloseAll() {
  for (const auto& c : connections_) CloseNow(c.get());
}

void ConnectionIo::ExpireDeadlines() {
  const int64_t now = clock_->now_ns();
  if (drain_idle_close_ns_ != 0 && now >= drain_idle_close_ns_) {
    // The idle grace is over: what is still idle closes (Drive decides).
    drain_idle_close_ns_ = 0;
    DriveAll();
  }
  // CloseNow takes each off its list, so these loops end.
  while (DeadlineNode* node = idle_deadlines_.Expired(now)) {
    ++stats_->idle_timeouts;
    CloseNow(static_cast<Connection*>(node));
  }
  while (DeadlineNode* node = linger_deadlines_.Expired(now)) {
    CloseNow(static_cast<Connection*>(node));
  }
}

int64_t ConnectionIo::NextDeadline(int64_t limit) const {
  int64_t next = limit;
  if (idle_deadlines_.head() != nullptr) {
    next = std::min(next, idle_deadlines_.head()->deadline_ns);
  }
  if (linger_deadlines_.head() != nullptr) {
    next = std::min(next, linger_deadlines_.head()->deadline_ns);
  }
  if (drain_idle_close_ns_ != 0) next = std::min(next, drain_idle_close_ns_);
  return next;
}

}  // namespace hello
}  // namespace ddv
