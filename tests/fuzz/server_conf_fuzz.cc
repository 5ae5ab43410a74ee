// Fuzzes a worker's update_server_conf body (untrusted bytes from a worker
// process) through ApplyServerConfUpdate, against a fixed running config of
// three sites. It must never crash; a refusal is one of the documented
// codes; an accepted update leaves every other site exactly as it was and
// the claiming site's hosts in normal form.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "src/config/config.h"
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
    for (int i = 0; i < 3; ++i) {
      ddv::config::SiteConfig site;
      site.id = ids[i];
      site.command = {"/bin/true"};
      site.hosts = {hosts[i]};
      site.is_default = i == 2;
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
  auto next = ddv::master::ApplyServerConfUpdate(running, site, body);
  if (!next.ok()) {
    const absl::StatusCode code = next.status().code();
    FUZZ_CHECK(code == absl::StatusCode::kInvalidArgument ||
               code == absl::StatusCode::kAlreadyExists ||
               code == absl::StatusCode::kFailedPrecondition);
    FUZZ_CHECK(!next.status().message().empty());
    return 0;
  }
  FUZZ_CHECK(next->sites.size() == running.sites.size());
  for (size_t s = 0; s < running.sites.size(); ++s) {
    const auto& before = running.sites[s];
    const auto& after = next->sites[s];
    FUZZ_CHECK(after.id == before.id);
    if (static_cast<int>(s) != site) {
      FUZZ_CHECK(after.hosts == before.hosts);
      FUZZ_CHECK(after.processes == before.processes);
    }
    FUZZ_CHECK(after.processes >= 1 && after.processes <= 1024);
    for (const std::string& host : after.hosts) {
      FUZZ_CHECK(!host.empty() && host == absl::AsciiStrToLower(host));
    }
  }
  int defaults = 0;
  for (const auto& s : next->sites) defaults += s.is_default ? 1 : 0;
  FUZZ_CHECK(defaults <= 1);
  return 0;
}
