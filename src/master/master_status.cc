// Master, what it shows: `ddvctl status --json` and `ddvctl metrics`.
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "src/master/master.h"

namespace ddv {
namespace master {

using json = nlohmann::json;

void Master::CountHandedOff(int w) {
  Worker& worker = workers_->at(w);
  ++counters_.connections_handed_off;
  ++worker.handed_off;
  if (site_counters_.size() <= static_cast<size_t>(worker.site)) {
    site_counters_.resize(worker.site + 1);
  }
  ++site_counters_[worker.site].handed_off;
}

void Master::CountUnavailable(int site) {
  ++counters_.site_unavailable;
  if (site < 0) return;
  if (site_counters_.size() <= static_cast<size_t>(site)) {
    site_counters_.resize(site + 1);
  }
  ++site_counters_[site].unavailable;
}

Counters Master::CountersNow() const {
  Counters counters = counters_;
  counters.worker_shutdowns = workers_->shutdowns_sent();
  counters.accept_paused = accept_gate_.pauses();
  return counters;
}

std::string Master::MetricsText() const {
  std::string out = RenderCounters(CountersNow());
  absl::StrAppend(&out,
                  "# HELP ddv_connections_undecided connections the master "
                  "holds now\n# TYPE ddv_connections_undecided gauge\n"
                  "ddv_connections_undecided ",
                  connections_.in_use(), "\n");
  // Seconds as a float counter: Prometheus' convention for durations.
  absl::StrAppend(
      &out,
      "# HELP ddv_accept_paused_seconds_total time accepts spent paused at "
      "--max_connections or the fd limit\n"
      "# TYPE ddv_accept_paused_seconds_total counter\n"
      "ddv_accept_paused_seconds_total ",
      absl::StrFormat("%.3f", accept_gate_.paused_ns(MonotonicNowNs()) / 1e9),
      "\n# HELP ddv_accept_paused 1 while accepts are paused (clients wait in "
      "the listen backlog)\n# TYPE ddv_accept_paused gauge\n"
      "ddv_accept_paused ",
      accept_gate_.paused() ? 1 : 0,
      "\n# HELP ddv_connections_held connections accepted as the table "
      "filled, waiting for a slot\n# TYPE ddv_connections_held gauge\n"
      "ddv_connections_held ",
      held_.size(), "\n");
  absl::StrAppend(&out, "# TYPE ddv_worker_outstanding gauge\n");
  for (int w = 0; w < workers_->size(); ++w) {
    const Worker& worker = workers_->at(w);
    absl::StrAppend(&out, "ddv_worker_outstanding{site=\"",
                    workers_->site_id(worker.site), "\",worker=\"",
                    worker.index, "\"} ", worker.outstanding, "\n");
  }
  return out;
}

std::string Master::StatusJson() const {
  json status;
  status["pid"] = getpid();
  status["uptime_seconds"] = (MonotonicNowNs() - started_ns_) / 1000000000;
  status["config"] = config_.path;
  status["stopping"] = stopping_;
  status["accept_paused"] = accept_gate_.paused();
  // In config order; `index` is the listener_index workers are told, which
  // a listener keeps until a reload changes it.
  json listeners = json::array();
  for (size_t i = 0; i < config_.listeners.size(); ++i) {
    const config::ListenerConfig& l = config_.listeners[i];
    json entry = {{"name", l.name},
                  {"address", l.address},
                  {"protocol", config::ProtocolName(l.protocol)},
                  {"default_site", l.default_site}};
    if (l.addr.ss_family == AF_INET6) entry["v6only"] = l.v6only;
    if (l.proxy_protocol) {
      json from = json::array();
      for (const IpNetwork& network : l.proxy_protocol_from) {
        from.push_back(network.ToString());
      }
      entry["proxy_protocol_from"] = std::move(from);  // []: any address
    }
    for (size_t slot = 0; slot < listeners_.size(); ++slot) {
      if (listeners_[slot].config_index == static_cast<int>(i)) {
        entry["index"] = slot;
      }
    }
    listeners.push_back(std::move(entry));
  }
  status["listeners"] = listeners;
  json sites = json::array();
  for (size_t s = 0; s < config_.sites.size(); ++s) {
    const config::SiteConfig& site = config_.sites[s];
    if (site.processes == 0) continue;  // removed by a reload
    json workers = json::array();
    for (int w = 0; w < workers_->size(); ++w) {
      const Worker& worker = workers_->at(w);
      if (worker.site != static_cast<int>(s)) continue;
      if (worker.retired && workers_->pid(w) == 0) continue;
      int slot = worker.process_slot;
      workers.push_back({{"index", worker.index},
                         {"pid", workers_->pid(w)},
                         {"state", workers_->StateName(w)},
                         {"ready", worker.ready},
                         {"retired", worker.retired},
                         {"restarts", workers_->processes().restarts(slot)},
                         {"outstanding", worker.outstanding},
                         {"handed_off", worker.handed_off},
                         {"unread_bytes", workers_->UnreadBytes(w)},
                         // Handed off and not yet closed, as it reports
                         // (null: it does not report; docs/isolation.md).
                         {"open_connections",
                          site_caps_.worker_reports(w)
                              ? json(site_caps_.worker_open(w))
                              : json(nullptr)}});
    }
    // hosts and default are the config's; what workers claimed at run
    // time is listed apart, with who claimed it.
    json claimed_hosts = json::array();
    json claimed_default = json::array();
    for (const Claim& claim : claims_) {
      if (claim.site != static_cast<int>(s)) continue;
      if (claim.is_default()) {
        claimed_default.push_back(claim.worker_index);
      } else {
        claimed_hosts.push_back(
            {{"host", claim.host}, {"worker", claim.worker_index}});
      }
    }
    const SiteCounters counted = s < site_counters_.size()
                                     ? site_counters_[s]
                                     : SiteCounters();
    sites.push_back({{"id", site.id},
                     {"handed_off", counted.handed_off},
                     {"unavailable", counted.unavailable},
                     {"hosts", site.hosts},
                     {"claimed_hosts", claimed_hosts},
                     {"default", site.is_default},
                     {"claimed_default", claimed_default},
                     {"runtime", config::RuntimeName(site.runtime)},
                     {"failed", workers_->SiteFailed(s)},
                     {"workers", workers}});
    // limits, cwd, cgroup, usage, connections (docs/isolation.md).
    sites.back().update(SiteIsolationJson(static_cast<int>(s)));
  }
  status["sites"] = sites;
  json counters;
  const Counters now = CountersNow();
#define DDV_JSON_COUNTER(name, help) counters[#name] = now.name;
  DDV_MASTER_COUNTERS(DDV_JSON_COUNTER)
#undef DDV_JSON_COUNTER
  status["counters"] = counters;
  return status.dump();
}

}  // namespace master
}  // namespace ddv
