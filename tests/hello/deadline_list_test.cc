// DeadlineList: appends keep it sorted, Refresh moves only when the deadline
// moves, Remove works anywhere in the list and between lists, and Expired
// looks at the head only. LoopClock moves forward.
#include "src/hello/deadline_list.h"

#include <vector>

#include "gtest/gtest.h"

namespace ddv {
namespace hello {
namespace {

std::vector<DeadlineNode*> Walk(const DeadlineList& list) {
  std::vector<DeadlineNode*> out;
  for (DeadlineNode* n = list.head(); n != nullptr; n = n->deadline_next) {
    out.push_back(n);
  }
  return out;
}

TEST(DeadlineListTest, InsertAppendsInDeadlineOrder) {
  DeadlineList list(100);
  DeadlineNode a, b, c;
  list.Insert(&a, 0);
  list.Insert(&b, 10);
  list.Insert(&c, 20);
  EXPECT_EQ(Walk(list), (std::vector<DeadlineNode*>{&a, &b, &c}));
  EXPECT_EQ(a.deadline_ns, 100);
  EXPECT_EQ(c.deadline_ns, 120);
  // Re-inserting moves to the back with the new deadline.
  list.Insert(&a, 30);
  EXPECT_EQ(Walk(list), (std::vector<DeadlineNode*>{&b, &c, &a}));
  EXPECT_EQ(a.deadline_ns, 130);
}

TEST(DeadlineListTest, RefreshSkipsTheRelinkWhenNothingMoves) {
  DeadlineList list(100);
  DeadlineNode a, b;
  list.Insert(&a, 5);
  list.Insert(&b, 5);
  list.Refresh(&a, 5);  // same tick: a stays first
  EXPECT_EQ(Walk(list), (std::vector<DeadlineNode*>{&a, &b}));
  list.Refresh(&a, 6);
  EXPECT_EQ(Walk(list), (std::vector<DeadlineNode*>{&b, &a}));
  EXPECT_EQ(a.deadline_ns, 106);
}

TEST(DeadlineListTest, RemoveFromAnywhereAndMoveBetweenLists) {
  DeadlineList idle(100);
  DeadlineList linger(5);
  DeadlineNode a, b, c;
  idle.Insert(&a, 0);
  idle.Insert(&b, 0);
  idle.Insert(&c, 0);
  DeadlineList::Remove(&b);
  EXPECT_EQ(Walk(idle), (std::vector<DeadlineNode*>{&a, &c}));
  DeadlineList::Remove(&b);  // on no list: a no-op
  linger.Insert(&c, 1);  // leaves `idle` on the way
  EXPECT_EQ(Walk(idle), (std::vector<DeadlineNode*>{&a}));
  EXPECT_EQ(Walk(linger), (std::vector<DeadlineNode*>{&c}));
  EXPECT_EQ(c.deadline_list, &linger);
  // Refresh on a node of another list moves it.
  idle.Refresh(&c, 1);
  EXPECT_EQ(linger.head(), nullptr);
  EXPECT_EQ(Walk(idle), (std::vector<DeadlineNode*>{&a, &c}));
  DeadlineList::Remove(&a);
  DeadlineList::Remove(&c);
  EXPECT_EQ(idle.head(), nullptr);
  EXPECT_EQ(a.deadline_list, nullptr);
}

TEST(DeadlineListTest, ExpiredIsTheHeadOncePastItsDeadline) {
  DeadlineList list(100);
  DeadlineNode a, b;
  EXPECT_EQ(list.Expired(1000), nullptr);
  list.Insert(&a, 0);
  list.Insert(&b, 50);
  EXPECT_EQ(list.Expired(99), nullptr);
  EXPECT_EQ(list.Expired(100), &a);
  DeadlineList::Remove(&a);
  EXPECT_EQ(list.Expired(149), nullptr);
  EXPECT_EQ(list.Expired(150), &b);
}

TEST(LoopClockTest, UpdateMovesForward) {
  LoopClock clock;
  const int64_t first = clock.now_ns();
  EXPECT_GT(first, 0);
  EXPECT_GE(clock.Update(), first);
  EXPECT_EQ(clock.now_ns(), clock.Update());
}

}  // namespace
}  // namespace hello
}  // namespace ddv
