// The Node cluster codec against a real `node`: an unmodified http app is
// started as a cluster worker on a socketpair, this test plays the primary
// with node_cluster's messages, hands it real loopback TCP connections one
// fd per sendmsg, and reads the answers with a plain client.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "src/base/unique_fd.h"
#include "src/handoff/node_cluster.h"
#include "tests/handoff/test_sockets.h"

namespace ddv {
namespace handoff {
namespace node {
namespace {

std::string Runfile(const std::string& path) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  if (srcdir == nullptr) return path;
  return absl::StrCat(srcdir, "/", workspace ? workspace : "ddv", "/", path);
}

// A node child on a cluster channel, killed if the test leaves early.
class NodeWorker {
 public:
  explicit NodeWorker(std::vector<std::string> extra_env) {
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return;
    channel_ = UniqueFd(pair[0]);
    UniqueFd child_end(pair[1]);
    std::string app = Runfile("tests/handoff/node/cluster_app.js");
    pid_ = fork();
    if (pid_ == 0) {
      dup2(child_end.get(), 3);  // dup2 clears FD_CLOEXEC on fd 3
      setenv(kEnvChannelFd, "3", 1);
      setenv(kEnvUniqueId, "1", 1);
      setenv(kEnvSerialization, "json", 1);
      for (const std::string& kv : extra_env) putenv(strdup(kv.c_str()));
      execlp("node", "node", app.c_str(), nullptr);
      _exit(127);
    }
  }
  ~NodeWorker() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  // The next line from the child, or "" after `timeout`.
  std::string ReadLine(absl::Duration timeout = absl::Seconds(10)) {
    absl::Time deadline = absl::Now() + timeout;
    while (true) {
      if (auto line = reader_.Next()) return std::string(*line);
      std::string chunk = testing::ReadExactly(channel_.get(), 1,
                                               deadline - absl::Now());
      if (chunk.empty()) return "";
      EXPECT_TRUE(reader_.Append(chunk).ok());
    }
  }

  // Lines until one of `kind` (skipping others); nullopt on timeout.
  std::optional<ChildMessage> WaitFor(ChildMessageKind kind) {
    while (true) {
      std::string line = ReadLine();
      if (line.empty()) return std::nullopt;
      absl::StatusOr<ChildMessage> m = DecodeChildLine(line);
      EXPECT_TRUE(m.ok()) << line;
      if (m.ok() && m->kind == kind) return *m;
    }
  }

  bool Send(const std::string& line, int fd = -1) {
    iovec iov{const_cast<char*>(line.data()), line.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    if (fd >= 0) {
      msg.msg_control = control;
      msg.msg_controllen = sizeof(control);
      cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
      cmsg->cmsg_level = SOL_SOCKET;
      cmsg->cmsg_type = SCM_RIGHTS;
      cmsg->cmsg_len = CMSG_LEN(sizeof(int));
      memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
    }
    return sendmsg(channel_.get(), &msg, MSG_NOSIGNAL) ==
           static_cast<ssize_t>(line.size());
  }

  // Exit status after `timeout`, or -1 (then killed).
  int Wait(absl::Duration timeout) {
    int status = testing::WaitForChild(pid_, timeout);
    pid_ = -1;
    return status;
  }

  void CloseChannel() { channel_.Reset(); }
  pid_t pid() const { return pid_; }

 private:
  UniqueFd channel_;
  LineReader reader_;
  pid_t pid_ = -1;
};

// Answers online + queryServer; returns the key the worker listens under.
std::string Listen(NodeWorker& worker, int64_t* seq) {
  std::optional<ChildMessage> online = worker.WaitFor(ChildMessageKind::kOnline);
  EXPECT_TRUE(online.has_value()) << "no online message from node";
  std::optional<ChildMessage> query =
      worker.WaitFor(ChildMessageKind::kQueryServer);
  if (!query.has_value()) {
    ADD_FAILURE() << "no queryServer from node";
    return "";
  }
  EXPECT_EQ(query->port, 8123);
  std::string key =
      ServerKey(query->port, query->address_type, query->address);
  EXPECT_TRUE(worker.Send(EncodeQueryServerReply(
      query->seq, key, query->address_type, "0.0.0.0", query->port,
      (*seq)++)));
  std::optional<ChildMessage> listening =
      worker.WaitFor(ChildMessageKind::kListening);
  EXPECT_TRUE(listening.has_value());
  return key;
}

TEST(NodeClusterWithRealNode, ServesHandedOffConnectionsAndDrains) {
  NodeWorker worker({});
  ASSERT_GT(worker.pid(), 0);
  int64_t seq = 0;
  std::string key = Listen(worker, &seq);
  ASSERT_FALSE(key.empty());

  absl::StatusOr<testing::LoopbackListener> listener =
      testing::LoopbackListener::Create();
  ASSERT_TRUE(listener.ok());
  // Pipelined: every connection is sent before any answer is read, as the
  // master will (Node's own primary waits for each 'accepted').
  constexpr int kConnections = 20;
  std::vector<testing::TcpPair> pairs;
  std::vector<int64_t> sent;
  for (int i = 0; i < kConnections; ++i) {
    absl::StatusOr<testing::TcpPair> pair = listener->Connect();
    ASSERT_TRUE(pair.ok());
    sent.push_back(seq);
    ASSERT_TRUE(worker.Send(EncodeNewConnection(key, seq++),
                            pair->server.get()));
    pair->server.Reset();  // the worker's copy is the only one now
    pairs.push_back(std::move(*pair));
  }
  for (int i = 0; i < kConnections; ++i) {
    std::string request = absl::StrCat("GET / HTTP/1.1\r\nHost: n", i,
                                       ".test\r\nConnection: close\r\n\r\n");
    ASSERT_TRUE(testing::WriteAll(pairs[i].client.get(), request));
    std::string response =
        testing::ReadUntilEof(pairs[i].client.get(), absl::Seconds(10));
    EXPECT_TRUE(absl::StartsWith(response, "HTTP/1.1 200 OK")) << response;
    EXPECT_TRUE(absl::StrContains(response, absl::StrCat("host=n", i, ".test")))
        << response;
    EXPECT_TRUE(absl::StrContains(
        response, "peer=" + testing::LocalAddress(pairs[i].client.get())))
        << response;
  }
  // Every connection was acknowledged as accepted, in order.
  for (int i = 0; i < kConnections; ++i) {
    std::optional<ChildMessage> accepted =
        worker.WaitFor(ChildMessageKind::kAccepted);
    ASSERT_TRUE(accepted.has_value());
    EXPECT_EQ(accepted->ack, sent[i]);
    EXPECT_TRUE(accepted->accepted);
  }

  // Drain: the worker closes its server and exits 0.
  ASSERT_TRUE(worker.Send(EncodeDisconnect(seq++)));
  int status = worker.Wait(absl::Seconds(10));
  ASSERT_NE(status, -1) << "node did not exit after disconnect";
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(NodeClusterWithRealNode, MaxConnectionsRefusesWithAcceptedFalse) {
  NodeWorker worker({"MAX_CONNECTIONS=1"});
  ASSERT_GT(worker.pid(), 0);
  int64_t seq = 0;
  std::string key = Listen(worker, &seq);
  ASSERT_FALSE(key.empty());
  absl::StatusOr<testing::LoopbackListener> listener =
      testing::LoopbackListener::Create();
  ASSERT_TRUE(listener.ok());
  absl::StatusOr<testing::TcpPair> held = listener->Connect();
  absl::StatusOr<testing::TcpPair> refused = listener->Connect();
  ASSERT_TRUE(held.ok() && refused.ok());
  ASSERT_TRUE(worker.Send(EncodeNewConnection(key, seq++), held->server.get()));
  ASSERT_TRUE(
      worker.Send(EncodeNewConnection(key, seq++), refused->server.get()));
  held->server.Reset();
  refused->server.Reset();
  std::optional<ChildMessage> first = worker.WaitFor(ChildMessageKind::kAccepted);
  std::optional<ChildMessage> second =
      worker.WaitFor(ChildMessageKind::kAccepted);
  ASSERT_TRUE(first.has_value() && second.has_value());
  EXPECT_TRUE(first->accepted);
  EXPECT_FALSE(second->accepted);
  // accepted:false means the worker closed its copy: the client sees EOF.
  EXPECT_EQ(testing::ReadUntilEof(refused->client.get(), absl::Seconds(5)), "");
}

TEST(NodeClusterWithRealNode, ChannelEofMakesAClusterWorkerExit) {
  // Why Node workers can outlive a master only if their channel does: on
  // EOF, lib/internal/cluster/child.js exits at once, serving or not.
  NodeWorker worker({});
  ASSERT_GT(worker.pid(), 0);
  int64_t seq = 0;
  ASSERT_FALSE(Listen(worker, &seq).empty());
  worker.CloseChannel();
  int status = worker.Wait(absl::Seconds(10));
  ASSERT_NE(status, -1) << "node kept running after its channel closed";
  EXPECT_TRUE(WIFEXITED(status));
}

}  // namespace
}  // namespace node
}  // namespace handoff
}  // namespace ddv
