// The watchdog's side of a reload that changes listeners: it binds what the
// master asks for (and says why when it cannot), keeps those sockets until
// the commit, and the commit makes exactly the named sockets its set, in
// order, closing the rest; a bad commit or an abort changes nothing.
#include "src/watchdog/listener_requests.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "src/base/socket_address.h"

namespace ddv {
namespace watchdog {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;

int PortOf(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  return SocketAddressPort(address);
}

bool IsOpen(int fd) { return fcntl(fd, F_GETFD) >= 0; }

UniqueFd Listening() {
  ListenSpec spec;
  spec.name = "x";
  spec.address = "127.0.0.1:0";
  spec.bind_to = *ParseSocketAddress(spec.address);
  return *BindListenSocket(spec, ListenOptions());
}

json BindRequest(const std::string& name, const std::string& address) {
  return {{"op", "bind"},
          {"seq", 7},
          {"name", name},
          {"address", address},
          {"defer_accept", true}};
}

TEST(ListenerRequestsTest, BindsAndCommitsTheNewSetInOrder) {
  std::vector<UniqueFd> fds;
  fds.push_back(Listening());
  fds.push_back(Listening());
  const int http = fds[0].get();
  const int old = fds[1].get();
  ListenerSet set({"http", "old"}, std::move(fds));
  ListenerRequests requests{ListenOptions()};

  int socket = -1;
  const json reply = requests.Bind(BindRequest("new", "127.0.0.1:0"), &socket);
  ASSERT_FALSE(reply.contains("error")) << reply.dump();
  EXPECT_EQ(reply["op"], "bound");
  EXPECT_EQ(reply["seq"], 7);
  EXPECT_EQ(reply["name"], "new");
  ASSERT_GE(socket, 0);
  EXPECT_EQ(requests.pending(), 1u);

  absl::Status committed = requests.Commit(
      {{"op", "listeners"},
       {"set",
        {{{"name", "new"}, {"bound", reply["id"]}},
         {{"name", "web"}, {"held", "http"}}}}},
      &set);
  ASSERT_TRUE(committed.ok()) << committed;
  ASSERT_EQ(set.size(), 2u);
  EXPECT_EQ(set.name(0), "new");
  EXPECT_EQ(set.fd(0), socket);
  EXPECT_EQ(set.name(1), "web");
  EXPECT_EQ(set.fd(1), http);
  EXPECT_FALSE(IsOpen(old)) << "a socket the commit does not name closes";
  EXPECT_EQ(requests.pending(), 0u);
}

bool IsV6OnlySocket(int fd) {
  int value = -1;
  socklen_t length = sizeof(value);
  getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &value, &length);
  return value == 1;
}

// v6only and reuse_port travel in the request: a dual-stack socket is
// bound beside a v6-only one the master opened for it.
TEST(ListenerRequestsTest, BindsDualStackBesideTheSocketItReplaces) {
  ListenSpec spec;
  spec.name = "web";
  spec.address = "[::]:0";
  spec.bind_to = *ParseSocketAddress(spec.address);
  UniqueFd old = *BindListenSocket(spec, ListenOptions());
  ASSERT_TRUE(IsV6OnlySocket(old.get()));
  ListenerRequests requests{ListenOptions()};
  const std::string address = absl::StrCat("[::]:", PortOf(old.get()));
  json request = BindRequest("web", address);
  request["v6only"] = false;
  int socket = -1;
  json reply = requests.Bind(request, &socket);
  ASSERT_TRUE(reply.contains("error")) << "the old socket has not allowed it";
  EXPECT_THAT(reply["error"].get<std::string>(),
              HasSubstr("Address already in use"));

  ASSERT_TRUE(SetReusePort(old.get(), true).ok());
  request["reuse_port"] = true;
  reply = requests.Bind(request, &socket);
  ASSERT_FALSE(reply.contains("error")) << reply.dump();
  ASSERT_GE(socket, 0);
  EXPECT_FALSE(IsV6OnlySocket(socket));
  // A master that sends neither gets what it always got: v6-only.
  json plain = BindRequest("v6", "[::1]:0");
  reply = requests.Bind(plain, &socket);
  ASSERT_FALSE(reply.contains("error")) << reply.dump();
  EXPECT_TRUE(IsV6OnlySocket(socket));
}

bool ReusePortOn(int fd) {
  int value = -1;
  socklen_t length = sizeof(value);
  getsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &value, &length);
  return value == 1;
}

// Connections to `port` accepted on `fd` (non-blocking, what is queued).
int Accepted(int fd) {
  int n = 0;
  for (;;) {
    UniqueFd c(accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!c) return n;
    ++n;
  }
}

// A master with shards grows each listener into a SO_REUSEPORT group, a
// socket per loop (docs/shards.md): the watchdog binds the others beside
// the first, the kernel spreads connections over them, nobody else can
// bind the port, and a commit keeps the group together under its name.
TEST(ListenerRequestsTest, GroupMembersJoinTheFirstSocketAndStayTogether) {
  std::vector<UniqueFd> fds;
  fds.push_back(Listening());
  const int first = fds[0].get();
  ListenerSet set({"http"}, std::move(fds));
  ListenerRequests requests{ListenOptions()};
  const std::string address = absl::StrCat("127.0.0.1:", PortOf(first));
  json request = BindRequest("http", address);
  request["group_member"] = true;
  int member = -1;
  json reply = requests.Bind(request, &member);
  ASSERT_TRUE(reply.contains("error")) << "the first has not allowed it";

  ASSERT_TRUE(SetReusePort(first, true).ok());
  reply = requests.Bind(request, &member);
  ASSERT_FALSE(reply.contains("error")) << reply.dump();
  ASSERT_GE(member, 0);
  EXPECT_TRUE(ReusePortOn(member)) << "a member keeps SO_REUSEPORT on";
  // Another process (a second ddv on the same port) is refused as ever.
  json stranger = BindRequest("other", address);
  int refused = -1;
  EXPECT_TRUE(requests.Bind(stranger, &refused).contains("error"));

  // The kernel hashes each connection to one socket of the group.
  std::vector<UniqueFd> clients;
  for (int i = 0; i < 64; ++i) {
    UniqueFd client(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const SocketAddress to = *ParseSocketAddress(address);
    ASSERT_EQ(connect(client.get(), reinterpret_cast<const sockaddr*>(&to.addr),
                      to.addr_len),
              0);
    // TCP_DEFER_ACCEPT: accepted once a byte came.
    ASSERT_EQ(write(client.get(), "x", 1), 1);
    clients.push_back(std::move(client));
  }
  fcntl(first, F_SETFL, O_NONBLOCK);
  fcntl(member, F_SETFL, O_NONBLOCK);
  int on_first = 0;
  int on_member = 0;
  // The byte reaches the listener a moment after write() returns.
  for (int tries = 0; tries < 200 && on_first + on_member < 64; ++tries) {
    on_first += Accepted(first);
    on_member += Accepted(member);
    usleep(10000);
  }
  EXPECT_EQ(on_first + on_member, 64);
  EXPECT_GT(on_first, 0);
  EXPECT_GT(on_member, 0);

  absl::Status committed = requests.Commit(
      {{"op", "listeners"},
       {"set",
        {{{"name", "http"}, {"held", "http"}, {"bound", {reply["id"]}}}}}},
      &set);
  ASSERT_TRUE(committed.ok()) << committed;
  ASSERT_EQ(set.size(), 2u);
  EXPECT_EQ(set.fd(0), first);
  EXPECT_EQ(set.fd(1), member);
  // The others as "name#k": a master older than groups closes them.
  EXPECT_EQ(set.name(0), "http");
  EXPECT_EQ(set.name(1), "http#1");
  EXPECT_EQ(set.Group("http"), (std::vector<size_t>{0, 1}));
  // Renamed: "held" with "held_members" takes the whole group, the first
  // first.
  committed = requests.Commit(
      {{"op", "listeners"},
       {"set", {{{"name", "web"}, {"held", "http"}, {"held_members", true}}}}},
      &set);
  ASSERT_TRUE(committed.ok()) << committed;
  ASSERT_EQ(set.size(), 2u);
  EXPECT_EQ(set.name(0), "web");
  EXPECT_EQ(set.name(1), "web#1");
  EXPECT_EQ(set.fd(0), first);
  EXPECT_EQ(set.fd(1), member);
  EXPECT_TRUE(IsOpen(member));
  // A master older than groups (a rollback) names only the first: the
  // others close, and its one loop gets every connection.
  committed = requests.Commit(
      {{"op", "listeners"}, {"set", {{{"name", "web"}, {"held", "web"}}}}},
      &set);
  ASSERT_TRUE(committed.ok()) << committed;
  ASSERT_EQ(set.size(), 1u);
  EXPECT_EQ(set.fd(0), first);
  EXPECT_FALSE(IsOpen(member));
  // "bound" must be an id or ids.
  EXPECT_FALSE(requests
                   .Commit({{"op", "listeners"},
                            {"set", {{{"name", "web"}, {"bound", "x"}}}}},
                           &set)
                   .ok());
}

TEST(ListenerRequestsTest, ABindErrorSaysWhy) {
  UniqueFd taken = Listening();
  ListenerRequests requests{ListenOptions()};
  int socket = -1;
  const std::string address =
      absl::StrCat("127.0.0.1:", PortOf(taken.get()));
  json reply = requests.Bind(BindRequest("x", address), &socket);
  EXPECT_EQ(socket, -1);
  ASSERT_TRUE(reply.contains("error"));
  EXPECT_THAT(reply["error"].get<std::string>(),
              HasSubstr(absl::StrCat("binding listener \"x\" to ", address)));
  EXPECT_THAT(reply["error"].get<std::string>(),
              HasSubstr("Address already in use"));
  EXPECT_EQ(requests.pending(), 0u);

  reply = requests.Bind(BindRequest("x", "localhost:80"), &socket);
  EXPECT_EQ(socket, -1);
  EXPECT_THAT(reply["error"].get<std::string>(), HasSubstr("address"));
}

TEST(ListenerRequestsTest, SocketActivationRefusesEveryBind) {
  ListenerRequests requests{ListenOptions()};
  requests.RefuseBinds("the sockets are systemd's");
  int socket = -1;
  json reply = requests.Bind(BindRequest("x", "127.0.0.1:0"), &socket);
  EXPECT_EQ(socket, -1);
  EXPECT_EQ(requests.pending(), 0u);
  EXPECT_EQ(reply["error"].get<std::string>(),
            "watchdog: not binding listener \"x\" to 127.0.0.1:0: the "
            "sockets are systemd's");
}

TEST(ListenerRequestsTest, AbortClosesWhatWasBoundForAFailedReload) {
  ListenerRequests requests{ListenOptions()};
  int socket = -1;
  requests.Bind(BindRequest("x", "127.0.0.1:0"), &socket);
  ASSERT_TRUE(IsOpen(socket));
  requests.Abort();
  EXPECT_FALSE(IsOpen(socket));
}

// A master takes a lost shard's socket out of its group by shutting it
// for reading (it stops listening): the next commit drops it.
TEST(ListenerRequestsTest, AGroupSocketThatStoppedListeningIsDropped) {
  std::vector<UniqueFd> fds;
  fds.push_back(Listening());
  const int first = fds[0].get();
  ListenerSet set({"http"}, std::move(fds));
  ListenerRequests requests{ListenOptions()};
  ASSERT_TRUE(SetReusePort(first, true).ok());
  json request =
      BindRequest("http", absl::StrCat("127.0.0.1:", PortOf(first)));
  request["group_member"] = true;
  int a = -1;
  int b = -1;
  const json reply_a = requests.Bind(request, &a);
  const json reply_b = requests.Bind(request, &b);
  ASSERT_TRUE(requests
                  .Commit({{"op", "listeners"},
                           {"set",
                            {{{"name", "http"},
                              {"held", "http"},
                              {"bound", {reply_a["id"], reply_b["id"]}}}}}},
                          &set)
                  .ok());
  ASSERT_EQ(set.size(), 3u);
  ASSERT_EQ(shutdown(a, SHUT_RD), 0);
  ASSERT_TRUE(requests
                  .Commit({{"op", "listeners"},
                           {"set",
                            {{{"name", "http"},
                              {"held", "http"},
                              {"held_members", true}}}}},
                          &set)
                  .ok());
  ASSERT_EQ(set.size(), 2u);
  EXPECT_EQ(set.fd(0), first);
  EXPECT_EQ(set.fd(1), b);
  EXPECT_EQ(set.name(1), "http#1");
  EXPECT_FALSE(IsOpen(a));
}

// A socket of a group is taken once, whichever entry names it.
TEST(ListenerRequestsTest, AGroupSocketTakenTwiceFailsTheCommit) {
  std::vector<UniqueFd> fds;
  fds.push_back(Listening());
  fds.push_back(Listening());
  const int member = fds[1].get();
  ListenerSet set({"http", "http#1"}, std::move(fds));
  ListenerRequests requests{ListenOptions()};
  for (const json& bad : std::vector<json>{
           {{"set",
             {{{"name", "a"}, {"held", "http"}, {"held_members", true}},
              {{"name", "b"}, {"held", "http#1"}}}}},
           {{"set",
             {{{"name", "a"}, {"held", "http#1"}, {"held_members", true}}}}}}) {
    EXPECT_EQ(requests.Commit(bad, &set).code(),
              absl::StatusCode::kInvalidArgument)
        << bad.dump();
    ASSERT_EQ(set.size(), 2u);
    EXPECT_EQ(set.fd(1), member);
  }
}

TEST(ListenerRequestsTest, ABadCommitChangesNothing) {
  std::vector<UniqueFd> fds;
  fds.push_back(Listening());
  const int http = fds[0].get();
  ListenerSet set({"http"}, std::move(fds));
  ListenerRequests requests{ListenOptions()};
  int socket = -1;
  const json reply = requests.Bind(BindRequest("x", "127.0.0.1:0"), &socket);
  for (const json& bad : std::vector<json>{
           json::object(),
           {{"set", json::array()}},
           {{"set", {{{"name", "a"}, {"held", "nope"}}}}},
           {{"set", {{{"name", "a"}, {"bound", 999}}}}},
           {{"set", {{{"name", "a"}}}}},
           {{"set", {{{"held", "http"}}}}},
           {{"set",
             {{{"name", "a"}, {"held", "http"}},
              {{"name", "b"}, {"held", "http"}}}}},
           {{"set",
             {{{"name", "a"}, {"held", "http"}},
              {{"name", "a"}, {"bound", reply["id"]}}}}}}) {
    EXPECT_EQ(requests.Commit(bad, &set).code(),
              absl::StatusCode::kInvalidArgument)
        << bad.dump();
    ASSERT_EQ(set.size(), 1u);
    EXPECT_EQ(set.fd(0), http);
    EXPECT_EQ(requests.pending(), 1u);
    EXPECT_TRUE(IsOpen(socket));
  }
}

}  // namespace
}  // namespace watchdog
}  // namespace ddv
