// What a new config changes in a running master, decided without touching
// anything: PlanReload (SIGHUP, `ddvctl reload`) and ApplyServerConfUpdate
// (a worker's update_server_conf RPC). The master then carries the plan out
// at its control point (docs/master.md). Pure functions, so what a reload
// does is tested without a ring or a process.
#ifndef DDV_SRC_MASTER_CONFIG_APPLY_H_
#define DDV_SRC_MASTER_CONFIG_APPLY_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "src/config/config.h"

namespace ddv {
namespace master {

// What happens to one site slot. Site indexes never change while the master
// runs: connections in flight hold them. A removed site stays as an empty
// slot (no hosts, no processes); a new one is appended.
struct SiteChange {
  bool added = false;    // a new slot: add it to the pool and start it
  bool removed = false;  // gone from the file: its workers are retired
  // Its command, environment, logs, user/group or certificate paths
  // changed: the pool gets the new spec for its next starts.
  bool new_spec = false;
  bool processes_changed = false;  // grow, or retire from the top index down
  // new_spec on a site that still runs: replace its workers one at a time.
  bool rolling_restart = false;
  // Same certificate paths, maybe renewed files: SIGHUP its workers so they
  // re-read them without a restart (docs/tls.md).
  bool reread_certificates = false;
};

struct ReloadPlan {
  config::Config next;            // the config to commit, indexes kept
  std::vector<SiteChange> sites;  // one per next.sites
};

// What ddv_master's command line overrides in [master] (--control_socket,
// --handoff). Applied to the file at start and to every file a reload
// loads, so a reload never drops them.
struct MasterOverrides {
  std::string control_socket;                  // empty: the file's
  std::optional<config::HandoffMode> handoff;  // unset: the file's
};
void ApplyOverrides(const MasterOverrides& overrides, config::Config* config);

// FailedPrecondition when a listener was added, removed or changed (the
// watchdog owns the sockets: that needs a restart of ddv_master), and when
// [master] handoff or control_socket changed: workers got DDV_HANDOFF (and
// the master PR_SET_PTRACER) at start, and the control socket is bound
// once. peek_timeout_ms and max_peek_bytes apply live: the first to
// connections accepted from then on, the second to every next peek.
absl::StatusOr<ReloadPlan> PlanReload(const config::Config& running,
                                      const config::Config& loaded);

// The seed's updateServerConf for site index `site`: a JSON object with
// add_hosts: [string], default: bool, processes: int. A host another site
// serves is refused (AlreadyExists), as is the default when another site
// holds it (FailedPrecondition). Returns the config to commit.
absl::StatusOr<config::Config> ApplyServerConfUpdate(
    const config::Config& running, int site, absl::string_view body);

}  // namespace master
}  // namespace ddv

#endif  // DDV_SRC_MASTER_CONFIG_APPLY_H_
