// Fuzzes a worker's update_server_conf body (untrusted bytes from a worker
// process) through ApplyServerConfUpdate, against a fixed running config of
// three sites with claimable_hosts. It must never crash; a refusal is one
// of the documented codes; an accepted update leaves the file's hosts and
// defaults as they were, every other site's process count too, and only
// claims for the calling site, in normal form, that a re-check accepts
// (none under, over or equal to another site's names), with at most one
// default.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "src/config/config.h"
#include "src/config/host_pattern.h"
#include "src/master/config_apply.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

const ddv::config::Config& Running() {
  static const ddv::config::Config* config = [] {
    auto* c = new ddv::config::Config;
    c->path = "fuzz.toml";
    ddv::config::ListenerConfig http;
    http.name = "http";
    http.address = "127.0.0.1:80";
    c->listeners.push_back(http);
    const char* ids[] = {"a", "b", "c"};
    const char* hosts[] = {"a.example.com", "*.b.example.com", "c.example.com"};
    // a may claim widely (so claims meet b's and c's names), b below its
    // own wildcard and the default (which c holds), c nothing.
    const std::vector<std::string> claimable[] = {
        {"*.example.com", "*.test"}, {"*.b.example.com"}, {}};
    for (int i = 0; i < 3; ++i) {
      ddv::config::SiteConfig site;
      site.id = ids[i];
      site.command = {"/bin/true"};
      site.hosts = {hosts[i]};
      site.is_default = i == 2;
      site.claimable_hosts = claimable[i];
      site.may_claim_default = i == 1;
      c->sites.push_back(site);
    }
    return c;
  }();
  return *config;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int site = data[0] % 3;
  std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  const ddv::config::Config& running = Running();
  const ddv::master::Claimant who{site, site, 0, 1};
  auto next = ddv::master::ApplyServerConfUpdate(running, {}, who, body);
  if (!next.ok()) {
    const absl::StatusCode code = next.status().code();
    FUZZ_CHECK(code == absl::StatusCode::kInvalidArgument ||
               code == absl::StatusCode::kPermissionDenied ||
               code == absl::StatusCode::kAlreadyExists ||
               code == absl::StatusCode::kFailedPrecondition);
    FUZZ_CHECK(!next.status().message().empty());
    return 0;
  }
  FUZZ_CHECK(next->config.sites.size() == running.sites.size());
  for (size_t s = 0; s < running.sites.size(); ++s) {
    const auto& before = running.sites[s];
    const auto& after = next->config.sites[s];
    FUZZ_CHECK(after.id == before.id);
    FUZZ_CHECK(after.hosts == before.hosts);  // claims live apart
    FUZZ_CHECK(after.is_default == before.is_default);
    if (static_cast<int>(s) != site) {
      FUZZ_CHECK(after.processes == before.processes);
    }
    FUZZ_CHECK(after.processes >= 1 && after.processes <= 1024);
  }
  for (const ddv::master::Claim& claim : next->claims) {
    FUZZ_CHECK(claim.site == site && claim.worker == who.worker &&
               claim.generation == who.generation);
    if (claim.is_default()) continue;
    auto normal = ddv::config::NormalizeHostPattern(claim.host);
    FUZZ_CHECK(normal.ok() && *normal == claim.host);
    FUZZ_CHECK(claim.host == absl::AsciiStrToLower(claim.host));
  }
  std::vector<ddv::master::DroppedClaim> dropped;
  ddv::master::RecheckClaims(next->config, next->claims, &dropped);
  FUZZ_CHECK(dropped.empty());
  int defaults = 0;
  for (const auto& s : ddv::master::WithClaims(next->config, next->claims).sites) {
    defaults += s.is_default ? 1 : 0;
  }
  FUZZ_CHECK(defaults <= 1);
  return 0;
}
