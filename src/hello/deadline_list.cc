// DeadlineList links and unlinks; LoopClock reads the coarse clock.
#include "src/hello/deadline_list.h"

#include <time.h>

namespace ddv {
namespace hello {

int64_t LoopClock::Update() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  now_ns_ = int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
  return now_ns_;
}

void DeadlineList::Insert(DeadlineNode* node, int64_t now_ns) {
  Remove(node);
  // Every entry has the same timeout, so the newest deadline is the latest.
  node->deadline_ns = now_ns + timeout_ns_;
  node->deadline_list = this;
  node->deadline_prev = tail_;
  node->deadline_next = nullptr;
  if (tail_ != nullptr) {
    tail_->deadline_next = node;
  } else {
    head_ = node;
  }
  tail_ = node;
}

void DeadlineList::Remove(DeadlineNode* node) {
  DeadlineList* list = node->deadline_list;
  if (list == nullptr) return;
  if (node->deadline_prev != nullptr) {
    node->deadline_prev->deadline_next = node->deadline_next;
  } else {
    list->head_ = node->deadline_next;
  }
  if (node->deadline_next != nullptr) {
    node->deadline_next->deadline_prev = node->deadline_prev;
  } else {
    list->tail_ = node->deadline_prev;
  }
  node->deadline_list = nullptr;
  node->deadline_prev = node->deadline_next = nullptr;
}

}  // namespace hello
}  // namespace ddv
