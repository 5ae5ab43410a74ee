// What a new config changes in a running master, decided without touching
// anything: PlanReload (SIGHUP, `ddvctl reload`), ApplyServerConfUpdate (a
// worker's update_server_conf RPC, checked against the site's
// claimable_hosts) and RecheckClaims (those claims after a reload). The
// master then carries the plan out at its control point (docs/master.md).
// Pure functions, so what a reload does is tested without a ring or a
// process.
#ifndef DDV_SRC_MASTER_CONFIG_APPLY_H_
#define DDV_SRC_MASTER_CONFIG_APPLY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
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
  // Its command, environment, logs, user/group, certificate paths, limits
  // or cwd changed: the pool gets the new spec for its next starts.
  bool new_spec = false;
  bool processes_changed = false;  // grow, or retire from the top index down
  // new_spec on a site that still runs: replace its workers one at a time.
  bool rolling_restart = false;
  // Same certificate paths, maybe renewed files: SIGHUP its workers so they
  // re-read them without a restart (docs/tls.md).
  bool reread_certificates = false;
};

// What happens to one listener of the loaded config. The master's listener
// indexes (connections, accept ops, handoff entries) are its own and stable;
// this plan speaks of config indexes only.
struct ListenerChange {
  // The running listener it simply goes on as (same name, address, v6only,
  // protocol and proxy_protocol; default_site and proxy_protocol_from may
  // differ, which apply to the next connections):
  // its index, socket and connections carry on. -1: it gets a new index.
  int keeps = -1;
  // The running listener whose socket it takes over: the one bound to the
  // same address and v6only (for port 0, the one of the same name).
  // Connections waiting in that backlog are this listener's now. -1: a new
  // socket (a changed v6only too: the old one is drained and closed).
  int socket_from = -1;
  // Its socket is a running one whose TCP_DEFER_ACCEPT must change: it
  // moves between not peeked (`tcp` without PROXY) and peeked.
  bool defer_accept_changes = false;
};

struct ListenerPlan {
  std::vector<ListenerChange> next;  // one per loaded listener
  // Running listeners no loaded one keeps: they stop accepting; connections
  // accepted on them are served as they were (protocol, routes).
  std::vector<int> retired;
  // Of those, the ones whose socket no loaded listener takes: what waits in
  // the backlog is accepted and served, then the socket is closed.
  std::vector<int> closed;
  // The sockets by name differ from the running ones (a listener added,
  // removed, renamed, re-addressed or reordered): whoever owns them must
  // be told (the watchdog's set). False for routing-only changes.
  bool sockets_change = false;
  int binds() const;  // listeners that need a new socket
};

// Which running listener each loaded one goes on as or takes the socket of.
// Pure: nothing is bound; addresses are compared as parsed.
ListenerPlan PlanListeners(const std::vector<config::ListenerConfig>& running,
                           const std::vector<config::ListenerConfig>& loaded);

struct ReloadPlan {
  config::Config next;            // the config to commit, indexes kept
  std::vector<SiteChange> sites;  // one per next.sites
  ListenerPlan listeners;
};

// What ddv_master's command line overrides in [master] (--control_socket,
// --handoff). Applied to the file at start and to every file a reload
// loads, so a reload never drops them.
struct MasterOverrides {
  std::string control_socket;                  // empty: the file's
  std::optional<config::HandoffMode> handoff;  // unset: the file's
};
void ApplyOverrides(const MasterOverrides& overrides, config::Config* config);

// Listeners added, removed and changed are planned (PlanListeners); the
// master binds what is new, through the watchdog when there is one, before
// it changes anything. FailedPrecondition when [master] handoff or
// control_socket changed: workers got DDV_HANDOFF (and the master
// PR_SET_PTRACER) at start, and the control socket is bound once.
// peek_timeout_ms and max_peek_bytes apply live: the first to connections
// accepted from then on, the second to every next peek.
absl::StatusOr<ReloadPlan> PlanReload(const config::Config& running,
                                      const config::Config& loaded);

// A host, or the default, that a worker claimed at run time with
// update_server_conf (the seed's updateServerConf). Claims live in the
// master beside the file's config, never in it: a reload rebuilds the
// config from the file and re-applies them (RecheckClaims); they go when
// the process that made them exits. docs/master.md has the policy.
struct Claim {
  int site = -1;
  int worker = -1;          // the claiming worker's slot in the pool
  int worker_index = 0;     // within its site ("a#1" is 1), for status
  uint32_t generation = 0;  // of the claiming process: claims die with it
  std::string host;         // normal form; empty: the default
  bool is_default() const { return host.empty(); }
};

// Who asks: a worker of `site` (its slot, index and process generation).
struct Claimant {
  int site = -1;
  int worker = -1;
  int worker_index = 0;
  uint32_t generation = 0;
};

// What an accepted update_server_conf leaves: the config with the site's
// process count changed if asked (the file's count comes back at the next
// reload), and every claim, the new ones included.
struct ServerConfUpdate {
  config::Config config;
  std::vector<Claim> claims;
};

// The update_server_conf body of `who`: a JSON object with
//   add_hosts: [string]  host patterns to claim (normal form applied);
//   default: bool        true claims the default, false drops the caller's
//                        default claim (a default the config gives stays);
//   processes: int       the site's process count (1..1024).
// All or nothing: any refusal changes nothing. A host the site's own
// `hosts` lists is accepted and recorded as no claim. Refused:
//   PermissionDenied   a host no pattern of the site's claimable_hosts
//                      matches; the default without may_claim_default;
//   AlreadyExists      a host another site serves (its hosts or claims), or
//                      that falls under another site's wildcard, or a
//                      wildcard that would cover another site's host;
//   FailedPrecondition the default, when another site holds it;
//   InvalidArgument    a malformed body, host or count.
// Other sites are checked whatever their listeners and ALPN.
absl::StatusOr<ServerConfUpdate> ApplyServerConfUpdate(
    const config::Config& running, const std::vector<Claim>& claims,
    const Claimant& who, absl::string_view body);

// Whether `site` may claim `host` (normal form) now, as above.
absl::Status CheckHostClaim(const config::Config& config,
                            const std::vector<Claim>& claims, int site,
                            const std::string& host);

// After a reload: the claims `next` still allows, in order, each checked
// against `next` and the claims kept before it. The others are appended to
// `dropped` with why (the new claimable_hosts no longer match, a site now
// serves the host, the site was removed, ...).
struct DroppedClaim {
  Claim claim;
  absl::Status why;
};
std::vector<Claim> RecheckClaims(const config::Config& next,
                                 const std::vector<Claim>& claims,
                                 std::vector<DroppedClaim>* dropped);

// The config the route table is built from: each site's hosts plus the
// hosts claimed for it, and the default where a claim holds it.
config::Config WithClaims(const config::Config& config,
                          const std::vector<Claim>& claims);

}  // namespace master
}  // namespace ddv

#endif  // DDV_SRC_MASTER_CONFIG_APPLY_H_
