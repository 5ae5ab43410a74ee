// Worker across real processes: the test process plays the master over a
// real channel, a forked child runs Worker::FromEnvironment() exactly as a
// spawned worker would, and real loopback TCP clients check the result.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "src/worker/worker.h"
#include "tests/handoff/test_sockets.h"
#include "tests/worker/fake_master.h"

namespace ddv {
namespace worker {
namespace {

using ::ddv::testing::FakeMaster;
using ::ddv::testing::TcpPair;
using ::testing::HasSubstr;
using nlohmann::json;

// Forks a worker process. The child sets the environment a master would,
// builds its Worker with FromEnvironment() and exits with `body`'s result;
// the parent keeps only the master's end of the channel.
pid_t ForkWorker(FakeMaster& master, HandoffMode mode,
                 const std::function<int(Worker&)>& body) {
  pid_t parent = ::getpid();
  pid_t child = ::fork();
  if (child != 0) {
    master.CloseWorkerEnd();
    return child;
  }
  master.CloseChannel();  // or the child would keep its own master alive
  ::setenv(kEnvChannelFd, std::to_string(master.worker_fd()).c_str(), 1);
  ::setenv(kEnvSite, "a", 1);
  ::setenv(kEnvWorkerIndex, "1", 1);
  ::setenv(kEnvHandoff, mode == HandoffMode::kPidfd ? "pidfd" : "scm_rights",
           1);
  ::setenv(kEnvMasterPid, std::to_string(parent).c_str(), 1);
  auto worker = Worker::FromEnvironment();
  if (!worker.ok()) {
    std::fprintf(stderr, "child: %s\n", worker.status().ToString().c_str());
    _exit(90);
  }
  _exit(body(**worker));
}

// The answer ddv_hello gives, reduced to what these tests check.
std::string Describe(const ConnectionInfo& info) {
  char peer[64] = "-";
  if (info.peer.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&info.peer);
    char ip[INET_ADDRSTRLEN];
    ::inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
    std::snprintf(peer, sizeof(peer), "%s:%d", ip, ntohs(in->sin_port));
  }
  return absl::StrCat("site=", info.site, " pid=", ::getpid(),
                      " host=", info.host.empty() ? "-" : info.host,
                      " tls=", info.tls ? 1 : 0, " peer=", peer, "\n");
}

// Serves each connection with one line and closes it; runs until the master
// goes away.
int ServeLines(Worker& worker) {
  worker.OnConnection([](UniqueFd socket, const ConnectionInfo& info) {
    testing::WriteAll(socket.get(), Describe(info));
  });
  absl::Status status = worker.Run();
  return status.ok() && worker.master_gone() ? 0 : 3;
}

int ExitCode(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(WorkerProcessTest, ServesHandedOffSockets) {
  auto master = FakeMaster::Create();
  ASSERT_TRUE(master.ok()) << master.status();
  pid_t child = ForkWorker(*master, HandoffMode::kScmRights, ServeLines);
  auto hello = master->Expect<handoff::Hello>();
  ASSERT_TRUE(hello.ok()) << hello.status();
  EXPECT_EQ(hello->pid, static_cast<uint32_t>(child));
  EXPECT_EQ(hello->site, "a");
  EXPECT_EQ(hello->worker_index, 1u);

  // One batch of eight connections, as the master batches under load.
  std::vector<TcpPair> pairs;
  handoff::HandoffBatch batch;
  std::vector<int> fds;
  for (int i = 0; i < 8; ++i) {
    auto pair = master->Connect();
    ASSERT_TRUE(pair.ok());
    handoff::HandoffEntry entry;
    entry.connection_id = i;
    entry.protocol = Protocol::kHttp;
    entry.host = absl::StrCat("h", i, ".a.localhost");
    batch.entries.push_back(entry);
    fds.push_back(pair->server.get());
    pairs.push_back(std::move(*pair));
  }
  ASSERT_TRUE(master->Send(batch, fds).ok());
  for (TcpPair& p : pairs) p.server.Reset();  // the master's copies

  for (int i = 0; i < 8; ++i) {
    std::string answer =
        testing::ReadUntilEof(pairs[i].client.get(), absl::Seconds(5));
    EXPECT_EQ(answer,
              absl::StrCat("site=a pid=", child, " host=h", i,
                           ".a.localhost tls=0 peer=",
                           testing::LocalAddress(pairs[i].client.get()),
                           "\n"));
  }
  master->CloseChannel();
  EXPECT_EQ(ExitCode(testing::WaitForChild(child, absl::Seconds(5))), 0);
}

TEST(WorkerProcessTest, PidfdModePullsAndAcks) {
  auto master = FakeMaster::Create();
  ASSERT_TRUE(master.ok());
  pid_t child = ForkWorker(*master, HandoffMode::kPidfd, ServeLines);
  ASSERT_TRUE(master->Expect<handoff::Hello>().ok());

  auto pair = master->Connect();
  ASSERT_TRUE(pair.ok());
  handoff::HandoffBatch batch;
  batch.mode = HandoffMode::kPidfd;
  handoff::HandoffEntry entry;
  entry.connection_id = 77;
  entry.protocol = Protocol::kTls;
  entry.host = "a.localhost";
  entry.master_fd = pair->server.get();
  batch.entries.push_back(entry);
  handoff::HandoffEntry stale = entry;  // an fd the master does not have
  stale.connection_id = 78;
  stale.master_fd = 19999;
  batch.entries.push_back(stale);
  ASSERT_TRUE(master->Send(batch).ok());

  auto ack = master->Expect<handoff::PidfdAck>();
  ASSERT_TRUE(ack.ok()) << ack.status();
  ASSERT_EQ(ack->entries.size(), 2u);
  EXPECT_EQ(ack->entries[0].connection_id, 77u);
  EXPECT_EQ(ack->entries[0].error, 0);
  EXPECT_EQ(ack->entries[1].connection_id, 78u);
  EXPECT_EQ(ack->entries[1].error, EBADF);
  pair->server.Reset();  // the ack lets the master close its copy

  std::string answer =
      testing::ReadUntilEof(pair->client.get(), absl::Seconds(5));
  EXPECT_THAT(answer, HasSubstr("host=a.localhost tls=1 peer=127.0.0.1:"));
  master->CloseChannel();
  EXPECT_EQ(ExitCode(testing::WaitForChild(child, absl::Seconds(5))), 0);
}

TEST(WorkerProcessTest, PingRoundTrip) {
  auto master = FakeMaster::Create();
  ASSERT_TRUE(master.ok());
  pid_t child = ForkWorker(*master, HandoffMode::kScmRights, [](Worker& w) {
    int code = 5;
    w.Ping(absl::Seconds(5), [&](absl::StatusOr<json> r) {
      code = r.ok() && (*r)["pong"] == true ? 0 : 6;
    });
    absl::Status run = w.Run();  // until the master closes
    return run.ok() ? code : 7;
  });
  ASSERT_TRUE(master->Expect<handoff::Hello>().ok());
  auto request = master->Expect<handoff::Request>();
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->method, "ping");
  ASSERT_TRUE(master
                  ->Send(handoff::Response{request->id, absl::StatusCode::kOk,
                                           "", R"({"pong":true})"})
                  .ok());
  master->CloseChannel();
  EXPECT_EQ(ExitCode(testing::WaitForChild(child, absl::Seconds(5))), 0);
}

TEST(WorkerProcessTest, RpcTimeoutFiresWhenTheMasterNeverAnswers) {
  auto master = FakeMaster::Create();
  ASSERT_TRUE(master.ok());
  pid_t child = ForkWorker(*master, HandoffMode::kScmRights, [](Worker& w) {
    int code = 5;
    absl::Time start = absl::Now();
    w.Call("status", json::object(), absl::Milliseconds(200),
           [&](absl::StatusOr<json> r) {
             absl::Duration took = absl::Now() - start;
             code = absl::IsDeadlineExceeded(r.status()) &&
                            took >= absl::Milliseconds(190) &&
                            took < absl::Seconds(3)
                        ? 0
                        : 6;
           });
    // The app's own loop: the channel never becomes readable, only the
    // timeout wakes it.
    while (code == 5 && !w.stopped()) {
      pollfd p{w.fd(), w.poll_events(), 0};
      ::poll(&p, 1,
             static_cast<int>(absl::ToInt64Milliseconds(w.NextTimeout())) + 1);
      if (!w.Drain().ok()) return 8;
    }
    return code;
  });
  ASSERT_TRUE(master->Expect<handoff::Hello>().ok());
  auto request = master->Expect<handoff::Request>();
  ASSERT_TRUE(request.ok());
  // Never answered; the channel stays open.
  EXPECT_EQ(ExitCode(testing::WaitForChild(child, absl::Seconds(5))), 0);
}

// The default when the master dies: no more handoffs, the app finishes the
// connections it has, then exits. Never a hang.
TEST(WorkerProcessTest, MasterGoneLetsTheWorkerFinishAndExit) {
  auto master = FakeMaster::Create();
  ASSERT_TRUE(master.ok());
  pid_t child = ForkWorker(*master, HandoffMode::kScmRights, [](Worker& w) {
    std::vector<UniqueFd> open;
    w.OnConnection([&](UniqueFd socket, const ConnectionInfo&) {
      open.push_back(std::move(socket));
    });
    if (!w.Run().ok() || !w.master_gone()) return 3;
    for (UniqueFd& socket : open) testing::WriteAll(socket.get(), "bye\n");
    return open.size() == 1 ? 0 : 4;
  });
  ASSERT_TRUE(master->Expect<handoff::Hello>().ok());
  auto pair = master->Connect();
  ASSERT_TRUE(pair.ok());
  handoff::HandoffEntry entry;
  entry.connection_id = 1;
  ASSERT_TRUE(master->HandOff(pair->server.get(), entry).ok());
  pair->server.Reset();
  // Closed right after the send: the queued batch still arrives before EOF.
  absl::Time closed = absl::Now();
  master->CloseChannel();
  EXPECT_EQ(testing::ReadUntilEof(pair->client.get(), absl::Seconds(5)),
            "bye\n");
  EXPECT_EQ(ExitCode(testing::WaitForChild(child, absl::Seconds(5))), 0);
  EXPECT_LT(absl::Now() - closed, absl::Seconds(2));
}

TEST(WorkerProcessTest, ShutdownStopsRun) {
  auto master = FakeMaster::Create();
  ASSERT_TRUE(master.ok());
  pid_t child = ForkWorker(*master, HandoffMode::kScmRights, [](Worker& w) {
    int64_t grace_ms = -1;
    w.OnShutdown([&](absl::Duration g) {
      grace_ms = absl::ToInt64Milliseconds(g);
    });
    if (!w.Run().ok()) return 3;
    return w.shutdown_requested() && grace_ms == 1500 ? 0 : 4;
  });
  ASSERT_TRUE(master->Expect<handoff::Hello>().ok());
  ASSERT_TRUE(master->Send(handoff::Shutdown{1500}).ok());
  // The channel stays open: Run() returns on the frame alone.
  EXPECT_EQ(ExitCode(testing::WaitForChild(child, absl::Seconds(5))), 0);
}

}  // namespace
}  // namespace worker
}  // namespace ddv
