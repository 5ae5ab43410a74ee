// RouteTable: one table of lookups covering every routing rule in order, the
// build errors, and a check that Lookup never allocates.
#include "src/route/route_table.h"

#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"

// Counts heap allocations while `g_counting` is set, to prove Lookup makes
// none. Replacing the global operator new is the only way to see them all.
namespace {
bool g_counting = false;
int g_allocations = 0;
}  // namespace

void* operator new(size_t size) {
  if (g_counting) ++g_allocations;
  void* p = std::malloc(size == 0 ? 1 : size);
  if (p == nullptr) std::abort();  // no exceptions in this code base
  return p;
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace ddv {
namespace route {
namespace {

enum Listener { kHttp = 0, kHttps = 1, kAdmin = 2 };

// Sites, by index. Each exists to exercise one rule of the lookup order.
RouteTableSpec DemoSpec() {
  RouteTableSpec spec;
  spec.listener_names = {"http", "https", "admin"};
  spec.sites = {
      // 0: the demo's site a, on every listener.
      {"a", {"a.localhost", "*.a.localhost"}, {}, false, {}},
      // 1: spelled loosely to show patterns are normalised.
      {"b", {"B.Localhost."}, {kHttp, kHttps}, false, {}},
      // 2, 3: longest wildcard suffix wins.
      {"deep", {"*.b.a.test"}, {kHttp, kHttps}, false, {}},
      {"shallow", {"*.a.test", "a.test", "e.a.test"}, {kHttp, kHttps}, false,
       {}},
      // 4: the global default, which does not serve admin.
      {"fallback", {}, {kHttp, kHttps}, true, {}},
      // 5: claims acme-tls/1 only; never a plain route.
      {"acme", {"a.localhost", "*.a.test"}, {kHttps}, false, {"acme-tls/1"}},
      // 6, 7: the same host owned per listener.
      {"http_only", {"h.localhost"}, {kHttp}, false, {}},
      {"https_h", {"h.localhost"}, {kHttps}, false, {}},
      // 8: http's listener default.
      {"http_default", {}, {kHttp}, false, {}},
      // 9: a wildcard that exists on admin only.
      {"admin_wild", {"*.localhost"}, {kAdmin}, false, {}},
      // 10: exact and longer-wildcard ALPN claims next to acme's.
      {"acme2", {"q.b.a.test", "*.c.b.a.test"}, {kHttps}, false,
       {"acme-tls/1"}},
      // 11: a second protocol on acme's host, for client preference order.
      {"h2_only", {"a.localhost"}, {kHttps}, false, {"h2"}},
  };
  spec.listener_default_site = {8, -1, -1};
  return spec;
}

struct LookupCase {
  const char* name;
  int listener;
  const char* host;
  std::vector<absl::string_view> alpn;
  const char* want_site;  // nullptr: no site
  MatchKind want_kind;
};

std::vector<LookupCase> LookupCases() {
  using K = MatchKind;
  const std::vector<absl::string_view> kAcme = {"acme-tls/1"};
  return {
      // Exact and wildcard.
      {"exact", kHttp, "a.localhost", {}, "a", K::kExact},
      {"exact_normalised_pattern", kHttp, "b.localhost", {}, "b", K::kExact},
      {"wildcard_one_label", kHttp, "x.a.localhost", {}, "a", K::kWildcard},
      {"wildcard_any_depth", kHttp, "x.y.a.localhost", {}, "a", K::kWildcard},
      {"wildcard_needs_a_label_boundary", kHttp, "xa.localhost", {},
       "http_default", K::kListenerDefault},
      {"wildcard_not_its_suffix", kAdmin, "localhost", {}, nullptr, K::kNone},
      {"suffix_is_not_a_prefix", kHttp, "a.localhost.evil", {},
       "http_default", K::kListenerDefault},
      {"longest_suffix_wins", kHttp, "x.b.a.test", {}, "deep", K::kWildcard},
      {"longest_suffix_wins_deeper", kHttp, "y.x.b.a.test", {}, "deep",
       K::kWildcard},
      {"shorter_wildcard_below_it", kHttp, "b.a.test", {}, "shallow",
       K::kWildcard},
      {"exact_beside_wildcard", kHttp, "a.test", {}, "shallow", K::kExact},
      // Per-listener scoping.
      {"host_per_listener_http", kHttp, "h.localhost", {}, "http_only",
       K::kExact},
      {"host_per_listener_https", kHttps, "h.localhost", {}, "https_h",
       K::kExact},
      {"site_not_on_listener", kAdmin, "b.localhost", {}, "admin_wild",
       K::kWildcard},
      {"all_listeners_site", kAdmin, "a.localhost", {}, "a", K::kExact},
      {"wildcard_not_on_listener", kHttp, "zz.localhost", {}, "http_default",
       K::kListenerDefault},
      // Defaults.
      {"no_name_listener_default", kHttp, "", {}, "http_default",
       K::kListenerDefault},
      {"no_name_global_default", kHttps, "", {}, "fallback",
       K::kGlobalDefault},
      {"miss_global_default", kHttps, "nosuch.example", {}, "fallback",
       K::kGlobalDefault},
      {"miss_global_default_not_on_listener", kAdmin, "nosuch.example", {},
       nullptr, K::kNone},
      {"no_name_no_default", kAdmin, "", {}, nullptr, K::kNone},
      {"listener_out_of_range", 3, "a.localhost", {}, nullptr, K::kNone},
      {"listener_negative", -1, "a.localhost", {}, nullptr, K::kNone},
      // ALPN narrowing.
      {"alpn_exact", kHttps, "a.localhost", kAcme, "acme", K::kAlpnExact},
      {"alpn_not_offered", kHttps, "a.localhost", {"http/1.1"}, "a",
       K::kExact},
      {"alpn_none_offered", kHttps, "a.localhost", {}, "a", K::kExact},
      {"alpn_site_not_on_listener", kHttp, "a.localhost", kAcme, "a",
       K::kExact},
      {"alpn_client_preference_h2", kHttps, "a.localhost",
       {"h2", "acme-tls/1"}, "h2_only", K::kAlpnExact},
      {"alpn_client_preference_acme", kHttps, "a.localhost",
       {"acme-tls/1", "h2"}, "acme", K::kAlpnExact},
      {"alpn_wildcard_beats_exact", kHttps, "e.a.test", kAcme, "acme",
       K::kAlpnWildcard},
      {"alpn_wildcard_not_its_suffix", kHttps, "a.test", kAcme, "shallow",
       K::kExact},
      {"alpn_wildcard_beats_longer_wildcard", kHttps, "z.b.a.test", kAcme,
       "acme", K::kAlpnWildcard},
      {"alpn_exact_beats_alpn_wildcard", kHttps, "q.b.a.test", kAcme, "acme2",
       K::kAlpnExact},
      {"alpn_longest_wildcard", kHttps, "z.c.b.a.test", kAcme, "acme2",
       K::kAlpnWildcard},
      {"alpn_claim_is_not_a_plain_route", kHttps, "z.c.b.a.test", {}, "deep",
       K::kWildcard},
      {"alpn_no_name", kHttps, "", kAcme, "fallback", K::kGlobalDefault},
  };
}

class LookupTest : public testing::TestWithParam<LookupCase> {};

TEST_P(LookupTest, Routes) {
  const LookupCase& c = GetParam();
  RouteTableSpec spec = DemoSpec();
  absl::StatusOr<std::shared_ptr<const RouteTable>> table =
      RouteTable::Build(spec);
  ASSERT_TRUE(table.ok()) << table.status();
  RouteResult result = (*table)->Lookup(c.listener, c.host, c.alpn);
  EXPECT_EQ(MatchKindName(result.kind), std::string(MatchKindName(c.want_kind)));
  if (c.want_site == nullptr) {
    EXPECT_EQ(result.site, -1);
  } else {
    ASSERT_GE(result.site, 0);
    EXPECT_EQ(spec.sites[result.site].id, c.want_site);
  }
}

INSTANTIATE_TEST_SUITE_P(Table, LookupTest, testing::ValuesIn(LookupCases()),
                         [](const testing::TestParamInfo<LookupCase>& info) {
                           return std::string(info.param.name);
                         });

TEST(RouteTableTest, LookupDoesNotAllocate) {
  RouteTableSpec spec = DemoSpec();
  // Build allocates: proof that the counter sees allocations at all.
  g_allocations = 0;
  g_counting = true;
  absl::StatusOr<std::shared_ptr<const RouteTable>> table =
      RouteTable::Build(spec);
  g_counting = false;
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_GT(g_allocations, 0);
  const std::vector<absl::string_view> alpn = {"h2", "acme-tls/1"};
  std::vector<LookupCase> cases = LookupCases();
  g_allocations = 0;
  g_counting = true;
  int found = 0;
  for (const LookupCase& c : cases) {
    found += (*table)->Lookup(c.listener, c.host, alpn).site >= 0;
    found += (*table)->Lookup(c.listener, c.host).site >= 0;
  }
  g_counting = false;
  EXPECT_GT(found, 0);
  EXPECT_EQ(g_allocations, 0);
}

TEST(RouteTableTest, EmptySpecRoutesNothing) {
  absl::StatusOr<std::shared_ptr<const RouteTable>> table =
      RouteTable::Build(RouteTableSpec());
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ((*table)->listener_count(), 0);
  EXPECT_EQ((*table)->Lookup(0, "a.localhost").kind, MatchKind::kNone);
}

TEST(RouteTableTest, TablesAreIndependentSnapshots) {
  RouteTableSpec spec = DemoSpec();
  auto old_table = RouteTable::Build(spec);
  ASSERT_TRUE(old_table.ok());
  spec.sites[0].hosts = {"new.localhost"};
  auto new_table = RouteTable::Build(spec);
  ASSERT_TRUE(new_table.ok());
  EXPECT_EQ((*old_table)->Lookup(kHttp, "a.localhost").site, 0);
  EXPECT_EQ((*new_table)->Lookup(kHttp, "a.localhost").kind,
            MatchKind::kListenerDefault);
  EXPECT_EQ((*new_table)->Lookup(kHttp, "new.localhost").site, 0);
}

// --- build errors -------------------------------------------------------------

struct BuildCase {
  const char* name;
  void (*mutate)(RouteTableSpec* spec);
  // Each must appear in the error; an empty list means Build succeeds.
  std::vector<const char*> want_in_error;
};

std::vector<BuildCase> BuildCases() {
  return {
      {"bare_star",
       [](RouteTableSpec* s) { s->sites[1].hosts.push_back("*"); },
       {"\"b\"", "\"*\"", "default site"}},
      {"star_dot_only",
       [](RouteTableSpec* s) { s->sites[1].hosts.push_back("*."); },
       {"\"b\"", "\"*.\""}},
      {"star_in_the_middle",
       [](RouteTableSpec* s) { s->sites[1].hosts.push_back("a.*.com"); },
       {"\"b\"", "\"a.*.com\"", "invalid character"}},
      {"star_without_dot",
       [](RouteTableSpec* s) { s->sites[1].hosts.push_back("*example.com"); },
       {"\"b\"", "\"*example.com\""}},
      {"double_wildcard",
       [](RouteTableSpec* s) { s->sites[1].hosts.push_back("*.*.example"); },
       {"\"b\"", "\"*.*.example\""}},
      {"empty_label",
       [](RouteTableSpec* s) { s->sites[1].hosts.push_back("a..example"); },
       {"\"b\"", "\"a..example\"", "empty label"}},
      {"port_in_host",
       [](RouteTableSpec* s) { s->sites[1].hosts.push_back("a.example:80"); },
       {"\"b\"", "\"a.example:80\""}},
      {"empty_host",
       [](RouteTableSpec* s) { s->sites[1].hosts.push_back(""); },
       {"\"b\"", "empty host"}},
      {"exact_claimed_twice",
       [](RouteTableSpec* s) { s->sites[1].hosts.push_back("a.localhost"); },
       {"\"b\"", "\"a\"", "\"a.localhost\"", "\"http\""}},
      {"claimed_twice_after_normalising",
       [](RouteTableSpec* s) { s->sites[1].hosts.push_back("A.LOCALHOST."); },
       {"\"b\"", "\"a\"", "\"A.LOCALHOST.\""}},
      {"wildcard_claimed_twice",
       [](RouteTableSpec* s) { s->sites[2].hosts.push_back("*.a.test"); },
       {"\"deep\"", "\"shallow\"", "\"*.a.test\""}},
      {"claimed_twice_on_one_shared_listener",
       [](RouteTableSpec* s) { s->sites[9].hosts.push_back("a.localhost"); },
       {"\"admin_wild\"", "\"a\"", "\"admin\""}},
      {"alpn_claimed_twice",
       [](RouteTableSpec* s) { s->sites[10].hosts.push_back("a.localhost"); },
       {"\"acme2\"", "\"acme\"", "\"a.localhost\"", "\"acme-tls/1\"",
        "\"https\""}},
      {"two_defaults",
       [](RouteTableSpec* s) { s->sites[0].is_default = true; },
       {"\"a\"", "\"fallback\"", "default"}},
      {"listener_out_of_range",
       [](RouteTableSpec* s) { s->sites[1].listeners.push_back(3); },
       {"\"b\"", "listener index 3"}},
      {"listener_negative",
       [](RouteTableSpec* s) { s->sites[1].listeners.push_back(-1); },
       {"\"b\"", "listener index -1"}},
      {"listener_default_out_of_range",
       [](RouteTableSpec* s) { s->listener_default_site[1] = 12; },
       {"\"https\"", "12"}},
      {"listener_default_wrong_count",
       [](RouteTableSpec* s) { s->listener_default_site.push_back(-1); },
       {"4 entries for 3 listeners"}},
      {"duplicate_site_id", [](RouteTableSpec* s) { s->sites[1].id = "a"; },
       {"\"a\"", "#0", "#1"}},
      {"empty_site_id", [](RouteTableSpec* s) { s->sites[1].id = ""; },
       {"#1", "empty id"}},
      {"empty_alpn", [](RouteTableSpec* s) { s->sites[5].alpn.push_back(""); },
       {"\"acme\"", "ALPN"}},
      // Accepted.
      {"same_host_disjoint_listeners",
       [](RouteTableSpec* s) {
         s->sites[6].hosts.push_back("only.localhost");
         s->sites[7].hosts.push_back("only.localhost");
       },
       {}},
      {"same_host_twice_in_one_site",
       [](RouteTableSpec* s) {
         s->sites[0].hosts.push_back("A.localhost");
         s->sites[0].listeners = {kHttp, kHttp, kHttps, kAdmin};
       },
       {}},
      {"same_host_exact_and_wildcard",
       [](RouteTableSpec* s) { s->sites[1].hosts.push_back("*.b.localhost"); },
       {}},
      {"same_host_other_alpn",
       [](RouteTableSpec* s) {
         s->sites.push_back({"c", {"a.localhost"}, {kHttps}, false, {"c/1"}});
       },
       {}},
      {"no_listener_defaults",
       [](RouteTableSpec* s) { s->listener_default_site.clear(); }, {}},
  };
}

class BuildTest : public testing::TestWithParam<BuildCase> {};

TEST_P(BuildTest, ValidatesSpec) {
  const BuildCase& c = GetParam();
  RouteTableSpec spec = DemoSpec();
  c.mutate(&spec);
  absl::StatusOr<std::shared_ptr<const RouteTable>> table =
      RouteTable::Build(spec);
  if (c.want_in_error.empty()) {
    EXPECT_TRUE(table.ok()) << table.status();
    return;
  }
  ASSERT_FALSE(table.ok());
  EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument);
  for (const char* want : c.want_in_error) {
    EXPECT_NE(table.status().message().find(want), absl::string_view::npos)
        << "missing " << want << " in: " << table.status().message();
  }
}

INSTANTIATE_TEST_SUITE_P(Table, BuildTest, testing::ValuesIn(BuildCases()),
                         [](const testing::TestParamInfo<BuildCase>& info) {
                           return std::string(info.param.name);
                         });

}  // namespace
}  // namespace route
}  // namespace ddv
