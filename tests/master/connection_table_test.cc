// ConnectionTable: slots come back clean with a new generation, ids of a
// freed connection stop matching, the table refuses past capacity, and a
// slot owns its socket. Also the op tag's generation check the master's
// handlers rely on.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <set>

#include "gtest/gtest.h"
#include "src/master/connection.h"
#include "src/uring/op_tag.h"

namespace ddv {
namespace master {
namespace {

bool IsOpen(int fd) { return fcntl(fd, F_GETFD) >= 0; }

TEST(ConnectionTableTest, AllocatesEverySlotOnceThenRefuses) {
  ConnectionTable table(4);
  std::set<uint32_t> seen;
  for (int i = 0; i < 4; ++i) {
    uint32_t index = 99;
    Connection* c = table.Allocate(&index);
    ASSERT_NE(c, nullptr);
    EXPECT_LT(index, 4u);
    EXPECT_EQ(c, &table.at(index));
    seen.insert(index);
  }
  EXPECT_EQ(seen.size(), 4u);
  EXPECT_EQ(table.in_use(), 4u);
  uint32_t index = 99;
  EXPECT_EQ(table.Allocate(&index), nullptr);
  table.Free(2);
  EXPECT_EQ(table.in_use(), 3u);
  ASSERT_NE(table.Allocate(&index), nullptr);
  EXPECT_EQ(index, 2u);
}

TEST(ConnectionTableTest, FreedSlotIsReusedFirstAndComesBackClean) {
  ConnectionTable table(8);
  uint32_t a, b;
  Connection* c = table.Allocate(&a);
  c->state = ConnState::kQueued;
  c->site = 3;
  c->worker = 1;
  c->alpn = "h2";
  table.Allocate(&b);
  table.Free(a);
  // LIFO: the slot just freed is the next one given out (still in cache).
  uint32_t again;
  Connection* d = table.Allocate(&again);
  EXPECT_EQ(again, a);
  EXPECT_EQ(d->state, ConnState::kFree);
  EXPECT_EQ(d->site, -1);
  EXPECT_EQ(d->worker, -1);
  EXPECT_TRUE(d->alpn.empty());
  EXPECT_FALSE(d->fd.valid());
}

TEST(ConnectionTableTest, GenerationMakesOldIdsStale) {
  ConnectionTable table(2);
  uint32_t index;
  Connection* c = table.Allocate(&index);
  c->state = ConnState::kSent;
  const uint64_t old_id = c->Id(index);
  EXPECT_EQ(table.Find(old_id), c);

  table.Free(index);
  EXPECT_EQ(table.Find(old_id), nullptr) << "a free slot matches no id";
  uint32_t reused;
  Connection* d = table.Allocate(&reused);
  ASSERT_EQ(reused, index);
  d->state = ConnState::kSent;
  EXPECT_EQ(table.Find(old_id), nullptr)
      << "an acknowledgement for the old connection must not hit the new one";
  EXPECT_EQ(table.Find(d->Id(reused)), d);
  EXPECT_EQ(table.Find(uint64_t{1} << 32 | 7), nullptr) << "out of range";
}

TEST(ConnectionTableTest, FreeClosesASocketTheSlotStillOwns) {
  int pair[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  ConnectionTable table(1);
  uint32_t index;
  Connection* c = table.Allocate(&index);
  c->fd = UniqueFd(pair[0]);
  table.Free(index);
  EXPECT_FALSE(IsOpen(pair[0]));

  // Released into a (ring) close first: Free must not close it again.
  c = table.Allocate(&index);
  c->fd = UniqueFd(pair[1]);
  const int released = c->fd.Release();
  table.Free(index);
  EXPECT_TRUE(IsOpen(released));
  close(released);
}

TEST(ConnectionTableTest, OpTagsOfTheOldOccupantNoLongerMatch) {
  ConnectionTable table(1);
  uint32_t index;
  Connection* c = table.Allocate(&index);
  const uring::OpTag tag =
      uring::OpTag::Decode(uring::OpTag{7, index, c->generation}.Encode());
  EXPECT_EQ(tag.index, index);
  EXPECT_TRUE(tag.Matches(c->generation));
  table.Free(index);
  c = table.Allocate(&index);
  EXPECT_FALSE(tag.Matches(c->generation));
}

TEST(OpTagTest, CarriesTheLow24BitsOfTheGeneration) {
  const uint32_t generation = 0x12345678;
  const uring::OpTag tag =
      uring::OpTag::Decode(uring::OpTag{0xab, 0xfedcba98, generation}.Encode());
  EXPECT_EQ(tag.op, 0xab);
  EXPECT_EQ(tag.index, 0xfedcba98u);
  EXPECT_EQ(tag.generation, generation & uring::OpTag::kGenerationMask);
  EXPECT_TRUE(tag.Matches(generation));
  EXPECT_FALSE(tag.Matches(generation + 1));
}

TEST(ConnStateTest, EveryStateHasAName) {
  for (ConnState state :
       {ConnState::kFree, ConnState::kPeeking, ConnState::kRouted,
        ConnState::kWaitingForWorker, ConnState::kQueued, ConnState::kSending,
        ConnState::kSent, ConnState::kRefusing, ConnState::kClosing}) {
    EXPECT_NE(ConnStateName(state), "unknown");
  }
  EXPECT_EQ(ConnStateName(ConnState::kWaitingForWorker), "waiting_for_worker");
}

}  // namespace
}  // namespace master
}  // namespace ddv
