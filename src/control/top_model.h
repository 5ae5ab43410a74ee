// ddvctl top's data: two `ddvctl status --json` answers, taken an interval
// apart, turned into per-site and per-worker rates (connections handed off,
// 503 refusals) beside the gauges (outstanding, unread bytes) and restart
// counts. Pure: no I/O, so the arithmetic is tested on its own.
#ifndef DDV_SRC_CONTROL_TOP_MODEL_H_
#define DDV_SRC_CONTROL_TOP_MODEL_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace ddv {
namespace control {

// One status answer, reduced to what top shows.
struct WorkerSample {
  int index = 0;
  int pid = 0;
  std::string state;
  bool ready = false;
  uint64_t outstanding = 0;
  uint64_t unread_bytes = 0;
  uint64_t restarts = 0;
  uint64_t handed_off = 0;
};

struct SiteSample {
  std::string id;
  bool is_default = false;
  bool failed = false;
  uint64_t handed_off = 0;
  uint64_t unavailable = 0;
  std::vector<WorkerSample> workers;
};

struct StatusSample {
  absl::Time taken;
  int pid = 0;
  int64_t uptime_seconds = 0;
  std::string config;
  bool stopping = false;
  bool accept_paused = false;
  std::map<std::string, uint64_t> counters;  // "connections_accepted", ...
  std::vector<SiteSample> sites;
};

// Parses the master's status JSON; a field a master of another version
// lacks reads as 0 (or false, or empty). InvalidArgument when the text is
// not a JSON object.
absl::StatusOr<StatusSample> ParseStatusSample(absl::string_view json,
                                               absl::Time taken);

// Per second over the interval, or nullopt when there is no rate: no
// earlier sample, another master since (its counters started at 0), or a
// counter that went down (a reload re-created the site).
using Rate = std::optional<double>;

struct WorkerRow {
  int index = 0;
  int pid = 0;
  std::string state;
  Rate connections;  // handed off to it
  uint64_t outstanding = 0;
  uint64_t unread_bytes = 0;
  uint64_t restarts = 0;
};

struct SiteRow {
  std::string id;
  bool is_default = false;
  bool failed = false;
  int workers_ready = 0;
  int workers = 0;
  Rate connections;  // handed off to its workers
  Rate unavailable;  // refused 503: no live worker in time
  uint64_t outstanding = 0;
  uint64_t unread_bytes = 0;
  uint64_t restarts = 0;
  std::vector<WorkerRow> worker_rows;
};

struct TopView {
  int pid = 0;
  int64_t uptime_seconds = 0;
  std::string config;
  bool stopping = false;
  bool accept_paused = false;
  absl::Duration interval;  // between the two samples; 0 without rates
  Rate accepted;
  Rate handed_off;
  // Every refusal the master answers itself: 421 (no site), 503 (no
  // worker), 408 (peek timeout), 431 (too large), 400 (malformed or
  // another protocol).
  Rate refused;
  std::vector<SiteRow> sites;
};

// The view of `now`, with rates against `before` when there is one.
TopView ComputeTopView(const StatusSample* before, const StatusSample& now);

}  // namespace control
}  // namespace ddv

#endif  // DDV_SRC_CONTROL_TOP_MODEL_H_
