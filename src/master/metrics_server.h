// MetricsServer: the state of the master's metrics address (/metrics,
// /healthz; docs/metrics.md). The master serves it through its own ring
// (master_metrics.cc): what is here is the slots and their rules, so that
// a slow or hostile client can never cost the loop more than a bounded
// amount:
//   - at most kMaxClients connections at once, each with a fixed buffer of
//     kMaxScrapeRequestBytes for its request head (larger: 431);
//   - a deadline of kDeadline from accept for the whole exchange: a client
//     still sending its request then gets 408, one not reading its answer
//     is cut; either way the socket is shut down, which ends the op in
//     flight, and closed;
//   - when every slot is busy, the oldest client is cut to make room (a
//     real scrape takes a millisecond, so the oldest is the idle one);
//   - one request per connection, answered with Connection: close.
// Every connection is counted once, by how it ended (ScrapeOutcome).
#ifndef DDV_SRC_MASTER_METRICS_SERVER_H_
#define DDV_SRC_MASTER_METRICS_SERVER_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "src/base/unique_fd.h"
#include "src/master/prometheus_text.h"
#include "src/master/scrape_request.h"

namespace ddv {
namespace master {

enum class ScrapeOutcome : uint8_t {
  kServed,            // /metrics or /healthz answered whole
  kBadRequest,        // 400, 505
  kNotFound,          // 404
  kMethodNotAllowed,  // 405
  kTooLarge,          // 431
  kTimeout,           // the deadline passed (408 if still reading)
  kEvicted,           // cut to make room for a newer client
  kClosed,            // the client left before a whole request
  kError,             // the answer could not be sent (reset)
};
inline constexpr size_t kScrapeOutcomeCount = 9;

absl::string_view ScrapeOutcomeName(ScrapeOutcome outcome);

// The outcome an answer with `status` counts as.
ScrapeOutcome ScrapeOutcomeForStatus(int status);

struct ScrapeClient {
  enum class Phase : uint8_t {
    kFree,
    kReading,    // a recv of the request head is in flight
    kSending,    // a send of the answer is in flight
    kLingering,  // answered an unreadable request: reading until EOF
  };
  UniqueFd fd;
  uint32_t generation = 0;  // bumps at every accept: stale completions
  uint8_t inflight = 0;     // one op at a time while open
  Phase phase = Phase::kFree;
  bool cut = false;  // shut down; its op completes, then it closes
  bool cancel_sent = false;
  ScrapeOutcome outcome = ScrapeOutcome::kClosed;
  int64_t accepted_ns = 0;
  int64_t deadline_ns = 0;
  int64_t cut_ns = 0;
  size_t length = 0;  // request bytes read
  std::array<char, kMaxScrapeRequestBytes> request;
  std::string response;
  size_t sent = 0;
  bool linger = false;  // after the answer: shut down writing, read to EOF
};

class MetricsServer {
 public:
  static constexpr size_t kMaxClients = 16;
  static constexpr int64_t kDeadlineNs = 2000000000;  // 2 s
  // A client cut whose op has not completed this long after: cancelled.
  static constexpr int64_t kCancelAfterNs = 1000000000;

  // A slot with no fd and no op in flight; -1 when all are busy.
  int FreeSlot() const;
  // The client to cut for room: the oldest open one, unless one is already
  // cut and on its way out (its slot frees when its op completes). -1 for
  // none.
  int EvictionCandidate() const;
  size_t open_clients() const;

  void Count(ScrapeOutcome outcome) {
    ++outcomes_[static_cast<size_t>(outcome)];
  }
  uint64_t count(ScrapeOutcome outcome) const {
    return outcomes_[static_cast<size_t>(outcome)];
  }
  // ddv_metrics_connections_total{outcome}, ddv_metrics_connections_open.
  void Render(PrometheusText* out) const;

  ScrapeClient& client(size_t slot) { return clients_[slot]; }
  const ScrapeClient& client(size_t slot) const { return clients_[slot]; }

  // The listening socket and the address it is bound to (as configured;
  // `bound` with the kernel's port for port 0).
  UniqueFd listen_fd;
  std::string address;
  std::string bound;
  uint32_t listen_generation = 0;  // of its poll: a replaced socket's is stale
  // Clients wait in the listening socket's backlog (every slot was busy):
  // the loop accepts them as slots free.
  bool backlog_waiting = false;
  // The configured address could not be bound at start: retried then.
  int64_t retry_bind_ns = 0;

 private:
  std::array<ScrapeClient, kMaxClients> clients_;
  std::array<uint64_t, kScrapeOutcomeCount> outcomes_{};
};

}  // namespace master
}  // namespace ddv

#endif  // DDV_SRC_MASTER_METRICS_SERVER_H_
