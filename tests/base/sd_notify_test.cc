// NotifySocket against a socket the test owns, as systemd would: a path
// and an abstract name, the environment read as sd_notify(3) reads it, and
// a full receive queue that makes Send fail instead of block.
#include "src/base/sd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ddv {
namespace {

using ::testing::HasSubstr;

// A datagram socket bound where NOTIFY_SOCKET will say, like systemd's.
class Receiver {
 public:
  explicit Receiver(const std::string& address) {
    fd_ = UniqueFd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, address.data(), address.size());
    socklen_t length = offsetof(sockaddr_un, sun_path) + address.size();
    if (address[0] == '@') {
      addr.sun_path[0] = '\0';
    } else {
      unlink(address.c_str());
      ++length;
    }
    EXPECT_EQ(bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), length), 0)
        << std::strerror(errno);
    timeval timeout{2, 0};
    setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  }
  std::string Receive() {
    char buffer[4096];
    ssize_t n = recv(fd_.get(), buffer, sizeof(buffer), 0);
    return n < 0 ? std::string("(nothing)") : std::string(buffer, n);
  }
  int fd() const { return fd_.get(); }

 private:
  UniqueFd fd_;
};

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  // sun_path is 108 bytes; Bazel's TEST_TMPDIR can be longer.
  std::string base = dir != nullptr && std::strlen(dir) < 60 ? dir : "/tmp";
  return absl::StrCat(base, "/", name, "-", getpid());
}

TEST(NotifySocketTest, SendsToAPath) {
  const std::string path = TempPath("notify");
  Receiver receiver(path);
  absl::StatusOr<NotifySocket> socket = NotifySocket::Open(path);
  ASSERT_TRUE(socket.ok()) << socket.status();
  EXPECT_TRUE(socket->enabled());
  ASSERT_TRUE(socket->Send("READY=1\nSTATUS=up").ok());
  EXPECT_EQ(receiver.Receive(), "READY=1\nSTATUS=up");
  unlink(path.c_str());
}

TEST(NotifySocketTest, SendsToAnAbstractName) {
  const std::string name = absl::StrCat("@ddv-notify-test-", getpid());
  Receiver receiver(name);
  absl::StatusOr<NotifySocket> socket = NotifySocket::Open(name);
  ASSERT_TRUE(socket.ok()) << socket.status();
  ASSERT_TRUE(socket->Send("WATCHDOG=1").ok());
  EXPECT_EQ(receiver.Receive(), "WATCHDOG=1");
}

TEST(NotifySocketTest, RefusesWhatIsNotAnAddress) {
  for (const char* bad : {"", "relative/path", "@", "vsock:2:1234"}) {
    absl::StatusOr<NotifySocket> socket = NotifySocket::Open(bad);
    ASSERT_FALSE(socket.ok()) << bad;
    EXPECT_EQ(socket.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(socket.status().message(), HasSubstr("NOTIFY_SOCKET"));
  }
  EXPECT_THAT(NotifySocket::Open("/" + std::string(200, 'x')).status().message(),
              HasSubstr("longer than an AF_UNIX address"));
}

TEST(NotifySocketTest, NobodyListeningIsAnErrorNotAHang) {
  absl::StatusOr<NotifySocket> socket =
      NotifySocket::Open(TempPath("nobody-listens"));
  ASSERT_TRUE(socket.ok());
  absl::Status sent = socket->Send("READY=1");
  EXPECT_FALSE(sent.ok());
  EXPECT_THAT(sent.message(), HasSubstr("sendmsg() failed while notifying"));
}

TEST(NotifySocketTest, AFullQueueDropsTheMessageInsteadOfBlocking) {
  const std::string name = absl::StrCat("@ddv-notify-full-", getpid());
  Receiver receiver(name);  // never read until the end
  absl::StatusOr<NotifySocket> socket = NotifySocket::Open(name);
  ASSERT_TRUE(socket.ok());
  const absl::Time start = absl::Now();
  absl::Status sent;
  for (int i = 0; i < 100000 && sent.ok(); ++i) {
    sent = socket->Send(std::string(1000, 'x'));
  }
  EXPECT_EQ(sent.code(), absl::StatusCode::kResourceExhausted) << sent;
  EXPECT_THAT(sent.message(), HasSubstr("is full"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST(NotifySocketTest, ADisabledSocketSendsNothing) {
  NotifySocket socket;
  EXPECT_FALSE(socket.enabled());
  EXPECT_TRUE(socket.Send("READY=1").ok());
}

TEST(NotifyValueTest, OneLine) {
  EXPECT_EQ(NotifyValue("a\nb\rc"), "a b c");
}

class NotifyEnvTest : public ::testing::Test {
 protected:
  void SetUp() override { Clear(); }
  void TearDown() override { Clear(); }
  static void Clear() {
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
  }
};

TEST_F(NotifyEnvTest, NothingSet) {
  absl::StatusOr<SystemdNotifyEnv> env = ReadSystemdNotifyEnv();
  ASSERT_TRUE(env.ok());
  EXPECT_EQ(env->notify_socket, "");
  EXPECT_EQ(env->watchdog, absl::ZeroDuration());
}

TEST_F(NotifyEnvTest, WatchdogForThisProcess) {
  setenv("NOTIFY_SOCKET", "@x", 1);
  setenv("WATCHDOG_USEC", "30000000", 1);
  absl::StatusOr<SystemdNotifyEnv> env = ReadSystemdNotifyEnv();
  ASSERT_TRUE(env.ok());
  EXPECT_EQ(env->notify_socket, "@x");
  EXPECT_EQ(env->watchdog, absl::Seconds(30));
  setenv("WATCHDOG_PID", absl::StrCat(getpid()).c_str(), 1);
  EXPECT_EQ(ReadSystemdNotifyEnv()->watchdog, absl::Seconds(30));
}

TEST_F(NotifyEnvTest, WatchdogForAnotherProcessIsNotOurs) {
  setenv("WATCHDOG_USEC", "30000000", 1);
  setenv("WATCHDOG_PID", absl::StrCat(getpid() + 1).c_str(), 1);
  EXPECT_EQ(ReadSystemdNotifyEnv()->watchdog, absl::ZeroDuration());
}

TEST_F(NotifyEnvTest, MalformedValuesAreErrors) {
  setenv("WATCHDOG_USEC", "soon", 1);
  EXPECT_THAT(ReadSystemdNotifyEnv().status().message(),
              HasSubstr("WATCHDOG_USEC=\"soon\""));
  setenv("WATCHDOG_USEC", "0", 1);
  EXPECT_FALSE(ReadSystemdNotifyEnv().ok());
  setenv("WATCHDOG_USEC", "1000", 1);
  setenv("WATCHDOG_PID", "me", 1);
  EXPECT_THAT(ReadSystemdNotifyEnv().status().message(),
              HasSubstr("WATCHDOG_PID=\"me\""));
}

TEST(NotifyVariableTest, Names) {
  EXPECT_TRUE(IsSystemdNotifyVariable("NOTIFY_SOCKET"));
  EXPECT_TRUE(IsSystemdNotifyVariable("WATCHDOG_USEC"));
  EXPECT_TRUE(IsSystemdNotifyVariable("WATCHDOG_PID"));
  EXPECT_FALSE(IsSystemdNotifyVariable("PATH"));
}

}  // namespace
}  // namespace ddv
