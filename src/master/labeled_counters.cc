// RenderLabeledCounters: slots summed by name, every outcome shown (zeros
// too, so rate() sees a series from its first scrape).
#include "src/master/labeled_counters.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace ddv {
namespace master {
namespace {

constexpr absl::string_view kOutcomeNames[kOutcomeCount] = {
    "routed",    "no_site",           "timeout",     "too_large",
    "malformed", "not_this_protocol", "unavailable", "closed",
    "site_limit", "untrusted_proxy"};

// Names in order of first appearance, each with the slots that carry it.
std::vector<std::pair<std::string, std::vector<size_t>>> GroupByName(
    const std::vector<std::string>& names) {
  std::vector<std::pair<std::string, std::vector<size_t>>> groups;
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i].empty()) continue;
    auto it = groups.begin();
    while (it != groups.end() && it->first != names[i]) ++it;
    if (it == groups.end()) {
      groups.push_back({names[i], {i}});
    } else {
      it->second.push_back(i);
    }
  }
  return groups;
}

}  // namespace

absl::string_view OutcomeName(Outcome outcome) {
  return kOutcomeNames[static_cast<size_t>(outcome)];
}

void RenderLabeledCounters(const LabeledCounters& counters,
                           const std::vector<std::string>& listener_names,
                           const std::vector<std::string>& site_names,
                           absl::Span<const int64_t> held,
                           PrometheusText* out) {
  // Per listener name: everything summed over its slots.
  struct ListenerSums {
    std::string name;
    ListenerStats stats;
    int64_t held = 0;
  };
  std::vector<ListenerSums> listeners;
  for (auto& [name, slots] : GroupByName(listener_names)) {
    ListenerSums sums;
    sums.name = name;
    for (size_t slot : slots) {
      if (slot < held.size()) sums.held += held[slot];
      if (slot >= counters.listeners().size()) continue;
      const ListenerStats& s = counters.listeners()[slot];
      sums.stats.accepted += s.accepted;
      for (size_t o = 0; o < kOutcomeCount; ++o) {
        sums.stats.outcomes[o] += s.outcomes[o];
      }
      sums.stats.pending += s.pending;
      sums.stats.handoff_latency.Merge(s.handoff_latency);
      sums.stats.peek_bytes.Merge(s.peek_bytes);
    }
    listeners.push_back(std::move(sums));
  }

  out->Family("ddv_listener_accepted_total", "counter",
              "connections accepted, per listener");
  for (const ListenerSums& l : listeners) {
    out->Sample("ddv_listener_accepted_total", {{"listener", l.name}},
                l.stats.accepted);
  }
  out->Family("ddv_connections_total", "counter",
              "connections the master is done with, per listener and "
              "outcome: routed (handed to a worker) or why not");
  for (const ListenerSums& l : listeners) {
    for (size_t o = 0; o < kOutcomeCount; ++o) {
      out->Sample("ddv_connections_total",
                  {{"listener", l.name}, {"outcome", kOutcomeNames[o]}},
                  l.stats.outcomes[o]);
    }
  }
  out->Family("ddv_connections_pending", "gauge",
              "connections accepted and not yet handed off or refused, per "
              "listener (waiting for a slot included)");
  for (const ListenerSums& l : listeners) {
    out->Sample("ddv_connections_pending", {{"listener", l.name}},
                l.stats.pending + l.held);
  }
  out->Family("ddv_handoff_latency_seconds", "histogram",
              "time from accept to handoff of routed connections, per "
              "listener");
  for (const ListenerSums& l : listeners) {
    out->HistogramSamples("ddv_handoff_latency_seconds", {{"listener", l.name}},
                          l.stats.handoff_latency, 1e-9);
  }
  out->Family("ddv_peek_bytes", "histogram",
              "bytes peeked when the master decided (HTTP head, ClientHello), "
              "per listener");
  for (const ListenerSums& l : listeners) {
    out->HistogramSamples("ddv_peek_bytes", {{"listener", l.name}},
                          l.stats.peek_bytes, 1);
  }

  // Per site id.
  std::vector<std::pair<std::string, SiteStats>> sites;
  for (auto& [name, indexes] : GroupByName(site_names)) {
    SiteStats sums;
    for (size_t i : indexes) {
      if (i >= counters.sites().size()) continue;
      const SiteStats& s = counters.sites()[i];
      sums.routed += s.routed;
      sums.unavailable += s.unavailable;
      sums.site_limit += s.site_limit;
      sums.handoff_retries += s.handoff_retries;
    }
    sites.push_back({name, sums});
  }
  out->Family("ddv_site_connections_total", "counter",
              "connections routed to a site, per outcome: routed (handed to "
              "a worker), unavailable (no live worker in time, 503) or "
              "site_limit (the site at max_pending or max_connections, 503)");
  for (const auto& [name, s] : sites) {
    out->Sample("ddv_site_connections_total",
                {{"site", name}, {"outcome", "routed"}}, s.routed);
    out->Sample("ddv_site_connections_total",
                {{"site", name}, {"outcome", "unavailable"}}, s.unavailable);
    out->Sample("ddv_site_connections_total",
                {{"site", name}, {"outcome", "site_limit"}}, s.site_limit);
  }
  out->Family("ddv_site_handoff_retries_total", "counter",
              "handoffs that went to another worker of the site (a full "
              "channel, a worker that died or left before reading them)");
  for (const auto& [name, s] : sites) {
    out->Sample("ddv_site_handoff_retries_total", {{"site", name}},
                s.handoff_retries);
  }
}

}  // namespace master
}  // namespace ddv
