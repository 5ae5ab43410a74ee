// AcceptGate: one decision per listener per loop turn, from the free slots.
#include "src/master/accept_gate.h"

#include <algorithm>

namespace ddv {
namespace master {

AcceptGate::AcceptGate(uint32_t listeners, uint32_t capacity)
    : listeners_(listeners), capacity_(capacity) {
  UpdateHeadroom();
}

void AcceptGate::UpdateHeadroom() {
  // A multishot accept may take a burst in one wake-up: keep it for when a
  // sixteenth of the table (at least one slot per accepting listener) is
  // free.
  const uint32_t accepting = std::count_if(
      listeners_.begin(), listeners_.end(),
      [](const Listener& l) { return !l.retired; });
  headroom_ = std::max<uint32_t>(std::max(accepting, 1u), capacity_ / 16);
}

uint32_t AcceptGate::Add() {
  listeners_.emplace_back();
  UpdateHeadroom();
  return listeners_.size() - 1;
}

void AcceptGate::Retire(uint32_t listener) {
  if (listener >= listeners_.size()) return;
  listeners_[listener].retired = true;
  UpdateHeadroom();
}

void AcceptGate::set_shared(uint32_t listener, bool shared) {
  if (listener >= listeners_.size()) return;
  Listener& l = listeners_[listener];
  // A shared listener's backlog is not measured (OnAccept): measure again.
  if (l.shared != shared) l.queued = kQueuedUnknown;
  l.shared = shared;
}

bool AcceptGate::Idle(uint32_t listener) const {
  return listener < listeners_.size() &&
         listeners_[listener].armed == Mode::kOff &&
         !listeners_[listener].cancelling;
}

void AcceptGate::Plan(int64_t free, bool stopping, int64_t now_ns,
                      std::vector<Action>* actions) {
  const bool out_of_fds = now_ns < out_of_fds_until_ns_;
  SetPaused(!stopping && (out_of_fds || free <= 0), now_ns);
  actions->assign(listeners_.size(), Action::kNone);
  for (size_t l = 0; l < listeners_.size(); ++l) {
    Listener& listener = listeners_[l];
    // One accept op per listener at a time: a new one waits for the last
    // completion of the one being cancelled, so a cancel (which names the
    // listener's tag) can never hit the wrong op.
    if (listener.cancelling) continue;
    Mode want = Mode::kSingle;
    if (stopping || paused_ || listener.retired) {
      want = Mode::kOff;
    } else if (listener.shared) {
      want = Mode::kSingle;
    } else if (listener.armed == Mode::kMultishot
                   ? free >= headroom_
                   : listener.queued != kQueuedUnknown &&
                         free >= 2 * static_cast<int64_t>(headroom_) +
                                     listener.queued) {
      want = Mode::kMultishot;
    }
    if (want == listener.armed) continue;
    switch (listener.armed) {
      case Mode::kOff:
        (*actions)[l] = want == Mode::kMultishot ? Action::kArmMultishot
                                                 : Action::kArmSingle;
        listener.armed = want;
        break;
      case Mode::kSingle:
        // A pending single accept takes at most one more connection: it is
        // cancelled only to stop, and left to complete otherwise.
        if (want == Mode::kOff) {
          (*actions)[l] = Action::kCancel;
          listener.cancelling = true;
        }
        break;
      case Mode::kMultishot:
        (*actions)[l] = Action::kCancel;
        listener.cancelling = true;
        break;
    }
  }
}

void AcceptGate::OnCompletion(uint32_t listener, bool more, bool accepted,
                              uint32_t queued) {
  if (listener >= listeners_.size()) return;
  Listener& l = listeners_[listener];
  if (more) return;  // a multishot goes on
  // A multishot that ended says nothing about the backlog it leaves.
  l.queued = l.armed == Mode::kSingle && accepted ? queued : kQueuedUnknown;
  l.armed = Mode::kOff;
  l.cancelling = false;
}

void AcceptGate::OnOutOfFds(int64_t now_ns) {
  out_of_fds_until_ns_ = now_ns + kOutOfFdsRetryNs;
}

void AcceptGate::OnConnectionClosed() { out_of_fds_until_ns_ = 0; }

void AcceptGate::SetPaused(bool paused, int64_t now_ns) {
  if (paused == paused_) return;
  paused_ = paused;
  if (paused) {
    ++pauses_;
    paused_since_ns_ = now_ns;
    // Clients queue while nothing accepts: resume one at a time.
    for (Listener& l : listeners_) l.queued = kQueuedUnknown;
  } else {
    paused_total_ns_ += now_ns - paused_since_ns_;
  }
}

int64_t AcceptGate::paused_ns(int64_t now_ns) const {
  return paused_total_ns_ + (paused_ ? now_ns - paused_since_ns_ : 0);
}

}  // namespace master
}  // namespace ddv
