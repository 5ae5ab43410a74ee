// Socket activation: the variables parsed as sd_listen_fds(3) parses them,
// and passed sockets matched to listeners by name, with each kind of
// mismatch named in the error.
#include "src/base/socket_activation.h"

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
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

ListenSpec Spec(const std::string& name, const std::string& address) {
  ListenSpec spec;
  spec.name = name;
  spec.address = address;
  absl::StatusOr<SocketAddress> parsed = ParseSocketAddress(address);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  spec.bind_to = *parsed;
  return spec;
}

int PortOf(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  return SocketAddressPort(address);
}

// A listening socket on 127.0.0.1 with a port the kernel picks, as a
// .socket unit would pass it.
PassedSocket Listening(const std::string& name) {
  absl::StatusOr<UniqueFd> fd =
      BindListenSocket(Spec(name, "127.0.0.1:0"), ListenOptions());
  EXPECT_TRUE(fd.ok()) << fd.status();
  return {*std::move(fd), name};
}

std::string Address(const PassedSocket& socket) {
  return absl::StrCat("127.0.0.1:", PortOf(socket.fd.get()));
}

TEST(ParseListenFdsEnvTest, NothingPassed) {
  absl::StatusOr<ListenFdsEnv> env =
      ParseListenFdsEnv(nullptr, nullptr, nullptr, 42);
  ASSERT_TRUE(env.ok());
  EXPECT_EQ(env->count, 0);
}

TEST(ParseListenFdsEnvTest, NamedSocketsForUs) {
  absl::StatusOr<ListenFdsEnv> env =
      ParseListenFdsEnv("42", "2", "http:https", 42);
  ASSERT_TRUE(env.ok()) << env.status();
  EXPECT_EQ(env->count, 2);
  EXPECT_THAT(env->names, ElementsAre("http", "https"));
}

TEST(ParseListenFdsEnvTest, UnnamedSockets) {
  absl::StatusOr<ListenFdsEnv> env = ParseListenFdsEnv("42", "2", nullptr, 42);
  ASSERT_TRUE(env.ok());
  EXPECT_THAT(env->names, ElementsAre("", ""));
}

TEST(ParseListenFdsEnvTest, AnotherProcessesSocketsAreNotOurs) {
  absl::StatusOr<ListenFdsEnv> env =
      ParseListenFdsEnv("41", "2", "http:https", 42);
  ASSERT_TRUE(env.ok());
  EXPECT_EQ(env->count, 0);
}

TEST(ParseListenFdsEnvTest, MalformedValues) {
  EXPECT_THAT(ParseListenFdsEnv(nullptr, "1", "http", 42).status().message(),
              HasSubstr("LISTEN_PID"));
  EXPECT_THAT(ParseListenFdsEnv("42", "many", nullptr, 42).status().message(),
              HasSubstr("LISTEN_FDS=\"many\""));
  EXPECT_THAT(ParseListenFdsEnv("42", "-1", nullptr, 42).status().message(),
              HasSubstr("LISTEN_FDS=\"-1\""));
  EXPECT_THAT(ParseListenFdsEnv("42", "2", "http", 42).status().message(),
              HasSubstr("has 1 names for LISTEN_FDS=2"));
}

TEST(TakePassedSocketsTest, UnsetsTheVariablesEvenWhenNotOurs) {
  setenv("LISTEN_PID", absl::StrCat(getpid() + 1).c_str(), 1);
  setenv("LISTEN_FDS", "1", 1);
  setenv("LISTEN_FDNAMES", "http", 1);
  absl::StatusOr<std::vector<PassedSocket>> passed = TakePassedSockets();
  ASSERT_TRUE(passed.ok()) << passed.status();
  EXPECT_TRUE(passed->empty());
  EXPECT_EQ(getenv("LISTEN_PID"), nullptr);
  EXPECT_EQ(getenv("LISTEN_FDS"), nullptr);
  EXPECT_EQ(getenv("LISTEN_FDNAMES"), nullptr);
}

TEST(TakePassedSocketsTest, TakesFdsFromThreeCloseOnExec) {
  // fd 3 may be the test runner's: move it away, put a socket there, then
  // give it back.
  UniqueFd saved(fcntl(kFirstPassedFd, F_DUPFD_CLOEXEC, 100));
  PassedSocket listening = Listening("http");
  ASSERT_EQ(dup2(listening.fd.get(), kFirstPassedFd), kFirstPassedFd);
  setenv("LISTEN_PID", absl::StrCat(getpid()).c_str(), 1);
  setenv("LISTEN_FDS", "1", 1);
  setenv("LISTEN_FDNAMES", "http", 1);
  absl::StatusOr<std::vector<PassedSocket>> passed = TakePassedSockets();
  ASSERT_TRUE(passed.ok()) << passed.status();
  ASSERT_EQ(passed->size(), 1u);
  EXPECT_EQ((*passed)[0].fd.get(), kFirstPassedFd);
  EXPECT_EQ((*passed)[0].name, "http");
  EXPECT_TRUE(fcntl(kFirstPassedFd, F_GETFD) & FD_CLOEXEC);
  EXPECT_EQ(getenv("LISTEN_FDS"), nullptr);
  passed->clear();  // closes fd 3
  if (saved) dup2(saved.get(), kFirstPassedFd);
}

TEST(MatchPassedSocketsTest, ByNameInListenerOrder) {
  std::vector<PassedSocket> passed;
  passed.push_back(Listening("https"));
  passed.push_back(Listening("http"));
  const int https = passed[0].fd.get(), http = passed[1].fd.get();
  std::vector<ListenSpec> listeners = {Spec("http", Address(passed[1])),
                                       Spec("https", Address(passed[0]))};
  absl::StatusOr<std::vector<UniqueFd>> matched =
      MatchPassedSockets(std::move(passed), listeners);
  ASSERT_TRUE(matched.ok()) << matched.status();
  ASSERT_EQ(matched->size(), 2u);
  EXPECT_EQ((*matched)[0].get(), http);
  EXPECT_EQ((*matched)[1].get(), https);
}

TEST(MatchPassedSocketsTest, NamesEveryMismatch) {
  std::vector<PassedSocket> passed;
  passed.push_back(Listening("http"));
  passed.push_back(Listening("admin"));
  passed.push_back(Listening(""));
  const std::string http = Address(passed[0]);
  absl::StatusOr<std::vector<UniqueFd>> matched = MatchPassedSockets(
      std::move(passed), {Spec("http", http), Spec("https", "127.0.0.1:8443")});
  ASSERT_FALSE(matched.ok());
  EXPECT_EQ(matched.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      matched.status().message(),
      AllOf(HasSubstr("socket activation"),
            HasSubstr("listener \"https\" (127.0.0.1:8443) has no socket "
                      "among those passed (\"http\", \"admin\", (no name))"),
            HasSubstr("is named \"admin\" and no [[listener]] has that name "
                      "(the config has \"http\", \"https\")"),
            HasSubstr("has no name")));
}

TEST(MatchPassedSocketsTest, TwoSocketsWithOneName) {
  std::vector<PassedSocket> passed;
  passed.push_back(Listening("http"));
  passed.push_back(Listening("http"));
  const std::string http = Address(passed[0]);
  EXPECT_THAT(MatchPassedSockets(std::move(passed), {Spec("http", http)})
                  .status()
                  .message(),
              HasSubstr("are both named \"http\""));
}

TEST(MatchPassedSocketsTest, AnotherAddress) {
  std::vector<PassedSocket> passed;
  passed.push_back(Listening("http"));
  const std::string where = Address(passed[0]);
  EXPECT_THAT(
      MatchPassedSockets(std::move(passed), {Spec("http", "127.0.0.1:1")})
          .status()
          .message(),
      HasSubstr(absl::StrCat("\"http\" listens on ", where,
                             "; listener \"http\" has address 127.0.0.1:1")));
}

TEST(MatchPassedSocketsTest, AnotherFamilyOrTypeOrNotListening) {
  std::vector<PassedSocket> passed;
  passed.push_back({UniqueFd(socket(AF_INET, SOCK_DGRAM, 0)), "udp"});
  passed.push_back({UniqueFd(socket(AF_UNIX, SOCK_STREAM, 0)), "unix"});
  passed.push_back({UniqueFd(socket(AF_INET, SOCK_STREAM, 0)), "idle"});
  passed.push_back({UniqueFd(open("/dev/null", O_RDONLY)), "file"});
  absl::StatusOr<std::vector<UniqueFd>> matched = MatchPassedSockets(
      std::move(passed),
      {Spec("udp", "127.0.0.1:1"), Spec("unix", "127.0.0.1:2"),
       Spec("idle", "127.0.0.1:3"), Spec("file", "127.0.0.1:4")});
  ASSERT_FALSE(matched.ok());
  EXPECT_THAT(matched.status().message(),
              AllOf(HasSubstr("\"udp\" is a datagram (UDP) socket; listener "
                              "\"udp\" needs a listening TCP socket on "
                              "127.0.0.1:1 (ListenStream=127.0.0.1:1)"),
                    HasSubstr("\"unix\" is an AF_UNIX socket"),
                    HasSubstr("\"idle\" is a TCP socket that does not listen"),
                    HasSubstr("\"file\" is not a socket")));
}

// BindIPv6Only= in the unit must be the listener's v6only.
TEST(MatchPassedSocketsTest, V6OnlyMustAgree) {
  ListenSpec dual = Spec("web", "[::]:0");
  dual.v6only = false;
  absl::StatusOr<UniqueFd> fd = BindListenSocket(dual, ListenOptions());
  ASSERT_TRUE(fd.ok()) << fd.status();
  const std::string address = absl::StrCat("[::]:", PortOf(fd->get()));
  std::vector<PassedSocket> passed;
  passed.push_back({*std::move(fd), "web"});
  EXPECT_THAT(
      MatchPassedSockets(std::move(passed), {Spec("web", address)})
          .status()
          .message(),
      HasSubstr("\"web\" is dual stack (BindIPv6Only=both); listener \"web\" "
                "has v6only = true, so the unit needs "
                "BindIPv6Only=ipv6-only"));

  fd = BindListenSocket(Spec("web", "[::]:0"), ListenOptions());
  ASSERT_TRUE(fd.ok()) << fd.status();
  dual = Spec("web", absl::StrCat("[::]:", PortOf(fd->get())));
  dual.v6only = false;
  passed.clear();
  passed.push_back({*std::move(fd), "web"});
  EXPECT_THAT(MatchPassedSockets(std::move(passed), {dual}).status().message(),
              HasSubstr("is IPv6-only; listener \"web\" has v6only = false, "
                        "so the unit needs BindIPv6Only=both"));
}

TEST(CheckPassedListenersKeptTest, V6OnlyMayNotChange) {
  ListenSpec dual = Spec("web", "[::]:80");
  dual.v6only = false;
  absl::Status status =
      CheckPassedListenersKept({Spec("web", "[::]:80")}, {dual});
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(),
              HasSubstr("listener \"web\" changes v6only to false"));
}

TEST(CheckPassedListenersKeptTest, OtherSettingsAndOrderMayChange) {
  EXPECT_TRUE(CheckPassedListenersKept(
                  {Spec("http", "127.0.0.1:80"), Spec("tls", "127.0.0.1:443")},
                  {Spec("tls", "127.0.0.1:443"), Spec("http", "127.0.0.1:80")})
                  .ok());
}

TEST(CheckPassedListenersKeptTest, AddedRemovedRenamedOrMoved) {
  absl::Status status = CheckPassedListenersKept(
      {Spec("http", "127.0.0.1:80"), Spec("tls", "127.0.0.1:443"),
       Spec("old", "127.0.0.1:81")},
      {Spec("http", "127.0.0.1:8080"), Spec("tls", "127.0.0.1:443"),
       Spec("new", "127.0.0.1:81")});
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr("came from systemd"),
                    HasSubstr("\"http\" moves from 127.0.0.1:80 to "
                              "127.0.0.1:8080"),
                    HasSubstr("\"new\" (127.0.0.1:81) is new"),
                    HasSubstr("\"old\" (127.0.0.1:81) is gone")));
}

}  // namespace
}  // namespace ddv
