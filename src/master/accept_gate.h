// AcceptGate: decides how each listener accepts, so the master never takes a
// connection it has no slot for. At the connection limit (or out of fds)
// accepts stop and new clients wait in the kernel's listen backlog, as with
// nginx; they are accepted again as slots free. Pure bookkeeping: the master
// submits the accepts and cancels it asks for, and feeds back completions.
//
// Why three modes: a multishot accept takes everything queued at each
// wake-up (the kernel loops until the backlog is empty), so it is used only
// with room to spare for the backlog it may find. Near the limit, and while
// the backlog is unknown (at start, after a pause), each listener has one
// single-shot accept at a time, whose completion says how many connections
// still wait: at most one connection per listener arrives after the table
// filled. Those few are held by the master, never reset (Master::OnAccept).
#ifndef DDV_SRC_MASTER_ACCEPT_GATE_H_
#define DDV_SRC_MASTER_ACCEPT_GATE_H_

#include <cstdint>
#include <vector>

namespace ddv {
namespace master {

class AcceptGate {
 public:
  // What the master must submit for one listener this turn.
  enum class Action : uint8_t {
    kNone,
    kArmMultishot,
    kArmSingle,
    kCancel,  // the listener's one accept op (its tag names it)
  };

  // After EMFILE/ENFILE (the connection stays in the backlog): retry after
  // this long unless a connection closes first.
  static constexpr int64_t kOutOfFdsRetryNs = 100 * 1000000LL;

  // `capacity`: the connection table's size (--max_connections).
  AcceptGate(uint32_t listeners, uint32_t capacity);

  // Once per loop turn. `free`: slots neither in use nor promised to a held
  // connection (<= 0 at the limit). `stopping`: cancel everything for good.
  // Fills `actions` with one entry per listener, and marks what it asked for
  // as done (armed, or cancelling until the op's last completion).
  void Plan(int64_t free, bool stopping, int64_t now_ns,
            std::vector<Action>* actions);

  // A completion of `listener`'s accept. `more`: IORING_CQE_F_MORE (a
  // multishot goes on). `accepted`: it carries a socket. `queued`, read
  // only for a single-shot accept that took a socket: the connections still
  // in the listener's backlog (0 when IORING_CQE_F_SOCK_NONEMPTY is clear;
  // kernels before 6.10 never set it, and the gate then trusts the backlog
  // to be short).
  void OnCompletion(uint32_t listener, bool more, bool accepted,
                    uint32_t queued);
  // Accept failed for lack of fds (or kernel memory): pause every listener.
  void OnOutOfFds(int64_t now_ns);
  // A connection closed: an fd is free again, so an fd pause may end now.
  void OnConnectionClosed();

  // Shared: master shards accept on the listener's socket too
  // (docs/shards.md: no socket of its own per loop). Then never a
  // multishot, so each loop turn takes at most one connection: io_uring's
  // accept waits exclusively, and a multishot's wait stays first in the
  // socket's queue and would get every connection, while a single-shot one
  // re-queues behind the other loops' after each. An armed multishot is
  // cancelled at the next Plan.
  void set_shared(uint32_t listener, bool shared);
  bool shared(uint32_t listener) const {
    return listener < listeners_.size() && listeners_[listener].shared;
  }

  // A listener added by a reload; returns its index (the next one).
  uint32_t Add();
  // A listener a reload removed or replaced: its accept is cancelled and
  // never armed again.
  void Retire(uint32_t listener);
  // Nothing of `listener` is armed or being cancelled: no accept op of it
  // is left in flight (the cancelled one has completed).
  bool Idle(uint32_t listener) const;

  // Paused: nothing accepts because the table is full or fds ran out (a
  // graceful stop is not a pause).
  bool paused() const { return paused_; }
  // Times accepts paused, and the total time paused (the current pause
  // included), for ddv_accept_paused_total and _seconds_total.
  uint64_t pauses() const { return pauses_; }
  int64_t paused_ns(int64_t now_ns) const;
  // A multishot accept stays while at least this many slots are free; one
  // starts with twice this free beyond the backlog it will find.
  uint32_t headroom() const { return headroom_; }

  // `queued` when nothing says how long the backlog is.
  static constexpr uint32_t kQueuedUnknown = UINT32_MAX;

 private:
  enum class Mode : uint8_t { kOff, kSingle, kMultishot };
  struct Listener {
    Mode armed = Mode::kOff;
    bool cancelling = false;
    // The backlog's length as the last single-shot accept saw it. Unknown
    // at start (a new master may find a full backlog), after a pause and
    // after a multishot: a single-shot accept measures it first.
    uint32_t queued = kQueuedUnknown;
    bool retired = false;
    bool shared = false;  // set_shared
  };

  void SetPaused(bool paused, int64_t now_ns);
  void UpdateHeadroom();

  std::vector<Listener> listeners_;
  uint32_t capacity_;
  uint32_t headroom_ = 1;
  int64_t out_of_fds_until_ns_ = 0;
  bool paused_ = false;
  uint64_t pauses_ = 0;
  int64_t paused_since_ns_ = 0;
  int64_t paused_total_ns_ = 0;
};

}  // namespace master
}  // namespace ddv

#endif  // DDV_SRC_MASTER_ACCEPT_GATE_H_
