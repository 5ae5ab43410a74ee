// SilentPeeks: deadline order (out-of-order adds included), the wait it
// gives the loop, and what an expiry does to a real socket: shut for
// reading, so a waiting recv ends, and only for a connection still silent.
#include "src/master/silent_peeks.h"

#include <sys/socket.h>
#include <unistd.h>

#include <utility>

#include "gtest/gtest.h"
#include "src/base/unique_fd.h"
#include "src/master/clock.h"

namespace ddv {
namespace master {
namespace {

constexpr int64_t kMs = 1000000;
constexpr int64_t kMaxWait = 100 * kMs;

class SilentPeeksTest : public ::testing::Test {
 protected:
  // A peeking connection whose deadline is `deadline_ns`, on one end of a
  // socket pair; the other end stays in `peers_`.
  uint32_t Peeking(int64_t deadline_ns) {
    int fds[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    uint32_t index;
    Connection* c = table_.Allocate(&index);
    EXPECT_NE(c, nullptr);
    c->fd = UniqueFd(fds[0]);
    c->state = ConnState::kPeeking;
    c->deadline = ToTimespecNs(deadline_ns);
    peers_.emplace_back(fds[1]);
    return index;
  }

  // Whether a recv on the connection ends at once with EOF (it was shut
  // for reading) rather than finding nothing yet.
  bool ShutForReading(uint32_t index) {
    char byte;
    return recv(table_.at(index).fd.get(), &byte, 1, MSG_DONTWAIT) == 0;
  }

  ConnectionTable table_{8};
  std::vector<UniqueFd> peers_;
  SilentPeeks silent_;
};

TEST_F(SilentPeeksTest, NothingIsDueBeforeItsDeadline) {
  const int64_t now = MonotonicNowNs();
  const uint32_t a = Peeking(now + 50 * kMs);
  silent_.Add(table_.at(a), a);
  EXPECT_TRUE(table_.at(a).silent_wait);
  const int64_t wait = silent_.Expire(now, kMaxWait, table_);
  EXPECT_EQ(wait, 50 * kMs);
  EXPECT_FALSE(table_.at(a).expired);
  EXPECT_FALSE(ShutForReading(a));
  EXPECT_EQ(silent_.size(), 1u);
}

TEST_F(SilentPeeksTest, ADueConnectionIsShutForReading) {
  const int64_t now = MonotonicNowNs();
  const uint32_t a = Peeking(now - kMs);
  const uint32_t b = Peeking(now + 30 * kMs);
  silent_.Add(table_.at(a), a);
  silent_.Add(table_.at(b), b);
  EXPECT_EQ(silent_.Expire(now, kMaxWait, table_), 30 * kMs);
  EXPECT_TRUE(table_.at(a).expired);
  EXPECT_TRUE(ShutForReading(a));
  EXPECT_FALSE(table_.at(b).expired);
  EXPECT_FALSE(ShutForReading(b));
  // Sending still works: the 408 goes out after the shutdown.
  EXPECT_EQ(send(table_.at(a).fd.get(), "x", 1, MSG_NOSIGNAL), 1);
}

TEST_F(SilentPeeksTest, AnEarlierDeadlineAddedLateComesFirst) {
  // A shard's forwarded connection keeps its accept time, so its deadline
  // can be earlier than one already waiting.
  const int64_t now = MonotonicNowNs();
  const uint32_t late = Peeking(now + 80 * kMs);
  const uint32_t early = Peeking(now + 20 * kMs);
  silent_.Add(table_.at(late), late);
  silent_.Add(table_.at(early), early);
  EXPECT_EQ(silent_.Expire(now, kMaxWait, table_), 20 * kMs);
  EXPECT_EQ(silent_.Expire(now + 20 * kMs, kMaxWait, table_), 60 * kMs);
  EXPECT_TRUE(table_.at(early).expired);
  EXPECT_FALSE(table_.at(late).expired);
}

TEST_F(SilentPeeksTest, WhatMovedOnMeanwhileIsLeftAlone) {
  const int64_t now = MonotonicNowNs();
  const uint32_t got_bytes = Peeking(now - kMs);
  const uint32_t decided = Peeking(now - kMs);
  const uint32_t reused = Peeking(now - kMs);
  for (uint32_t i : {got_bytes, decided, reused}) silent_.Add(table_.at(i), i);
  table_.at(got_bytes).silent_wait = false;  // its peek returned bytes
  table_.at(decided).state = ConnState::kQueued;
  table_.Free(reused);  // gone: the slot's next occupant is not touched
  uint32_t again;
  Connection* next = table_.Allocate(&again);
  ASSERT_EQ(again, reused);  // the freed slot is the next one given out
  next->state = ConnState::kPeeking;
  next->silent_wait = true;
  EXPECT_EQ(silent_.Expire(now, kMaxWait, table_), kMaxWait);
  EXPECT_TRUE(silent_.empty());
  EXPECT_FALSE(table_.at(got_bytes).expired);
  EXPECT_FALSE(ShutForReading(got_bytes));
  EXPECT_FALSE(table_.at(decided).expired);
  EXPECT_FALSE(table_.at(reused).expired);
}

}  // namespace
}  // namespace master
}  // namespace ddv
