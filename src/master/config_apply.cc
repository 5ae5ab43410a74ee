// PlanReload, ApplyServerConfUpdate and the claim policy: config diffs, no
// side effects.
#include "src/master/config_apply.h"

#include <algorithm>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"
#include "src/base/socket_address.h"
#include "src/config/host_pattern.h"

namespace ddv {
namespace master {
namespace {

using json = nlohmann::json;

// Whatever a worker process is started with, apart from how many. A site's
// memory_max, cpu_weight and caps apply to running workers: not here.
bool SpecChanged(const config::SiteConfig& a, const config::SiteConfig& b) {
  return a.command != b.command || a.env != b.env || a.user != b.user ||
         a.group != b.group || a.log_output != b.log_output ||
         a.log_error != b.log_error || a.log_all != b.log_all ||
         a.log_max_bytes != b.log_max_bytes || a.log_keep != b.log_keep ||
         a.tls_cert != b.tls_cert || a.tls_key != b.tls_key ||
         a.limits != b.limits || a.cwd != b.cwd;
}

// Whether the wildcard `wildcard` ("*.example.com") matches `pattern`, an
// exact name or a narrower wildcard: "a.example.com", "*.x.example.com";
// not "example.com" (a wildcard never matches its own apex) and not
// "*.example.com" itself (equal, which callers tell apart).
bool Covers(absl::string_view wildcard, absl::string_view pattern) {
  if (!absl::StartsWith(wildcard, "*.")) return false;
  absl::string_view suffix = wildcard.substr(1);  // ".example.com"
  absl::ConsumePrefix(&pattern, "*.");
  return absl::EndsWith(pattern, suffix);
}

bool Contains(const std::vector<std::string>& list, absl::string_view item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

// What site `site` routes now: its config's hosts and its claims.
std::vector<std::string> Served(const config::Config& config,
                                const std::vector<Claim>& claims, int site) {
  std::vector<std::string> hosts = config.sites[site].hosts;
  for (const Claim& claim : claims) {
    if (claim.site == site && !claim.is_default() &&
        !Contains(hosts, claim.host)) {
      hosts.push_back(claim.host);
    }
  }
  return hosts;
}

bool HoldsDefault(const config::Config& config,
                  const std::vector<Claim>& claims, int site) {
  if (config.sites[site].is_default) return true;
  return std::any_of(claims.begin(), claims.end(), [site](const Claim& c) {
    return c.site == site && c.is_default();
  });
}

absl::Status CheckDefaultClaim(const config::Config& config,
                               const std::vector<Claim>& claims, int site) {
  const config::SiteConfig& mine = config.sites[site];
  if (mine.is_default) return absl::OkStatus();  // the config says so already
  if (!mine.may_claim_default) {
    return absl::PermissionDeniedError(
        absl::StrCat("default: site \"", mine.id,
                     "\" may not claim the default (may_claim_default is "
                     "false)"));
  }
  for (size_t o = 0; o < config.sites.size(); ++o) {
    if (static_cast<int>(o) == site) continue;
    if (HoldsDefault(config, claims, o)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "default: site \"", config.sites[o].id, "\" is the default already"));
    }
  }
  return absl::OkStatus();
}

bool SameClaimant(const Claim& claim, const Claimant& who) {
  return claim.site == who.site && claim.worker == who.worker &&
         claim.generation == who.generation;
}

}  // namespace

absl::Status CheckHostClaim(const config::Config& config,
                            const std::vector<Claim>& claims, int site,
                            const std::string& host) {
  const config::SiteConfig& mine = config.sites[site];
  if (Contains(mine.hosts, host)) return absl::OkStatus();
  const bool claimable =
      std::any_of(mine.claimable_hosts.begin(), mine.claimable_hosts.end(),
                  [&host](const std::string& pattern) {
                    return pattern == host || Covers(pattern, host);
                  });
  if (!claimable) {
    return absl::PermissionDeniedError(absl::StrCat(
        "add_hosts: \"", host, "\" is not in site \"", mine.id,
        "\"'s claimable_hosts (",
        mine.claimable_hosts.empty()
            ? std::string("it has none")
            : absl::StrCat("\"", absl::StrJoin(mine.claimable_hosts, "\", \""),
                           "\""),
        ")"));
  }
  // Names are routed exact first, then by the longest wildcard: an exact
  // claim under another site's wildcard would take that name from it, and
  // a wildcard over another site's name would take the rest of that site's
  // domain. A site's names are its own whatever their listeners and ALPN.
  for (size_t o = 0; o < config.sites.size(); ++o) {
    if (static_cast<int>(o) == site) continue;
    const std::string& other = config.sites[o].id;
    for (const std::string& served : Served(config, claims, o)) {
      if (served == host) {
        return absl::AlreadyExistsError(absl::StrCat(
            "add_hosts: \"", host, "\" is served by site \"", other, "\""));
      }
      if (Covers(served, host)) {
        return absl::AlreadyExistsError(
            absl::StrCat("add_hosts: \"", host, "\" falls under site \"",
                         other, "\"'s \"", served, "\""));
      }
      if (Covers(host, served)) {
        return absl::AlreadyExistsError(
            absl::StrCat("add_hosts: \"", host, "\" would cover site \"",
                         other, "\"'s \"", served, "\""));
      }
    }
  }
  return absl::OkStatus();
}

void ApplyOverrides(const MasterOverrides& overrides, config::Config* config) {
  if (!overrides.control_socket.empty()) {
    config->master.control_socket = overrides.control_socket;
  }
  if (overrides.handoff.has_value()) config->master.handoff = *overrides.handoff;
  if (!overrides.metrics_address.empty()) {
    config->master.metrics_address = overrides.metrics_address;
  }
}

int ListenerPlan::binds() const {
  return std::count_if(next.begin(), next.end(), [](const ListenerChange& c) {
    return c.socket_from < 0;
  });
}

ListenerPlan PlanListeners(const std::vector<config::ListenerConfig>& running,
                           const std::vector<config::ListenerConfig>& loaded) {
  ListenerPlan plan;
  std::vector<bool> kept(running.size(), false);
  std::vector<bool> socket_taken(running.size(), false);
  plan.sockets_change = running.size() != loaded.size();
  for (size_t i = 0; i < loaded.size(); ++i) {
    const config::ListenerConfig& l = loaded[i];
    ListenerChange change;
    // Addresses are unique within a config (port 0 aside), so at most one
    // running socket can be this one's. Port 0 is "any free port": only
    // the same listener's socket is its own.
    for (size_t r = 0; r < running.size(); ++r) {
      const config::ListenerConfig& old = running[r];
      if (!SameSocketAddress(l.addr, old.addr)) continue;
      if (SocketAddressPort(l.addr) == 0 && l.name != old.name) continue;
      // A bound socket's IPV6_V6ONLY cannot change: a new socket, bound
      // beside this one, which is drained and closed.
      if (l.v6only != old.v6only) break;
      change.socket_from = r;
      socket_taken[r] = true;
      change.defer_accept_changes =
          config::IsPeeked(l) != config::IsPeeked(old);
      if (l.name == old.name && l.protocol == old.protocol &&
          l.proxy_protocol == old.proxy_protocol) {
        change.keeps = r;
        kept[r] = true;
      }
      break;
    }
    // The owner knows sockets by name and keeps them in config order: a
    // socket in another place or under another name changes its set.
    // (running[i] is read only when socket_from == i, so it exists.)
    if (change.socket_from != static_cast<int>(i) ||
        l.name != running[i].name) {
      plan.sockets_change = true;
    }
    plan.next.push_back(change);
  }
  for (size_t r = 0; r < running.size(); ++r) {
    if (kept[r]) continue;
    plan.retired.push_back(r);
    if (!socket_taken[r]) plan.closed.push_back(r);
  }
  return plan;
}

absl::StatusOr<ReloadPlan> PlanReload(const config::Config& running,
                                      const config::Config& loaded) {
  // Both are fixed for the master's life: every worker was started with
  // DDV_HANDOFF (and pidfd mode set PR_SET_PTRACER), and the control socket
  // was bound at start. Half-applying them would be worse than refusing.
  if (loaded.master.handoff != running.master.handoff) {
    return absl::FailedPreconditionError(absl::StrCat(
        "[master] handoff changed from \"",
        config::HandoffModeName(running.master.handoff), "\" to \"",
        config::HandoffModeName(loaded.master.handoff),
        "\"; restart ddv_master to apply that"));
  }
  if (loaded.master.control_socket != running.master.control_socket) {
    return absl::FailedPreconditionError(absl::StrCat(
        "[master] control_socket changed from \"",
        running.master.control_socket, "\" to \"",
        loaded.master.control_socket,
        "\"; restart ddv_master to apply that"));
  }
  ReloadPlan plan;
  plan.listeners = PlanListeners(running.listeners, loaded.listeners);
  plan.next = loaded;
  plan.next.sites.clear();
  std::vector<bool> taken(loaded.sites.size(), false);
  for (const config::SiteConfig& old : running.sites) {
    auto it = std::find_if(
        loaded.sites.begin(), loaded.sites.end(),
        [&](const config::SiteConfig& s) { return s.id == old.id; });
    SiteChange change;
    if (it == loaded.sites.end()) {
      // An empty slot keeps the id (and what its workers were started
      // with), so the site can come back under the same index.
      config::SiteConfig removed = old;
      removed.hosts.clear();
      removed.is_default = false;
      removed.processes = 0;
      removed.listeners = {};
      removed.alpn.clear();
      change.removed = old.processes > 0;
      plan.next.sites.push_back(std::move(removed));
    } else {
      // A worker slot's channel is made for its runtime (a SOCK_SEQPACKET
      // for ddv, a SOCK_STREAM for Node) and lives as long as the slot.
      if (it->runtime != old.runtime && old.processes > 0) {
        return absl::FailedPreconditionError(absl::StrCat(
            "site \"", old.id, "\" changed runtime from \"",
            config::RuntimeName(old.runtime), "\" to \"",
            config::RuntimeName(it->runtime),
            "\"; remove the site and reload, then add it back, or restart "
            "ddv_master"));
      }
      taken[it - loaded.sites.begin()] = true;
      plan.next.sites.push_back(*it);
    }
    const config::SiteConfig& site = plan.next.sites.back();
    change.new_spec = SpecChanged(site, old);
    change.processes_changed = site.processes != old.processes;
    change.rolling_restart = change.new_spec && site.processes > 0;
    // SIGHUP asks ddv workers to re-read their certificates. A Node app
    // has no such handler (SIGHUP would kill it): it reads DDV_TLS_CERT at
    // start, so `ddvctl restart SITE` renews its certificates.
    change.reread_certificates = !change.rolling_restart &&
                                 site.processes > 0 && !site.tls_cert.empty() &&
                                 site.runtime != config::Runtime::kNode;
    plan.sites.push_back(change);
  }
  for (size_t i = 0; i < loaded.sites.size(); ++i) {
    if (taken[i]) continue;
    plan.next.sites.push_back(loaded.sites[i]);
    SiteChange change;
    change.added = true;
    plan.sites.push_back(change);
  }
  return plan;
}

absl::StatusOr<ServerConfUpdate> ApplyServerConfUpdate(
    const config::Config& running, const std::vector<Claim>& claims,
    const Claimant& who, absl::string_view body) {
  json request = json::parse(body, nullptr, false);
  if (request.is_discarded() || !request.is_object()) {
    return absl::InvalidArgumentError(
        "update_server_conf: body is not a JSON object");
  }
  const int site = who.site;
  if (site < 0 || static_cast<size_t>(site) >= running.sites.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("update_server_conf: no site ", site));
  }
  ServerConfUpdate update{running, claims};
  config::SiteConfig& mine = update.config.sites[site];
  for (auto it = request.begin(); it != request.end(); ++it) {
    if (it.key() == "add_hosts" && it->is_array()) {
      for (const json& host : *it) {
        if (!host.is_string()) {
          return absl::InvalidArgumentError("add_hosts: hosts are strings");
        }
        absl::StatusOr<std::string> pattern =
            config::NormalizeHostPattern(host.get<std::string>());
        if (!pattern.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat("add_hosts: ", pattern.status().message()));
        }
        absl::Status allowed =
            CheckHostClaim(update.config, update.claims, site, *pattern);
        if (!allowed.ok()) return allowed;
        if (Contains(mine.hosts, *pattern)) continue;  // its own already
        const bool again = std::any_of(
            update.claims.begin(), update.claims.end(), [&](const Claim& c) {
              return SameClaimant(c, who) && c.host == *pattern;
            });
        if (!again) {
          update.claims.push_back(
              {site, who.worker, who.worker_index, who.generation, *pattern});
        }
      }
    } else if (it.key() == "default" && it->is_boolean()) {
      auto mine_default = [&who](const Claim& c) {
        return SameClaimant(c, who) && c.is_default();
      };
      if (it->get<bool>()) {
        absl::Status allowed =
            CheckDefaultClaim(update.config, update.claims, site);
        if (!allowed.ok()) return allowed;
        if (!mine.is_default &&
            std::none_of(update.claims.begin(), update.claims.end(),
                         mine_default)) {
          update.claims.push_back(
              {site, who.worker, who.worker_index, who.generation, ""});
        }
      } else {
        // The seed's apps send defaultListen: false with every update: it
        // drops the caller's own claim, never a default the config gives.
        update.claims.erase(std::remove_if(update.claims.begin(),
                                           update.claims.end(), mine_default),
                            update.claims.end());
      }
    } else if (it.key() == "processes" && it->is_number_integer()) {
      // The config's own bounds (docs/config.md) are the policy.
      int64_t count = it->get<int64_t>();
      if (count < 1 || count > 1024) {
        return absl::InvalidArgumentError(
            absl::StrCat("processes: ", count, " is outside 1..1024"));
      }
      mine.processes = static_cast<int>(count);
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "update_server_conf: unknown or mistyped key \"", it.key(),
          "\" (add_hosts: [string], default: bool, processes: int)"));
    }
  }
  return update;
}

std::vector<Claim> RecheckClaims(const config::Config& next,
                                 const std::vector<Claim>& claims,
                                 std::vector<DroppedClaim>* dropped) {
  std::vector<Claim> kept;
  for (const Claim& claim : claims) {
    absl::Status status;
    if (claim.site < 0 || static_cast<size_t>(claim.site) >= next.sites.size()) {
      status = absl::NotFoundError(absl::StrCat("no site ", claim.site));
    } else if (next.sites[claim.site].processes == 0) {
      status = absl::NotFoundError(absl::StrCat(
          "site \"", next.sites[claim.site].id, "\" was removed"));
    } else if (claim.is_default()) {
      status = CheckDefaultClaim(next, kept, claim.site);
    } else {
      status = CheckHostClaim(next, kept, claim.site, claim.host);
    }
    if (status.ok()) {
      kept.push_back(claim);
    } else {
      dropped->push_back({claim, status});
    }
  }
  return kept;
}

config::Config WithClaims(const config::Config& config,
                          const std::vector<Claim>& claims) {
  config::Config routed = config;
  for (const Claim& claim : claims) {
    config::SiteConfig& site = routed.sites[claim.site];
    if (claim.is_default()) {
      site.is_default = true;
    } else if (!Contains(site.hosts, claim.host)) {
      site.hosts.push_back(claim.host);
    }
  }
  return routed;
}

}  // namespace master
}  // namespace ddv
