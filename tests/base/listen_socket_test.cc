// BindListenSocket, the one way ddv binds a listener (the watchdog and a
// master alone): what a failed bind says, what the socket is set up with,
// and the accept queue's length read back.
#include "src/base/listen_socket.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ddv {
namespace {

using ::testing::HasSubstr;

ListenSpec Spec(const std::string& name, const std::string& address,
                bool defer_accept = true) {
  ListenSpec spec;
  spec.name = name;
  spec.address = address;
  absl::StatusOr<SocketAddress> parsed = ParseSocketAddress(address);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  spec.bind_to = *parsed;
  spec.defer_accept = defer_accept;
  return spec;
}

int PortOf(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  return SocketAddressPort(address);
}

int DeferAccept(int fd) {
  int seconds = -1;
  socklen_t length = sizeof(seconds);
  getsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &seconds, &length);
  return seconds;
}

TEST(BindListenSocketTest, ListensWithDeferAcceptOnlyForPeekedListeners) {
  absl::StatusOr<UniqueFd> http =
      BindListenSocket(Spec("http", "127.0.0.1:0"), ListenOptions());
  ASSERT_TRUE(http.ok()) << http.status();
  absl::StatusOr<UniqueFd> raw = BindListenSocket(
      Spec("raw", "127.0.0.1:0", /*defer_accept=*/false), ListenOptions());
  ASSERT_TRUE(raw.ok()) << raw.status();
  EXPECT_GT(DeferAccept(http->get()), 0);
  EXPECT_EQ(DeferAccept(raw->get()), 0);
  EXPECT_TRUE(ListensOn(http->get(), Spec("", "127.0.0.1:0").bind_to));
  EXPECT_TRUE(ListensOn(
      http->get(),
      Spec("", absl::StrCat("127.0.0.1:", PortOf(http->get()))).bind_to));
  EXPECT_FALSE(ListensOn(http->get(), Spec("", "127.0.0.2:0").bind_to));
  EXPECT_FALSE(ListensOn(http->get(), Spec("", "[::1]:0").bind_to));

  // A listener that turns into `tcp` (or back) keeps its socket.
  ASSERT_TRUE(SetDeferAccept(http->get(), false, ListenOptions()).ok());
  EXPECT_EQ(DeferAccept(http->get()), 0);
  ASSERT_TRUE(SetDeferAccept(raw->get(), true, ListenOptions()).ok());
  EXPECT_GT(DeferAccept(raw->get()), 0);
}

TEST(BindListenSocketTest, APortInUseSaysWhichListenerAndAddress) {
  absl::StatusOr<UniqueFd> first =
      BindListenSocket(Spec("a", "127.0.0.1:0"), ListenOptions());
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string taken = absl::StrCat("127.0.0.1:", PortOf(first->get()));
  absl::StatusOr<UniqueFd> second =
      BindListenSocket(Spec("b", taken), ListenOptions());
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(second.status().message(),
              HasSubstr(absl::StrCat("bind() failed while binding listener "
                                     "\"b\" to ",
                                     taken)));
  EXPECT_THAT(second.status().message(), HasSubstr("Address already in use"));
}

TEST(ListensOnTest, NotAListeningSocket) {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_FALSE(ListensOn(fd.get(), Spec("", "127.0.0.1:0").bind_to));
  EXPECT_FALSE(ListensOn(-1, Spec("", "127.0.0.1:0").bind_to));
}

TEST(AcceptQueueLengthTest, CountsConnectionsWaitingToBeAccepted) {
  absl::StatusOr<UniqueFd> listener = BindListenSocket(
      Spec("raw", "127.0.0.1:0", /*defer_accept=*/false), ListenOptions());
  ASSERT_TRUE(listener.ok()) << listener.status();
  sockaddr_in addr{};
  socklen_t length = sizeof(addr);
  getsockname(listener->get(), reinterpret_cast<sockaddr*>(&addr), &length);
  EXPECT_EQ(AcceptQueueLength(listener->get()), 0);
  std::vector<UniqueFd> clients;
  for (int i = 0; i < 3; ++i) {
    clients.emplace_back(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_EQ(connect(clients.back().get(),
                      reinterpret_cast<sockaddr*>(&addr), sizeof(addr)),
              0);
  }
  EXPECT_EQ(AcceptQueueLength(listener->get()), 3);
  UniqueFd accepted(accept4(listener->get(), nullptr, nullptr, SOCK_CLOEXEC));
  EXPECT_EQ(AcceptQueueLength(listener->get()), 2);
  // Not a listener: unknown.
  EXPECT_EQ(AcceptQueueLength(clients[0].get()), -1);
}

}  // namespace
}  // namespace ddv
