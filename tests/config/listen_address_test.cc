// ParseListenAddress: what a listener's `address` may be, and what each
// refusal says.
#include "src/config/listen_address.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <string>

#include "gtest/gtest.h"

namespace ddv {
namespace config {
namespace {

struct Good {
  const char* text;
  int family;
  const char* ip;  // as inet_ntop prints it
  int port;
};

class ParseListenAddressGoodTest : public testing::TestWithParam<Good> {};

TEST_P(ParseListenAddressGoodTest, Parses) {
  const Good& c = GetParam();
  absl::StatusOr<ListenAddress> parsed = ParseListenAddress(c.text);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->addr.ss_family, c.family);
  char ip[INET6_ADDRSTRLEN] = {};
  if (c.family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(&parsed->addr);
    EXPECT_EQ(parsed->addr_len, sizeof(sockaddr_in));
    inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
  } else {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&parsed->addr);
    EXPECT_EQ(parsed->addr_len, sizeof(sockaddr_in6));
    inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
  }
  EXPECT_STREQ(ip, c.ip);
  EXPECT_EQ(ListenPort(*parsed), c.port);
}

INSTANTIATE_TEST_SUITE_P(
    Table, ParseListenAddressGoodTest,
    testing::Values(Good{"0.0.0.0:80", AF_INET, "0.0.0.0", 80},
                    Good{"127.0.0.1:8080", AF_INET, "127.0.0.1", 8080},
                    Good{"10.1.2.3:0", AF_INET, "10.1.2.3", 0},
                    Good{"127.0.0.1:65535", AF_INET, "127.0.0.1", 65535},
                    Good{"[::]:443", AF_INET6, "::", 443},
                    Good{"[::1]:8443", AF_INET6, "::1", 8443},
                    Good{"[2001:DB8::1]:80", AF_INET6, "2001:db8::1", 80},
                    Good{"[::ffff:127.0.0.1]:80", AF_INET6, "::ffff:127.0.0.1",
                         80}));

struct Bad {
  const char* text;
  const char* message;
};

class ParseListenAddressBadTest : public testing::TestWithParam<Bad> {};

TEST_P(ParseListenAddressBadTest, RefusesWithMessage) {
  const Bad& c = GetParam();
  absl::StatusOr<ListenAddress> parsed = ParseListenAddress(c.text);
  ASSERT_FALSE(parsed.ok()) << c.text;
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(parsed.status().message(), c.message);
}

INSTANTIATE_TEST_SUITE_P(
    Table, ParseListenAddressBadTest,
    testing::Values(
        Bad{"",
            "address is empty: write IP:PORT, e.g. \"0.0.0.0:80\" or "
            "\"[::]:443\""},
        Bad{"localhost:80",
            "address \"localhost:80\": host names are not accepted, use an "
            "IP address, e.g. \"127.0.0.1:80\""},
        Bad{"example.com:443",
            "address \"example.com:443\": host names are not accepted, use "
            "an IP address, e.g. \"127.0.0.1:443\""},
        Bad{"0.0.0.0",
            "address \"0.0.0.0\": missing port: write "
            "\"0.0.0.0:PORT\""},
        Bad{"[::1]", "address \"[::1]\": missing port: write \"[::1]:PORT\""},
        Bad{"::1:80",
            "address \"::1:80\": IPv6 addresses must be in "
            "brackets, e.g. \"[::1]:443\""},
        Bad{"[::1:80",
            "address \"[::1:80\": missing \"]\" after the IPv6 "
            "address"},
        Bad{"[::1]80", "address \"[::1]80\": expected \":PORT\" after \"]\""},
        Bad{"1.2.3.4:65536",
            "address \"1.2.3.4:65536\": port \"65536\" must "
            "be a number from 0 to 65535"},
        Bad{"1.2.3.4:",
            "address \"1.2.3.4:\": port \"\" must be a number "
            "from 0 to 65535"},
        Bad{"1.2.3.4:http",
            "address \"1.2.3.4:http\": port \"http\" must be "
            "a number from 0 to 65535"},
        Bad{"1.2.3.4:-1",
            "address \"1.2.3.4:-1\": port \"-1\" must be a "
            "number from 0 to 65535"},
        Bad{"1.2.3.4:123456",
            "address \"1.2.3.4:123456\": port \"123456\" "
            "must be a number from 0 to 65535"},
        Bad{":80",
            "address \":80\": missing IP address: write "
            "\"0.0.0.0:80\" or \"[::]:80\""},
        Bad{"1.2.3:80",
            "address \"1.2.3:80\": \"1.2.3\" is not an IPv4 "
            "address"},
        Bad{"256.0.0.1:80",
            "address \"256.0.0.1:80\": \"256.0.0.1\" is not "
            "an IPv4 address"},
        Bad{" 1.2.3.4:80",
            "address \" 1.2.3.4:80\": \" 1.2.3.4\" is not an "
            "IPv4 address"},
        Bad{"[zz]:1", "address \"[zz]:1\": \"zz\" is not an IPv6 address"},
        Bad{"[fe80::1%eth0]:80",
            "address \"[fe80::1%eth0]:80\": "
            "\"fe80::1%eth0\" is not an IPv6 address"}));

TEST(SameListenAddressTest, ComparesFamilyIpAndPort) {
  auto parse = [](const char* text) { return *ParseListenAddress(text); };
  EXPECT_TRUE(SameListenAddress(parse("127.0.0.1:80"), parse("127.0.0.1:80")));
  EXPECT_FALSE(SameListenAddress(parse("127.0.0.1:80"), parse("127.0.0.1:81")));
  EXPECT_FALSE(SameListenAddress(parse("127.0.0.1:80"), parse("0.0.0.0:80")));
  EXPECT_TRUE(SameListenAddress(parse("[::1]:80"), parse("[0::1]:80")));
  EXPECT_FALSE(SameListenAddress(parse("[::]:80"), parse("0.0.0.0:80")));
}

}  // namespace
}  // namespace config
}  // namespace ddv
