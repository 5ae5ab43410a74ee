// NodeChannel against a real SOCK_STREAM socketpair: lines arrive whole and
// in order even when the socket buffer cuts a write short, each connection's
// fd rides with its own line exactly once, and `accepted` answers map back.
#include "src/master/node_channel.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "src/base/unique_fd.h"

namespace ddv {
namespace master {
namespace {

struct Pair {
  UniqueFd master;
  UniqueFd child;
};

Pair StreamPair() {
  int fds[2];
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                       fds),
            0);
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// Reads everything queued on `fd`: the bytes, and how many fds came with
// them (each received fd is closed).
std::string ReadAll(int fd, int* fds_received) {
  std::string bytes;
  while (true) {
    char buffer[4096];
    iovec iov{buffer, sizeof(buffer)};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8)];
    msghdr message{};
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof(control);
    ssize_t n = recvmsg(fd, &message, MSG_DONTWAIT);
    if (n <= 0) break;
    for (cmsghdr* c = CMSG_FIRSTHDR(&message); c != nullptr;
         c = CMSG_NXTHDR(&message, c)) {
      const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t k = 0; k < count; ++k) {
        int received;
        memcpy(&received, CMSG_DATA(c) + k * sizeof(int), sizeof(int));
        close(received);
        ++*fds_received;
      }
    }
    bytes.append(buffer, n);
  }
  return bytes;
}

TEST(NodeChannel, ConnectionsGoOutAsWholeLinesWithOneFdEach) {
  Pair pair = StreamPair();
  NodeChannel channel;
  channel.SetServerKey("*:80:4");
  channel.listening = true;
  UniqueFd a(open("/dev/null", O_RDONLY | O_CLOEXEC));
  UniqueFd b(open("/dev/null", O_RDONLY | O_CLOEXEC));
  const int64_t seq_a = channel.QueueConnection(a.get(), 7, 100);
  channel.QueueLine("{\"ddv\":\"ping\",\"seq\":1}\n");
  const int64_t seq_b = channel.QueueConnection(b.get(), 9, 200);
  std::vector<uint32_t> sent;
  EXPECT_EQ(channel.Flush(pair.master.get(), &sent),
            NodeChannel::FlushResult::kDone);
  EXPECT_EQ(sent, (std::vector<uint32_t>{7, 9}));
  int fds = 0;
  std::string bytes = ReadAll(pair.child.get(), &fds);
  EXPECT_EQ(fds, 2);
  std::vector<std::string> lines = absl::StrSplit(bytes, '\n');
  ASSERT_EQ(lines.size(), 4u);  // three lines and the empty tail
  EXPECT_EQ(nlohmann::json::parse(lines[0])["msg"]["seq"], seq_a);
  EXPECT_EQ(nlohmann::json::parse(lines[1])["ddv"], "ping");
  EXPECT_EQ(nlohmann::json::parse(lines[2])["msg"]["key"], "*:80:4");
  EXPECT_EQ(channel.unaccepted(), 2u);
  EXPECT_EQ(channel.OldestUnansweredNs(), 100);
  EXPECT_EQ(channel.TakeAccepted(seq_b), 9);
  EXPECT_EQ(channel.TakeAccepted(seq_b), -1);  // answered once only
  EXPECT_EQ(channel.TakeAccepted(seq_a), 7);
  EXPECT_EQ(channel.unaccepted(), 0u);
  EXPECT_EQ(channel.OldestUnansweredNs(), 0);
}

TEST(NodeChannel, AFullBufferCutsNoLineAndSendsNoFdTwice) {
  Pair pair = StreamPair();
  int small = 4096;
  ASSERT_EQ(setsockopt(pair.master.get(), SOL_SOCKET, SO_SNDBUF, &small,
                       sizeof(small)),
            0);
  NodeChannel channel;
  channel.SetServerKey(std::string(300, 'k'));  // long lines: partial writes
  channel.listening = true;
  UniqueFd fd(open("/dev/null", O_RDONLY | O_CLOEXEC));
  constexpr int kConnections = 200;
  for (int i = 0; i < kConnections; ++i) channel.QueueConnection(fd.get(), i, 1000 + i);

  std::string received;
  int fds = 0;
  std::vector<uint32_t> sent;
  int blocked = 0;
  for (int round = 0; round < 10000 && !channel.outbox_empty(); ++round) {
    if (channel.Flush(pair.master.get(), &sent) ==
        NodeChannel::FlushResult::kBlocked) {
      ++blocked;
    }
    received += ReadAll(pair.child.get(), &fds);
  }
  received += ReadAll(pair.child.get(), &fds);
  EXPECT_GT(blocked, 0) << "the buffer never filled: the test proves nothing";
  EXPECT_TRUE(channel.outbox_empty());
  EXPECT_EQ(fds, kConnections);
  EXPECT_EQ(sent.size(), static_cast<size_t>(kConnections));
  std::vector<std::string> lines = absl::StrSplit(received, '\n');
  ASSERT_EQ(lines.size(), static_cast<size_t>(kConnections + 1));
  for (int i = 0; i < kConnections; ++i) {
    nlohmann::json line = nlohmann::json::parse(lines[i], nullptr, false);
    ASSERT_FALSE(line.is_discarded()) << lines[i];
    EXPECT_EQ(line["msg"]["seq"], i);
  }
}

TEST(NodeChannel, TheOutboxIsBounded) {
  NodeChannel channel;
  const std::string line(64 * 1024, 'x');
  size_t queued = 0;
  while (channel.QueueLine(line + "\n")) ++queued;
  EXPECT_EQ(queued, kMaxOutboxBytes / (line.size() + 1));
  channel.Reset();
  EXPECT_TRUE(channel.QueueLine("{}\n"));
}

TEST(NodeChannel, ReadSplitsTheChildsLinesAndClosesStrayFds) {
  Pair pair = StreamPair();
  NodeChannel channel;
  const std::string stream =
      "{\"cmd\":\"NODE_CLUSTER\",\"act\":\"online\",\"seq\":0}\n"
      "{\"ddv\":\"hello\",\"version\":1}\n"
      "{\"cmd\":\"NODE_CLUSTER\",\"ack\":4,\"accepted\":true,\"seq\":1}\n";
  ASSERT_EQ(write(pair.child.get(), stream.data(), stream.size()),
            static_cast<ssize_t>(stream.size()));
  std::vector<handoff::node::ChildMessage> messages;
  std::vector<std::string> user;
  ASSERT_TRUE(channel.Read(pair.master.get(), &messages, &user).ok());
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(messages[0].kind, handoff::node::ChildMessageKind::kOnline);
  EXPECT_EQ(messages[1].kind, handoff::node::ChildMessageKind::kAccepted);
  EXPECT_EQ(messages[1].ack, 4);
  EXPECT_EQ(user, (std::vector<std::string>{"{\"ddv\":\"hello\",\"version\":1}"}));
}

TEST(NodeChannel, ABrokenStreamIsAnErrorAndStaysOne) {
  Pair pair = StreamPair();
  NodeChannel channel;
  const std::string garbage = "this is not json\n";
  ASSERT_EQ(write(pair.child.get(), garbage.data(), garbage.size()),
            static_cast<ssize_t>(garbage.size()));
  std::vector<handoff::node::ChildMessage> messages;
  std::vector<std::string> user;
  EXPECT_FALSE(channel.Read(pair.master.get(), &messages, &user).ok());
  EXPECT_FALSE(channel.Read(pair.master.get(), &messages, &user).ok());
  channel.Reset();  // a new process starts clean
  EXPECT_TRUE(channel.Read(pair.master.get(), &messages, &user).ok());
}

}  // namespace
}  // namespace master
}  // namespace ddv
