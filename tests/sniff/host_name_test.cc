// NormalizeHost: the one normal form shared by HTTP Host, SNI and routes.
#include "src/sniff/host_name.h"

#include <string>

#include "gtest/gtest.h"

namespace ddv {
namespace sniff {
namespace {

struct Case {
  const char* raw;
  HostSyntax syntax;
  const char* want;  // nullptr: rejected
};

class NormalizeHostTest : public testing::TestWithParam<Case> {};

TEST_P(NormalizeHostTest, Normalizes) {
  const Case& c = GetParam();
  HostName out;
  const char* error = NormalizeHost(c.raw, c.syntax, &out);
  if (c.want == nullptr) {
    EXPECT_NE(error, nullptr) << c.raw << " -> " << out.view();
    EXPECT_TRUE(out.empty());
  } else {
    EXPECT_EQ(error, nullptr) << c.raw << ": " << error;
    EXPECT_EQ(out.view(), c.want);
  }
}

constexpr HostSyntax kHttp = HostSyntax::kHttpHost;
constexpr HostSyntax kSni = HostSyntax::kTlsSni;

INSTANTIATE_TEST_SUITE_P(
    Table, NormalizeHostTest,
    testing::Values(
        Case{"a.localhost", kHttp, "a.localhost"},
        Case{"A.LocalHost", kHttp, "a.localhost"},
        Case{"a.localhost.", kHttp, "a.localhost"},
        Case{"a.localhost:8080", kHttp, "a.localhost"},
        Case{"a.localhost.:8080", kHttp, "a.localhost"},
        Case{"a.localhost:", kHttp, "a.localhost"},
        Case{"127.0.0.1:80", kHttp, "127.0.0.1"},
        Case{"[::1]:8080", kHttp, "[::1]"},
        Case{"[::1]", kHttp, "[::1]"},
        Case{"[2001:DB8::1]", kHttp, "[2001:db8::1]"},
        Case{"under_score.example", kHttp, "under_score.example"},
        Case{"xn--bcher-kva.example", kSni, "xn--bcher-kva.example"},
        Case{"a.localhost", kSni, "a.localhost"},
        Case{"A.LOCALHOST.", kSni, "a.localhost"},
        // Rejected.
        Case{"", kHttp, nullptr},
        Case{".", kHttp, nullptr},
        Case{"a..b", kHttp, nullptr},
        Case{".a", kHttp, nullptr},
        Case{"a.localhost..", kHttp, nullptr},
        Case{"a b", kHttp, nullptr},
        Case{"a/b", kHttp, nullptr},
        Case{"user@a", kHttp, nullptr},
        Case{"a:port", kHttp, nullptr},
        Case{"a:123456", kHttp, nullptr},
        Case{"[::1", kHttp, nullptr},
        Case{"[::g]", kHttp, nullptr},
        Case{"a.localhost:8080", kSni, nullptr},
        Case{"[::1]", kSni, nullptr},
        Case{"caf\xc3\xa9.example", kSni, nullptr}));

TEST(NormalizeHostLengthTest, RejectsOverlongNameAndLabel) {
  HostName out;
  std::string label64(64, 'a');
  EXPECT_NE(NormalizeHost(label64 + ".x", kSni, &out), nullptr);
  std::string label63(63, 'a');
  EXPECT_EQ(NormalizeHost(label63 + ".x", kSni, &out), nullptr);
  std::string name = label63 + "." + label63 + "." + label63 + "." +
                     std::string(61, 'b');  // 253 characters
  ASSERT_EQ(name.size(), 253u);
  EXPECT_EQ(NormalizeHost(name, kSni, &out), nullptr);
  EXPECT_EQ(NormalizeHost(name + ".", kSni, &out), nullptr);
  EXPECT_NE(NormalizeHost(name + "b", kSni, &out), nullptr);
}

}  // namespace
}  // namespace sniff
}  // namespace ddv
