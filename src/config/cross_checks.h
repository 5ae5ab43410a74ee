// The loader's third pass: checks across tables (unique listener names and
// addresses, unique site ids, one global default, listener defaults that
// exist and serve the listener, one owner per host and listener). They need
// to know where each value came from, for FILE:LINE:COL errors.
#ifndef DDV_SRC_CONFIG_CROSS_CHECKS_H_
#define DDV_SRC_CONFIG_CROSS_CHECKS_H_

#include <cstddef>
#include <vector>

#include "absl/status/status.h"
#include "src/config/config.h"
#include "src/config/listen_address.h"
#include "src/config/toml_reader.h"

namespace ddv {
namespace config {
namespace internal {

// Where the values the cross checks look at came from. A value that was in
// error is left null: the checks skip what depends on it (its error was
// reported already).
struct ListenerSource {
  const toml::table* table = nullptr;
  const toml::node* name = nullptr;
  const toml::node* address = nullptr;
  const toml::node* default_site = nullptr;
  ListenAddress parsed_address;
};

struct SiteSource {
  const toml::table* table = nullptr;
  const toml::node* id = nullptr;
  const toml::node* is_default = nullptr;
  std::vector<const toml::node*> hosts;  // of the good SiteConfig::hosts
};

// Listener i's name and address are not those of an earlier listener.
void CheckUniqueListener(const TomlReader& reader,
                         const std::vector<ListenerConfig>& listeners,
                         const std::vector<ListenerSource>& sources, size_t i,
                         ErrorList* errors);

// Unique site ids, and at most one `default = true`. Returns the default
// site's index in *default_site, or -1.
void CheckSites(const TomlReader& reader, const Config& config,
                const std::vector<SiteSource>& sources, int* default_site,
                ErrorList* errors);

// Each listener's default_site exists and serves it; a tcp listener, which
// cannot route by name, has a default of some kind. Every listener must
// have a good name (the caller checks).
void CheckListenerDefaults(const TomlReader& reader, const Config& config,
                           const std::vector<ListenerSource>& sources,
                           const std::vector<SiteSource>& site_sources,
                           int default_site, ErrorList* errors);

// Each (listener, host, ALPN) has one owner.
void CheckHostOwners(const TomlReader& reader, const Config& config,
                     const std::vector<SiteSource>& sources,
                     ErrorList* errors);

}  // namespace internal
}  // namespace config
}  // namespace ddv

#endif  // DDV_SRC_CONFIG_CROSS_CHECKS_H_
