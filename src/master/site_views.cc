// Site views from route tables, and the book of what was sent to whom.
#include "src/master/site_views.h"

#include <utility>

namespace ddv {
namespace master {

std::vector<handoff::SiteView> BuildSiteViews(
    const config::Config& config, absl::Span<const ListenerRoutes> listeners) {
  const int site_count = static_cast<int>(config.sites.size());
  std::vector<handoff::SiteView> views(site_count);
  for (int s = 0; s < site_count; ++s) {
    views[s].strict = config.sites[s].strict_host;
    // Counted against max_connections: reported often enough that a cap is
    // at most 10 ms behind the closes (docs/isolation.md). Otherwise the
    // reports only feed status, and once a second spares the master a
    // wake-up per connection at low rates.
    views[s].connections_report_ms =
        config.sites[s].max_connections > 0
            ? handoff::kDefaultConnectionsReportMs
            : kUncappedConnectionsReportMs;
  }
  for (const ListenerRoutes& listener : listeners) {
    if (listener.routes == nullptr) continue;
    std::vector<route::ListenerHosts> hosts;
    if (listener.protocol == config::Protocol::kTcp) {
      // Nothing is peeked: every connection goes where a nameless one does.
      hosts.resize(site_count);
      const int site = listener.routes->Lookup(listener.route_index, "").site;
      if (site >= 0 && site < site_count) hosts[site].is_default = true;
    } else {
      hosts = listener.routes->HostsOn(listener.route_index);
    }
    for (int s = 0; s < site_count; ++s) {
      handoff::SiteViewListener entry;
      entry.index = listener.index;
      entry.address = listener.address;
      entry.retired = listener.retired;
      entry.v6only = listener.v6only;
      // A site newer than a retired listener's table has nothing there.
      if (s < static_cast<int>(hosts.size())) entry.hosts = std::move(hosts[s]);
      views[s].listeners.push_back(std::move(entry));
    }
  }
  return views;
}

bool SiteViewBook::Update(std::vector<handoff::SiteView> views) {
  bool changed = false;
  if (sites_.size() < views.size()) sites_.resize(views.size());
  for (size_t s = 0; s < views.size(); ++s) {
    Site& site = sites_[s];
    views[s].master = master_;
    views[s].version = site.view.version;
    if (!site.parts.empty() && views[s] == site.view) continue;
    views[s].version = next_version_++;
    site.view = std::move(views[s]);
    site.parts.clear();
    for (const nlohmann::json& part : handoff::EncodeSiteView(site.view)) {
      site.parts.push_back(part.dump());
    }
    changed = true;
  }
  return changed;
}

bool SiteViewBook::NeedsSend(int worker, uint32_t generation, int site) const {
  if (site < 0 || site >= sites()) return false;
  if (worker >= static_cast<int>(sent_.size())) return true;
  const Sent& sent = sent_[worker];
  return !sent.any || sent.generation != generation ||
         sent.version != sites_[site].view.version;
}

void SiteViewBook::MarkSent(int worker, uint32_t generation, int site) {
  if (worker >= static_cast<int>(sent_.size())) sent_.resize(worker + 1);
  sent_[worker] = {true, generation, sites_[site].view.version};
}

}  // namespace master
}  // namespace ddv
