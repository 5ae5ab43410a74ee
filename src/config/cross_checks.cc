// Checks across the config's tables (see cross_checks.h).
#include "src/config/cross_checks.h"

#include <algorithm>
#include <map>
#include <string>
#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace ddv {
namespace config {
namespace internal {
namespace {

bool Serves(const SiteConfig& site, const std::string& listener) {
  return site.listeners.empty() ||
         std::find(site.listeners.begin(), site.listeners.end(), listener) !=
             site.listeners.end();
}

}  // namespace

void CheckUniqueListener(const TomlReader& reader,
                         const std::vector<ListenerConfig>& listeners,
                         const std::vector<ListenerSource>& sources, size_t i,
                         ErrorList* errors) {
  const ListenerConfig& listener = listeners[i];
  for (size_t j = 0; j < i; ++j) {
    if (sources[i].name != nullptr && sources[j].name != nullptr &&
        listeners[j].name == listener.name) {
      errors->Add(reader.ErrorAt(
          *sources[i].name,
          absl::StrCat("listener name \"", listener.name,
                       "\" is already used on line ", listeners[j].line)));
    }
    // Port 0 asks the kernel for a fresh port each time: no clash.
    if (sources[i].address != nullptr && sources[j].address != nullptr &&
        ListenPort(sources[i].parsed_address) != 0 &&
        SameListenAddress(sources[i].parsed_address,
                          sources[j].parsed_address)) {
      errors->Add(reader.ErrorAt(
          *sources[i].address,
          absl::StrCat("address \"", listener.address,
                       "\" is already used by listener \"", listeners[j].name,
                       "\"")));
    }
  }
}

void CheckSites(const TomlReader& reader, const Config& config,
                const std::vector<SiteSource>& sources, int* default_site,
                ErrorList* errors) {
  absl::flat_hash_map<std::string, size_t> by_id;
  *default_site = -1;
  for (size_t i = 0; i < config.sites.size(); ++i) {
    const SiteConfig& site = config.sites[i];
    if (sources[i].id != nullptr) {
      auto [it, inserted] = by_id.emplace(site.id, i);
      if (!inserted) {
        errors->Add(reader.ErrorAt(
            *sources[i].id,
            absl::StrCat("site id \"", site.id,
                         "\" is already used by the site on line ",
                         config.sites[it->second].line)));
      }
    }
    if (!site.is_default) continue;
    if (*default_site >= 0) {
      errors->Add(reader.ErrorAt(
          *sources[i].is_default,
          absl::StrCat("site \"", site.id,
                       "\" has default = true, but so does site \"",
                       config.sites[*default_site].id,
                       "\"; at most one site may be the default")));
      continue;
    }
    *default_site = static_cast<int>(i);
  }
}

void CheckListenerDefaults(const TomlReader& reader, const Config& config,
                           const std::vector<ListenerSource>& sources,
                           const std::vector<SiteSource>& site_sources,
                           int default_site, ErrorList* errors) {
  // A default_site not found may be the site whose id was in error.
  const bool site_ids_known =
      std::all_of(site_sources.begin(), site_sources.end(),
                  [](const SiteSource& s) { return s.id != nullptr; });
  for (size_t i = 0; i < config.listeners.size(); ++i) {
    const ListenerConfig& listener = config.listeners[i];
    if (sources[i].default_site != nullptr) {
      auto site = std::find_if(config.sites.begin(), config.sites.end(),
                               [&listener](const SiteConfig& s) {
                                 return s.id == listener.default_site;
                               });
      if (site == config.sites.end()) {
        if (site_ids_known) {
          errors->Add(reader.ErrorAt(
              *sources[i].default_site,
              absl::StrCat("default_site \"", listener.default_site,
                           "\" is not a site id")));
        }
      } else if (!Serves(*site, listener.name)) {
        errors->Add(reader.ErrorAt(
            *sources[i].default_site,
            absl::StrCat("default_site \"", listener.default_site,
                         "\" does not serve listener \"", listener.name,
                         "\": add \"", listener.name,
                         "\" to that site's listeners")));
      }
    }
    if (listener.protocol == Protocol::kTcp && listener.default_site.empty() &&
        (default_site < 0 ||
         !Serves(config.sites[default_site], listener.name))) {
      errors->Add(reader.ErrorAt(
          *sources[i].table,
          absl::StrCat("listener \"", listener.name,
                       "\" is tcp, which cannot route by name: give it a "
                       "default_site, or mark a site that serves it "
                       "default = true")));
    }
  }
}

// Each (listener, host, ALPN) has one owner. A site with `alpn` claims its
// hosts only for those protocols (e.g. an ACME tls-alpn-01 responder beside
// the real site); a site without claims them for everything else.
void CheckHostOwners(const TomlReader& reader, const Config& config,
                     const std::vector<SiteSource>& sources,
                     ErrorList* errors) {
  std::map<std::tuple<std::string, std::string, std::string>, size_t> owners;
  for (size_t i = 0; i < config.sites.size(); ++i) {
    const SiteConfig& site = config.sites[i];
    std::vector<std::string> alpns = site.alpn;
    if (alpns.empty()) alpns.push_back("");
    for (size_t h = 0; h < site.hosts.size(); ++h) {
      // One error per host, at its first clash: the other listeners the
      // two sites share would say the same thing again.
      bool reported = false;
      for (const ListenerConfig& listener : config.listeners) {
        if (!Serves(site, listener.name)) continue;
        for (const std::string& alpn : alpns) {
          auto [it, inserted] = owners.emplace(
              std::make_tuple(listener.name, site.hosts[h], alpn), i);
          if (inserted || reported) continue;
          reported = true;
          std::string with_alpn =
              alpn.empty() ? "" : absl::StrCat(" with ALPN \"", alpn, "\"");
          errors->Add(reader.ErrorAt(
              *sources[i].hosts[h],
              absl::StrCat("host \"", site.hosts[h], "\"", with_alpn,
                           " is on both site \"", config.sites[it->second].id,
                           "\" and site \"", site.id,
                           "\", which share listener \"", listener.name,
                           "\"")));
        }
      }
    }
  }
}

}  // namespace internal
}  // namespace config
}  // namespace ddv
