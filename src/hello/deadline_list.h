// Deadlines for ddv_hello's connections: the loop's coarse clock, and an
// intrusive list whose entries all share one timeout, so appending keeps it
// sorted by deadline and expiry only ever looks at the head (nginx keeps a
// tree because its timeouts vary; ours do not).
#ifndef DDV_SRC_HELLO_DEADLINE_LIST_H_
#define DDV_SRC_HELLO_DEADLINE_LIST_H_

#include <cstdint>

namespace ddv {
namespace hello {

// The time the loop last woke. Deadlines only need millisecond precision,
// and CLOCK_MONOTONIC_COARSE is a plain memory read in the vDSO.
class LoopClock {
 public:
  LoopClock() { Update(); }
  int64_t Update();
  int64_t now_ns() const { return now_ns_; }

 private:
  int64_t now_ns_ = 0;
};

class DeadlineList;

// Embedded in (inherited by) whatever waits for a deadline; on at most one
// list at a time.
struct DeadlineNode {
  DeadlineList* deadline_list = nullptr;
  DeadlineNode* deadline_prev = nullptr;
  DeadlineNode* deadline_next = nullptr;
  int64_t deadline_ns = 0;
};

class DeadlineList {
 public:
  explicit DeadlineList(int64_t timeout_ns) : timeout_ns_(timeout_ns) {}
  DeadlineList(const DeadlineList&) = delete;
  DeadlineList& operator=(const DeadlineList&) = delete;

  // Sets `node`'s deadline to now + timeout and appends it, taking it off
  // any list it was on first.
  void Insert(DeadlineNode* node, int64_t now_ns);
  // Insert, except when the deadline would not move: within one tick of the
  // coarse clock the position would not change, so the relink is skipped.
  // Called on every read and send, hence inline.
  void Refresh(DeadlineNode* node, int64_t now_ns) {
    if (node->deadline_list == this &&
        node->deadline_ns == now_ns + timeout_ns_) {
      return;
    }
    Insert(node, now_ns);
  }
  // Takes `node` off its list; a no-op when it is on none.
  static void Remove(DeadlineNode* node);

  // The entry with the earliest deadline, or null.
  DeadlineNode* head() const { return head_; }
  // head() if its deadline has passed, else null.
  DeadlineNode* Expired(int64_t now_ns) const {
    return head_ != nullptr && head_->deadline_ns <= now_ns ? head_ : nullptr;
  }

 private:
  const int64_t timeout_ns_;
  DeadlineNode* head_ = nullptr;
  DeadlineNode* tail_ = nullptr;
};

}  // namespace hello
}  // namespace ddv

#endif  // DDV_SRC_HELLO_DEADLINE_LIST_H_
