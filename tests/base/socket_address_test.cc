// ParseSocketAddress / FormatSocketAddress: the accepted forms, a round trip
// through both, IPv4-mapped peers, and the refusals (their full wording is
// pinned by tests/config/listen_address_test.cc, which goes through here).
#include "src/base/socket_address.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cstring>
#include <string>

#include "gtest/gtest.h"

namespace ddv {
namespace {

class RoundTripTest : public ::testing::TestWithParam<const char*> {};

TEST_P(RoundTripTest, ParseThenFormatGivesTheTextBack) {
  absl::StatusOr<SocketAddress> parsed = ParseSocketAddress(GetParam());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  absl::StatusOr<std::string> text = FormatSocketAddress(parsed->addr);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, GetParam());
}

INSTANTIATE_TEST_SUITE_P(Forms, RoundTripTest,
                         ::testing::Values("127.0.0.1:80", "0.0.0.0:0",
                                           "255.255.255.255:65535", "[::1]:80",
                                           "[::]:443", "[2001:db8::1]:8443"));

TEST(ParseSocketAddressTest, FillsFamilyLengthAndPort) {
  absl::StatusOr<SocketAddress> v4 = ParseSocketAddress("127.0.0.1:80");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->addr.ss_family, AF_INET);
  EXPECT_EQ(v4->addr_len, sizeof(sockaddr_in));
  EXPECT_EQ(SocketAddressPort(v4->addr), 80);

  absl::StatusOr<SocketAddress> v6 = ParseSocketAddress("[::1]:8443");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->addr.ss_family, AF_INET6);
  EXPECT_EQ(v6->addr_len, sizeof(sockaddr_in6));
  EXPECT_EQ(SocketAddressPort(v6->addr), 8443);
}

TEST(ParseSocketAddressTest, RefusesWhatIsNotIpColonPort) {
  for (const char* text :
       {"", "localhost:80", "127.0.0.1", "::1:80", "[::1]", "[::1]80",
        "[::1:80", "1.2.3.4:65536", "1.2.3.4:+80", "1.2.3.4: 80", ":80",
        "[]:80", "[127.0.0.1]:80", "1.2.3:80"}) {
    absl::StatusOr<SocketAddress> parsed = ParseSocketAddress(text);
    EXPECT_FALSE(parsed.ok()) << text;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument)
        << text;
  }
}

TEST(ParseSocketAddressTest, MessagesNameTheTextAndTheFix) {
  absl::StatusOr<SocketAddress> parsed = ParseSocketAddress("::1:80");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().message(),
            "address \"::1:80\": IPv6 addresses must be in brackets, e.g. "
            "\"[::1]:443\"");
}

TEST(FormatSocketAddressTest, MappedIpv4IsPrintedAsIpv4) {
  sockaddr_storage ss{};
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(4242);
  ASSERT_EQ(inet_pton(AF_INET6, "::ffff:203.0.113.7", &sin6->sin6_addr), 1);
  absl::StatusOr<std::string> text = FormatSocketAddress(ss);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "203.0.113.7:4242");
}

TEST(FormatSocketAddressTest, RefusesOtherFamilies) {
  sockaddr_storage ss{};
  ss.ss_family = AF_UNIX;
  EXPECT_FALSE(FormatSocketAddress(ss).ok());
  EXPECT_EQ(SocketAddressPort(ss), -1);
  sockaddr_storage unspecified{};
  EXPECT_EQ(FormatSocketAddress(unspecified).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SameSocketAddressTest, ComparesFamilyIpAndPort) {
  auto parse = [](const char* text) { return ParseSocketAddress(text)->addr; };
  EXPECT_TRUE(SameSocketAddress(parse("127.0.0.1:80"), parse("127.0.0.1:80")));
  EXPECT_FALSE(SameSocketAddress(parse("127.0.0.1:80"), parse("127.0.0.1:81")));
  EXPECT_FALSE(SameSocketAddress(parse("127.0.0.1:80"), parse("127.0.0.2:80")));
  EXPECT_TRUE(SameSocketAddress(parse("[::1]:80"), parse("[0::1]:80")));
  EXPECT_FALSE(SameSocketAddress(parse("[::]:80"), parse("0.0.0.0:80")));
}

}  // namespace
}  // namespace ddv
