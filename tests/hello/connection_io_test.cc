// ConnectionIo on a real ring and real loopback sockets, without HttpServer:
// the test runs the completion loop itself. Answers and keep-alive, the
// PROXY bytes skipped inside the ring, closes (client-asked, half-close,
// lingering after an error, idle deadline, drain, close-all) that free the
// slot and close the fd through the ring. Every test runs with multishot
// recv into a buffer ring and with single-shot recv.
#include "src/hello/connection_io.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "src/hello/ring_ops.h"
#include "src/uring/op_tag.h"
#include "tests/handoff/test_sockets.h"

namespace ddv {
namespace hello {
namespace {

constexpr char kRequest[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";

bool IsOpen(int fd) { return fcntl(fd, F_GETFD) != -1; }

class ConnectionIoTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override { Start(ConnectionIo::Options()); }

  void Start(const ConnectionIo::Options& options) {
    io_.reset();
    buffers_.reset();
    ring_.reset();
    uring::RingOptions ring_options;
    ring_options.entries = 64;
    absl::StatusOr<std::unique_ptr<uring::Ring>> ring =
        uring::Ring::Create(ring_options);
    ASSERT_TRUE(ring.ok()) << ring.status();
    ring_ = std::move(*ring);
    if (GetParam()) {
      absl::StatusOr<std::unique_ptr<uring::BufferRing>> buffers =
          uring::BufferRing::Create(ring_->get(), 1, 16, 4096);
      ASSERT_TRUE(buffers.ok()) << buffers.status();
      buffers_ = std::move(*buffers);
    }
    io_ = std::make_unique<ConnectionIo>(options, ring_.get(), buffers_.get(),
                                         &clock_, &stats_);
  }

  void TearDown() override {
    io_.reset();
    buffers_.reset();
    ring_.reset();
  }

  // A connection whose client has already written `first_bytes`.
  ::ddv::testing::TcpPair Connect(const std::string& first_bytes,
                                  ConnectionInfo info = ConnectionInfo()) {
    ::ddv::testing::TcpPair pair = ::ddv::testing::ConnectedTcpPair();
    EXPECT_TRUE(pair.client.valid() && pair.server.valid());
    if (!first_bytes.empty()) {
      EXPECT_TRUE(::ddv::testing::WriteAll(pair.client.get(), first_bytes));
    }
    server_fd_ = pair.server.get();
    if (info.site_id.empty()) info.site_id = "s";
    if (info.peer.empty()) info.peer = "192.0.2.1:1";
    io_->Open(std::move(pair.server), std::move(info));
    return pair;
  }

  // One pass of the loop HttpServer runs (waiting at most 5 ms).
  void RunOnce() {
    if (buffers_ != nullptr) buffers_->Publish();
    __kernel_timespec timeout{0, 5 * 1000 * 1000};
    io_uring_cqe* first = nullptr;
    io_uring_submit_and_wait_timeout(ring_->get(), &first, 1, &timeout,
                                     nullptr);
    clock_.Update();
    unsigned head;
    unsigned seen = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(ring_->get(), head, cqe) {
      Dispatch(*cqe);
      ++seen;
    }
    io_uring_cq_advance(ring_->get(), seen);
    io_->ExpireDeadlines();
  }
  // Passes until `done`; false after two seconds without.
  bool RunUntil(const std::function<bool()>& done) {
    absl::Time deadline = absl::Now() + absl::Seconds(2);
    while (!done()) {
      if (absl::Now() > deadline) return false;
      RunOnce();
    }
    return true;
  }

  void Dispatch(const io_uring_cqe& cqe) {
    uring::OpTag tag = uring::OpTag::Decode(cqe.user_data);
    switch (tag.op) {
      case kOpRecv:
        io_->OnRecv(tag.index, cqe);
        return;
      case kOpSend:
        io_->OnSend(tag.index, cqe.res);
        return;
      case kOpIgnore:
        // Cancels and closes report only failures; a cancel racing the
        // op's own end finds nothing.
        EXPECT_TRUE(cqe.res == -ENOENT || cqe.res == -EALREADY) << cqe.res;
        return;
      default:
        ADD_FAILURE() << "unexpected op " << int{tag.op};
    }
  }

  // What the client has received so far (non-blocking); `*eof` on FIN.
  std::string ClientReceived(int fd, bool* eof = nullptr) {
    char buf[65536];
    for (;;) {
      ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
      if (n > 0) {
        received_.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (eof != nullptr) *eof = n == 0;
      return received_;
    }
  }
  // Runs the loop until the client saw `count` complete answers (each
  // body is one line ending in " peer=...\n").
  bool RunUntilAnswers(int fd, int count) {
    return RunUntil([&] {
      std::string in = ClientReceived(fd);
      int complete = 0;
      for (size_t at = in.find(" peer="); at != std::string::npos;
           at = in.find(" peer=", at + 1)) {
        if (in.find('\n', at) != std::string::npos) ++complete;
      }
      return complete >= count;
    });
  }
  bool RunUntilClientEof(int fd) {
    return RunUntil([&] {
      bool eof = false;
      ClientReceived(fd, &eof);
      return eof;
    });
  }
  bool RunUntilFreed() {
    return RunUntil([&] { return stats_.open_connections == 0; });
  }

  LoopClock clock_;
  HttpServerStats stats_;
  std::unique_ptr<uring::Ring> ring_;
  std::unique_ptr<uring::BufferRing> buffers_;
  std::unique_ptr<ConnectionIo> io_;
  int server_fd_ = -1;
  std::string received_;
};

TEST_P(ConnectionIoTest, AnswersPipelinedRequestsAndKeepsTheConnection) {
  ::ddv::testing::TcpPair pair = Connect(std::string(kRequest) + kRequest);
  EXPECT_EQ(stats_.open_connections, 1u);
  ASSERT_TRUE(RunUntilAnswers(pair.client.get(), 2));
  EXPECT_EQ(stats_.requests, 2u);
  ASSERT_TRUE(::ddv::testing::WriteAll(pair.client.get(), kRequest));
  ASSERT_TRUE(RunUntilAnswers(pair.client.get(), 3));
  EXPECT_EQ(stats_.open_connections, 1u);
  EXPECT_TRUE(IsOpen(server_fd_));
}

TEST_P(ConnectionIoTest, ProxyHeaderBytesAreSkipped) {
  const std::string proxy = "PROXY TCP4 203.0.113.7 10.0.0.1 4242 80\r\n";
  ConnectionInfo info;
  info.skip_bytes = proxy.size();
  info.peer = "203.0.113.7:4242";
  ::ddv::testing::TcpPair pair = Connect(proxy + kRequest, info);
  ASSERT_TRUE(RunUntilAnswers(pair.client.get(), 1));
  EXPECT_NE(received_.find("peer=203.0.113.7:4242\n"), std::string::npos);
  EXPECT_EQ(stats_.bad_requests, 0u);
}

TEST_P(ConnectionIoTest, ConnectionCloseClosesTheFdThroughTheRing) {
  ::ddv::testing::TcpPair pair =
      Connect("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  ASSERT_TRUE(RunUntilClientEof(pair.client.get()));
  EXPECT_NE(received_.find("Connection: close\r\n"), std::string::npos);
  ASSERT_TRUE(RunUntilFreed());
  RunOnce();  // in case the close is still queued on the ring
  EXPECT_FALSE(IsOpen(server_fd_));
}

TEST_P(ConnectionIoTest, HalfCloseIsAnsweredThenClosed) {
  ::ddv::testing::TcpPair pair = Connect(kRequest);
  ASSERT_EQ(shutdown(pair.client.get(), SHUT_WR), 0);
  ASSERT_TRUE(RunUntilClientEof(pair.client.get()));
  EXPECT_NE(received_.find("HTTP/1.1 200 OK"), std::string::npos);
  ASSERT_TRUE(RunUntilFreed());
}

TEST_P(ConnectionIoTest, BadRequestLingersUntilTheClientCloses) {
  ::ddv::testing::TcpPair pair = Connect("\x16\x03 not http\r\n\r\nmore");
  // The answer, then our FIN (the write side is shut) ...
  ASSERT_TRUE(RunUntilClientEof(pair.client.get()));
  EXPECT_EQ(received_.rfind("HTTP/1.1 400 Bad Request", 0), 0u);
  // ... while input is still read and discarded, until the client's own
  // close (so an RST cannot destroy the answer in flight).
  EXPECT_EQ(stats_.open_connections, 1u);
  ASSERT_TRUE(::ddv::testing::WriteAll(pair.client.get(), "ignored"));
  RunOnce();
  EXPECT_EQ(stats_.open_connections, 1u);
  pair.client.Reset();
  ASSERT_TRUE(RunUntilFreed());
  RunOnce();  // the close is queued on the ring; this pass submits it
  EXPECT_FALSE(IsOpen(server_fd_));
}

TEST_P(ConnectionIoTest, IdleDeadlineCloses) {
  ConnectionIo::Options options;
  options.idle_timeout = absl::Milliseconds(30);
  Start(options);
  ::ddv::testing::TcpPair pair = Connect("");
  ASSERT_TRUE(RunUntilClientEof(pair.client.get()));
  EXPECT_EQ(stats_.idle_timeouts, 1u);
  ASSERT_TRUE(RunUntilFreed());
}

TEST_P(ConnectionIoTest, DrainClosesIdleAfterTheGraceAndFinishesBusyWithClose) {
  ConnectionIo::Options options;
  options.drain_idle_grace = absl::Milliseconds(300);
  Start(options);
  ::ddv::testing::TcpPair idle = Connect(kRequest);
  const int idle_fd = server_fd_;
  ASSERT_TRUE(RunUntilAnswers(idle.client.get(), 1));
  received_.clear();
  ::ddv::testing::TcpPair busy = Connect("GET / HTTP/1.1\r\nHost: late\r\n");
  RunUntil([&] { return stats_.open_connections == 2; });
  const absl::Time drain = absl::Now();
  io_->BeginDrain();
  EXPECT_TRUE(io_->draining());
  ASSERT_TRUE(RunUntil([&] { return !IsOpen(idle_fd); }));
  EXPECT_GE(absl::Now() - drain, absl::Milliseconds(290));
  EXPECT_EQ(stats_.open_connections, 1u);
  ASSERT_TRUE(::ddv::testing::WriteAll(busy.client.get(), "\r\n"));
  ASSERT_TRUE(RunUntilClientEof(busy.client.get()));
  EXPECT_NE(received_.find("Connection: close\r\n"), std::string::npos);
  EXPECT_NE(received_.find("host=late "), std::string::npos);
  ASSERT_TRUE(RunUntilFreed());
}

TEST_P(ConnectionIoTest, DrainAnswersAnIdleConnectionsNextRequestWithClose) {
  // The request a keep-alive client sends just as the drain begins is
  // answered (Connection: close), not lost to a close racing it.
  ::ddv::testing::TcpPair idle = Connect(kRequest);
  ASSERT_TRUE(RunUntilAnswers(idle.client.get(), 1));
  received_.clear();
  io_->BeginDrain();
  RunOnce();
  ASSERT_TRUE(::ddv::testing::WriteAll(idle.client.get(),
                                       "GET / HTTP/1.1\r\nHost: next\r\n\r\n"));
  ASSERT_TRUE(RunUntilClientEof(idle.client.get()));
  EXPECT_NE(received_.find("Connection: close\r\n"), std::string::npos);
  EXPECT_NE(received_.find("host=next "), std::string::npos);
  ASSERT_TRUE(RunUntilFreed());
}

TEST_P(ConnectionIoTest, CloseAllCancelsWhatIsInFlight) {
  ::ddv::testing::TcpPair a = Connect("");
  ::ddv::testing::TcpPair b = Connect("GET / HTTP/1.1\r\n");
  RunOnce();  // both recvs armed in the kernel
  io_->CloseAll();
  ASSERT_TRUE(RunUntilFreed());
  ASSERT_TRUE(RunUntilClientEof(a.client.get()));
  received_.clear();
  ASSERT_TRUE(RunUntilClientEof(b.client.get()));
  EXPECT_EQ(received_, "");
}

INSTANTIATE_TEST_SUITE_P(RecvModes, ConnectionIoTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Multishot" : "SingleShot";
                         });

}  // namespace
}  // namespace hello
}  // namespace ddv
