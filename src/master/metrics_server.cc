// MetricsServer: slot choice, eviction and the server's own metrics.
#include "src/master/metrics_server.h"

namespace ddv {
namespace master {
namespace {

constexpr absl::string_view kOutcomeNames[kScrapeOutcomeCount] = {
    "served",  "bad_request", "not_found", "method_not_allowed",
    "too_large", "timeout",   "evicted",   "closed",
    "error"};

}  // namespace

absl::string_view ScrapeOutcomeName(ScrapeOutcome outcome) {
  return kOutcomeNames[static_cast<size_t>(outcome)];
}

ScrapeOutcome ScrapeOutcomeForStatus(int status) {
  switch (status) {
    case 404:
      return ScrapeOutcome::kNotFound;
    case 405:
      return ScrapeOutcome::kMethodNotAllowed;
    case 408:
      return ScrapeOutcome::kTimeout;
    case 431:
      return ScrapeOutcome::kTooLarge;
    case 400:
    case 505:
      return ScrapeOutcome::kBadRequest;
    default:
      return ScrapeOutcome::kServed;
  }
}

int MetricsServer::FreeSlot() const {
  for (size_t i = 0; i < clients_.size(); ++i) {
    if (!clients_[i].fd && clients_[i].inflight == 0) return static_cast<int>(i);
  }
  return -1;
}

int MetricsServer::EvictionCandidate() const {
  int oldest = -1;
  for (size_t i = 0; i < clients_.size(); ++i) {
    const ScrapeClient& c = clients_[i];
    if (!c.fd) continue;
    if (c.cut) return -1;  // room is on its way
    if (oldest < 0 || c.accepted_ns < clients_[oldest].accepted_ns) {
      oldest = static_cast<int>(i);
    }
  }
  return oldest;
}

size_t MetricsServer::open_clients() const {
  size_t open = 0;
  for (const ScrapeClient& c : clients_) {
    if (c.fd) ++open;
  }
  return open;
}

void MetricsServer::Render(PrometheusText* out) const {
  out->Family("ddv_metrics_connections_total", "counter",
              "connections to the metrics address, by how they ended");
  for (size_t o = 0; o < kScrapeOutcomeCount; ++o) {
    out->Sample("ddv_metrics_connections_total", {{"outcome", kOutcomeNames[o]}},
                outcomes_[o]);
  }
  out->Family("ddv_metrics_connections_open", "gauge",
              "connections to the metrics address open now (at most 16)");
  out->Sample("ddv_metrics_connections_open", {},
              static_cast<uint64_t>(open_clients()));
}

}  // namespace master
}  // namespace ddv
