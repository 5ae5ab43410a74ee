// ParseStatusSample and ComputeTopView (see top_model.h).
#include "src/control/top_model.h"

#include <utility>

#include "nlohmann/json.hpp"

namespace ddv {
namespace control {
namespace {

using json = nlohmann::json;

// The counters whose sum is "refused" (src/master/counters.h).
constexpr const char* kRefusals[] = {"no_site",     "site_unavailable",
                                     "peek_timeout", "too_large",
                                     "malformed",   "not_this_protocol"};

template <typename T>
T Field(const json& object, const char* name, T fallback) {
  if (!object.is_object()) return fallback;
  auto it = object.find(name);
  if (it == object.end() || it->is_null()) return fallback;
  if constexpr (std::is_same_v<T, std::string>) {
    return it->is_string() ? it->get<std::string>() : fallback;
  } else if constexpr (std::is_same_v<T, bool>) {
    return it->is_boolean() ? it->get<bool>() : fallback;
  } else {
    return it->is_number() ? it->get<T>() : fallback;
  }
}

Rate RateOf(uint64_t before, uint64_t now, absl::Duration interval) {
  if (now < before || interval <= absl::ZeroDuration()) return std::nullopt;
  return static_cast<double>(now - before) / absl::ToDoubleSeconds(interval);
}

const SiteSample* FindSite(const StatusSample& sample, const std::string& id) {
  for (const SiteSample& site : sample.sites) {
    if (site.id == id) return &site;
  }
  return nullptr;
}

const WorkerSample* FindWorker(const SiteSample* site, int index) {
  if (site == nullptr) return nullptr;
  for (const WorkerSample& worker : site->workers) {
    if (worker.index == index) return &worker;
  }
  return nullptr;
}

uint64_t RefusedTotal(const StatusSample& sample) {
  uint64_t total = 0;
  for (const char* name : kRefusals) {
    auto it = sample.counters.find(name);
    if (it != sample.counters.end()) total += it->second;
  }
  return total;
}

uint64_t CounterOf(const StatusSample& sample, const char* name) {
  auto it = sample.counters.find(name);
  return it == sample.counters.end() ? 0 : it->second;
}

}  // namespace

absl::StatusOr<StatusSample> ParseStatusSample(absl::string_view text,
                                               absl::Time taken) {
  json status = json::parse(text.begin(), text.end(), nullptr, false);
  if (!status.is_object()) {
    return absl::InvalidArgumentError(
        "the master's status is not a JSON object");
  }
  StatusSample sample;
  sample.taken = taken;
  sample.pid = Field<int>(status, "pid", 0);
  sample.uptime_seconds = Field<int64_t>(status, "uptime_seconds", 0);
  sample.config = Field<std::string>(status, "config", "");
  sample.stopping = Field<bool>(status, "stopping", false);
  sample.accept_paused = Field<bool>(status, "accept_paused", false);
  if (auto counters = status.find("counters");
      counters != status.end() && counters->is_object()) {
    for (auto it = counters->begin(); it != counters->end(); ++it) {
      if (it->is_number_unsigned() || it->is_number_integer()) {
        sample.counters[it.key()] = it->get<uint64_t>();
      }
    }
  }
  if (auto sites = status.find("sites");
      sites != status.end() && sites->is_array()) {
    for (const json& s : *sites) {
      SiteSample site;
      site.id = Field<std::string>(s, "id", "");
      site.is_default = Field<bool>(s, "default", false);
      site.failed = Field<bool>(s, "failed", false);
      site.handed_off = Field<uint64_t>(s, "handed_off", 0);
      site.unavailable = Field<uint64_t>(s, "unavailable", 0);
      if (auto workers = s.find("workers");
          workers != s.end() && workers->is_array()) {
        for (const json& w : *workers) {
          WorkerSample worker;
          worker.index = Field<int>(w, "index", 0);
          worker.pid = Field<int>(w, "pid", 0);
          worker.state = Field<std::string>(w, "state", "");
          worker.ready = Field<bool>(w, "ready", false);
          worker.outstanding = Field<uint64_t>(w, "outstanding", 0);
          worker.unread_bytes = Field<uint64_t>(w, "unread_bytes", 0);
          worker.restarts = Field<uint64_t>(w, "restarts", 0);
          worker.handed_off = Field<uint64_t>(w, "handed_off", 0);
          site.workers.push_back(std::move(worker));
        }
      }
      sample.sites.push_back(std::move(site));
    }
  }
  return sample;
}

TopView ComputeTopView(const StatusSample* before, const StatusSample& now) {
  // Another master's counters started at 0: no rates across it.
  if (before != nullptr && before->pid != now.pid) before = nullptr;
  TopView view;
  view.pid = now.pid;
  view.uptime_seconds = now.uptime_seconds;
  view.config = now.config;
  view.stopping = now.stopping;
  view.accept_paused = now.accept_paused;
  if (before != nullptr) {
    view.interval = now.taken - before->taken;
    view.accepted = RateOf(CounterOf(*before, "connections_accepted"),
                           CounterOf(now, "connections_accepted"),
                           view.interval);
    view.handed_off = RateOf(CounterOf(*before, "connections_handed_off"),
                             CounterOf(now, "connections_handed_off"),
                             view.interval);
    view.refused =
        RateOf(RefusedTotal(*before), RefusedTotal(now), view.interval);
  }
  for (const SiteSample& site : now.sites) {
    SiteRow row;
    row.id = site.id;
    row.is_default = site.is_default;
    row.failed = site.failed;
    const SiteSample* earlier =
        before != nullptr ? FindSite(*before, site.id) : nullptr;
    if (earlier != nullptr) {
      row.connections =
          RateOf(earlier->handed_off, site.handed_off, view.interval);
      row.unavailable =
          RateOf(earlier->unavailable, site.unavailable, view.interval);
    }
    for (const WorkerSample& worker : site.workers) {
      WorkerRow w;
      w.index = worker.index;
      w.pid = worker.pid;
      w.state = worker.state;
      w.outstanding = worker.outstanding;
      w.unread_bytes = worker.unread_bytes;
      w.restarts = worker.restarts;
      if (const WorkerSample* was = FindWorker(earlier, worker.index)) {
        w.connections = RateOf(was->handed_off, worker.handed_off,
                               view.interval);
      }
      ++row.workers;
      if (worker.ready && worker.pid != 0) ++row.workers_ready;
      row.outstanding += worker.outstanding;
      row.unread_bytes += worker.unread_bytes;
      row.restarts += worker.restarts;
      row.worker_rows.push_back(std::move(w));
    }
    view.sites.push_back(std::move(row));
  }
  return view;
}

}  // namespace control
}  // namespace ddv
