// IpNetwork: CIDR text in, containment of IPv4, IPv6 and IPv4-mapped peers,
// and the errors a config author sees.
#include "src/base/ip_network.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "src/base/socket_address.h"

namespace ddv {
namespace {

sockaddr_storage Peer(const std::string& ip_port) {
  absl::StatusOr<SocketAddress> address = ParseSocketAddress(ip_port);
  EXPECT_TRUE(address.ok()) << address.status();
  return address.ok() ? address->addr : sockaddr_storage{};
}

IpNetwork Network(const std::string& text) {
  absl::StatusOr<IpNetwork> network = IpNetwork::Parse(text);
  EXPECT_TRUE(network.ok()) << network.status();
  return *network;
}

struct ContainsCase {
  const char* network;
  const char* peer;
  bool contained;
};

class ContainsTest : public testing::TestWithParam<ContainsCase> {};

TEST_P(ContainsTest, Contains) {
  const ContainsCase& c = GetParam();
  EXPECT_EQ(Network(c.network).Contains(Peer(c.peer)), c.contained)
      << c.network << " " << c.peer;
}

INSTANTIATE_TEST_SUITE_P(
    Table, ContainsTest,
    testing::Values(
        ContainsCase{"10.0.0.0/8", "10.1.2.3:1", true},
        ContainsCase{"10.0.0.0/8", "11.0.0.0:1", false},
        ContainsCase{"10.0.0.0/8", "9.255.255.255:1", false},
        ContainsCase{"192.168.4.0/22", "192.168.7.255:1", true},
        ContainsCase{"192.168.4.0/22", "192.168.8.0:1", false},
        ContainsCase{"192.168.4.0/22", "192.168.3.255:1", false},
        ContainsCase{"127.0.0.1", "127.0.0.1:80", true},
        ContainsCase{"127.0.0.1", "127.0.0.2:80", false},
        ContainsCase{"0.0.0.0/0", "203.0.113.9:1", true},
        ContainsCase{"0.0.0.0/0", "[::1]:1", false},
        ContainsCase{"::1/128", "[::1]:1", true},
        ContainsCase{"::1", "[::2]:1", false},
        ContainsCase{"fd00::/8", "[fdab::1]:1", true},
        ContainsCase{"fd00::/8", "[fe80::1]:1", false},
        ContainsCase{"2001:db8::/33", "[2001:db8:7fff::1]:1", true},
        ContainsCase{"2001:db8::/33", "[2001:db8:8000::1]:1", false},
        ContainsCase{"::/0", "[2001:db8::1]:1", true},
        // A dual-stack listener sees IPv4 peers as IPv4-mapped IPv6.
        ContainsCase{"10.0.0.0/8", "[::ffff:10.9.8.7]:1", true},
        ContainsCase{"10.0.0.0/8", "[::ffff:11.9.8.7]:1", false},
        ContainsCase{"127.0.0.0/8", "[::ffff:127.0.0.1]:1", true},
        // ...and the mapped form of a network is that IPv4 network.
        ContainsCase{"::ffff:10.0.0.0/104", "10.2.3.4:1", true},
        ContainsCase{"::ffff:10.0.0.0/104", "[::ffff:10.2.3.4]:1", true},
        ContainsCase{"::ffff:10.0.0.0/104", "11.2.3.4:1", false},
        // ::/0 is IPv6 only: IPv4 (mapped or not) needs 0.0.0.0/0.
        ContainsCase{"::/0", "[::ffff:10.2.3.4]:1", false}));

TEST(IpNetworkTest, NormalForm) {
  EXPECT_EQ(Network("10.0.0.0/8").ToString(), "10.0.0.0/8");
  EXPECT_EQ(Network("127.0.0.1").ToString(), "127.0.0.1/32");
  EXPECT_EQ(Network("2001:DB8::/32").ToString(), "2001:db8::/32");
  EXPECT_EQ(Network("::1").ToString(), "::1/128");
  EXPECT_EQ(Network("::ffff:10.0.0.0/104").ToString(), "10.0.0.0/8");
  EXPECT_EQ(Network("::ffff:10.0.0.0/104"), Network("10.0.0.0/8"));
  EXPECT_NE(Network("10.0.0.0/8"), Network("10.0.0.0/9"));
}

TEST(IpNetworkTest, OtherFamiliesAreInNoNetwork) {
  sockaddr_storage unix_address{};
  unix_address.ss_family = AF_UNIX;
  EXPECT_FALSE(Network("0.0.0.0/0").Contains(unix_address));
  EXPECT_FALSE(Network("::/0").Contains(unix_address));
}

TEST(IpNetworkTest, AnyNetworkContains) {
  std::vector<IpNetwork> networks = {Network("10.0.0.0/8"), Network("::1")};
  EXPECT_TRUE(AnyNetworkContains(networks, Peer("10.0.0.1:1")));
  EXPECT_TRUE(AnyNetworkContains(networks, Peer("[::1]:1")));
  EXPECT_FALSE(AnyNetworkContains(networks, Peer("127.0.0.1:1")));
  EXPECT_FALSE(AnyNetworkContains({}, Peer("127.0.0.1:1")));
}

struct ErrorCase {
  const char* text;
  const char* message;
};

class ErrorTest : public testing::TestWithParam<ErrorCase> {};

TEST_P(ErrorTest, Refused) {
  const ErrorCase& c = GetParam();
  absl::StatusOr<IpNetwork> network = IpNetwork::Parse(c.text);
  ASSERT_FALSE(network.ok()) << c.text;
  EXPECT_EQ(network.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(network.status().message(), c.message);
}

INSTANTIATE_TEST_SUITE_P(
    Table, ErrorTest,
    testing::Values(
        ErrorCase{"10.0.0.1/8",
                  "network \"10.0.0.1/8\": bits are set past the prefix; did "
                  "you mean \"10.0.0.0/8\"?"},
        ErrorCase{"fd00::1/8",
                  "network \"fd00::1/8\": bits are set past the prefix; did "
                  "you mean \"fd00::/8\"?"},
        ErrorCase{"10.0.0.0/33",
                  "network \"10.0.0.0/33\": the prefix length must be 0 to "
                  "32"},
        ErrorCase{"::/129",
                  "network \"::/129\": the prefix length must be 0 to 128"},
        ErrorCase{"10.0.0.0/", "network \"10.0.0.0/\": the prefix length "
                               "must be 0 to 32"},
        ErrorCase{"10.0.0.0/08", "network \"10.0.0.0/08\": the prefix length "
                                 "must be 0 to 32"},
        ErrorCase{"10.0.0.0/+8", "network \"10.0.0.0/+8\": the prefix length "
                                 "must be 0 to 32"},
        ErrorCase{"10.0.0.0/-1", "network \"10.0.0.0/-1\": the prefix length "
                                 "must be 0 to 32"},
        ErrorCase{"[::1]/128",
                  "network \"[::1]/128\": not an IPv4 or IPv6 address with an "
                  "optional /PREFIX, e.g. \"10.0.0.0/8\" or \"fd00::/8\" (no "
                  "brackets, no host names)"},
        ErrorCase{"lb.example.com",
                  "network \"lb.example.com\": not an IPv4 or IPv6 address "
                  "with an optional /PREFIX, e.g. \"10.0.0.0/8\" or "
                  "\"fd00::/8\" (no brackets, no host names)"},
        ErrorCase{"",
                  "network \"\": not an IPv4 or IPv6 address with an optional "
                  "/PREFIX, e.g. \"10.0.0.0/8\" or \"fd00::/8\" (no brackets, "
                  "no host names)"},
        ErrorCase{"010.0.0.0/8",
                  "network \"010.0.0.0/8\": not an IPv4 or IPv6 address with "
                  "an optional /PREFIX, e.g. \"10.0.0.0/8\" or \"fd00::/8\" "
                  "(no brackets, no host names)"}));

}  // namespace
}  // namespace ddv
