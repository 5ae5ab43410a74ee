// LabeledCounters: the master's per-listener and per-site counters and
// histograms, behind the labelled families of /metrics (docs/metrics.md).
// The hot path indexes plain arrays by the ids connections already carry
// (the listener slot, the site index: both stable for the master's life),
// so counting costs an increment; names are attached only when rendered.
// Several slots may share a name (a listener whose address a reload
// changed gets a new slot, a site removed and added again a new index):
// they are summed under it, so a series never goes backwards.
#ifndef DDV_SRC_MASTER_LABELED_COUNTERS_H_
#define DDV_SRC_MASTER_LABELED_COUNTERS_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "src/master/histogram.h"
#include "src/master/prometheus_text.h"

namespace ddv {
namespace master {

// How the master was done with a connection: exactly one per connection it
// accepted (a connection a dead worker never read comes back, is handed
// off again and counted again; ddv_site_handoff_retries_total counts that).
enum class Outcome : uint8_t {
  kRouted,           // handed to a worker
  kNoSite,           // no site for its name: HTTP 421, TLS alert
  kTimeout,          // no decision by the peek deadline: 408, TLS closed
  kTooLarge,         // prefix over max_peek_bytes: 431
  kMalformed,        // broke its protocol's grammar (or a bad PROXY): 400
  kNotThisProtocol,  // another protocol than the listener's: 400
  kUnavailable,      // its site had no live worker in time: 503
  kClosed,           // the peer closed or reset before a decision
  kSiteLimit,        // its site was at max_pending or max_connections: 503
  kUntrustedProxy,   // a PROXY listener's peer not in proxy_protocol_from:
                     // reset unread
};
inline constexpr size_t kOutcomeCount = 10;

// "routed", "no_site", ... as in the `outcome` label and the access log.
absl::string_view OutcomeName(Outcome outcome);

struct ListenerStats {
  uint64_t accepted = 0;
  std::array<uint64_t, kOutcomeCount> outcomes{};
  // Connections accepted on the listener that the master holds now (in its
  // table; those waiting for a slot are counted apart).
  int64_t pending = 0;
  Histogram handoff_latency{LatencyBounds()};  // nanoseconds
  Histogram peek_bytes{PeekBytesBounds()};     // bytes that decided
};

struct SiteStats {
  uint64_t routed = 0;
  uint64_t unavailable = 0;
  uint64_t site_limit = 0;
  uint64_t handoff_retries = 0;  // handoffs sent again, to another worker
};

class LabeledCounters {
 public:
  // Grown on first use: reloads add listener slots and sites.
  ListenerStats& listener(uint32_t slot) {
    if (slot >= listeners_.size()) listeners_.resize(slot + 1);
    return listeners_[slot];
  }
  SiteStats& site(int index) {
    if (static_cast<size_t>(index) >= sites_.size()) sites_.resize(index + 1);
    return sites_[index];
  }

  void CountOutcome(uint32_t listener_slot, int site, Outcome outcome) {
    ++listener(listener_slot).outcomes[static_cast<size_t>(outcome)];
    if (site < 0) return;
    if (outcome == Outcome::kRouted) ++this->site(site).routed;
    if (outcome == Outcome::kUnavailable) ++this->site(site).unavailable;
    if (outcome == Outcome::kSiteLimit) ++this->site(site).site_limit;
  }

  const std::vector<ListenerStats>& listeners() const { return listeners_; }
  const std::vector<SiteStats>& sites() const { return sites_; }

 private:
  std::vector<ListenerStats> listeners_;
  std::vector<SiteStats> sites_;
};

// The labelled families, names given per listener slot and per site index
// (`held` per listener slot: connections accepted as the table filled,
// waiting for a slot; counted in ddv_connections_pending too).
void RenderLabeledCounters(const LabeledCounters& counters,
                           const std::vector<std::string>& listener_names,
                           const std::vector<std::string>& site_names,
                           absl::Span<const int64_t> held,
                           PrometheusText* out);

}  // namespace master
}  // namespace ddv

#endif  // DDV_SRC_MASTER_LABELED_COUNTERS_H_
