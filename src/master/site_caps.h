// SiteCaps: per-site admission in the master, so that a flooded or stuck
// site cannot take the master's table, or the fds in flight, from the
// others (docs/isolation.md). Two numbers per site:
//
//   pending  connections the master holds for the site: routed, waiting
//            for a worker, queued, being sent or offered (pidfd, Node);
//   open     connections handed to its workers and not yet closed, as the
//            workers report it: each worker's last reported `open`, plus
//            what the master handed it since that the worker has not
//            taken yet (handed - taken).
//
// A new connection of a site is refused (503 / TLS alert, by the caller)
// when pending has reached max_pending, or pending + open has reached
// max_connections. A worker that stops reading its channel (stopped,
// deadlocked) stops reporting, so everything handed to it since counts:
// its site reaches its cap, the others do not notice.
//
// A worker that never reports (a Node app, a program without the worker
// library) adds nothing to `open`: only its pending connections count.
// Pure bookkeeping, no I/O: unit-tested alone.
#ifndef DDV_SRC_MASTER_SITE_CAPS_H_
#define DDV_SRC_MASTER_SITE_CAPS_H_

#include <cstdint>
#include <optional>
#include <vector>

namespace ddv {
namespace master {

class SiteCaps {
 public:
  // Which worker process an event is about. The generation tells a new
  // process of the slot from the old one: its counts start afresh.
  struct WorkerRef {
    int worker = -1;
    int site = -1;
    uint32_t generation = 0;
    // Taken over from an earlier master, which handed it what it took so
    // far: its first report sets the baseline (nothing unread).
    bool adopted = false;
  };

  enum class Verdict {
    kAdmit,
    kOverPending,      // max_pending reached
    kOverConnections,  // max_connections reached
  };

  // At start and at every reload. 0: not set, no cap.
  void Configure(int site, uint32_t max_connections, uint32_t max_pending);

  // A connection routed to `site`: kAdmit counts it pending; a refusal is
  // counted for the site and changes nothing else.
  Verdict Admit(int site);
  // Pending without a check: a connection taken back from a dead worker
  // was admitted once already.
  void AddPending(int site);
  // The master let the connection go: handed off, refused or closed.
  void RemovePending(int site);

  // One connection handed to the worker's process (sent with SCM_RIGHTS,
  // acknowledged in pidfd mode, accepted by a Node worker).
  void HandedOff(const WorkerRef& ref);
  // The worker's report: connections it took so far, and the ones it has
  // open if it knows them.
  void Report(const WorkerRef& ref, uint64_t taken,
              std::optional<uint64_t> open);
  // Its process exited: whatever it held is closed (what it left unread
  // comes back through AddPending).
  void WorkerGone(int worker);

  uint32_t pending(int site) const;
  uint64_t open(int site) const;
  // The caps in force; 0 for none.
  uint32_t max_pending(int site) const;
  uint32_t max_connections(int site) const;
  uint64_t refused_pending(int site) const;
  uint64_t refused_connections(int site) const;
  // A worker's share of open(), and whether it reports at all (status).
  uint64_t worker_open(int worker) const;
  bool worker_reports(int worker) const;

 private:
  struct Site {
    uint32_t max_connections = 0;
    uint32_t max_pending = 0;
    uint32_t pending = 0;
    uint64_t open = 0;  // sum of its workers' Contribution
    uint64_t refused_pending = 0;
    uint64_t refused_connections = 0;
  };
  struct Process {
    int site = -1;
    uint32_t generation = 0;
    bool known = false;     // site and generation name a process
    bool live = false;      // ... that has not exited
    bool reports = false;   // has reported at least once
    bool baseline = false;  // adopted: the first report sets `handed`
    uint64_t handed = 0;
    uint64_t taken = 0;
    uint64_t open = 0;
  };

  Site& SiteAt(int site);
  // The process `ref` names, reset when it is a new one; nullptr when it
  // has exited (a late frame read after its end).
  Process* ProcessOf(const WorkerRef& ref);
  static uint64_t Contribution(const Process& p);
  // Moves the worker's contribution in its site's sum after a change.
  void Account(Process& p, uint64_t before);

  std::vector<Site> sites_;
  std::vector<Process> processes_;  // by worker index
};

}  // namespace master
}  // namespace ddv

#endif  // DDV_SRC_MASTER_SITE_CAPS_H_
