// Site views: what the master tells each site's workers about the names it
// routes to them on each listener, so they can refuse another site's Host
// with 421 (docs/isolation.md). BuildSiteViews derives them from the route
// tables themselves (the same tables connections are routed by, claims
// included); SiteViewBook remembers what changed and which worker process
// has which version. Pure: master_site_view.cc sends them.
#ifndef DDV_SRC_MASTER_SITE_VIEWS_H_
#define DDV_SRC_MASTER_SITE_VIEWS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "src/config/config.h"
#include "src/handoff/site_view.h"
#include "src/route/route_table.h"

namespace ddv {
namespace master {

// One listener slot of the master, as the views need it.
struct ListenerRoutes {
  uint32_t index = 0;    // the master's listener index
  std::string address;   // as bound: "127.0.0.1:8080"
  bool retired = false;  // removed or replaced by a reload
  config::Protocol protocol = config::Protocol::kHttp;
  // The table its connections are routed by and its index there; null
  // once a retired listener's routes are released (then it is left out).
  const route::RouteTable* routes = nullptr;
  int route_index = -1;
  bool v6only = false;  // an IPv6 listener's IPV6_V6ONLY
};

// How often workers of a site without max_connections report their
// connections.
inline constexpr uint32_t kUncappedConnectionsReportMs = 1000;

// Per site of `config` (same order): strict_host, the connections report
// interval (handoff::kDefaultConnectionsReportMs with max_connections,
// kUncappedConnectionsReportMs without), and per listener slot
// with routes the site's ListenerHosts there. A `tcp` listener routes no
// names: the site its connections go to is its default, the others get
// nothing. Versions are left 0 (SiteViewBook numbers them).
std::vector<handoff::SiteView> BuildSiteViews(
    const config::Config& config, absl::Span<const ListenerRoutes> listeners);

// The views last built, their versions and encoded parts, and which worker
// process has been sent which version.
class SiteViewBook {
 public:
  // Who sends the views (SiteView::master): one id per master process.
  void set_master(std::string id) { master_ = std::move(id); }
  const std::string& master() const { return master_; }

  // Takes new views (one per site); a site whose view differs from its last
  // one gets the next version. Returns true when any changed.
  bool Update(std::vector<handoff::SiteView> views);

  int sites() const { return static_cast<int>(sites_.size()); }
  const handoff::SiteView& view(int site) const { return sites_[site].view; }
  // The view's parts as JSON text (the body of each site_view request).
  const std::vector<std::string>& parts(int site) const {
    return sites_[site].parts;
  }

  // Whether worker slot `worker` (its process `generation`, serving `site`)
  // still lacks its site's current view.
  bool NeedsSend(int worker, uint32_t generation, int site) const;
  void MarkSent(int worker, uint32_t generation, int site);

 private:
  struct Site {
    handoff::SiteView view;
    std::vector<std::string> parts;
  };
  struct Sent {
    bool any = false;
    uint32_t generation = 0;
    uint64_t version = 0;
  };
  std::vector<Site> sites_;
  std::vector<Sent> sent_;  // by worker slot
  std::string master_;
  uint64_t next_version_ = 1;
};

}  // namespace master
}  // namespace ddv

#endif  // DDV_SRC_MASTER_SITE_VIEWS_H_
