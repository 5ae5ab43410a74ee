// Park: pipes parked in a socketpair come back to the next reader, removed
// ones do not, a pipe parked twice comes back once, and nothing leaks.
#include "src/logwriter/park.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "gtest/gtest.h"
#include "src/logwriter/writer_process.h"
#include "tests/supervise/test_util.h"

namespace ddv {
namespace logwriter {
namespace {

using ::ddv::supervise::testing::OpenFds;

struct TestPipe {
  UniqueFd read;
  UniqueFd write;
};

TestPipe MakePipe() {
  int fds[2];
  EXPECT_EQ(pipe2(fds, O_CLOEXEC), 0);
  return TestPipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

PipeRoute Route(const std::string& worker) {
  PipeRoute r;
  r.worker = worker;
  r.path = "/tmp/" + worker + ".log";
  return r;
}

std::string ReadSome(int fd) {
  char buffer[64];
  ssize_t n = read(fd, buffer, sizeof(buffer));
  return n > 0 ? std::string(buffer, n) : std::string();
}

TEST(ParkTest, ParkedPipesComeBackAndRemovedOnesDoNot) {
  signal(SIGPIPE, SIG_IGN);
  const std::vector<int> fds_before = OpenFds();
  {
    absl::StatusOr<WriterSockets> sockets = MakeWriterSockets(true);
    ASSERT_TRUE(sockets.ok()) << sockets.status();
    TestPipe kept = MakePipe();
    TestPipe ended = MakePipe();
    {
      Park park(sockets->park_send.get(), sockets->park_recv.get());
      ASSERT_TRUE(park.Add(1, Route("a#0"), kept.read.get()).ok());
      ASSERT_TRUE(park.Add(2, Route("a#1"), ended.read.get()).ok());
      ASSERT_TRUE(park.Remove(2).ok());
      EXPECT_EQ(park.records(), 3u);
    }
    // The writer that parked them dies: only the park holds the pipes.
    kept.read.Reset();
    ended.read.Reset();
    ASSERT_EQ(write(kept.write.get(), "x\n", 2), 2) << "the park keeps it";

    Park next(sockets->park_send.get(), sockets->park_recv.get());
    std::vector<Park::Entry> back = next.Replay();
    ASSERT_EQ(back.size(), 1u);
    EXPECT_EQ(back[0].id, 1u);
    EXPECT_EQ(back[0].route.worker, "a#0");
    EXPECT_EQ(ReadSome(back[0].fd.get()), "x\n");
    EXPECT_EQ(next.records(), 0u);
    // The removed pipe's last reader went with the replay.
    EXPECT_EQ(write(ended.write.get(), "y\n", 2), -1);
    EXPECT_EQ(errno, EPIPE);
  }
  EXPECT_EQ(OpenFds(), fds_before);
}

TEST(ParkTest, APipeParkedTwiceComesBackOnce) {
  absl::StatusOr<WriterSockets> sockets = MakeWriterSockets(true);
  ASSERT_TRUE(sockets.ok());
  TestPipe p = MakePipe();
  Park park(sockets->park_send.get(), sockets->park_recv.get());
  ASSERT_TRUE(park.Add(5, Route("b#0"), p.read.get()).ok());
  ASSERT_TRUE(park.Add(5, Route("b#0"), p.read.get()).ok());
  EXPECT_EQ(park.Replay().size(), 1u);
}

TEST(ParkTest, ClearEmptiesItAndCompactionIsAskedForWhenMostlyDead) {
  absl::StatusOr<WriterSockets> sockets = MakeWriterSockets(true);
  ASSERT_TRUE(sockets.ok());
  TestPipe p = MakePipe();
  Park park(sockets->park_send.get(), sockets->park_recv.get());
  for (uint64_t id = 1; id <= 40; ++id) {
    ASSERT_TRUE(park.Add(id, Route("c#0"), p.read.get()).ok());
    ASSERT_TRUE(park.Remove(id).ok());
  }
  EXPECT_TRUE(park.WantsCompaction(1));
  EXPECT_FALSE(park.WantsCompaction(40));
  park.Clear();
  EXPECT_EQ(park.records(), 0u);
  EXPECT_TRUE(park.Replay().empty());
}

}  // namespace
}  // namespace logwriter
}  // namespace ddv
