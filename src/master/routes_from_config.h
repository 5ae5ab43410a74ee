// RoutesFromConfig: a validated config → the immutable route table the
// master looks hosts up in. It lives in src/master, not src/route or
// src/config: route must not know the config's structs (route sits below
// config), and config has no reason to know routing; the master is the one
// place that holds both.
#ifndef DDV_SRC_MASTER_ROUTES_FROM_CONFIG_H_
#define DDV_SRC_MASTER_ROUTES_FROM_CONFIG_H_

#include <memory>

#include "absl/status/statusor.h"
#include "src/config/config.h"
#include "src/route/route_table.h"

namespace ddv {
namespace master {

// Site i of the spec is config.sites[i], and listener i is
// config.listeners[i]: the master's site and listener indexes are the
// table's. Names (listener default_site, a site's listeners) become indexes.
route::RouteTableSpec RouteSpecFromConfig(const config::Config& config);

absl::StatusOr<std::shared_ptr<const route::RouteTable>> RoutesFromConfig(
    const config::Config& config);

}  // namespace master
}  // namespace ddv

#endif  // DDV_SRC_MASTER_ROUTES_FROM_CONFIG_H_
