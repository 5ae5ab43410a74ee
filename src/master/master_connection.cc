// Master, connection path: accept → peek → sniff → route (then
// master_handoff.cc), or refuse with a lingering close. One handler per
// completion op; each connection op's handler starts with CompletedOp,
// which drops completions whose slot was reused.
#include <linux/sockios.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "glog/logging.h"
#include "src/base/socket_address.h"
#include "src/master/head_reading.h"
#include "src/master/listener_socket.h"
#include "src/master/master.h"
#include "src/master/proxy_source.h"
#include "src/master/silent_peeks.h"
#include "src/sniff/http_sniffer.h"
#include "src/sniff/proxy_protocol.h"
#include "src/sniff/tls_sniffer.h"

namespace ddv {
namespace master {
namespace {


// Bytes received and not read yet; -1 if the kernel will not say.
int UnreadBytes(int fd) {
  int bytes = 0;
  return ioctl(fd, SIOCINQ, &bytes) == 0 ? bytes : -1;
}

}  // namespace

void Master::AdmitHeld() {
  while (!held_.empty() && connections_.in_use() < connections_.capacity()) {
    HeldConnection held = std::move(held_.front());
    held_.pop_front();
    Admit(std::move(held.fd), held.listener,
          held.forwarded ? &*held.forwarded : nullptr);
  }
}

void Master::UpdateAccepts(int64_t now_ns) {
  const int64_t free = static_cast<int64_t>(connections_.capacity()) -
                       connections_.in_use() -
                       static_cast<int64_t>(held_.size());
  const bool was_paused = accept_gate_.paused();
  accept_gate_.Plan(free, stopping_, now_ns, &accept_actions_);
  if (accept_gate_.paused() != was_paused) {
    LOG(INFO) << (was_paused ? "accepting again" : "accepts paused") << ": "
              << connections_.in_use() << " of " << connections_.capacity()
              << " connections in use, " << held_.size() << " held";
  }
  for (uint32_t l = 0; l < accept_actions_.size(); ++l) {
    switch (accept_actions_[l]) {
      case AcceptGate::Action::kNone:
        break;
      case AcceptGate::Action::kArmMultishot:
        SubmitAccept(l, /*multishot=*/true);
        break;
      case AcceptGate::Action::kArmSingle:
        SubmitAccept(l, /*multishot=*/false);
        break;
      case AcceptGate::Action::kCancel:
        CancelAccept(l);
        break;
    }
  }
  CloseDrainedListeners();
}

void Master::SubmitAccept(uint32_t listener, bool multishot) {
  // Listener slots are never reused while the master runs: no generation.
  io_uring_sqe* sqe = Sqe(kOpAccept, listener);
  // SOCK_CLOEXEC: accepted sockets must never leak into spawned workers
  // except through a handoff. Blocking mode is kept: the worker gets the
  // socket as accept(2) would have given it.
  if (multishot) {
    io_uring_prep_multishot_accept(sqe, listeners_[listener].fd.get(), nullptr,
                                   nullptr, SOCK_CLOEXEC);
  } else {
    io_uring_prep_accept(sqe, listeners_[listener].fd.get(), nullptr, nullptr,
                         SOCK_CLOEXEC);
  }
}

void Master::CancelAccept(uint32_t listener) {
  // The gate keeps one accept op per listener, so its tag names exactly one.
  io_uring_sqe* sqe = Sqe(kOpCancel, listener);
  io_uring_prep_cancel64(sqe, uring::OpTag{kOpAccept, listener, 0}.Encode(), 0);
}

void Master::OnAccept(uint32_t listener, io_uring_cqe* cqe) {
  const bool accepted = cqe->res >= 0;
  const bool more = cqe->flags & IORING_CQE_F_MORE;
  // A single-shot accept (near the limit, or after a pause) tells the gate
  // how many connections still wait, so it re-arms a multishot only with
  // room for them. Multishot completions (MORE) cost no syscall.
  uint32_t queued = 0;
  if (accepted && !more && !accept_gate_.shared(listener) &&
      (cqe->flags & IORING_CQE_F_SOCK_NONEMPTY)) {
    const int64_t length = AcceptQueueLength(listeners_[listener].fd.get());
    queued = length < 0 ? AcceptGate::kQueuedUnknown
                        : static_cast<uint32_t>(length);
  }
  accept_gate_.OnCompletion(listener, more, accepted, queued);
  if (!accepted) {
    const int error = -cqe->res;
    if (error == ECANCELED) return;
    if (error == EMFILE || error == ENFILE || error == ENOBUFS ||
        error == ENOMEM) {
      // The kernel took no connection (the fd comes first): it waits in
      // the backlog. Re-arming at once would spin; the gate pauses until a
      // connection closes or a short retry.
      accept_gate_.OnOutOfFds(MonotonicNowNs());
    }
    ++counters_.accept_errors;
    LOG_EVERY_N(WARNING, 100)
        << "accept() failed on listener \"" << listeners_[listener].config.name
        << "\": " << strerror(error);
    return;
  }
  UniqueFd fd(cqe->res);
  ++counters_.connections_accepted;
  ++stats_.listener(listener).accepted;
  // A graceful stop routes what was accepted before its cancel took effect
  // as usual: the workers still run, and the stop waits for undecided
  // connections. So does a reload that retired this listener.
  TakeAccepted(std::move(fd), listener);
}

void Master::Admit(UniqueFd fd, uint32_t listener,
                   const Forwarded* forwarded) {
  const config::ListenerConfig& config = listeners_[listener].config;
  sockaddr_storage peer;
  if (config.proxy_protocol &&
      !PeerMaySendProxy(config, fd.get(), &peer)) {
    // Its PROXY header could claim any client address: not a byte of it is
    // read.
    ++counters_.proxy_untrusted;
    RecordRefusedAtAccept(listener, Outcome::kUntrustedProxy, peer);
    LOG_EVERY_N(WARNING, 100)
        << "listener \"" << config.name << "\": reset a connection from "
        << FormatSocketAddress(peer).value_or("an unknown address")
        << ", which is not in its proxy_protocol_from";
    ResetUnread(std::move(fd));
    return;
  }
  uint32_t index;
  Connection* c = connections_.Allocate(&index);
  CHECK(c != nullptr) << "Admit with the connection table full";
  c->fd = std::move(fd);
  c->listener = listener;
  ++stats_.listener(listener).pending;
  // A shard's connection keeps its accept time and its deadline, with the
  // TCP_DEFER_ACCEPT hold the shard counted against it.
  c->accept_ns = forwarded != nullptr ? forwarded->accept_ns : MonotonicNowNs();
  c->deadline_shortened = forwarded != nullptr && forwarded->peeked;
  c->deadline = ToTimespecNs(
      forwarded != nullptr && forwarded->deadline_ns != 0
          ? forwarded->deadline_ns
          : c->accept_ns + config_.master.peek_timeout_ms * 1000000LL);
  if (forwarded != nullptr && forwarded->timed_out) {  // the shard's deadline
    c->silent = forwarded->silent;
    ++counters_.peek_timeout;
    RecordOutcome(index, Outcome::kTimeout);
    Refuse(index, Refusal::kTimeout);
    return;
  }
  if (!config::IsPeeked(config)) {  // `tcp` without PROXY
    Route(index, RouteOn(listener, "").site);
    return;
  }
  c->state = ConnState::kPeeking;
  // The first peek does not wait: if nothing is queued, TCP_DEFER_ACCEPT's
  // timer released the connection, and the deadline is shortened by that
  // hold (OnPeek) so an idle peer is closed on time.
  SubmitPeek(index, /*dont_wait=*/true);
}

Connection* Master::CompletedOp(const uring::OpTag& tag) {
  Connection* c = tag.index < connections_.capacity()
                      ? &connections_.at(tag.index)
                      : nullptr;
  // A slot is freed only when none of its ops is in flight, so this should
  // never match; if it does, the old op must not touch the new occupant.
  if (c == nullptr || c->state == ConnState::kFree ||
      !tag.Matches(c->generation) || c->inflight == 0) {
    ++counters_.stale_completions;
    VLOG(1) << "stale completion: op " << int{tag.op} << " slot " << tag.index
            << " generation " << tag.generation;
    return nullptr;
  }
  --c->inflight;
  return c;
}

void Master::SubmitPeek(uint32_t index, bool dont_wait) {
  Connection& c = connections_.at(index);
  ring_->Reserve(2);
  io_uring_sqe* sqe = Sqe(kOpPeek, index, c.generation);
  int flags = MSG_PEEK | (dont_wait ? MSG_DONTWAIT : 0);
  if (c.big) {
    io_uring_prep_recv(sqe, c.fd.get(), c.big.get(), c.big_size, flags);
  } else {
    io_uring_prep_recv(sqe, c.fd.get(), nullptr, peek_buffers_->buffer_size(),
                       flags);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = kPeekBufferGroup;
  }
  ++c.inflight;
  if (dont_wait) return;
  silent_.ArmDeadline(c, index, sqe, [&] {
    return Sqe(kOpPeekTimeout, index, c.generation);
  });
}

void Master::OnPeek(const uring::OpTag& tag, io_uring_cqe* cqe) {
  const bool has_buffer = cqe->flags & IORING_CQE_F_BUFFER;
  const uint16_t buffer_id = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
  Connection* c = CompletedOp(tag);
  if (c == nullptr || c->state != ConnState::kPeeking) {
    // The kernel picked a buffer all the same: it must go back.
    if (has_buffer) peek_buffers_->Recycle(buffer_id);
    if (c != nullptr) MaybeFree(tag.index);
    return;
  }
  const uint32_t index = tag.index;
  int res = cqe->res;
  c->silent_wait = false;
  if (c->expired) {
    // Shut for reading at its deadline (SilentPeeks::Expire): a timeout,
    // whatever the peek found. Bytes that came at the last moment are
    // unread, so they get the lingering close.
    if (has_buffer) peek_buffers_->Recycle(buffer_id);
    c->silent = res <= 0;
    ++counters_.peek_timeout;
    RecordOutcome(index, Outcome::kTimeout);
    Refuse(index, Refusal::kTimeout);
    return;
  }
  if (res == -EAGAIN) {
    // Nothing queued at accept: the kernel held this connection for the
    // whole TCP_DEFER_ACCEPT period. Count that hold against the deadline.
    c->CountDeferAcceptHold(options_.listen.defer_accept_seconds *
                            1000000000LL);
    SubmitPeek(index, false);
    return;
  }
  if (res == -ECANCELED) {
    c->silent = c->seen == 0;
    ++counters_.peek_timeout;
    RecordOutcome(index, Outcome::kTimeout);
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
    RecordOutcome(index, Outcome::kClosed);
    Close(index);
    return;
  }
  const char* data =
      has_buffer ? peek_buffers_->Buffer(buffer_id) : c->big.get();
  uint32_t capacity = has_buffer ? peek_buffers_->buffer_size() : c->big_size;
  absl::string_view prefix(data, res);
  if (static_cast<uint32_t>(res) <= c->seen) {
    // POLL_FIRST completed without new bytes: only EOF (or an error) makes
    // the socket readable below SO_RCVLOWAT. The peer gave up mid-head.
    if (has_buffer) peek_buffers_->Recycle(buffer_id);
    ++counters_.closed_before_decision;
    RecordOutcome(index, Outcome::kClosed);
    Close(index);
    return;
  }
  const uint32_t listener = c->listener;
  bool decided = Decide(index, prefix);
  if (has_buffer) peek_buffers_->Recycle(buffer_id);
  if (decided) {
    stats_.listener(listener).peek_bytes.Observe(res);
    return;
  }

  const uint32_t max_bytes = config_.master.max_peek_bytes;
  if (static_cast<uint32_t>(res) >= max_bytes) {
    ++counters_.too_large;
    stats_.listener(listener).peek_bytes.Observe(res);
    RecordOutcome(index, Outcome::kTooLarge);
    Refuse(index, Refusal::kTooLarge);
    return;
  }
  if (static_cast<uint32_t>(res) == capacity) {
    // The prefix filled its buffer: grow (doubling, capped) and peek again.
    uint32_t size =
        std::min<uint32_t>(std::max(capacity * 2, 8192u), max_bytes);
    c->big.reset(new char[size]);
    c->big_size = size;
    ++counters_.peek_grown;
  }
  c->seen = res;
  int lowat = res + 1;
  if (setsockopt(c->fd.get(), SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat)) <
      0) {
    PLOG_EVERY_N(WARNING, 1000) << "setsockopt(SO_RCVLOWAT) failed";
    RecordOutcome(index, Outcome::kClosed);
    Close(index);
    return;
  }
  c->rcvlowat_raised = true;
  SubmitPeek(index, false);
}

// A link timeout's own completion: -ETIME when it fired (the peek then
// completes with -ECANCELED, handled in OnPeek), -ECANCELED or -ENOENT
// when the peek finished first. Only the bookkeeping is left.
void Master::OnPeekTimeout(const uring::OpTag& tag, io_uring_cqe* cqe) {
  if (CompletedOp(tag) != nullptr) MaybeFree(tag.index);
}

bool Master::Decide(uint32_t index, absl::string_view prefix) {
  Connection& c = connections_.at(index);
  HeadReading head;
  ReadHead(listeners_[c.listener].config, prefix,
           config_.master.max_peek_bytes, &c, &head);
  if (head.result == HeadReading::Result::kNeedMore) return false;
  // Counted once, for the read that decided.
  head.flags.AddTo(counters_);
  counters_.proxy_tlvs_dropped += head.proxy_tlvs_dropped;
  if (head.result == HeadReading::Result::kRoute) {
    Route(index, RouteOn(c.listener, head.name, head.alpn()).site);
  } else if (head.bad_proxy_header) {
    ++counters_.malformed;
    RecordOutcome(index, Outcome::kMalformed);
    Refuse(index, Refusal::kMalformed);
  } else {
    RefuseUnparsable(index, head.refusal);
  }
  return true;
}

// The three sniffer answers that end in a refusal, counted apart.
void Master::RefuseUnparsable(uint32_t index, sniff::SniffStatus status) {
  switch (status) {
    case sniff::SniffStatus::kTooLarge:
      ++counters_.too_large;
      RecordOutcome(index, Outcome::kTooLarge);
      Refuse(index, Refusal::kTooLarge);
      return;
    case sniff::SniffStatus::kNotThisProtocol:
      ++counters_.not_this_protocol;
      RecordOutcome(index, Outcome::kNotThisProtocol);
      Refuse(index, Refusal::kMalformed);
      return;
    case sniff::SniffStatus::kMalformed:
      ++counters_.malformed;
      RecordOutcome(index, Outcome::kMalformed);
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
    LOG_EVERY_N(INFO, 1000)
        << "no site for \"" << c.host.view() << "\" on listener \""
        << listeners_[c.listener].config.name << "\"";
    RecordOutcome(index, Outcome::kNoSite);
    Refuse(index, Refusal::kNoSite);
    return;
  }
  c.RestoreRcvlowat();
  if (!AdmitToSite(index, site)) {  // its site is at a cap: refused
    c.site = site;  // counted against it
    RecordOutcome(index, Outcome::kSiteLimit);
    return;
  }
  c.site = site;
  c.state = ConnState::kRouted;
  c.big.reset();
  c.big_size = 0;
  QueueForWorker(index);
}

void Master::Refuse(uint32_t index, Refusal refusal) {
  Connection& c = connections_.at(index);
  ReleaseSite(c);
  c.RestoreRcvlowat();
  c.state = ConnState::kRefusing;
  switch (listeners_[c.listener].config.protocol) {
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
  SubmitRefusal(index);
}

void Master::SubmitRefusal(uint32_t index) {
  Connection& c = connections_.at(index);
  io_uring_sqe* sqe = Sqe(kOpRefuseSend, index, c.generation);
  // MSG_MORE holds the answer back until the shutdown(SHUT_WR) that always
  // follows its send adds the FIN to it: one segment and one ACK instead
  // of two of each. With thousands of idle peers timing out that was a
  // fifth of the master's CPU for them.
  io_uring_prep_send(sqe, c.fd.get(), c.refusal.data(), c.refusal.size(),
                     MSG_NOSIGNAL | MSG_MORE);
  ++c.inflight;
}

void Master::OnRefuseSent(const uring::OpTag& tag, io_uring_cqe* cqe) {
  Connection* c = CompletedOp(tag);
  if (c == nullptr) return;
  const uint32_t index = tag.index;
  if (c->state != ConnState::kRefusing) {
    MaybeFree(index);
    return;
  }
  if (cqe->res < 0) {
    Close(index);
    return;
  }
  if (static_cast<size_t>(cqe->res) < c->refusal.size()) {
    // A short send of a few hundred bytes to a fresh socket is rare but
    // legal: send the rest.
    c->refusal.remove_prefix(cqe->res);
    SubmitRefusal(index);
    return;
  }
  // shutdown(2) here, not IORING_OP_SHUTDOWN: the ring always runs that op
  // in an io-wq thread (a thread wake-up and two context switches per
  // refusal), and a TCP shutdown only queues a FIN: it never blocks. It
  // sends the corked answer with it now, before any close: a close that
  // found unread bytes would reset the connection and drop what was
  // still queued.
  if (shutdown(c->fd.get(), SHUT_WR) < 0) {
    Close(index);
    return;
  }
  if (c->silent && UnreadBytes(c->fd.get()) == 0) {
    // A peer that sent nothing before the deadline has no request bytes
    // for a lingering close to drain: close now. (15k idle connections
    // timing out cost the master a linger each: a recv, its timeout, and a
    // wake-up for the peer's EOF.)
    Close(index);
    return;
  }
  c->deadline = ToTimespecNs(MonotonicNowNs() +
                             absl::ToInt64Nanoseconds(options_.linger));
  SubmitLinger(index);
}

// Closing with unread request bytes would make the kernel send RST, and the
// client could lose the response: read and discard until EOF or the linger
// deadline.
void Master::SubmitLinger(uint32_t index) {
  Connection& c = connections_.at(index);
  ring_->Reserve(2);
  io_uring_sqe* sqe = Sqe(kOpLingerRecv, index, c.generation);
  io_uring_prep_recv(sqe, c.fd.get(), linger_scratch_.data(),
                     linger_scratch_.size(), 0);
  sqe->flags |= IOSQE_IO_LINK;
  io_uring_sqe* timeout = Sqe(kOpLingerTimeout, index, c.generation);
  io_uring_prep_link_timeout(timeout, &c.deadline, IORING_TIMEOUT_ABS);
  c.inflight += 2;
}

void Master::OnLingerRecv(const uring::OpTag& tag, io_uring_cqe* cqe) {
  Connection* c = CompletedOp(tag);
  if (c == nullptr) return;
  if (c->state != ConnState::kRefusing) {
    MaybeFree(tag.index);
  } else if (cqe->res > 0) {
    SubmitLinger(tag.index);
  } else {
    Close(tag.index);  // EOF, error, or cancelled by the linger timeout
  }
}

// The linger deadline's own completion; OnLingerRecv sees its effect.
void Master::OnLingerTimeout(const uring::OpTag& tag, io_uring_cqe* cqe) {
  if (CompletedOp(tag) != nullptr) MaybeFree(tag.index);
}

void Master::Close(uint32_t index) {
  Connection& c = connections_.at(index);
  ReleaseSite(c);
  if (c.state == ConnState::kClosing) return;
  c.state = ConnState::kClosing;
  if (c.fd) {
    // The ring closes it: the slot gives up the fd, and is freed once this
    // and any op still in flight (a link timeout) have completed.
    io_uring_sqe* sqe = Sqe(kOpClose, index, c.generation);
    io_uring_prep_close(sqe, c.fd.Release());
    ++c.inflight;
    return;
  }
  MaybeFree(index);
}

void Master::OnClosed(const uring::OpTag& tag, io_uring_cqe* cqe) {
  if (CompletedOp(tag) != nullptr) MaybeFree(tag.index);
}

void Master::MaybeFree(uint32_t index) {
  Connection& c = connections_.at(index);
  if (c.state == ConnState::kClosing && c.inflight == 0) {
    --stats_.listener(c.listener).pending;
    connections_.Free(index);
    accept_gate_.OnConnectionClosed();
  }
}

}  // namespace master
}  // namespace ddv
