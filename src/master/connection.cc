// ConnectionTable: LIFO free list, so hot slots stay in cache.
#include "src/master/connection.h"

#include <sys/socket.h>

#include <algorithm>

#include "src/master/clock.h"

namespace ddv {
namespace master {

absl::string_view ConnStateName(ConnState state) {
  switch (state) {
    case ConnState::kFree:
      return "free";
    case ConnState::kPeeking:
      return "peeking";
    case ConnState::kRouted:
      return "routed";
    case ConnState::kWaitingForWorker:
      return "waiting_for_worker";
    case ConnState::kQueued:
      return "queued";
    case ConnState::kSending:
      return "sending";
    case ConnState::kSent:
      return "sent";
    case ConnState::kRefusing:
      return "refusing";
    case ConnState::kClosing:
      return "closing";
  }
  return "unknown";
}

ConnectionTable::ConnectionTable(uint32_t capacity) : slots_(capacity) {
  free_.reserve(capacity);
  for (uint32_t i = capacity; i > 0; --i) free_.push_back(i - 1);
}

Connection* ConnectionTable::Allocate(uint32_t* index) {
  if (free_.empty()) return nullptr;
  *index = free_.back();
  free_.pop_back();
  ++in_use_;
  return &slots_[*index];
}

void ConnectionTable::Free(uint32_t index) {
  Connection& c = slots_[index];
  uint32_t generation = c.generation + 1;
  c = Connection();
  c.generation = generation;
  free_.push_back(index);
  --in_use_;
}

Connection* ConnectionTable::Find(uint64_t id) {
  uint32_t index = static_cast<uint32_t>(id);
  if (index >= slots_.size()) return nullptr;
  Connection& c = slots_[index];
  if (c.state == ConnState::kFree ||
      c.generation != static_cast<uint32_t>(id >> 32)) {
    return nullptr;
  }
  return &c;
}

void Connection::CountDeferAcceptHold(int64_t hold_ns) {
  if (deadline_shortened) return;
  deadline_shortened = true;
  deadline = ToTimespecNs(
      std::max(FromTimespecNs(deadline) - hold_ns, accept_ns + 1000000));
}

void Connection::RestoreRcvlowat() {
  if (!rcvlowat_raised) return;
  const int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one));
  rcvlowat_raised = false;
}

}  // namespace master
}  // namespace ddv
