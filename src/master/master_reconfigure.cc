// Master, changes to the running config: a reload's plan carried out, and
// what workers ask through RPCs (update_server_conf, status, messages to
// other workers). Config and routes change only here, called from the
// control point, never from inside a completion handler.
#include <signal.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "src/base/socket_activation.h"
#include "src/master/config_apply.h"
#include "src/master/master.h"
#include "src/master/routes_from_config.h"

namespace ddv {
namespace master {

// What a reload can change live: hosts, defaults, ALPN claims (a new route
// table swapped in whole); sites added or removed; a site's process count;
// its command, environment, logs or credentials (a rolling restart);
// listeners added, removed, re-addressed or changed. Whatever can fail (a
// bind, the control socket's group) is done first, so a failed reload
// changes nothing.
absl::Status Master::ApplyConfig(const config::Config& loaded) {
  absl::StatusOr<ReloadPlan> plan = PlanReload(config_, loaded);
  if (!plan.ok()) return plan.status();
  if (options_.socket_activated) {
    // The sockets are systemd's, as its units pass them.
    std::vector<ListenSpec> running, next;
    for (const auto& listener : config_.listeners) {
      running.push_back(ListenSpecFor(listener));
    }
    for (const auto& listener : plan->next.listeners) {
      next.push_back(ListenSpecFor(listener));
    }
    absl::Status kept = CheckPassedListenersKept(running, next);
    if (!kept.ok()) return kept;
  }
  // Workers' claims outlive the file's config: re-checked against the new
  // one (its claimable_hosts, its sites' hosts), kept if it still allows
  // them.
  std::vector<DroppedClaim> dropped;
  std::vector<Claim> claims = RecheckClaims(plan->next, claims_, &dropped);
  // Listener defaults name sites by id; the route builder maps them.
  absl::StatusOr<std::shared_ptr<const route::RouteTable>> routes =
      RoutesFromConfig(WithClaims(plan->next, claims));
  if (!routes.ok()) return routes.status();
  // New listeners' sockets (bound by the watchdog, or by the master alone):
  // a port in use or one it may not bind fails the reload with the bind's
  // reason, before anything changed.
  absl::StatusOr<std::vector<NewListener>> acquired = AcquireListeners(*plan);
  if (!acquired.ok()) return acquired.status();
  // A new metrics address bound, the access logs named opened: a port in
  // use or a directory missing fails the reload here.
  absl::StatusOr<ObservabilityChange> observability =
      PrepareObservability(plan->next);
  if (!observability.ok()) {
    if (plan->listeners.binds() > 0) AbandonListeners(*std::move(acquired));
    return observability.status();
  }
  // The control socket's mode and group apply live, before anything else
  // changes: a chown the master may not do fails the reload cleanly. The
  // peer check reads the group from config_ at each accept.
  const config::MasterConfig& master = plan->next.master;
  if (!control_socket_path_.empty() &&
      (master.control_socket_mode != config_.master.control_socket_mode ||
       master.control_socket_group != config_.master.control_socket_group ||
       master.control_socket_gid != config_.master.control_socket_gid)) {
    absl::Status access = ApplyControlSocketAccess(master);
    if (!access.ok()) {
      if (plan->listeners.binds() > 0) AbandonListeners(*std::move(acquired));
      return access;
    }
  }

  // From here on nothing fails. The watchdog's set first, then (Reload)
  // the snapshot: a master that dies between the two is followed by one
  // that binds whatever its snapshot has and the set lacks (TakeListeners).
  if (watchdog_link_ && plan->listeners.sockets_change) {
    std::vector<std::string> held_as;
    for (const ListenerChange& change : plan->listeners.next) {
      held_as.push_back(change.socket_from >= 0
                            ? config_.listeners[change.socket_from].name
                            : std::string());
    }
    CommitListeners(plan->next.listeners, held_as, *acquired);
  }
  ApplyListeners(*plan, *std::move(acquired), routes_);
  UpdateAcceptSharing();
  // Before sites are added or respecified: Node workers' PORT, and the
  // sites' cgroups (new workers start in them) and caps.
  UpdateListenerPorts(plan->next);
  ApplyIsolation(plan->next);

  for (size_t s = 0; s < plan->next.sites.size(); ++s) {
    const config::SiteConfig& site = plan->next.sites[s];
    const SiteChange& change = plan->sites[s];
    if (change.added) {
      // The pool takes the site's index even when AddSite fails, and the
      // config is committed below in every case: the two never drift apart.
      // A spawn failure is the supervisor's business (back-off).
      absl::StatusOr<int> added = workers_->AddSite(site);
      if (!added.ok()) {
        LOG(ERROR) << "reload: site \"" << site.id
                   << "\" has no workers: " << added.status();
        continue;
      }
      absl::Status status = workers_->StartSite(*added);
      if (!status.ok()) LOG(ERROR) << "reload: " << status;
      LOG(INFO) << "reload: site \"" << site.id << "\" added";
      continue;
    }
    if (change.new_spec) workers_->UpdateSpecs(s, site);
    if (change.processes_changed) {
      absl::Status status = workers_->SetProcessCount(s, site, site.processes);
      if (!status.ok()) LOG(ERROR) << "reload: " << status;
      LOG(INFO) << "reload: site \"" << site.id << "\" now runs "
                << site.processes << " processes";
    }
    if (change.rolling_restart) {
      workers_->RollingRestart(s);
      LOG(INFO) << "reload: site \"" << site.id
                << "\" changed; rolling restart";
    } else if (change.reread_certificates) {
      // Same paths, maybe renewed files: SIGHUP tells a worker to re-read
      // its certificates (docs/tls.md), without a restart.
      for (int w = 0; w < workers_->size(); ++w) {
        if (workers_->at(w).site == static_cast<int>(s) &&
            !workers_->at(w).retired && workers_->pid(w) > 0) {
          workers_->Signal(w, SIGHUP);
        }
      }
    }
  }
  routes_ = std::move(*routes);
  config_ = std::move(plan->next);
  claims_ = std::move(claims);
  CommitObservability(*std::move(observability));
  for (const DroppedClaim& d : dropped) {
    LogDroppedClaim(d.claim, absl::StrCat("the reloaded config refuses it: ",
                                          d.why.message()));
  }
  ReleaseRetiredWithoutProcess();
  return absl::OkStatus();
}

void Master::LogDroppedClaim(const Claim& claim, absl::string_view why) {
  ++counters_.claims_dropped;
  LOG(INFO) << "claim of " << workers_->site_id(claim.site) << "#"
            << claim.worker_index << " on "
            << (claim.is_default() ? std::string("the default")
                                   : absl::StrCat("\"", claim.host, "\""))
            << " dropped: " << why;
}

// A claim lives as long as the process that made it: one that exited (a
// crash, a retirement, a rolling restart) takes its claims along, and its
// successor claims again if it wants them.
void Master::DropClaimsOfExited(
    const std::vector<std::pair<int, uint32_t>>& exited) {
  std::vector<Claim> kept;
  std::vector<Claim> gone;
  for (const Claim& claim : claims_) {
    const bool dead = std::any_of(
        exited.begin(), exited.end(), [&claim](const auto& e) {
          return e.first == claim.worker && e.second == claim.generation;
        });
    (dead ? gone : kept).push_back(claim);
  }
  if (gone.empty()) return;
  absl::StatusOr<std::shared_ptr<const route::RouteTable>> routes =
      RoutesFromConfig(WithClaims(config_, kept));
  if (!routes.ok()) {
    // Fewer hosts than a table that built: cannot fail; keep the old one.
    LOG(DFATAL) << "routes without the claims of exited workers: "
                << routes.status();
    return;
  }
  routes_ = std::move(*routes);
  claims_ = std::move(kept);
  for (const Claim& claim : gone) {
    LogDroppedClaim(claim, "its worker process exited");
  }
}

// The seed's updateServerConf: a worker claims hosts or the default for
// its site, as far as the site's claimable_hosts and may_claim_default
// allow, or changes its site's process count (config_apply.h).
absl::Status Master::UpdateServerConf(int w, const std::string& body) {
  const Worker& worker = workers_->at(w);
  const int site = worker.site;
  const Claimant who{site, w, worker.index, worker.generation};
  absl::StatusOr<ServerConfUpdate> next =
      ApplyServerConfUpdate(config_, claims_, who, body);
  if (!next.ok()) {
    ++counters_.claims_refused;
    LOG_EVERY_N(WARNING, 20)
        << "update_server_conf of " << workers_->site_id(site) << "#"
        << worker.index << " pid " << workers_->pid(w)
        << " refused: " << next.status().message();
    return next.status();
  }
  absl::StatusOr<std::shared_ptr<const route::RouteTable>> routes =
      RoutesFromConfig(WithClaims(next->config, next->claims));
  if (!routes.ok()) return routes.status();
  const config::SiteConfig& mine = next->config.sites[site];
  if (mine.processes != config_.sites[site].processes) {
    absl::Status status = workers_->SetProcessCount(site, mine, mine.processes);
    ReleaseRetiredWithoutProcess();
    if (!status.ok()) return status;
  }
  routes_ = std::move(*routes);
  config_ = std::move(next->config);
  claims_ = std::move(next->claims);
  LOG(INFO) << "site " << config_.sites[site].id << "#" << who.worker_index
            << " updated its server conf: " << body;
  // Kept for a next master to replay, within what a link message holds;
  // past that the worker's later updates are not kept (logged).
  std::vector<std::string>& kept = workers_->at(w).conf_updates;
  std::vector<std::string> with_body = kept;
  with_body.push_back(body);
  // Measured as it travels (JSON-escaped), so a record always fits a link
  // message (watchdog::kMaxLinkMessageBytes, 16 KiB) with room to spare.
  const size_t bytes =
      nlohmann::json(with_body)
          .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
          .size();
  if (bytes <= 8 * 1024) {
    kept.push_back(body);
    RecordWorkerReady(w);
  } else {
    LOG(WARNING) << "update_server_conf of " << workers_->site_id(site) << "#"
                 << who.worker_index << ": over 8 KiB of updates kept for "
                 << "this process; this one is not replayed after a master "
                    "restart";
  }
  return absl::OkStatus();
}

void Master::Reply(int w, uint64_t id, absl::Status status,
                   const std::string& body) {
  handoff::Response response;
  response.id = id;
  response.code = status.code();
  response.error = std::string(status.message());
  response.body = status.ok() ? body : "";
  if (workers_->at(w).node) {
    SendToNode(w, NodeReplyLine(id, status, body));
    return;
  }
  absl::StatusOr<std::string> bytes = handoff::EncodeFrame(response);
  if (!bytes.ok()) return;
  absl::Status sent = handoff::SendFrame(workers_->at(w).channel.get(), *bytes,
                                         {}, absl::ZeroDuration());
  if (!sent.ok()) {
    LOG_EVERY_N(WARNING, 100) << "RPC reply lost: " << sent;
  }
}

void Master::OnWorkerRequest(int w, const handoff::Request& request) {
  if (request.method == "ping") {
    Reply(w, request.id, absl::OkStatus(), "{\"pong\":true}");
  } else if (request.method == "status") {
    Reply(w, request.id, absl::OkStatus(), StatusJson());
  } else if (request.method == "connections") {
    // A notification, never answered (docs/handoff.md).
    OnConnectionsReport(w, request.body);
  } else if (request.method == "update_server_conf") {
    // It changes the config: answered from the control point once applied.
    pending_.server_conf.push_back(
        {w, workers_->at(w).generation, request.id, request.body});
  } else {
    Reply(w, request.id,
          absl::UnimplementedError(
              absl::StrCat("unknown method \"", request.method, "\"")),
          "");
  }
}

// A worker's message to `target_site`'s worker `target_worker`, or to any
// of them (kAnyWorker): then one of the live workers that are neither
// retired nor draining, in turn, trying the next while a send fails (a full
// channel). A given index means the live, non-retired worker of that index.
// Best effort, as the seed's: undeliverable messages are dropped, logged.
void Master::ForwardMessage(int w, handoff::Message message) {
  const Worker& from = workers_->at(w);
  message.source_site = workers_->site_id(from.site);
  message.source_worker = from.index;
  absl::StatusOr<std::string> bytes = handoff::EncodeFrame(message);
  if (!bytes.ok()) return;
  const bool any = message.target_worker == handoff::kAnyWorker;
  std::vector<int> candidates;
  for (int t = 0; t < workers_->size(); ++t) {
    const Worker& to = workers_->at(t);
    if (to.retired || !to.channel || !workers_->Alive(t)) continue;
    if (workers_->site_id(to.site) != message.target_site) continue;
    if (any ? to.draining
            : static_cast<uint32_t>(to.index) != message.target_worker) {
      continue;
    }
    candidates.push_back(t);
  }
  size_t start = 0;
  if (any && !candidates.empty()) {
    start = message_round_robin_[message.target_site]++ % candidates.size();
  }
  for (size_t k = 0; k < candidates.size(); ++k) {
    const int t = candidates[(start + k) % candidates.size()];
    if (workers_->at(t).node) {
      // Queued in the Node channel's outbox, which keeps it until written;
      // a full outbox (the worker does not read) counts as not sent.
      if (SendToNode(t, NodeMessageLine(message))) return;
      continue;
    }
    absl::Status sent = handoff::SendFrame(workers_->at(t).channel.get(),
                                           *bytes, {}, absl::ZeroDuration());
    if (sent.ok()) return;
    LOG_EVERY_N(WARNING, 100)
        << "message from " << message.source_site << "#"
        << message.source_worker << " not sent to " << message.target_site
        << "#" << workers_->at(t).index << ": " << sent;
  }
  LOG_EVERY_N(WARNING, 100)
      << "message from " << message.source_site << "#" << message.source_worker
      << " to " << message.target_site << "#"
      << (any ? std::string("any")
              : absl::StrCat(message.target_worker))
      << " dropped: no live worker took it";
}

}  // namespace master
}  // namespace ddv
