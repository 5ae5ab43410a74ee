// PlanReload and ApplyServerConfUpdate: config diffs, no side effects.
#include "src/master/config_apply.h"

#include <algorithm>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"
#include "src/sniff/host_name.h"

namespace ddv {
namespace master {
namespace {

using json = nlohmann::json;

// Whatever a worker process is started with, apart from how many.
bool SpecChanged(const config::SiteConfig& a, const config::SiteConfig& b) {
  return a.command != b.command || a.env != b.env || a.user != b.user ||
         a.group != b.group || a.log_output != b.log_output ||
         a.log_error != b.log_error || a.log_all != b.log_all ||
         a.tls_cert != b.tls_cert || a.tls_key != b.tls_key;
}

// "*.Example.COM." → "*.example.com", or an error naming the host.
absl::StatusOr<std::string> HostPattern(const std::string& host) {
  std::string name = absl::AsciiStrToLower(host);
  absl::string_view bare = name;
  bool wildcard = absl::ConsumePrefix(&bare, "*.");
  sniff::HostName normal;
  if (const char* error =
          sniff::NormalizeHost(bare, sniff::HostSyntax::kTlsSni, &normal)) {
    return absl::InvalidArgumentError(
        absl::StrCat("add_hosts: \"", name, "\": ", error));
  }
  return absl::StrCat(wildcard ? "*." : "", normal.view());
}

}  // namespace

void ApplyOverrides(const MasterOverrides& overrides, config::Config* config) {
  if (!overrides.control_socket.empty()) {
    config->master.control_socket = overrides.control_socket;
  }
  if (overrides.handoff.has_value()) config->master.handoff = *overrides.handoff;
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
  if (loaded.listeners.size() != running.listeners.size()) {
    return absl::FailedPreconditionError(
        "listeners were added or removed; restart ddv_master to apply that");
  }
  for (size_t i = 0; i < loaded.listeners.size(); ++i) {
    const config::ListenerConfig& a = loaded.listeners[i];
    const config::ListenerConfig& b = running.listeners[i];
    if (a.name != b.name || a.address != b.address ||
        a.protocol != b.protocol || a.proxy_protocol != b.proxy_protocol) {
      return absl::FailedPreconditionError(
          absl::StrCat("listener \"", b.name,
                       "\" changed; restart ddv_master to apply that"));
    }
  }
  ReloadPlan plan;
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
    change.reread_certificates =
        !change.rolling_restart && site.processes > 0 && !site.tls_cert.empty();
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

absl::StatusOr<config::Config> ApplyServerConfUpdate(
    const config::Config& running, int site, absl::string_view body) {
  json request = json::parse(body, nullptr, false);
  if (request.is_discarded() || !request.is_object()) {
    return absl::InvalidArgumentError(
        "update_server_conf: body is not a JSON object");
  }
  if (site < 0 || static_cast<size_t>(site) >= running.sites.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("update_server_conf: no site ", site));
  }
  config::Config next = running;
  config::SiteConfig& mine = next.sites[site];
  for (auto it = request.begin(); it != request.end(); ++it) {
    if (it.key() == "add_hosts" && it->is_array()) {
      for (const json& host : *it) {
        if (!host.is_string()) {
          return absl::InvalidArgumentError("add_hosts: hosts are strings");
        }
        absl::StatusOr<std::string> pattern =
            HostPattern(host.get<std::string>());
        if (!pattern.ok()) return pattern.status();
        for (const config::SiteConfig& other : next.sites) {
          if (&other == &mine) continue;
          for (const std::string& h : other.hosts) {
            if (h == *pattern) {
              return absl::AlreadyExistsError(
                  absl::StrCat("add_hosts: \"", *pattern,
                               "\" is served by site \"", other.id, "\""));
            }
          }
        }
        if (std::find(mine.hosts.begin(), mine.hosts.end(), *pattern) ==
            mine.hosts.end()) {
          mine.hosts.push_back(*pattern);
        }
      }
    } else if (it.key() == "default" && it->is_boolean()) {
      if (it->get<bool>()) {
        for (const config::SiteConfig& other : next.sites) {
          if (&other != &mine && other.is_default) {
            return absl::FailedPreconditionError(absl::StrCat(
                "default: site \"", other.id, "\" is the default already"));
          }
        }
      }
      mine.is_default = it->get<bool>();
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
  return next;
}

}  // namespace master
}  // namespace ddv
