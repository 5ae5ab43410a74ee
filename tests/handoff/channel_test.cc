// Channel: real socketpairs carrying real loopback TCP sockets. A received fd
// must be the same socket (same addresses, data flows through it), failures
// must close every received fd, and pidfd pulls work across processes.
#include "src/handoff/channel.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/handoff/test_sockets.h"

namespace ddv {
namespace handoff {
namespace {

using ::ddv::testing::LoopbackListener;
using ::ddv::testing::OpenFds;
using ::ddv::testing::TcpPair;
using ::testing::HasSubstr;

struct Channel {
  UniqueFd master;
  UniqueFd worker;
};

Channel MakeChannel() {
  auto pair = MakeChannelPair();
  EXPECT_TRUE(pair.ok()) << pair.status();
  return Channel{std::move(pair->first), std::move(pair->second)};
}

std::vector<TcpPair> Connect(LoopbackListener& listener, int n) {
  std::vector<TcpPair> pairs;
  for (int i = 0; i < n; ++i) {
    auto pair = listener.Connect();
    EXPECT_TRUE(pair.ok()) << pair.status();
    pairs.push_back(std::move(*pair));
  }
  return pairs;
}

std::string BatchFor(int n, HandoffMode mode = HandoffMode::kScmRights) {
  std::vector<HandoffEntry> entries(n);
  for (int i = 0; i < n; ++i) {
    entries[i].connection_id = 1000 + i;
    entries[i].protocol = Protocol::kHttp;
    entries[i].host = "a.localhost";
    entries[i].master_fd = mode == HandoffMode::kPidfd ? 3 + i : -1;
  }
  std::string bytes;
  EXPECT_TRUE(EncodeHandoffBatch(mode, entries, &bytes).ok());
  return bytes;
}

// The received fd is the very socket: same addresses both ways, and bytes
// flow between it and the client in both directions.
void ExpectSameSocket(const TcpPair& original, int received) {
  EXPECT_EQ(testing::LocalAddress(received),
            testing::LocalAddress(original.server.get()));
  EXPECT_EQ(testing::PeerAddress(received),
            testing::PeerAddress(original.server.get()));
  EXPECT_EQ(testing::PeerAddress(received),
            testing::LocalAddress(original.client.get()));
  ASSERT_TRUE(testing::WriteAll(received, "from worker"));
  EXPECT_EQ(testing::ReadExactly(original.client.get(), 11, absl::Seconds(5)),
            "from worker");
  ASSERT_TRUE(testing::WriteAll(original.client.get(), "from client"));
  EXPECT_EQ(testing::ReadExactly(received, 11, absl::Seconds(5)),
            "from client");
}

TEST(ChannelTest, PairIsNonBlockingCloexecSeqpacket) {
  Channel c = MakeChannel();
  for (int fd : {c.master.get(), c.worker.get()}) {
    int type = 0;
    socklen_t len = sizeof(type);
    ASSERT_EQ(::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len), 0);
    EXPECT_EQ(type, SOCK_SEQPACKET);
    EXPECT_TRUE(::fcntl(fd, F_GETFL) & O_NONBLOCK);
    EXPECT_TRUE(::fcntl(fd, F_GETFD) & FD_CLOEXEC);
  }
}

TEST(ChannelTest, FrameWithoutFds) {
  Channel c = MakeChannel();
  std::string bytes = *EncodeFrame(Heartbeat{7, false});
  ASSERT_TRUE(SendFrame(c.worker.get(), bytes, {}).ok());
  auto received = ReceiveFrame(c.master.get(), absl::Seconds(5));
  ASSERT_TRUE(received.ok()) << received.status();
  EXPECT_TRUE(received->fds.empty());
  EXPECT_TRUE(std::get<Heartbeat>(received->frame) == (Heartbeat{7, false}));
}

TEST(ChannelTest, PassesOneTcpSocket) {
  auto listener = LoopbackListener::Create();
  ASSERT_TRUE(listener.ok()) << listener.status();
  std::vector<TcpPair> pairs = Connect(*listener, 1);
  Channel c = MakeChannel();
  int fd = pairs[0].server.get();
  ASSERT_TRUE(SendFrame(c.master.get(), BatchFor(1), {&fd, 1}).ok());
  auto received = ReceiveFrame(c.worker.get(), absl::Seconds(5));
  ASSERT_TRUE(received.ok()) << received.status();
  ASSERT_EQ(received->fds.size(), 1u);
  EXPECT_NE(received->fds[0].get(), fd);
  EXPECT_TRUE(::fcntl(received->fds[0].get(), F_GETFD) & FD_CLOEXEC);
  EXPECT_EQ(std::get<HandoffBatch>(received->frame).entries[0].connection_id,
            1000u);
  ExpectSameSocket(pairs[0], received->fds[0].get());
}

TEST(ChannelTest, PassesSixtyFourTcpSocketsInOneMessage) {
  auto listener = LoopbackListener::Create();
  ASSERT_TRUE(listener.ok()) << listener.status();
  std::vector<TcpPair> pairs = Connect(*listener, kMaxEntriesPerBatch);
  std::vector<int> fds;
  for (const TcpPair& p : pairs) fds.push_back(p.server.get());
  Channel c = MakeChannel();
  ASSERT_TRUE(SendFrame(c.master.get(), BatchFor(kMaxEntriesPerBatch), fds)
                  .ok());
  // The master closes its copies right after the send: the worker's
  // references keep the sockets alive.
  for (TcpPair& p : pairs) p.server.Reset();
  auto received = ReceiveFrame(c.worker.get(), absl::Seconds(5));
  ASSERT_TRUE(received.ok()) << received.status();
  ASSERT_EQ(received->fds.size(), kMaxEntriesPerBatch);
  const auto& entries = std::get<HandoffBatch>(received->frame).entries;
  for (size_t i = 0; i < kMaxEntriesPerBatch; ++i) {
    EXPECT_EQ(entries[i].connection_id, 1000 + i);
    // Order is preserved: entry i's fd is connected to client i.
    EXPECT_EQ(testing::PeerAddress(received->fds[i].get()),
              testing::LocalAddress(pairs[i].client.get()));
    std::string text = "conn " + std::to_string(i);
    ASSERT_TRUE(testing::WriteAll(received->fds[i].get(), text));
    EXPECT_EQ(testing::ReadExactly(pairs[i].client.get(), text.size(),
                                   absl::Seconds(5)),
              text);
  }
}

TEST(ChannelTest, ScmRightsMessageHeaderWorksForSendmsg) {
  auto listener = LoopbackListener::Create();
  ASSERT_TRUE(listener.ok());
  std::vector<TcpPair> pairs = Connect(*listener, 3);
  std::vector<int> fds = {pairs[0].server.get(), pairs[1].server.get(),
                          pairs[2].server.get()};
  Channel c = MakeChannel();
  auto message = ScmRightsMessage::Create(BatchFor(3), fds);
  ASSERT_TRUE(message.ok()) << message.status();
  EXPECT_EQ((*message)->fd_count(), 3u);
  // What io_uring_prep_sendmsg does with the header, done synchronously.
  ssize_t n = ::sendmsg(c.master.get(), &(*message)->header(), MSG_NOSIGNAL);
  ASSERT_EQ(n, static_cast<ssize_t>((*message)->frame().size()));
  auto received = ReceiveFrame(c.worker.get(), absl::Seconds(5));
  ASSERT_TRUE(received.ok()) << received.status();
  ASSERT_EQ(received->fds.size(), 3u);
  ExpectSameSocket(pairs[2], received->fds[2].get());

  // Reuse: a frame without fds carries no cmsg at all.
  ASSERT_TRUE((*message)->Assign(*EncodeFrame(Shutdown{1}), {}).ok());
  EXPECT_EQ((*message)->header().msg_controllen, 0u);
  ASSERT_GT(::sendmsg(c.master.get(), &(*message)->header(), MSG_NOSIGNAL), 0);
  received = ReceiveFrame(c.worker.get(), absl::Seconds(5));
  ASSERT_TRUE(received.ok()) << received.status();
  EXPECT_TRUE(std::holds_alternative<Shutdown>(received->frame));

  std::vector<int> too_many(kMaxFdsPerMessage + 1, pairs[0].server.get());
  EXPECT_EQ((*message)->Assign("x", too_many).code(),
            absl::StatusCode::kInvalidArgument);
}

// Sends raw bytes with `fds` attached (bypassing SendFrame's limit).
void SendRaw(int fd, const std::string& bytes, const std::vector<int>& fds) {
  std::vector<unsigned char> control(CMSG_SPACE(sizeof(int) * fds.size()));
  iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (!fds.empty()) {
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
  }
  ASSERT_EQ(::sendmsg(fd, &msg, MSG_NOSIGNAL),
            static_cast<ssize_t>(bytes.size()))
      << std::strerror(errno);
}

struct FailingReceive {
  const char* name;
  std::string bytes;
  int fd_count;
  const char* message;
};

TEST(ChannelTest, FailedReceiveClosesEveryReceivedFd) {
  auto listener = LoopbackListener::Create();
  ASSERT_TRUE(listener.ok());
  std::vector<TcpPair> pairs = Connect(*listener, 4);
  std::vector<int> sockets;
  for (const TcpPair& p : pairs) sockets.push_back(p.server.get());
  // A big enough socket buffer that the oversize message fits in the queue.
  Channel c = MakeChannel();
  int size = 1 << 20;
  ::setsockopt(c.master.get(), SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));

  std::string oversize = BatchFor(1) + std::string(kMaxFrameBytes, 'x');
  std::vector<FailingReceive> cases = {
      {"fewer fds than entries", BatchFor(3), 2, "came with 2 fds, expected 3"},
      {"more fds than entries", BatchFor(1), 3, "came with 3 fds, expected 1"},
      {"fds on a heartbeat", *EncodeFrame(Heartbeat{1, false}), 2,
       "came with 2 fds, expected 0"},
      {"fds on a pidfd batch", BatchFor(2, HandoffMode::kPidfd), 2,
       "expected 0"},
      {"garbage", "not a frame at all", 4, "bad magic"},
      {"bad version", [] {
         std::string b = BatchFor(1);
         b[4] = 9;
         return b;
       }(),
       1, "unsupported protocol version 9"},
      {"more fds than the cmsg buffer", BatchFor(4), 100, "MSG_CTRUNC"},
      {"larger than a frame", oversize, 1, "MSG_TRUNC"},
      {"empty message with fds", "", 2, "truncated frame: 0 bytes"},
  };
  for (const FailingReceive& c2 : cases) {
    SCOPED_TRACE(c2.name);
    std::vector<int> fds;
    for (int i = 0; i < c2.fd_count; ++i) fds.push_back(sockets[i % 4]);
    std::set<int> before = OpenFds();
    SendRaw(c.master.get(), c2.bytes, fds);
    auto received = ReceiveFrame(c.worker.get(), absl::Seconds(5));
    ASSERT_FALSE(received.ok());
    EXPECT_FALSE(IsPeerClosed(received.status()));
    EXPECT_THAT(std::string(received.status().message()),
                HasSubstr(c2.message));
    EXPECT_EQ(OpenFds(), before) << "received fds leaked";
  }
  // The channel is still usable after every failure.
  ASSERT_TRUE(SendFrame(c.master.get(), *EncodeFrame(Shutdown{}), {}).ok());
  EXPECT_TRUE(ReceiveFrame(c.worker.get(), absl::Seconds(5)).ok());
}

TEST(ChannelTest, WouldBlockTimeoutAndPeerClosed) {
  Channel c = MakeChannel();
  auto none = ReceiveFrame(c.worker.get(), absl::ZeroDuration());
  EXPECT_TRUE(IsWouldBlock(none.status())) << none.status();
  absl::Time start = absl::Now();
  auto late = ReceiveFrame(c.worker.get(), absl::Milliseconds(50));
  EXPECT_EQ(late.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(45));

  // A queued frame is still delivered after the peer closed; then EOF.
  ASSERT_TRUE(SendFrame(c.master.get(), *EncodeFrame(Shutdown{}), {}).ok());
  c.master.Reset();
  EXPECT_TRUE(ReceiveFrame(c.worker.get(), absl::Seconds(1)).ok());
  auto eof = ReceiveFrame(c.worker.get(), absl::Seconds(1));
  EXPECT_TRUE(IsPeerClosed(eof.status())) << eof.status();
  EXPECT_TRUE(IsPeerClosed(
      SendFrame(c.worker.get(), *EncodeFrame(Shutdown{}), {})));
}

TEST(ChannelTest, EmptyMessageIsNotMistakenForEof) {
  Channel c = MakeChannel();
  SendRaw(c.master.get(), "", {});
  auto received = ReceiveFrame(c.worker.get(), absl::Seconds(1));
  EXPECT_FALSE(IsPeerClosed(received.status()));
  EXPECT_EQ(received.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ChannelTest, SendWaitsForRoomAndTimesOut) {
  Channel c = MakeChannel();
  std::string frame = *EncodeFrame(Request{1, "ping", std::string(4000, ' ')});
  int sent = 0;
  for (;;) {
    absl::Status s = SendFrame(c.worker.get(), frame, {}, absl::ZeroDuration());
    if (IsWouldBlock(s)) break;
    ASSERT_TRUE(s.ok()) << s;
    ++sent;
  }
  ASSERT_GT(sent, 0);
  absl::Status late = SendFrame(c.worker.get(), frame, {},
                                absl::Milliseconds(50));
  EXPECT_EQ(late.code(), absl::StatusCode::kDeadlineExceeded) << late;

  // A reader making room lets a waiting send through.
  std::thread reader([&] {
    ::usleep(20000);
    for (int i = 0; i < sent; ++i) {
      EXPECT_TRUE(ReceiveFrame(c.master.get(), absl::Seconds(5)).ok());
    }
  });
  absl::Status waited = SendFrame(c.worker.get(), frame, {}, absl::Seconds(5));
  EXPECT_TRUE(waited.ok()) << waited;
  reader.join();
}

// The test process plays the master (it holds the socket); a forked child
// plays the worker and pulls the socket out of its parent.
TEST(PidfdTest, ChildPullsSocketFromParent) {
  auto listener = LoopbackListener::Create();
  ASSERT_TRUE(listener.ok());
  std::vector<TcpPair> pairs = Connect(*listener, 1);
  int master_fd = pairs[0].server.get();
  pid_t master_pid = ::getpid();

  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto pidfd = OpenPidfd(master_pid);
    if (!pidfd.ok()) _exit(10);
    auto pulled = PullFd(pidfd->get(), master_fd);
    if (!pulled.ok()) {
      std::fprintf(stderr, "%s\n", pulled.status().ToString().c_str());
      _exit(11);
    }
    if (!(::fcntl(pulled->get(), F_GETFD) & FD_CLOEXEC)) _exit(12);
    const char reply[] = "pulled by child";
    if (::send(pulled->get(), reply, sizeof(reply) - 1, MSG_NOSIGNAL) !=
        static_cast<ssize_t>(sizeof(reply) - 1)) {
      _exit(13);
    }
    _exit(0);
  }
  int status = testing::WaitForChild(child, absl::Seconds(10));
  ASSERT_TRUE(WIFEXITED(status)) << status;
  ASSERT_EQ(WEXITSTATUS(status), 0);
  // Both copies reach the same client.
  EXPECT_EQ(testing::ReadExactly(pairs[0].client.get(), 15, absl::Seconds(5)),
            "pulled by child");
}

TEST(PidfdTest, PullingAClosedFdIsNotFound) {
  auto pidfd = OpenPidfd(::getpid());
  ASSERT_TRUE(pidfd.ok()) << pidfd.status();
  auto pulled = PullFd(pidfd->get(), 19999);
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(pulled.status().message()), HasSubstr("fd 19999"));
}

// Drops CAP_SYS_PTRACE from this process's effective and permitted sets.
bool DropPtraceCapability() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (::syscall(SYS_capget, &header, data) != 0) return false;
  int word = CAP_SYS_PTRACE / 32;
  uint32_t bit = 1u << (CAP_SYS_PTRACE % 32);
  data[word].effective &= ~bit;
  data[word].permitted &= ~bit;
  data[word].inheritable &= ~bit;
  return ::syscall(SYS_capset, &header, data) == 0;
}

// Without ptrace rights over the master the pull fails with EPERM, and the
// status tells the operator what to change. A non-dumpable master and a
// worker without CAP_SYS_PTRACE reproduce that without needing Yama.
TEST(PidfdTest, PermissionDeniedExplainsPtraceRules) {
  auto listener = LoopbackListener::Create();
  ASSERT_TRUE(listener.ok());
  std::vector<TcpPair> pairs = Connect(*listener, 1);
  int master_fd = pairs[0].server.get();
  pid_t master_pid = ::getpid();
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  UniqueFd read_end(pipe_fds[0]), write_end(pipe_fds[1]);

  ASSERT_EQ(::prctl(PR_SET_DUMPABLE, 0), 0);
  pid_t child = ::fork();
  if (child == 0) {
    if (!DropPtraceCapability()) _exit(20);
    auto pidfd = OpenPidfd(master_pid);
    if (!pidfd.ok()) _exit(21);
    auto pulled = PullFd(pidfd->get(), master_fd);
    std::string report = pulled.ok() ? "ok" : pulled.status().ToString();
    (void)!::write(write_end.get(), report.data(), report.size());
    _exit(0);
  }
  write_end.Reset();
  // Stay non-dumpable until the child has tried: it is our state it checks.
  int status = child > 0 ? testing::WaitForChild(child, absl::Seconds(10)) : -1;
  ::prctl(PR_SET_DUMPABLE, 1);
  ASSERT_GT(child, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  std::string report =
      testing::ReadUntilEof(read_end.get(), absl::Seconds(5));
  EXPECT_THAT(report, HasSubstr("PERMISSION_DENIED"));
  EXPECT_THAT(report, HasSubstr("PR_SET_PTRACER"));
  EXPECT_THAT(report, HasSubstr("Yama"));
}

}  // namespace
}  // namespace handoff
}  // namespace ddv
