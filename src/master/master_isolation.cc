// Master, isolation between sites (docs/isolation.md): ddv's cgroup subtree
// with a cgroup per site (memory.max, cpu.weight), and the per-site caps
// (SiteCaps) that refuse a site's new connections past max_pending and
// max_connections, so a flooded or stuck site cannot slow the others.
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "glog/logging.h"
#include "nlohmann/json.hpp"
#include "src/master/master.h"

namespace ddv {
namespace master {
namespace {

using json = nlohmann::json;

// Sites whose cgroup settings cannot apply, for one log line.
std::vector<std::string> SitesWithCgroupLimits(const config::Config& config,
                                               bool memory, bool cpu) {
  std::vector<std::string> ids;
  for (const config::SiteConfig& site : config.sites) {
    if (site.processes == 0) continue;
    if ((memory && site.memory_max != 0) || (cpu && site.cpu_weight != 0)) {
      ids.push_back(absl::StrCat("\"", site.id, "\""));
    }
  }
  return ids;
}

json Limit(uint64_t value) {
  return value == config::kUnlimited ? json("unlimited") : json(value);
}

// A worker's resident memory and CPU time from /proc, for a site without
// a cgroup. 0 when the process is gone.
void AddProcessUsage(pid_t pid, uint64_t* memory, uint64_t* cpu_usec) {
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/%d/statm", static_cast<int>(pid));
  if (FILE* f = std::fopen(path, "r")) {
    unsigned long size = 0, resident = 0;
    if (std::fscanf(f, "%lu %lu", &size, &resident) == 2) {
      *memory += static_cast<uint64_t>(resident) * ::sysconf(_SC_PAGESIZE);
    }
    std::fclose(f);
  }
  std::snprintf(path, sizeof(path), "/proc/%d/stat", static_cast<int>(pid));
  if (FILE* f = std::fopen(path, "r")) {
    char buffer[1024];
    const size_t n = std::fread(buffer, 1, sizeof(buffer) - 1, f);
    std::fclose(f);
    buffer[n] = '\0';
    // Fields after "(comm)": state is 3, utime 14, stime 15.
    const char* close = std::strrchr(buffer, ')');
    if (close == nullptr) return;
    std::vector<absl::string_view> fields =
        absl::StrSplit(close + 1, ' ', absl::SkipEmpty());
    uint64_t utime = 0, stime = 0;
    if (fields.size() > 13 && absl::SimpleAtoi(fields[11], &utime) &&
        absl::SimpleAtoi(fields[12], &stime)) {
      *cpu_usec += (utime + stime) * 1000000 / ::sysconf(_SC_CLK_TCK);
    }
  }
}

}  // namespace

void Master::InitIsolation() {
  absl::StatusOr<supervise::CgroupTree> tree = supervise::CgroupTree::Claim();
  if (tree.ok()) {
    cgroups_ = *std::move(tree);
    options_.workers.cgroups = &*cgroups_;
    LOG(INFO) << "cgroup subtree " << cgroups_->root() << ": ddv's own "
              << "processes in " << cgroups_->root() << "/"
              << supervise::kSelfLeaf << ", each site's workers in "
              << cgroups_->root() << "/"
              << supervise::SiteCgroupName("<id>");
    if (!cgroups_->missing_controllers().empty()) {
      std::vector<std::string> ids = SitesWithCgroupLimits(
          config_, !cgroups_->has_memory(), !cgroups_->has_cpu());
      LOG(WARNING) << cgroups_->missing_controllers()
                   << (ids.empty() ? std::string()
                                   : absl::StrCat(
                                         "; not applied: memory_max or "
                                         "cpu_weight of site ",
                                         absl::StrJoin(ids, ", ")));
    }
  } else {
    std::vector<std::string> ids = SitesWithCgroupLimits(config_, true, true);
    LOG(INFO) << "running without per-site cgroups: "
              << tree.status().message()
              << (ids.empty() ? std::string()
                              : absl::StrCat("; not applied: memory_max and "
                                             "cpu_weight of site ",
                                             absl::StrJoin(ids, ", ")));
  }
  ApplyIsolation(config_);
}

void Master::ApplyIsolation(const config::Config& next) {
  for (size_t s = 0; s < next.sites.size(); ++s) {
    const config::SiteConfig& site = next.sites[s];
    site_caps_.Configure(static_cast<int>(s), site.max_connections,
                         site.max_pending);
    if (!cgroups_) continue;
    if (site.processes == 0) {
      // Removed: its cgroup goes now if no worker is left in it, else with
      // its last worker (OnSiteWorkerExit).
      absl::Status removed = cgroups_->RemoveSite(site.id);
      if (!removed.ok() && !absl::IsFailedPrecondition(removed)) {
        LOG(WARNING) << removed;
      }
      continue;
    }
    absl::StatusOr<std::string> dir =
        cgroups_->ConfigureSite(site.id, site.memory_max, site.cpu_weight);
    if (!dir.ok()) {
      // Its workers cannot start in it: each start fails with the reason
      // and the site backs off, visibly, rather than running unconfined.
      LOG(ERROR) << "site \"" << site.id << "\": " << dir.status();
    }
  }
}

bool Master::AdmitToSite(uint32_t index, int site) {
  switch (site_caps_.Admit(site)) {
    case SiteCaps::Verdict::kAdmit:
      connections_.at(index).site_pending = true;
      return true;
    case SiteCaps::Verdict::kOverPending:
      ++counters_.site_pending_refused;
      LOG_EVERY_N(WARNING, 1000)
          << "site \"" << config_.sites[site].id << "\" has "
          << site_caps_.pending(site) << " connections waiting for a worker "
          << "(max_pending " << site_caps_.max_pending(site)
          << "): refusing its new ones";
      break;
    case SiteCaps::Verdict::kOverConnections:
      ++counters_.site_connections_refused;
      LOG_EVERY_N(WARNING, 1000)
          << "site \"" << config_.sites[site].id << "\" holds "
          << site_caps_.pending(site) + site_caps_.open(site)
          << " connections (max_connections "
          << site_caps_.max_connections(site) << "): refusing its new ones";
      break;
  }
  Refuse(index, Refusal::kUnavailable);
  return false;
}

void Master::ReleaseSite(Connection& c) {
  if (!c.site_pending) return;
  site_caps_.RemovePending(c.site);
  c.site_pending = false;
}

SiteCaps::WorkerRef Master::CapsRef(int w) const {
  const Worker& worker = workers_->at(w);
  return {w, worker.site, worker.generation,
          workers_->processes().adopted(worker.process_slot)};
}

void Master::OnConnectionsReport(int w, const std::string& body) {
  const json report = json::parse(body, nullptr, false);
  const auto taken = report.is_object() ? report.find("taken") : report.end();
  const auto open = report.is_object() ? report.find("open") : report.end();
  if (!report.is_object() || taken == report.end() ||
      !taken->is_number_unsigned() ||
      (open != report.end() && !open->is_number_unsigned())) {
    LOG_EVERY_N(WARNING, 100)
        << "worker " << workers_->site_id(workers_->at(w).site) << "#"
        << workers_->at(w).index << " sent a bad connections report: "
        << body.substr(0, 200);
    return;
  }
  site_caps_.Report(CapsRef(w), taken->get<uint64_t>(),
                    open == report.end()
                        ? std::nullopt
                        : std::optional<uint64_t>(open->get<uint64_t>()));
}

void Master::OnSiteWorkerExit(int w) {
  site_caps_.WorkerGone(w);
  const int site = workers_->at(w).site;
  if (!cgroups_ || site < 0 || static_cast<size_t>(site) >= config_.sites.size() ||
      config_.sites[site].processes != 0) {
    return;
  }
  // The site was removed by a reload: its cgroup goes with its last worker.
  for (int o = 0; o < workers_->size(); ++o) {
    if (workers_->at(o).site == site && workers_->pid(o) != 0) return;
  }
  absl::Status removed = cgroups_->RemoveSite(config_.sites[site].id);
  if (!removed.ok()) LOG(WARNING) << removed;
}

nlohmann::json Master::SiteIsolationJson(int s) const {
  const config::SiteConfig& site = config_.sites[s];
  json limits = json::object();
  for (const auto& [kind, value] : site.limits) {
    limits[std::string(config::ResourceKindName(kind))] = Limit(value);
  }
  json out = {{"limits", limits}, {"cwd", site.cwd.empty() ? "/" : site.cwd}};

  json usage;
  if (cgroups_) {
    const supervise::CgroupUsage u = cgroups_->SiteUsage(site.id);
    json cgroup = {{"path", cgroups_->SiteDir(site.id)},
                   {"memory_max", site.memory_max != 0
                                      ? json(site.memory_max)
                                      : json(nullptr)},
                   {"memory_max_applied",
                    site.memory_max != 0 && cgroups_->has_memory()},
                   {"cpu_weight", site.cpu_weight != 0 ? json(site.cpu_weight)
                                                       : json(nullptr)},
                   {"cpu_weight_applied",
                    site.cpu_weight != 0 && cgroups_->has_cpu()}};
    out["cgroup"] = cgroup;
    usage = {{"source", "cgroup"},
             {"processes", u.processes},
             {"memory_bytes",
              u.memory_current ? json(*u.memory_current) : json(nullptr)},
             {"cpu_usec",
              u.cpu_usage_usec ? json(*u.cpu_usage_usec) : json(nullptr)}};
  } else {
    out["cgroup"] = nullptr;
    uint64_t memory = 0, cpu_usec = 0, processes = 0;
    for (int w = 0; w < workers_->size(); ++w) {
      if (workers_->at(w).site != s || workers_->pid(w) <= 0) continue;
      ++processes;
      AddProcessUsage(workers_->pid(w), &memory, &cpu_usec);
    }
    // Without a cgroup only the worker processes themselves are seen, not
    // what they forked.
    usage = {{"source", "processes"},
             {"processes", processes},
             {"memory_bytes", memory},
             {"cpu_usec", cpu_usec}};
  }
  out["usage"] = usage;
  out["connections"] = {
      {"pending", site_caps_.pending(s)},
      {"open", site_caps_.open(s)},
      {"max_pending", site_caps_.max_pending(s) != 0
                          ? json(site_caps_.max_pending(s))
                          : json(nullptr)},
      {"max_connections", site_caps_.max_connections(s) != 0
                              ? json(site_caps_.max_connections(s))
                              : json(nullptr)},
      {"refused_max_pending", site_caps_.refused_pending(s)},
      {"refused_max_connections", site_caps_.refused_connections(s)}};
  return out;
}

}  // namespace master
}  // namespace ddv
