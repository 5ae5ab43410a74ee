// --listen_fds: the text the watchdog writes is parsed back to one fd per
// listener, each checked against the listener's address; malformed text and
// fds named twice are refused, and nothing is taken (or closed) then.
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
#include "src/base/socket_address.h"

namespace ddv {
namespace master {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

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
  absl::StatusOr<std::vector<std::vector<int>>> fds =
      ParseListenFdList("https=4,http=3", {"http", "https"});
  ASSERT_TRUE(fds.ok()) << fds.status();
  EXPECT_THAT(*fds, ElementsAre(ElementsAre(3), ElementsAre(4)));
}

TEST(ParseListenFdListTest, AGroupIsItsNameRepeatedInOrder) {
  absl::StatusOr<std::vector<std::vector<int>>> fds =
      ParseListenFdList("http=5,https=4,http#1=3", {"http", "https"});
  ASSERT_TRUE(fds.ok()) << fds.status();
  EXPECT_THAT(*fds, ElementsAre(ElementsAre(5, 3), ElementsAre(4)));
}

TEST(ParseListenFdListTest, UnnamedListenerHasNoneAndStrangersApart) {
  std::vector<int> strangers;
  absl::StatusOr<std::vector<std::vector<int>>> fds =
      ParseListenFdList("http=3,,ftp=9", {"http", "https"}, &strangers);
  ASSERT_TRUE(fds.ok()) << fds.status();
  EXPECT_THAT(*fds, ElementsAre(ElementsAre(3), IsEmpty()));
  EXPECT_THAT(strangers, ElementsAre(9));
  fds = ParseListenFdList("", {"http"});
  ASSERT_TRUE(fds.ok());
  EXPECT_THAT(*fds, ElementsAre(IsEmpty()));
}

TEST(ParseListenFdListTest, RefusesMalformedEntries) {
  for (const char* text :
       {"http", "http=", "http=x", "http=-3", "http=3x", "http=99999999999"}) {
    absl::StatusOr<std::vector<std::vector<int>>> fds =
        ParseListenFdList(text, {"http"});
    EXPECT_EQ(fds.status().code(), absl::StatusCode::kInvalidArgument) << text;
    if (!fds.ok()) {
      EXPECT_THAT(fds.status().message(), HasSubstr("--listen_fds")) << text;
    }
  }
}

TEST(ParseListenFdListTest, RefusesAnFdNamedTwice) {
  absl::StatusOr<std::vector<std::vector<int>>> fds =
      ParseListenFdList("http=3,https=3", {"http", "https"});
  EXPECT_EQ(fds.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(fds.status().message(), HasSubstr("fd 3 is named twice"));
}

// A listener named `name` on `address` ("127.0.0.1:0": any port).
config::ListenerConfig Listener(const std::string& name,
                                const std::string& address) {
  config::ListenerConfig listener;
  listener.name = name;
  listener.address = address;
  absl::StatusOr<SocketAddress> parsed = ParseSocketAddress(address);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  listener.addr = parsed->addr;
  listener.addr_len = parsed->addr_len;
  return listener;
}

int PortOf(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  return SocketAddressPort(address);
}

TEST(TakeListenFdsTest, TakesTheSocketOfEachListenerByName) {
  UniqueFd http = TcpSocket(true);
  UniqueFd https = TcpSocket(true);
  config::Config config;
  config.listeners = {
      Listener("http", absl::StrCat("127.0.0.1:", PortOf(http.get()))),
      Listener("https", "127.0.0.1:0")};
  absl::StatusOr<std::vector<UniqueFd>> fds = TakeListenFds(
      absl::StrCat("https=", https.get(), ",http=", http.get()), config);
  ASSERT_TRUE(fds.ok()) << fds.status();
  ASSERT_EQ(fds->size(), 2u);
  EXPECT_EQ((*fds)[0].get(), http.get());
  EXPECT_EQ((*fds)[1].get(), https.get());
  // The taken owners now hold them; let them, and forget ours.
  http.Release();
  https.Release();
}

// What the watchdog holds and the config disagree after a master died in
// the middle of a reload that changed listeners: the master binds what is
// missing, and the sockets no listener takes are closed (the start commit
// closes the watchdog's copies).
TEST(TakeListenFdsTest, LeavesMissingAndMovedListenersToBeBound) {
  UniqueFd moved = TcpSocket(true);     // "http", now elsewhere
  UniqueFd stranger = TcpSocket(true);  // "old", gone from the config
  UniqueFd idle = TcpSocket(false);     // not a listening socket
  config::Config config;
  config.listeners = {
      Listener("http", absl::StrCat("127.0.0.1:", PortOf(moved.get()) ^ 1)),
      Listener("https", "127.0.0.1:0"), Listener("raw", "127.0.0.1:0")};
  absl::StatusOr<std::vector<UniqueFd>> fds = TakeListenFds(
      absl::StrCat("http=", moved.get(), ",old=", stranger.get(),
                   ",raw=", idle.get()),
      config);
  ASSERT_TRUE(fds.ok()) << fds.status();
  ASSERT_EQ(fds->size(), 3u);
  EXPECT_FALSE((*fds)[0]);
  EXPECT_FALSE((*fds)[1]);
  EXPECT_FALSE((*fds)[2]);
  EXPECT_FALSE(IsOpen(moved.Release()));
  EXPECT_FALSE(IsOpen(stranger.Release()));
  // Not a listening socket: not the watchdog's, so not ours to close.
  EXPECT_TRUE(IsOpen(idle.get()));
}

// A rename (or two listeners that swapped addresses) whose commit the
// dead master did not snapshot: the socket on the listener's address is
// taken whatever the watchdog calls it, since binding it again would fail.
TEST(TakeListenFdsTest, TakesARenamedListenersSocketByAddress) {
  UniqueFd renamed = TcpSocket(true);  // held as "http", now "web"
  config::Config config;
  config.listeners = {
      Listener("web", absl::StrCat("127.0.0.1:", PortOf(renamed.get())))};
  std::vector<std::string> held_as;
  absl::StatusOr<std::vector<UniqueFd>> fds = TakeListenFds(
      absl::StrCat("http=", renamed.get()), config, &held_as);
  ASSERT_TRUE(fds.ok()) << fds.status();
  ASSERT_EQ(fds->size(), 1u);
  EXPECT_EQ((*fds)[0].get(), renamed.get());
  EXPECT_EQ(held_as, std::vector<std::string>{"http"});
  renamed.Release();
}

// A listener of a master with shards is a SO_REUSEPORT group, one socket
// per loop (docs/shards.md): every socket under its name on its address is
// taken, the first first; one on another address is not one of them.
TEST(TakeListenFdsTest, TakesEverySocketOfAGroup) {
  ListenSpec spec;
  spec.name = "http";
  spec.address = "127.0.0.1:0";
  spec.bind_to = *ParseSocketAddress(spec.address);
  absl::StatusOr<UniqueFd> first = BindListenSocket(spec, ListenOptions());
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(SetReusePort(first->get(), true).ok());
  spec.address = absl::StrCat("127.0.0.1:", PortOf(first->get()));
  spec.bind_to = *ParseSocketAddress(spec.address);
  spec.group_member = true;
  absl::StatusOr<UniqueFd> second = BindListenSocket(spec, ListenOptions());
  ASSERT_TRUE(second.ok()) << second.status();
  UniqueFd elsewhere = TcpSocket(true);
  config::Config config;
  config.listeners = {Listener("http", spec.address)};
  std::vector<std::string> held_as;
  std::vector<std::vector<UniqueFd>> members;
  const int first_fd = first->get();
  const int second_fd = second->get();
  absl::StatusOr<std::vector<UniqueFd>> fds = TakeListenFds(
      absl::StrCat("http=", first_fd, ",http#1=", elsewhere.get(), ",http#2=",
                   second_fd),
      config, &held_as, &members);
  ASSERT_TRUE(fds.ok()) << fds.status();
  first->Release();
  second->Release();
  ASSERT_EQ(fds->size(), 1u);
  EXPECT_EQ((*fds)[0].get(), first_fd);
  ASSERT_EQ(members.size(), 1u);
  ASSERT_EQ(members[0].size(), 1u);
  EXPECT_EQ(members[0][0].get(), second_fd);
  EXPECT_EQ(held_as, std::vector<std::string>{"http"});
  // On another address: closed, as any socket no listener takes.
  EXPECT_FALSE(IsOpen(elsewhere.Release()));
}

TEST(TakeListenFdsTest, MalformedTextTakesAndClosesNothing) {
  UniqueFd http = TcpSocket(true);
  config::Config config;
  config.listeners = {Listener("http", "127.0.0.1:0")};
  absl::StatusOr<std::vector<UniqueFd>> fds = TakeListenFds(
      absl::StrCat("http=", http.get(), ",https=x"), config);
  EXPECT_EQ(fds.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(IsOpen(http.get()));
}

}  // namespace
}  // namespace master
}  // namespace ddv
