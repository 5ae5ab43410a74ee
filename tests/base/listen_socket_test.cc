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
#include "src/base/socket_address.h"
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

// Connects to `address` (IPv4 or IPv6 text, any port) and says whether the
// kernel took the connection; the peer the listener sees is in `*peer`.
bool Connects(const std::string& address, UniqueFd* client) {
  absl::StatusOr<SocketAddress> parsed = ParseSocketAddress(address);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  *client = UniqueFd(socket(parsed->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC,
                            0));
  return connect(client->get(), reinterpret_cast<sockaddr*>(&parsed->addr),
                 parsed->addr_len) == 0;
}

bool ReusePort(int fd) {
  int value = -1;
  socklen_t length = sizeof(value);
  getsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &value, &length);
  return value != 0;
}

TEST(BindListenSocketTest, Ipv6IsV6OnlyUnlessSaidOtherwise) {
  absl::StatusOr<UniqueFd> v6 =
      BindListenSocket(Spec("v6", "[::]:0"), ListenOptions());
  ASSERT_TRUE(v6.ok()) << v6.status();
  EXPECT_TRUE(IsV6Only(v6->get()));
  const int port = PortOf(v6->get());
  UniqueFd client;
  EXPECT_TRUE(Connects(absl::StrCat("[::1]:", port), &client));
  EXPECT_FALSE(Connects(absl::StrCat("127.0.0.1:", port), &client));
  // So an IPv4 listener can share the port.
  absl::StatusOr<UniqueFd> v4 = BindListenSocket(
      Spec("v4", absl::StrCat("0.0.0.0:", port)), ListenOptions());
  EXPECT_TRUE(v4.ok()) << v4.status();
  EXPECT_TRUE(IsV6Only(v4->get()));  // IPv4: takes no IPv6 either
}

TEST(BindListenSocketTest, DualStackTakesIpv4AsMappedAddresses) {
  ListenSpec spec = Spec("dual", "[::]:0", /*defer_accept=*/false);
  spec.v6only = false;
  absl::StatusOr<UniqueFd> dual = BindListenSocket(spec, ListenOptions());
  ASSERT_TRUE(dual.ok()) << dual.status();
  EXPECT_FALSE(IsV6Only(dual->get()));
  const int port = PortOf(dual->get());
  UniqueFd v4_client, v6_client;
  ASSERT_TRUE(Connects(absl::StrCat("127.0.0.1:", port), &v4_client));
  ASSERT_TRUE(Connects(absl::StrCat("[::1]:", port), &v6_client));
  std::vector<std::string> peers;
  for (int i = 0; i < 2; ++i) {
    sockaddr_storage peer{};
    socklen_t length = sizeof(peer);
    UniqueFd accepted(accept4(dual->get(), reinterpret_cast<sockaddr*>(&peer),
                              &length, SOCK_CLOEXEC));
    ASSERT_TRUE(accepted.valid());
    EXPECT_EQ(peer.ss_family, AF_INET6);  // both, as IPv6
    // Printed as what they are.
    absl::StatusOr<std::string> text = FormatSocketAddress(peer);
    ASSERT_TRUE(text.ok());
    peers.push_back(text->substr(0, text->rfind(':')));
  }
  EXPECT_THAT(peers, ::testing::UnorderedElementsAre("127.0.0.1", "[::1]"));
  // It holds the IPv4 port as well.
  EXPECT_FALSE(BindListenSocket(Spec("v4", absl::StrCat("0.0.0.0:", port)),
                                ListenOptions())
                   .ok());
}

// A reload that changes v6only (or moves an address onto an overlapping
// one) binds the new socket while the old one still listens.
TEST(BindListenSocketTest, BindsBesideAnOldSocketThatAllowsIt) {
  absl::StatusOr<UniqueFd> old =
      BindListenSocket(Spec("old", "[::]:0"), ListenOptions());
  ASSERT_TRUE(old.ok()) << old.status();
  const std::string address = absl::StrCat("[::]:", PortOf(old->get()));
  ListenSpec dual = Spec("new", address);
  dual.v6only = false;
  dual.reuse_port = true;
  // Not unless the old one allows it: the port is still guarded.
  absl::StatusOr<UniqueFd> refused = BindListenSocket(dual, ListenOptions());
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), HasSubstr("Address already in use"));

  ASSERT_TRUE(SetReusePort(old->get(), true).ok());
  absl::StatusOr<UniqueFd> beside = BindListenSocket(dual, ListenOptions());
  ASSERT_TRUE(beside.ok()) << beside.status();
  EXPECT_FALSE(IsV6Only(beside->get()));
  EXPECT_FALSE(ReusePort(beside->get()));  // off again once listening
  EXPECT_TRUE(ListensOn(beside->get(), Spec("", address).bind_to));
  UniqueFd client;
  EXPECT_TRUE(Connects(absl::StrCat("127.0.0.1:", PortOf(old->get())),
                       &client));
  // A plain bind (no SO_REUSEPORT) is still refused.
  EXPECT_FALSE(BindListenSocket(Spec("third", address), ListenOptions()).ok());
  ASSERT_TRUE(SetReusePort(old->get(), false).ok());
  EXPECT_FALSE(ReusePort(old->get()));
}

// A group's other sockets are "name#k"; anything else is its own name.
TEST(GroupSocketNameTest, NamesAndFindsTheListener) {
  EXPECT_EQ(GroupSocketName("http", 0), "http");
  EXPECT_EQ(GroupSocketName("http", 2), "http#2");
  EXPECT_EQ(ListenerOfSocketName("http"), "http");
  EXPECT_EQ(ListenerOfSocketName("http#2"), "http");
  EXPECT_EQ(ListenerOfSocketName("http#12"), "http");
  EXPECT_EQ(ListenerOfSocketName("http#"), "http#");
  EXPECT_EQ(ListenerOfSocketName("http#x"), "http#x");
  EXPECT_EQ(ListenerOfSocketName("#1"), "");
}

TEST(ListensOnTest, NotAListeningSocket) {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_FALSE(ListensOn(fd.get(), Spec("", "127.0.0.1:0").bind_to));
  EXPECT_FALSE(ListensOn(-1, Spec("", "127.0.0.1:0").bind_to));
}

// A listening socket shut for reading stops listening (a lost shard's, out
// of its group): IsListening says so.
TEST(IsListeningTest, ListeningUntilShutForReading) {
  absl::StatusOr<UniqueFd> fd =
      BindListenSocket(Spec("x", "127.0.0.1:0"), ListenOptions());
  ASSERT_TRUE(fd.ok()) << fd.status();
  EXPECT_TRUE(IsListening(fd->get()));
  ASSERT_EQ(shutdown(fd->get(), SHUT_RD), 0);
  EXPECT_FALSE(IsListening(fd->get()));
  UniqueFd plain(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_FALSE(IsListening(plain.get()));
  EXPECT_FALSE(IsListening(-1));
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
