// HostChecker: the shared case table (the JS port runs the same file), and
// the property that matters: for every name, a HostChecker built from
// RouteTable::HostsOn says "allowed" exactly when Lookup picks that site.
#include "src/route/host_check.h"

#include <cstdlib>
#include <fstream>
#include <new>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "src/route/route_table.h"

// Counts heap allocations while `g_counting` is set, to prove Check makes
// none (it runs for every request a worker reads).
namespace {
bool g_counting = false;
int g_allocations = 0;
}  // namespace

void* operator new(size_t size) {
  if (g_counting) ++g_allocations;
  void* p = std::malloc(size == 0 ? 1 : size);
  if (p == nullptr) std::abort();
  return p;
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace ddv {
namespace route {
namespace {

using nlohmann::json;

std::string Runfile(const std::string& path) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  if (srcdir == nullptr) return path;
  return absl::StrCat(srcdir, "/", workspace ? workspace : "ddv", "/", path);
}

json LoadCases() {
  std::ifstream in(Runfile("node/ddv-worker/test/host_cases.json"));
  std::stringstream text;
  text << in.rdbuf();
  return json::parse(text.str(), nullptr, false);
}

ListenerHosts HostsFromJson(const json& view) {
  ListenerHosts hosts;
  hosts.is_default = view.at("default").get<bool>();
  hosts.own = view.at("own").get<std::vector<std::string>>();
  hosts.others = view.at("others").get<std::vector<std::string>>();
  return hosts;
}

TEST(HostCheckerTest, SharedCases) {
  json cases = LoadCases();
  ASSERT_FALSE(cases.is_discarded()) << "host_cases.json is not JSON";
  ASSERT_GE(cases["cases"].size(), 50u);
  for (const json& c : cases["cases"]) {
    const std::string view = c["view"].get<std::string>();
    absl::StatusOr<HostChecker> checker =
        HostChecker::Create(HostsFromJson(cases["views"][view]));
    ASSERT_TRUE(checker.ok()) << view << ": " << checker.status();
    const std::string target = c["target"].get<std::string>();
    const std::string host = c["host"].is_null() ? "" : c["host"].get<std::string>();
    EXPECT_EQ(HostVerdictName(checker->CheckRequest(target, host)),
              c["expect"].get<std::string>())
        << "view " << view << ", target \"" << target << "\", host \""
        << host << "\"";
  }
}

// A connection's first request (lib/host_check.js runs the same cases
// through its guard): naming the routed host it is allowed, else the view
// decides, as Worker::CheckRequest and ddv_hello combine the two.
TEST(NamesRoutedHostTest, SharedFirstRequestCases) {
  json cases = LoadCases();
  ASSERT_FALSE(cases.is_discarded()) << "host_cases.json is not JSON";
  ASSERT_GE(cases["first_request_cases"].size(), 25u);
  for (const json& c : cases["first_request_cases"]) {
    const std::string view = c["view"].get<std::string>();
    absl::StatusOr<HostChecker> checker =
        HostChecker::Create(HostsFromJson(cases["views"][view]));
    ASSERT_TRUE(checker.ok()) << view << ": " << checker.status();
    const std::string routed = c["routed"].get<std::string>();
    const std::string target = c["target"].get<std::string>();
    const std::string host =
        c["host"].is_null() ? "" : c["host"].get<std::string>();
    const HostVerdict verdict = NamesRoutedHost(target, host, routed)
                                    ? HostVerdict::kAllowed
                                    : checker->CheckRequest(target, host);
    EXPECT_EQ(HostVerdictName(verdict), c["expect"].get<std::string>())
        << "view " << view << ", routed \"" << routed << "\", target \""
        << target << "\", host \"" << host << "\"";
  }
}

TEST(HostCheckerTest, PatternsMustBeInNormalForm) {
  for (const char* bad : {"A.test", "a.test.", "a..test", "*", "*.", "a.*.b",
                          "a.test:80", "[::1]", ""}) {
    ListenerHosts hosts;
    hosts.own = {bad};
    absl::StatusOr<HostChecker> checker = HostChecker::Create(hosts);
    EXPECT_FALSE(checker.ok()) << bad;
    hosts.own.clear();
    hosts.others = {bad};
    EXPECT_FALSE(HostChecker::Create(hosts).ok()) << bad;
  }
}

TEST(HostCheckerTest, RequestAuthority) {
  bool invalid = true;
  EXPECT_EQ(RequestAuthority("/x", "a.test:80", &invalid), "a.test:80");
  EXPECT_FALSE(invalid);
  EXPECT_EQ(RequestAuthority("http://b.test:81/x?y", "a.test", &invalid),
            "b.test:81");
  EXPECT_FALSE(invalid);
  EXPECT_EQ(RequestAuthority("http://[::1]:81/", "", &invalid), "[::1]:81");
  EXPECT_EQ(RequestAuthority("http://u:p@b.test/", "a.test", &invalid),
            "u:p@b.test");
  EXPECT_TRUE(invalid);
  EXPECT_EQ(RequestAuthority("http://", "a.test", &invalid), "");
  EXPECT_TRUE(invalid);
}

TEST(HostCheckerTest, CheckDoesNotAllocate) {
  ListenerHosts hosts;
  hosts.own = {"a.test", "*.w.test"};
  hosts.others = {"b.w.test", "*.x.w.test"};
  absl::StatusOr<HostChecker> checker = HostChecker::Create(hosts);
  ASSERT_TRUE(checker.ok());
  g_allocations = 0;
  g_counting = true;
  HostVerdict verdicts[] = {
      checker->CheckRequest("/", "A.TEST:8080"),
      checker->CheckRequest("/", "deep.q.w.test"),
      checker->CheckRequest("http://b.w.test/", "a.test"),
      checker->CheckRequest("/", "y.x.w.test"),
      checker->CheckRequest("/", "bad host"),
  };
  g_counting = false;
  EXPECT_EQ(g_allocations, 0);
  EXPECT_EQ(verdicts[0], HostVerdict::kAllowed);
  EXPECT_EQ(verdicts[1], HostVerdict::kAllowed);
  EXPECT_EQ(verdicts[2], HostVerdict::kMisdirected);
  EXPECT_EQ(verdicts[3], HostVerdict::kMisdirected);
  EXPECT_EQ(verdicts[4], HostVerdict::kInvalid);
}

// Sites crossing every way one's names can take another's: exact under a
// wildcard, narrower wildcards, listener and global defaults, sites on some
// listeners only, and the names a probe below tries.
RouteTableSpec CrossingSpec() {
  RouteTableSpec spec;
  spec.listener_names = {"http", "https", "other"};
  spec.listener_default_site = {4, -1, -1};
  spec.sites = {
      {"wide", {"*.test", "wide.example"}, {}, false, {}},           // 0
      {"b", {"b.test", "*.x.test", "x.test"}, {}, false, {}},        // 1
      {"deep", {"*.y.x.test", "q.b.test"}, {0, 1}, false, {}},       // 2
      {"global", {"g.example", "*.g.example"}, {1, 2}, true, {}},    // 3
      {"http_default", {"h.test"}, {0}, false, {}},                  // 4
      {"other_only", {"*.example"}, {2}, false, {}},                 // 5
      {"nothing", {}, {}, false, {}},                                // 6
  };
  return spec;
}

const char* const kProbeNames[] = {
    "test", "a.test", "b.test", "c.b.test", "q.b.test", "r.q.b.test",
    "x.test", "y.x.test", "z.y.x.test", "w.z.y.x.test", "h.test", "i.h.test",
    "example", "wide.example", "g.example", "s.g.example", "u.example",
    "unknown.invalid", "127.0.0.1", "localhost"};

TEST(HostCheckerTest, AgreesWithTheRouteTable) {
  absl::StatusOr<std::shared_ptr<const RouteTable>> table =
      RouteTable::Build(CrossingSpec());
  ASSERT_TRUE(table.ok()) << table.status();
  for (int listener = 0; listener < (*table)->listener_count(); ++listener) {
    std::vector<ListenerHosts> hosts = (*table)->HostsOn(listener);
    ASSERT_EQ(hosts.size(), CrossingSpec().sites.size());
    for (size_t site = 0; site < hosts.size(); ++site) {
      absl::StatusOr<HostChecker> checker = HostChecker::Create(hosts[site]);
      ASSERT_TRUE(checker.ok()) << checker.status();
      for (const char* name : kProbeNames) {
        const bool routed_here =
            (*table)->Lookup(listener, name).site == static_cast<int>(site);
        EXPECT_EQ(checker->Check(name) == HostVerdict::kAllowed, routed_here)
            << "listener " << listener << ", site "
            << CrossingSpec().sites[site].id << ", host " << name;
      }
    }
  }
}

TEST(HostCheckerTest, HostsOnTellsOnlyWhatMatters) {
  absl::StatusOr<std::shared_ptr<const RouteTable>> table =
      RouteTable::Build(CrossingSpec());
  ASSERT_TRUE(table.ok());
  std::vector<ListenerHosts> https = (*table)->HostsOn(1);
  // "wide" hears of the names under its "*.test" only.
  EXPECT_EQ(https[0].own,
            (std::vector<std::string>{"*.test", "wide.example"}));
  EXPECT_EQ(https[0].others,
            (std::vector<std::string>{"*.x.test", "*.y.x.test", "b.test",
                                      "q.b.test", "x.test"}));
  EXPECT_FALSE(https[0].is_default);
  // "b": its "*.x.test" has deep's "*.y.x.test" below it.
  EXPECT_EQ(https[1].others, (std::vector<std::string>{"*.y.x.test"}));
  // The global default (https has no default_site) hears of everything.
  EXPECT_TRUE(https[3].is_default);
  EXPECT_EQ(https[3].others.size(), 7u);
  // On http the listener default wins over the global one.
  std::vector<ListenerHosts> http = (*table)->HostsOn(0);
  EXPECT_TRUE(http[4].is_default);
  EXPECT_FALSE(http[3].is_default);
  EXPECT_TRUE(http[3].own.empty());  // "global" does not serve http
  // A listener that does not exist routes nothing anywhere.
  for (const ListenerHosts& h : (*table)->HostsOn(7)) {
    EXPECT_FALSE(h.is_default);
    EXPECT_TRUE(h.own.empty());
  }
}

TEST(HostCheckerTest, AlpnClaimsAreTheClaimantsOwn) {
  RouteTableSpec spec;
  spec.listener_names = {"https"};
  spec.sites = {{"a", {"a.test"}, {}, false, {}},
                {"acme", {"a.test", "*.w.test"}, {}, false, {"acme-tls/1"}}};
  absl::StatusOr<std::shared_ptr<const RouteTable>> table =
      RouteTable::Build(spec);
  ASSERT_TRUE(table.ok()) << table.status();
  std::vector<ListenerHosts> hosts = (*table)->HostsOn(0);
  EXPECT_EQ(hosts[0].own, (std::vector<std::string>{"a.test"}));
  EXPECT_TRUE(hosts[0].others.empty());
  EXPECT_EQ(hosts[1].own, (std::vector<std::string>{"*.w.test", "a.test"}));
}

TEST(NamesRoutedHostTest, TheNameARequestRoutedByNames) {
  // As the master normalises: case, a port, a trailing dot.
  EXPECT_TRUE(NamesRoutedHost("/", "a.test", "a.test"));
  EXPECT_TRUE(NamesRoutedHost("/", "A.Test:8080", "a.test"));
  EXPECT_TRUE(NamesRoutedHost("/x", "a.test.", "a.test"));
  // An absolute-form target's authority wins over Host.
  EXPECT_TRUE(NamesRoutedHost("http://a.test/x", "b.test", "a.test"));
  EXPECT_FALSE(NamesRoutedHost("http://b.test/x", "a.test", "a.test"));
  EXPECT_FALSE(NamesRoutedHost("/", "b.test", "a.test"));
  EXPECT_FALSE(NamesRoutedHost("/", "x.a.test", "a.test"));
  // Nothing routed, nothing named, or nothing valid: never.
  EXPECT_FALSE(NamesRoutedHost("/", "a.test", ""));
  EXPECT_FALSE(NamesRoutedHost("/", "", "a.test"));
  EXPECT_FALSE(NamesRoutedHost("ftp://a.test/", "a.test", "a.test"));
  EXPECT_FALSE(NamesRoutedHost("/", "a..test", "a.test"));
}

}  // namespace
}  // namespace route
}  // namespace ddv
