// Master, what it shows: `ddvctl status --json`, and `ddvctl metrics`, which
// is also what /metrics answers (docs/metrics.md).
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "src/base/listen_socket.h"
#include "src/master/master.h"
#include "src/master/process_metrics.h"
#include "src/master/prometheus_text.h"
#include "src/supervise/process_table.h"

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

  // The labelled families: names by listener slot and site index.
  PrometheusText text;
  text.Raw(out);
  std::vector<std::string> listener_names;
  for (const ListenerSlot& slot : listeners_) {
    listener_names.push_back(slot.config.name);
  }
  std::vector<int64_t> held(listeners_.size(), 0);
  for (const HeldConnection& h : held_) ++held[h.listener];
  std::vector<std::string> site_names;
  for (const config::SiteConfig& site : config_.sites) {
    site_names.push_back(site.id);
  }
  RenderLabeledCounters(stats_, listener_names, site_names, held, &text);

  // Workers per running site.
  struct SiteWorkers {
    int64_t alive = 0, ready = 0, restarting = 0;
  };
  std::vector<SiteWorkers> per_site(config_.sites.size());
  for (int w = 0; w < workers_->size(); ++w) {
    const Worker& worker = workers_->at(w);
    if (worker.retired || worker.site < 0 ||
        static_cast<size_t>(worker.site) >= per_site.size()) {
      continue;
    }
    SiteWorkers& site = per_site[worker.site];
    if (workers_->Alive(w)) {
      ++site.alive;
      if (worker.ready) ++site.ready;
    } else if (workers_->processes().state(worker.process_slot) ==
               supervise::ProcessState::kBackoff) {
      ++site.restarting;
    }
  }
  text.Family("ddv_site_workers_alive", "gauge",
              "worker processes running, per site");
  for (size_t s = 0; s < config_.sites.size(); ++s) {
    if (config_.sites[s].processes == 0) continue;  // removed by a reload
    text.Sample("ddv_site_workers_alive", {{"site", config_.sites[s].id}},
                per_site[s].alive);
  }
  text.Family("ddv_site_workers_ready", "gauge",
              "worker processes running that said hello (take connections), "
              "per site");
  for (size_t s = 0; s < config_.sites.size(); ++s) {
    if (config_.sites[s].processes == 0) continue;
    text.Sample("ddv_site_workers_ready", {{"site", config_.sites[s].id}},
                per_site[s].ready);
  }
  text.Family("ddv_site_workers_restarting", "gauge",
              "workers waiting out their back-off before a restart, per site");
  for (size_t s = 0; s < config_.sites.size(); ++s) {
    if (config_.sites[s].processes == 0) continue;
    text.Sample("ddv_site_workers_restarting", {{"site", config_.sites[s].id}},
                per_site[s].restarting);
  }
  text.Family("ddv_site_failed", "gauge",
              "1 while a site is failed (a crash loop; `ddvctl restart SITE` "
              "brings it back)");
  for (size_t s = 0; s < config_.sites.size(); ++s) {
    if (config_.sites[s].processes == 0) continue;
    text.Sample("ddv_site_failed", {{"site", config_.sites[s].id}},
                int64_t{workers_->SiteFailed(s) ? 1 : 0});
  }

  std::string why;
  text.Family("ddv_healthy", "gauge",
              "1 when /healthz answers 200: listeners up, a ready worker per "
              "site, not stopping");
  text.Sample("ddv_healthy", {}, int64_t{Healthy(&why) ? 1 : 0});
  text.Family("ddv_master_restarts", "gauge",
              "masters the watchdog restarted before this one (since it "
              "started or last upgraded itself; 0 without a watchdog)");
  text.Sample("ddv_master_restarts", {}, master_restarts_);
  text.Family("ddv_master_hang_kills", "gauge",
              "of those, masters the watchdog killed because they hung (no "
              "heartbeat for --master_hang_timeout, or not serving within "
              "--master_start_timeout)");
  text.Sample("ddv_master_hang_kills", {}, master_hang_kills_);

  text.Family("ddv_access_log_lines_total", "counter",
              "lines written to the access logs (or on their way)");
  text.Sample("ddv_access_log_lines_total", {}, access_logs_.lines());
  text.Family("ddv_access_log_dropped_lines_total", "counter",
              "access log lines dropped: their file was 4 MiB behind");
  text.Sample("ddv_access_log_dropped_lines_total", {},
              access_logs_.dropped());
  text.Family("ddv_access_log_write_errors_total", "counter",
              "access log writes that failed (their lines are lost)");
  text.Sample("ddv_access_log_write_errors_total", {},
              access_logs_.write_errors());
  text.Family("ddv_access_log_reopen_errors_total", "counter",
              "access logs that could not be reopened (they keep the old "
              "file)");
  text.Sample("ddv_access_log_reopen_errors_total", {},
              access_logs_.reopen_errors());

  metrics_.Render(&text);
  RenderProcessMetrics(&text);
  text.Raw(ShardsMetricsText());
  return text.Take();
}

bool Master::Healthy(std::string* why) const {
  std::vector<std::string> reasons;
  if (stopping_) reasons.push_back("stopping");
  for (const ListenerSlot& slot : listeners_) {
    if (slot.config_index >= 0 && !slot.fd) {
      reasons.push_back(
          absl::StrCat("listener \"", slot.config.name, "\" has no socket"));
    }
  }
  for (size_t s = 0; s < config_.sites.size(); ++s) {
    if (config_.sites[s].processes == 0) continue;  // removed by a reload
    bool ready = false;
    for (int w = 0; w < workers_->size() && !ready; ++w) {
      const Worker& worker = workers_->at(w);
      ready = worker.site == static_cast<int>(s) && !worker.retired &&
              worker.ready && workers_->Alive(w);
    }
    if (!ready) {
      reasons.push_back(absl::StrCat(
          "site \"", config_.sites[s].id, "\" has no ready worker",
          workers_->SiteFailed(s) ? " (failed: crash loop)" : ""));
    }
  }
  *why = absl::StrJoin(reasons, "; ");
  return reasons.empty();
}

std::string Master::StatusJson() const {
  json status;
  status["pid"] = getpid();
  status["uptime_seconds"] = (MonotonicNowNs() - started_ns_) / 1000000000;
  status["config"] = config_.path;
  status["stopping"] = stopping_;
  status["accept_paused"] = accept_gate_.paused();
  std::string why;
  status["healthy"] = Healthy(&why);
  if (!why.empty()) status["unhealthy_because"] = why;
  // Where /metrics is served (the kernel's port for port 0); absent when
  // not configured, null while it cannot be bound.
  if (!metrics_.address.empty()) {
    status["metrics_address"] =
        metrics_.listen_fd ? json(metrics_.bound) : json(nullptr);
  }
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
    if (!l.access_log.empty()) entry["access_log"] = l.access_log;
    for (size_t slot = 0; slot < listeners_.size(); ++slot) {
      if (listeners_[slot].config_index == static_cast<int>(i)) {
        entry["index"] = slot;
        // Its SO_REUSEPORT group: one per loop, or 1 (docs/shards.md);
        // not a lost shard's, which stopped listening.
        const std::vector<int> group = GroupSockets(listeners_[slot]);
        entry["sockets"] =
            std::count_if(group.begin(), group.end(), IsListening);
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
  status["shards"] = ShardsJson();
  return status.dump();
}

}  // namespace master
}  // namespace ddv
