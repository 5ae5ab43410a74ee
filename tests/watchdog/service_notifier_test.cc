// ServiceNotifier: which of READY=1, RELOADING=1 and STOPPING=1 systemd
// gets, in what order, across a reload, a master restart, a stop and an
// upgrade's re-execution (the state it is created with), read back from a
// socket the test owns as systemd would.
#include "src/watchdog/service_notifier.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "src/base/unique_fd.h"

namespace ddv {
namespace watchdog {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// systemd's side: an abstract datagram socket, read without waiting.
class Systemd {
 public:
  Systemd() : name_(absl::StrCat("@ddv-service-notifier-", getpid(), "-",
                                 counter_++)) {
    fd_ = UniqueFd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, name_.data(), name_.size());
    addr.sun_path[0] = '\0';
    EXPECT_EQ(bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr),
                   offsetof(sockaddr_un, sun_path) + name_.size()),
              0);
  }
  const std::string& address() const { return name_; }
  // Every message sent so far.
  std::vector<std::string> Read() {
    std::vector<std::string> out;
    char buffer[4096];
    ssize_t n;
    while ((n = recv(fd_.get(), buffer, sizeof(buffer), MSG_DONTWAIT)) > 0) {
      out.emplace_back(buffer, n);
    }
    return out;
  }

 private:
  static inline int counter_ = 0;
  std::string name_;
  UniqueFd fd_;
};

ServiceNotifier Make(const Systemd& systemd,
                     ServiceNotifierOptions options = {}) {
  options.notify_socket = systemd.address();
  absl::StatusOr<ServiceNotifier> notifier = ServiceNotifier::Create(options);
  EXPECT_TRUE(notifier.ok()) << notifier.status();
  return *std::move(notifier);
}

TEST(ServiceNotifierTest, ReadyOnceThenStatusOnly) {
  Systemd systemd;
  ServiceNotifier notifier = Make(systemd);
  notifier.Status("starting master pid 7");
  notifier.Ready("serving");
  // A master restarted after a crash: systemd never saw the service go.
  notifier.Status("master pid 7 ended");
  notifier.Ready("serving again");
  EXPECT_THAT(systemd.Read(),
              ElementsAre("STATUS=starting master pid 7",
                          "READY=1\nSTATUS=serving",
                          "STATUS=master pid 7 ended",
                          "STATUS=serving again"));
}

TEST(ServiceNotifierTest, AReloadIsBracketedByReloadingAndReady) {
  Systemd systemd;
  ServiceNotifier notifier = Make(systemd);
  notifier.Ready("serving");
  notifier.Reloading(1234, "reloading");
  EXPECT_TRUE(notifier.reloading());
  notifier.Reloaded("reload failed: bad file");
  EXPECT_FALSE(notifier.reloading());
  EXPECT_THAT(systemd.Read(),
              ElementsAre("READY=1\nSTATUS=serving",
                          "RELOADING=1\nMONOTONIC_USEC=1234\nSTATUS=reloading",
                          "READY=1\nSTATUS=reload failed: bad file"));
}

TEST(ServiceNotifierTest, AReloadBeforeReadyDoesNotEndTheStart) {
  Systemd systemd;
  ServiceNotifier notifier = Make(systemd);
  notifier.Reloading(1, "reloading");
  notifier.Reloaded("reloaded");
  notifier.Ready("serving");
  EXPECT_THAT(systemd.Read(), ElementsAre("STATUS=reloading", "STATUS=reloaded",
                                          "READY=1\nSTATUS=serving"));
}

TEST(ServiceNotifierTest, AMasterThatDiesMidReloadOwesReadyToTheNext) {
  Systemd systemd;
  ServiceNotifier notifier = Make(systemd);
  notifier.Ready("serving");
  notifier.Reloading(1, "reloading");
  notifier.Status("master pid 7 ended");
  notifier.Ready("master 8 serving");
  EXPECT_THAT(systemd.Read(),
              ElementsAre("READY=1\nSTATUS=serving",
                          "RELOADING=1\nMONOTONIC_USEC=1\nSTATUS=reloading",
                          "STATUS=master pid 7 ended",
                          "READY=1\nSTATUS=master 8 serving"));
}

TEST(ServiceNotifierTest, AfterAnUpgradeReadyIsNeitherRepeatedNorLost) {
  Systemd systemd;
  ServiceNotifierOptions reloading;  // an upgrade's RELOADING=1 was sent
  reloading.ready_sent = true;
  reloading.reloading = true;
  ServiceNotifier after_upgrade = Make(systemd, reloading);
  after_upgrade.Ready("master 9 serving");
  after_upgrade.Ready("master 10 serving");
  ServiceNotifierOptions ready;  // an image that said READY=1 already
  ready.ready_sent = true;
  Make(systemd, ready).Ready("master 11 serving");
  // One that was re-executed before its first master ever served.
  Make(systemd).Ready("master 12 serving");
  EXPECT_THAT(systemd.Read(), ElementsAre("READY=1\nSTATUS=master 9 serving",
                                          "STATUS=master 10 serving",
                                          "STATUS=master 11 serving",
                                          "READY=1\nSTATUS=master 12 serving"));
}

TEST(ServiceNotifierTest, StoppingOnceAndNothingReadyAfter) {
  Systemd systemd;
  ServiceNotifier notifier = Make(systemd);
  notifier.Ready("serving");
  notifier.Stopping("stopping");
  notifier.Stopping("stopping, said by the master");
  notifier.Reloading(1, "reloading");
  notifier.Ready("serving");
  EXPECT_THAT(systemd.Read(),
              ElementsAre("READY=1\nSTATUS=serving", "STOPPING=1\nSTATUS=stopping",
                          "STATUS=reloading", "STATUS=serving"));
}

TEST(ServiceNotifierTest, HandlesTheMastersLinkMessages) {
  Systemd systemd;
  ServiceNotifier notifier = Make(systemd);
  EXPECT_TRUE(notifier.Handle({{"op", "serving"}, {"status", "up"}}));
  EXPECT_TRUE(notifier.Handle(
      {{"op", "reloading"}, {"monotonic_usec", 5}, {"status", "r"}}));
  EXPECT_TRUE(notifier.Handle({{"op", "reloaded"}, {"status", "done\nok"}}));
  EXPECT_TRUE(notifier.Handle({{"op", "status"}, {"status", "s"}}));
  EXPECT_TRUE(notifier.Handle({{"op", "stopping"}, {"status", "bye"}}));
  EXPECT_FALSE(notifier.Handle({{"op", "worker"}}));
  EXPECT_FALSE(notifier.Handle({{"no_op", 1}}));
  EXPECT_THAT(systemd.Read(),
              ElementsAre("READY=1\nSTATUS=up",
                          "RELOADING=1\nMONOTONIC_USEC=5\nSTATUS=r",
                          "READY=1\nSTATUS=done ok", "STATUS=s",
                          "STOPPING=1\nSTATUS=bye"));
}

TEST(ServiceNotifierTest, PingsAtHalfTheWatchdogInterval) {
  Systemd systemd;
  ServiceNotifierOptions options;
  options.watchdog = absl::Milliseconds(200);
  ServiceNotifier notifier = Make(systemd, options);
  EXPECT_EQ(notifier.ping_interval(), absl::Milliseconds(100));
  notifier.Ping();  // the first is due at once
  notifier.Ping();  // not yet
  EXPECT_THAT(systemd.Read(), ElementsAre("WATCHDOG=1"));
  EXPECT_GT(notifier.UntilPing(), absl::Milliseconds(50));
  notifier.Ping(/*force=*/true);
  EXPECT_THAT(systemd.Read(), ElementsAre("WATCHDOG=1"));
  absl::SleepFor(notifier.UntilPing() + absl::Milliseconds(1));
  notifier.Ping();
  EXPECT_THAT(systemd.Read(), ElementsAre("WATCHDOG=1"));
}

TEST(ServiceNotifierTest, NoWatchdogNoPings) {
  Systemd systemd;
  ServiceNotifier notifier = Make(systemd);
  notifier.Ping(/*force=*/true);
  EXPECT_THAT(systemd.Read(), IsEmpty());
  EXPECT_EQ(notifier.UntilPing(), absl::InfiniteDuration());
}

TEST(ServiceNotifierTest, WithoutNotifySocketNothingIsSent) {
  absl::StatusOr<ServiceNotifier> notifier = ServiceNotifier::Create({});
  ASSERT_TRUE(notifier.ok());
  EXPECT_FALSE(notifier->enabled());
  notifier->Ready("serving");  // nowhere to go, and no crash
  EXPECT_FALSE(notifier->ready_sent());
}

TEST(ServiceNotifierTest, ABadAddressIsAnError) {
  ServiceNotifierOptions options;
  options.notify_socket = "not/absolute";
  EXPECT_FALSE(ServiceNotifier::Create(options).ok());
}

TEST(ServiceNotifierTest, MonotonicUsecIsClockMonotonic) {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  const int64_t usec = ServiceNotifier::MonotonicNowUsec();
  EXPECT_GE(usec, now.tv_sec * 1000000LL);
  EXPECT_LT(usec, (now.tv_sec + 5) * 1000000LL);
}

}  // namespace
}  // namespace watchdog
}  // namespace ddv
