// The [[site]] keys that isolate a site from the others (docs/isolation.md):
// `limits` (setrlimit on each worker), `cwd`, the cgroup's `memory_max` and
// `cpu_weight`, and the master's caps `max_connections` and `max_pending`.
// Private to the loader, like cross_checks.h.
#ifndef DDV_SRC_CONFIG_SITE_ISOLATION_H_
#define DDV_SRC_CONFIG_SITE_ISOLATION_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "src/config/config.h"
#include "src/config/toml_reader.h"

namespace ddv {
namespace config {
namespace internal {

// Reads the keys above into `site`, adding every error to `errors`. `cwd`
// must be an absolute path to a directory that exists at load (a system
// check, like command[0]).
void ReadSiteIsolation(const TomlReader& reader, const toml::table& table,
                       SiteConfig* site, ErrorList* errors);

// "512M" → 536870912: decimal digits with an optional K, M, G or T suffix
// (powers of 1024, as systemd's MemoryMax= takes them).
absl::StatusOr<uint64_t> ParseByteSize(absl::string_view text);

}  // namespace internal
}  // namespace config
}  // namespace ddv

#endif  // DDV_SRC_CONFIG_SITE_ISOLATION_H_
