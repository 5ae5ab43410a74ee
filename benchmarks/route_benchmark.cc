// RouteTable::Lookup at deployment scale: 100k exact hosts and 10k
// wildcards on one listener, queried round-robin over many distinct names
// so the numbers include cache misses, not one hot bucket.
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "benchmark/benchmark.h"
#include "src/route/route_table.h"

namespace ddv {
namespace route {
namespace {

constexpr int kExactHosts = 100000;
constexpr int kWildcards = 10000;
constexpr int kSites = 1000;
constexpr int kQueries = 1 << 14;

RouteTableSpec LargeSpec() {
  RouteTableSpec spec;
  spec.listener_names = {"https"};
  spec.listener_default_site = {-1};
  spec.sites.resize(kSites + 1);
  for (int s = 0; s < kSites; ++s) spec.sites[s].id = absl::StrCat("site", s);
  spec.sites[kSites].id = "fallback";
  spec.sites[kSites].is_default = true;
  // Realistic names: a few labels, 20-30 bytes.
  for (int h = 0; h < kExactHosts; ++h) {
    spec.sites[h % kSites].hosts.push_back(
        absl::StrCat("www", h, ".customer", h / 10, ".example.com"));
  }
  for (int w = 0; w < kWildcards; ++w) {
    spec.sites[w % kSites].hosts.push_back(
        absl::StrCat("*.tenant", w, ".apps.example.net"));
  }
  return spec;
}

const RouteTable& Table() {
  static const std::shared_ptr<const RouteTable> table = [] {
    auto built = RouteTable::Build(LargeSpec());
    if (!built.ok()) std::abort();
    return *built;
  }();
  return *table;
}

void RunLookups(benchmark::State& state, const std::vector<std::string>& names,
                MatchKind want) {
  const RouteTable& table = Table();
  std::vector<absl::string_view> views(names.begin(), names.end());
  for (absl::string_view name : views) {
    if (table.Lookup(0, name).kind != want) {
      state.SkipWithError("unexpected match kind");
      return;
    }
  }
  size_t i = 0;
  for (auto _ : state) {
    RouteResult result = table.Lookup(0, views[i]);
    benchmark::DoNotOptimize(result);
    i = (i + 1) & (kQueries - 1);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_LookupExactHit(benchmark::State& state) {
  std::vector<std::string> names;
  for (int q = 0; q < kQueries; ++q) {
    int h = (q * 7919) % kExactHosts;  // spread over the whole table
    names.push_back(absl::StrCat("www", h, ".customer", h / 10, ".example.com"));
  }
  RunLookups(state, names, MatchKind::kExact);
}
BENCHMARK(BM_LookupExactHit);

void BM_LookupWildcardHit(benchmark::State& state) {
  std::vector<std::string> names;
  for (int q = 0; q < kQueries; ++q) {
    // Two labels below the wildcard: the walk probes the map three times
    // before "tenantN.apps.example.net" hits.
    names.push_back(absl::StrCat("api.v", q % 3, ".tenant", q % kWildcards,
                                 ".apps.example.net"));
  }
  RunLookups(state, names, MatchKind::kWildcard);
}
BENCHMARK(BM_LookupWildcardHit);

void BM_LookupMissToDefault(benchmark::State& state) {
  std::vector<std::string> names;
  for (int q = 0; q < kQueries; ++q) {
    // Exact miss, then every suffix probed and missed.
    names.push_back(absl::StrCat("www", q, ".unknown", q, ".example.org"));
  }
  RunLookups(state, names, MatchKind::kGlobalDefault);
}
BENCHMARK(BM_LookupMissToDefault);

// Reload cost: building the whole 110k-pattern table.
void BM_Build(benchmark::State& state) {
  RouteTableSpec spec = LargeSpec();
  for (auto _ : state) {
    auto table = RouteTable::Build(spec);
    benchmark::DoNotOptimize(table);
  }
}
BENCHMARK(BM_Build)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace route
}  // namespace ddv
