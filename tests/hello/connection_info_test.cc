// FormatSockaddr and PeerOf: the peer= field of ddv_hello's response body,
// with "-" wherever there is no IP address to show.
#include "src/hello/connection_info.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "gtest/gtest.h"
#include "tests/handoff/test_sockets.h"

namespace ddv {
namespace hello {
namespace {

TEST(FormatSockaddrTest, IpAddressesAndADashForTheRest) {
  sockaddr_storage ss{};
  auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
  sin->sin_family = AF_INET;
  sin->sin_port = htons(8080);
  ASSERT_EQ(inet_pton(AF_INET, "203.0.113.7", &sin->sin_addr), 1);
  EXPECT_EQ(FormatSockaddr(ss), "203.0.113.7:8080");

  sockaddr_storage v6{};
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&v6);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(443);
  ASSERT_EQ(inet_pton(AF_INET6, "2001:db8::1", &sin6->sin6_addr), 1);
  EXPECT_EQ(FormatSockaddr(v6), "[2001:db8::1]:443");

  sockaddr_storage unspecified{};  // the master knew no peer
  EXPECT_EQ(FormatSockaddr(unspecified), "-");
}

TEST(PeerOfTest, ConnectedSocketOrDash) {
  ::ddv::testing::TcpPair pair = ::ddv::testing::ConnectedTcpPair();
  ASSERT_TRUE(pair.client.valid() && pair.server.valid());
  EXPECT_EQ(PeerOf(pair.server.get()),
            ::ddv::testing::LocalAddress(pair.client.get()));
  EXPECT_EQ(PeerOf(-1), "-");
}

}  // namespace
}  // namespace hello
}  // namespace ddv
