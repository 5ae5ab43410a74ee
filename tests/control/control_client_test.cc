// SendControlCommand against fake masters: each way a command can fail
// gets its own status code, and so its own ddvctl exit code.
#include "src/control/control_client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "src/base/unique_fd.h"

namespace ddv {
namespace control {
namespace {

using ::testing::HasSubstr;

std::string SocketPath(const std::string& name) {
  // sun_path is short; TEST_TMPDIR may not be.
  static const std::string dir = [] {
    char pattern[] = "/tmp/ddv-ctl-XXXXXX";
    return std::string(mkdtemp(pattern));
  }();
  return dir + "/" + name;
}

UniqueFd Listen(const std::string& path) {
  unlink(path.c_str());
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, path.c_str());
  EXPECT_EQ(bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)),
            0);
  EXPECT_EQ(listen(fd.get(), 4), 0);
  return fd;
}

// A master that reads one line and answers `reply` (nothing: just closes).
class FakeMaster {
 public:
  FakeMaster(const std::string& path, std::string reply)
      : listener_(Listen(path)), thread_([this, reply] {
          UniqueFd client(accept4(listener_.get(), nullptr, nullptr,
                                  SOCK_CLOEXEC));
          char buf[512];
          ssize_t n = recv(client.get(), buf, sizeof(buf), 0);
          if (n > 0) command_.assign(buf, n);
          send(client.get(), reply.data(), reply.size(), MSG_NOSIGNAL);
        }) {}
  ~FakeMaster() {
    if (thread_.joinable()) thread_.join();
  }
  const std::string& command() {
    thread_.join();
    return command_;
  }

 private:
  UniqueFd listener_;
  std::string command_;
  std::thread thread_;
};

TEST(SendControlCommandTest, ReturnsTheReply) {
  const std::string path = SocketPath("ok.sock");
  FakeMaster master(path, "ok: reloaded /etc/ddv.toml\n");
  absl::StatusOr<std::string> reply = SendControlCommand(path, "reload");
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "ok: reloaded /etc/ddv.toml\n");
  EXPECT_EQ(master.command(), "reload\n");
  EXPECT_EQ(ExitCodeFor(reply.status()), kExitOk);
}

TEST(SendControlCommandTest, MasterErrorIsFailedPreconditionWithItsReason) {
  const std::string path = SocketPath("error.sock");
  FakeMaster master(path,
                    "error: reload failed, keeping the running config: "
                    "/etc/ddv.toml:3:13: processes must be an integer\n");
  absl::StatusOr<std::string> reply = SendControlCommand(path, "reload");
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(reply.status().message(),
            "reload failed, keeping the running config: /etc/ddv.toml:3:13: "
            "processes must be an integer");
  EXPECT_EQ(ExitCodeFor(reply.status()), kExitFailed);
}

TEST(SendControlCommandTest, MasterPeerRefusalIsPermissionDenied) {
  const std::string path = SocketPath("denied.sock");
  FakeMaster master(path, "error: permission denied (uid 65534)\n");
  absl::StatusOr<std::string> reply = SendControlCommand(path, "status");
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(reply.status().message(),
              HasSubstr("the master refused: permission denied (uid 65534)"));
  EXPECT_THAT(reply.status().message(), HasSubstr("control_socket_group"));
  EXPECT_EQ(ExitCodeFor(reply.status()), kExitPermissionDenied);
}

TEST(SendControlCommandTest, NoSocketMeansNotRunning) {
  absl::StatusOr<std::string> reply =
      SendControlCommand(SocketPath("absent.sock"), "status");
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(reply.status().message(),
              HasSubstr("ddv_master is not running: no control socket at"));
  EXPECT_EQ(ExitCodeFor(reply.status()), kExitNotRunning);
}

TEST(SendControlCommandTest, StaleSocketMeansNotRunning) {
  const std::string path = SocketPath("stale.sock");
  { UniqueFd gone = Listen(path); }  // the file stays, nobody listens
  absl::StatusOr<std::string> reply = SendControlCommand(path, "status");
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(reply.status().message(), HasSubstr("nothing listens on"));
  EXPECT_EQ(ExitCodeFor(reply.status()), kExitNotRunning);
}

TEST(SendControlCommandTest, SilentMasterIsNoAnswer) {
  const std::string path = SocketPath("silent.sock");
  UniqueFd listener = Listen(path);  // connects land in the backlog
  absl::StatusOr<std::string> reply =
      SendControlCommand(path, "status", absl::Milliseconds(200));
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(reply.status().message(), HasSubstr("did not answer"));
  EXPECT_THAT(reply.status().message(), HasSubstr("200ms"));
  EXPECT_EQ(ExitCodeFor(reply.status()), kExitNoAnswer);
}

TEST(SendControlCommandTest, ClosedWithoutAnswerIsAFailure) {
  const std::string path = SocketPath("closed.sock");
  FakeMaster master(path, "");
  absl::StatusOr<std::string> reply = SendControlCommand(path, "stop");
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(reply.status().message(), HasSubstr("without answering"));
  EXPECT_EQ(ExitCodeFor(reply.status()), kExitFailed);
}

TEST(SendControlCommandTest, OverlongPathIsAFailureNotNotRunning) {
  absl::StatusOr<std::string> reply =
      SendControlCommand("/" + std::string(120, 'x'), "status");
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(reply.status().message(), HasSubstr("too long"));
}

}  // namespace
}  // namespace control
}  // namespace ddv
