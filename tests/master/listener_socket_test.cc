// --listen_fds: the text the watchdog writes is parsed back to one fd per
// listener; malformed text, fds named twice and fds that are not listening
// sockets are refused, and nothing is taken (or closed) when that happens.
#include "src/master/listener_socket.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ddv {
namespace master {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

config::Config Listeners(const std::vector<std::string>& names) {
  config::Config config;
  for (const std::string& name : names) {
    config::ListenerConfig listener;
    listener.name = name;
    config.listeners.push_back(listener);
  }
  return config;
}

// A TCP socket on 127.0.0.1, listening or not.
UniqueFd TcpSocket(bool listening) {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)),
            0);
  if (listening) EXPECT_EQ(listen(fd.get(), 1), 0);
  return fd;
}

bool IsOpen(int fd) { return fcntl(fd, F_GETFD) >= 0; }

TEST(ParseListenFdListTest, MapsNamesToFdsInListenerOrder) {
  absl::StatusOr<std::vector<int>> fds =
      ParseListenFdList("https=4,http=3", {"http", "https"});
  ASSERT_TRUE(fds.ok()) << fds.status();
  EXPECT_THAT(*fds, ElementsAre(3, 4));
}

TEST(ParseListenFdListTest, UnnamedListenerIsMinusOneAndStrangersIgnored) {
  absl::StatusOr<std::vector<int>> fds =
      ParseListenFdList("http=3,,ftp=9", {"http", "https"});
  ASSERT_TRUE(fds.ok()) << fds.status();
  EXPECT_THAT(*fds, ElementsAre(3, -1));
  fds = ParseListenFdList("", {"http"});
  ASSERT_TRUE(fds.ok());
  EXPECT_THAT(*fds, ElementsAre(-1));
}

TEST(ParseListenFdListTest, RefusesMalformedEntries) {
  for (const char* text :
       {"http", "http=", "http=x", "http=-3", "http=3x", "http=99999999999"}) {
    absl::StatusOr<std::vector<int>> fds = ParseListenFdList(text, {"http"});
    EXPECT_EQ(fds.status().code(), absl::StatusCode::kInvalidArgument) << text;
    if (!fds.ok()) {
      EXPECT_THAT(fds.status().message(), HasSubstr("--listen_fds")) << text;
    }
  }
}

TEST(ParseListenFdListTest, RefusesAnFdNamedTwice) {
  absl::StatusOr<std::vector<int>> fds =
      ParseListenFdList("http=3,https=3", {"http", "https"});
  EXPECT_EQ(fds.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(fds.status().message(), HasSubstr("fd 3 is named twice"));
}

TEST(ParseListenFdsTest, RoundTripsWhatTheWatchdogFormats) {
  UniqueFd http = TcpSocket(true);
  UniqueFd https = TcpSocket(true);
  const config::Config config = Listeners({"http", "https"});
  const std::string text = FormatListenFds(config, {http.get(), https.get()});
  EXPECT_EQ(text, absl::StrCat("http=", http.get(), ",https=", https.get()));
  absl::StatusOr<std::vector<UniqueFd>> fds = ParseListenFds(text, config);
  ASSERT_TRUE(fds.ok()) << fds.status();
  ASSERT_EQ(fds->size(), 2u);
  EXPECT_EQ((*fds)[0].get(), http.get());
  EXPECT_EQ((*fds)[1].get(), https.get());
  // The parsed owners now hold them; let them, and forget ours.
  http.Release();
  https.Release();
}

TEST(ParseListenFdsTest, RefusesAMissingOrNonListeningSocketAndTakesNothing) {
  UniqueFd http = TcpSocket(true);
  UniqueFd idle = TcpSocket(false);
  const config::Config config = Listeners({"http", "https"});

  absl::StatusOr<std::vector<UniqueFd>> fds =
      ParseListenFds(absl::StrCat("http=", http.get()), config);
  EXPECT_EQ(fds.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(fds.status().message(), HasSubstr("listener \"https\""));

  fds = ParseListenFds(absl::StrCat("http=", http.get(), ",https=", idle.get()),
                       config);
  EXPECT_EQ(fds.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(fds.status().message(), HasSubstr("listener \"https\""));
  // A failed parse closed neither: they are still the caller's.
  EXPECT_TRUE(IsOpen(http.get()));
  EXPECT_TRUE(IsOpen(idle.get()));

  int closed[2];
  ASSERT_EQ(pipe(closed), 0);
  close(closed[0]);
  close(closed[1]);
  fds = ParseListenFds(absl::StrCat("http=", closed[0]), Listeners({"http"}));
  EXPECT_EQ(fds.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(AcceptQueueLengthTest, CountsConnectionsWaitingToBeAccepted) {
  UniqueFd listener(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(listener.get(), reinterpret_cast<sockaddr*>(&addr),
                 sizeof(addr)),
            0);
  ASSERT_EQ(listen(listener.get(), 16), 0);
  socklen_t length = sizeof(addr);
  getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &length);
  EXPECT_EQ(AcceptQueueLength(listener.get()), 0);
  std::vector<UniqueFd> clients;
  for (int i = 0; i < 3; ++i) {
    clients.emplace_back(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_EQ(connect(clients.back().get(),
                      reinterpret_cast<sockaddr*>(&addr), sizeof(addr)),
              0);
  }
  EXPECT_EQ(AcceptQueueLength(listener.get()), 3);
  UniqueFd accepted(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  EXPECT_EQ(AcceptQueueLength(listener.get()), 2);
  // Not a listener: unknown.
  EXPECT_EQ(AcceptQueueLength(clients[0].get()), -1);
}

}  // namespace
}  // namespace master
}  // namespace ddv
