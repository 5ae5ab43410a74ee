// SiteCaps: the per-site counts behind max_pending and max_connections.
#include "src/master/site_caps.h"

namespace ddv {
namespace master {

SiteCaps::Site& SiteCaps::SiteAt(int site) {
  if (static_cast<size_t>(site) >= sites_.size()) sites_.resize(site + 1);
  return sites_[site];
}

void SiteCaps::Configure(int site, uint32_t max_connections,
                         uint32_t max_pending) {
  Site& s = SiteAt(site);
  s.max_connections = max_connections;
  s.max_pending = max_pending;
}

uint32_t SiteCaps::max_pending(int site) const {
  return static_cast<size_t>(site) < sites_.size() ? sites_[site].max_pending
                                                   : 0;
}

uint32_t SiteCaps::max_connections(int site) const {
  return static_cast<size_t>(site) < sites_.size()
             ? sites_[site].max_connections
             : 0;
}

SiteCaps::Verdict SiteCaps::Admit(int site) {
  Site& s = SiteAt(site);
  if (s.max_pending != 0 && s.pending >= s.max_pending) {
    ++s.refused_pending;
    return Verdict::kOverPending;
  }
  if (s.max_connections != 0 && s.pending + s.open >= s.max_connections) {
    ++s.refused_connections;
    return Verdict::kOverConnections;
  }
  ++s.pending;
  return Verdict::kAdmit;
}

void SiteCaps::AddPending(int site) { ++SiteAt(site).pending; }

void SiteCaps::RemovePending(int site) {
  Site& s = SiteAt(site);
  if (s.pending > 0) --s.pending;
}

uint64_t SiteCaps::Contribution(const Process& p) {
  if (!p.live || !p.reports) return 0;
  return p.open + (p.handed > p.taken ? p.handed - p.taken : 0);
}

void SiteCaps::Account(Process& p, uint64_t before) {
  Site& s = SiteAt(p.site);
  const uint64_t after = Contribution(p);
  s.open = s.open + after >= before ? s.open + after - before : 0;
}

SiteCaps::Process* SiteCaps::ProcessOf(const WorkerRef& ref) {
  if (ref.worker < 0 || ref.site < 0) return nullptr;
  if (static_cast<size_t>(ref.worker) >= processes_.size()) {
    processes_.resize(ref.worker + 1);
  }
  Process& p = processes_[ref.worker];
  if (p.known && p.generation == ref.generation && p.site == ref.site) {
    return p.live ? &p : nullptr;
  }
  // A new process in the slot: what the previous one counted goes.
  if (p.live) {
    const uint64_t before = Contribution(p);
    p.live = false;
    Account(p, before);
  }
  p = Process();
  p.site = ref.site;
  p.generation = ref.generation;
  p.known = true;
  p.live = true;
  p.baseline = ref.adopted;
  return &p;
}

void SiteCaps::HandedOff(const WorkerRef& ref) {
  Process* p = ProcessOf(ref);
  if (p == nullptr) return;
  const uint64_t before = Contribution(*p);
  ++p->handed;
  Account(*p, before);
}

void SiteCaps::Report(const WorkerRef& ref, uint64_t taken,
                      std::optional<uint64_t> open) {
  Process* p = ProcessOf(ref);
  if (p == nullptr) return;
  const uint64_t before = Contribution(*p);
  if (p->baseline) {
    // Adopted: what the earlier master handed it is not ours to know, so
    // nothing is taken as unread now. Wrong only by what was unread at
    // this moment, and then low (which refuses nothing), never high.
    p->handed = taken;
    p->baseline = false;
  }
  p->reports = true;
  p->taken = taken;
  p->open = open.value_or(0);
  Account(*p, before);
}

void SiteCaps::WorkerGone(int worker) {
  if (static_cast<size_t>(worker) >= processes_.size()) return;
  Process& p = processes_[worker];
  if (!p.live) return;
  const uint64_t before = Contribution(p);
  p.live = false;
  Account(p, before);
}

uint32_t SiteCaps::pending(int site) const {
  return static_cast<size_t>(site) < sites_.size() ? sites_[site].pending : 0;
}

uint64_t SiteCaps::open(int site) const {
  return static_cast<size_t>(site) < sites_.size() ? sites_[site].open : 0;
}

uint64_t SiteCaps::refused_pending(int site) const {
  return static_cast<size_t>(site) < sites_.size()
             ? sites_[site].refused_pending
             : 0;
}

uint64_t SiteCaps::refused_connections(int site) const {
  return static_cast<size_t>(site) < sites_.size()
             ? sites_[site].refused_connections
             : 0;
}

uint64_t SiteCaps::worker_open(int worker) const {
  return static_cast<size_t>(worker) < processes_.size()
             ? Contribution(processes_[worker])
             : 0;
}

bool SiteCaps::worker_reports(int worker) const {
  return static_cast<size_t>(worker) < processes_.size() &&
         processes_[worker].live && processes_[worker].reports;
}

}  // namespace master
}  // namespace ddv
