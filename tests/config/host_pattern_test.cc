// NormalizeHostPattern: the hosts a site may claim, in normal form.
#include "src/config/host_pattern.h"

#include <ostream>
#include <string>
#include <utility>

#include "gtest/gtest.h"

namespace ddv {
namespace config {
namespace {

struct Case {
  std::string pattern;
  std::string want;  // the normal form, or the error message
  bool ok;
};

Case Ok(std::string pattern, std::string want) {
  return {std::move(pattern), std::move(want), true};
}
Case Bad(std::string pattern, std::string message) {
  return {std::move(pattern), std::move(message), false};
}

// gtest prints the pattern when a case fails.
void PrintTo(const Case& c, std::ostream* os) {
  *os << '"' << c.pattern << '"';
}

class NormalizeHostPatternTest : public testing::TestWithParam<Case> {};

TEST_P(NormalizeHostPatternTest, Normalizes) {
  const Case& c = GetParam();
  absl::StatusOr<std::string> got = NormalizeHostPattern(c.pattern);
  if (c.ok) {
    ASSERT_TRUE(got.ok()) << c.pattern << ": " << got.status();
    EXPECT_EQ(*got, c.want);
  } else {
    ASSERT_FALSE(got.ok()) << c.pattern << " -> " << *got;
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(got.status().message(), c.want);
  }
}

constexpr char kMisplacedStar[] =
    "has a misplaced \"*\": a wildcard is only allowed as the whole first "
    "label, as in \"*.example.com\"";

INSTANTIATE_TEST_SUITE_P(
    Table, NormalizeHostPatternTest,
    testing::Values(
        Ok("a.example.com", "a.example.com"),
        Ok("A.Example.COM", "a.example.com"),
        Ok("a.example.com.", "a.example.com"),
        Ok("*.example.com", "*.example.com"),
        Ok("*.Example.Com.", "*.example.com"), Ok("*.com", "*.com"),
        Ok("localhost", "localhost"), Ok("*.a.localhost", "*.a.localhost"),
        Ok("127.0.0.1", "127.0.0.1"), Ok("[::1]", "[::1]"),
        Ok("[2001:DB8::1]", "[2001:db8::1]"),
        Ok("under_score.example", "under_score.example"),
        Bad("", "host is empty"),
        Bad("*",
            "host \"*\" matches everything: mark the site default = "
            "true (or name it in a listener's default_site) instead"),
        Bad("*.",
            "host \"*.\" matches everything: mark the site default = "
            "true (or name it in a listener's default_site) instead"),
        Bad("a.*.b", std::string("host \"a.*.b\" ") + kMisplacedStar),
        Bad("*a.b", std::string("host \"*a.b\" ") + kMisplacedStar),
        Bad("*.*.b", std::string("host \"*.*.b\" ") + kMisplacedStar),
        Bad("a.example.com:80",
            "host \"a.example.com:80\" must not include a "
            "port"),
        Bad("*.example.com:80",
            "host \"*.example.com:80\" must not include "
            "a port"),
        Bad("[::1]:80", "host \"[::1]:80\" must not include a port"),
        Bad("a b.com",
            "host \"a b.com\" is not valid: invalid character in "
            "host"),
        Bad(" a.com",
            "host \" a.com\" is not valid: invalid character in "
            "host"),
        Bad("a..com", "host \"a..com\" is not valid: empty label in host"),
        Bad("*..com", "host \"*..com\" is not valid: empty label in host"),
        Bad(".", "host \".\" is not valid: empty host"),
        Bad("a/b", "host \"a/b\" is not valid: invalid character in host"),
        Bad("caf\xc3\xa9.example",
            "host \"caf\xc3\xa9.example\" is not "
            "valid: invalid character in host"),
        Bad("[::g]", "host \"[::g]\" is not valid: bad IPv6 literal")));

}  // namespace
}  // namespace config
}  // namespace ddv
