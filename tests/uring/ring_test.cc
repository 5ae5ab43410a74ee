// Ring and BufferRing against the real kernel: the peek mechanics the master
// relies on (docs/design.md "Kernel facts it relies on"), checked on every machine we run on.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "gtest/gtest.h"
#include "src/base/unique_fd.h"
#include "src/uring/buffer_ring.h"
#include "src/uring/op_tag.h"
#include "src/uring/ring.h"
#include "tests/handoff/test_sockets.h"

namespace ddv {
namespace uring {
namespace {

io_uring_cqe* WaitOne(Ring* ring, int timeout_ms = 2000) {
  io_uring_cqe* cqe = nullptr;
  __kernel_timespec ts{};
  ts.tv_sec = timeout_ms / 1000;
  ts.tv_nsec = (timeout_ms % 1000) * 1000000L;
  int ret = io_uring_wait_cqe_timeout(ring->get(), &cqe, &ts);
  return ret == 0 ? cqe : nullptr;
}

TEST(OpTagTest, RoundTrips) {
  OpTag tag{7, 123456, 0xabcdef};
  OpTag back = OpTag::Decode(tag.Encode());
  EXPECT_EQ(back.op, 7);
  EXPECT_EQ(back.index, 123456u);
  EXPECT_EQ(back.generation, 0xabcdefu);
}

TEST(RingTest, CreatesWithDeferTaskrun) {
  auto ring = Ring::Create(RingOptions{});
  ASSERT_TRUE(ring.ok()) << ring.status();
  EXPECT_TRUE((*ring)->setup_flags() & IORING_SETUP_SINGLE_ISSUER);
}

// The options ddv_hello sets: a 4x CQ, SUBMIT_ALL, no COOP_TASKRUN, and a
// registered ring fd; the defaults above stay as the master uses them.
TEST(RingTest, OptionalSetupFlags) {
  RingOptions options;
  options.entries = 64;
  options.cq_entries = 256;
  options.coop_taskrun = false;
  options.submit_all = true;
  options.register_ring_fd = true;
  auto ring = Ring::Create(options);
  ASSERT_TRUE(ring.ok()) << ring.status();
  EXPECT_EQ((*ring)->get()->cq.ring_entries, 256u);
  EXPECT_TRUE((*ring)->setup_flags() & IORING_SETUP_SUBMIT_ALL);
  EXPECT_FALSE((*ring)->setup_flags() & IORING_SETUP_COOP_TASKRUN);
  // Registered: io_uring_enter gets the registered index, not the fd.
  EXPECT_NE((*ring)->get()->enter_ring_fd, (*ring)->get()->ring_fd);

  RingOptions defaults;
  defaults.entries = 64;
  auto plain = Ring::Create(defaults);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ((*plain)->get()->cq.ring_entries, 128u);
  EXPECT_TRUE((*plain)->setup_flags() & IORING_SETUP_COOP_TASKRUN);
  EXPECT_FALSE((*plain)->setup_flags() & IORING_SETUP_SUBMIT_ALL);
  EXPECT_EQ((*plain)->get()->enter_ring_fd, (*plain)->get()->ring_fd);
}

// An SQE that fails to issue stops the kernel's submission (no SUBMIT_ALL)
// and leaves the entries after it queued: one submit does not free them.
// Reserve must keep submitting, or an op and its linked timeout could be
// split.
TEST(RingTest, ReserveSubmitsUntilThereIsRoom) {
  RingOptions options;
  options.entries = 4;
  auto ring = Ring::Create(options);
  ASSERT_TRUE(ring.ok()) << ring.status();
  io_uring* r = (*ring)->get();
  ASSERT_EQ(r->sq.ring_entries, 4u);
  io_uring_sqe* bad = (*ring)->GetSqe();
  io_uring_prep_nop(bad);
  bad->opcode = 250;  // no such op: fails as the kernel takes it
  for (int i = 0; i < 3; ++i) io_uring_prep_nop((*ring)->GetSqe());
  ASSERT_EQ(io_uring_sq_space_left(r), 0u);

  (*ring)->Reserve(2);
  EXPECT_GE(io_uring_sq_space_left(r), 2u);
  int failed = 0, done = 0;
  for (int i = 0; i < 4; ++i) {
    io_uring_cqe* cqe = WaitOne(ring->get());
    ASSERT_NE(cqe, nullptr) << "completion " << i;
    (cqe->res == -EINVAL ? failed : done)++;
    io_uring_cqe_seen(r, cqe);
  }
  EXPECT_EQ(failed, 1);
  EXPECT_EQ(done, 3);
}

// A ring the kernel will never take entries from (its fd is gone): Reserve
// and GetSqe stop the process, saying why, instead of spinning or going on
// with the SQ full.
TEST(RingDeathTest, FullQueueTheKernelWillNotTakeIsFatal) {
  auto fill_and_break = [](Ring* ring) {
    for (int i = 0; i < 4; ++i) io_uring_prep_nop(ring->GetSqe());
    close(ring->get()->ring_fd);
  };
  RingOptions options;
  options.entries = 4;
  EXPECT_DEATH(
      {
        auto ring = Ring::Create(options);
        fill_and_break(ring->get());
        (*ring)->Reserve(2);
      },
      "io_uring_submit cannot make room for 2 SQEs");
  EXPECT_DEATH(
      {
        auto ring = Ring::Create(options);
        fill_and_break(ring->get());
        (*ring)->GetSqe();
      },
      "io_uring_submit cannot make room for 1 SQEs");
}

// Teardown: once CancelAll returns, a recv that was waiting is over, and
// data arriving later is not written into its buffer (which the owner may
// free next).
TEST(RingTest, CancelAllLeavesNothingInFlight) {
  auto ring = Ring::Create(RingOptions{});
  ASSERT_TRUE(ring.ok()) << ring.status();
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  UniqueFd a(fds[0]), b(fds[1]);
  char buffer[16] = {};
  io_uring_prep_recv((*ring)->GetSqe(), a.get(), buffer, sizeof(buffer), 0);
  io_uring_prep_recv((*ring)->GetSqe(), a.get(), buffer, sizeof(buffer), 0);
  ASSERT_EQ(io_uring_submit((*ring)->get()), 2);

  (*ring)->CancelAll();
  ASSERT_EQ(write(b.get(), "late", 4), 4);
  for (int i = 0; i < 2; ++i) {
    io_uring_cqe* cqe = WaitOne(ring->get(), 100);
    ASSERT_NE(cqe, nullptr) << "recv " << i << " still in flight";
    EXPECT_EQ(cqe->res, -ECANCELED);
    io_uring_cqe_seen((*ring)->get(), cqe);
  }
  EXPECT_EQ(std::string(buffer), "");
}

TEST(BufferRingTest, CheckCountIsWhatCreateChecks) {
  EXPECT_TRUE(BufferRing::CheckCount(1).ok());
  EXPECT_TRUE(BufferRing::CheckCount(1024).ok());
  EXPECT_TRUE(BufferRing::CheckCount(32768).ok());
  EXPECT_FALSE(BufferRing::CheckCount(0).ok());
  EXPECT_FALSE(BufferRing::CheckCount(100).ok());
  EXPECT_FALSE(BufferRing::CheckCount(65536).ok());
}

TEST(BufferRingTest, RejectsNonPowerOfTwo) {
  auto ring = Ring::Create(RingOptions{});
  ASSERT_TRUE(ring.ok());
  EXPECT_FALSE(BufferRing::Create((*ring)->get(), 1, 100, 4096).ok());
}

// Peek through a provided buffer leaves the bytes queued; then SO_RCVLOWAT +
// POLL_FIRST waits for *more* bytes instead of completing at once.
TEST(BufferRingTest, PeekLeavesBytesAndPollFirstWaitsForMore) {
  auto ring_or = Ring::Create(RingOptions{});
  ASSERT_TRUE(ring_or.ok());
  Ring* ring = ring_or->get();
  auto buffers = BufferRing::Create(ring->get(), 3, 8, 4096);
  ASSERT_TRUE(buffers.ok()) << buffers.status();

  auto [client, server] = ::ddv::testing::ConnectedTcpPair();
  ASSERT_TRUE(client.valid() && server.valid());
  ASSERT_EQ(write(client.get(), "GET / HT", 8), 8);

  io_uring_sqe* sqe = ring->GetSqe();
  io_uring_prep_recv(sqe, server.get(), nullptr, 4096, MSG_PEEK);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = 3;
  io_uring_submit(ring->get());
  io_uring_cqe* cqe = WaitOne(ring);
  ASSERT_NE(cqe, nullptr);
  ASSERT_EQ(cqe->res, 8);
  ASSERT_TRUE(cqe->flags & IORING_CQE_F_BUFFER);
  uint16_t bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
  EXPECT_EQ(std::string((*buffers)->Buffer(bid), 8), "GET / HT");
  io_uring_cqe_seen(ring->get(), cqe);
  (*buffers)->Recycle(bid);
  (*buffers)->Publish();

  int lowat = 9;
  ASSERT_EQ(setsockopt(server.get(), SOL_SOCKET, SO_RCVLOWAT, &lowat,
                       sizeof(lowat)), 0);
  sqe = ring->GetSqe();
  io_uring_prep_recv(sqe, server.get(), nullptr, 4096, MSG_PEEK);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = 3;
  sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
  io_uring_submit(ring->get());
  EXPECT_EQ(WaitOne(ring, 200), nullptr) << "completed without new bytes";

  ASSERT_EQ(write(client.get(), "TP/1.1\r\n", 8), 8);
  cqe = WaitOne(ring);
  ASSERT_NE(cqe, nullptr);
  EXPECT_EQ(cqe->res, 16);
  io_uring_cqe_seen(ring->get(), cqe);

  // Nothing was consumed: a plain read still sees every byte.
  char all[32];
  EXPECT_EQ(read(server.get(), all, sizeof(all)), 16);
}

}  // namespace
}  // namespace uring
}  // namespace ddv
