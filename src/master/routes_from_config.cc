// Config → RouteTableSpec → RouteTable.
#include "src/master/routes_from_config.h"

#include <string>

namespace ddv {
namespace master {

route::RouteTableSpec RouteSpecFromConfig(const config::Config& config) {
  route::RouteTableSpec spec;
  for (const config::ListenerConfig& listener : config.listeners) {
    spec.listener_names.push_back(listener.name);
  }
  for (const config::ListenerConfig& listener : config.listeners) {
    int site = -1;
    for (size_t s = 0; s < config.sites.size(); ++s) {
      if (config.sites[s].id == listener.default_site) site = s;
    }
    spec.listener_default_site.push_back(site);
  }
  for (const config::SiteConfig& site : config.sites) {
    route::SiteSpec s;
    s.id = site.id;
    s.hosts = site.hosts;
    for (const std::string& name : site.listeners) {
      for (size_t l = 0; l < config.listeners.size(); ++l) {
        if (config.listeners[l].name == name) s.listeners.push_back(l);
      }
    }
    s.is_default = site.is_default;
    s.alpn = site.alpn;
    spec.sites.push_back(std::move(s));
  }
  return spec;
}

absl::StatusOr<std::shared_ptr<const route::RouteTable>> RoutesFromConfig(
    const config::Config& config) {
  return route::RouteTable::Build(RouteSpecFromConfig(config));
}

}  // namespace master
}  // namespace ddv
