// WorkerPool: the worker processes of every site, their channels and the
// balance policy. Spawning, back-off and crash-loop rules come from
// supervise::ProcessTable; this class adds what the master needs per worker:
// a channel, the handoffs it has not taken yet, and its next batch.
//
// Each worker slot keeps ONE channel for its whole life: the master holds
// both ends and every (re)started process inherits the child end as fd 3.
// When a process dies, the master drains what it left unread in the child
// end (closing those fds) before the next process starts, so a replacement
// never receives a batch meant for its predecessor.
//
// A worker is retired (reload, fewer processes), restarted (rolling) or
// stopped (graceful stop) the same way: kShutdown on its channel, after
// which it takes no new connections, finishes what it has and exits. Only
// if it is still running after drain_timeout does it get SIGTERM, and
// SIGKILL term_grace later. A worker that has not said hello cannot be sent
// kShutdown: it gets SIGTERM at once. (One that never says hello does not
// last: the master's heartbeat kills a ddv worker silent for
// heartbeat_timeout.)
#ifndef DDV_SRC_MASTER_WORKER_POOL_H_
#define DDV_SRC_MASTER_WORKER_POOL_H_

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "src/base/unique_fd.h"
#include "src/config/config.h"
#include "src/handoff/channel.h"
#include "src/master/node_channel.h"
#include "src/supervise/cgroup.h"
#include "src/supervise/process_table.h"
#include "src/watchdog/worker_record.h"

namespace ddv {
namespace master {

struct WorkerPoolOptions {
  supervise::BackoffPolicy backoff;
  // Environment every worker gets besides its site's `env` and the DDV_*
  // variables (a clean base: PATH, HOME, LANG, ...).
  std::vector<std::pair<std::string, std::string>> base_env;
  // --drain_timeout: how long a worker asked to shut down (kShutdown) may
  // finish its connections before it gets SIGTERM, whatever asked (a
  // reload retiring it, a rolling restart, the master's graceful stop).
  absl::Duration drain_timeout = absl::Seconds(30);
  // After that SIGTERM (or the SIGTERM a worker that has not said hello
  // gets at once, after drain_timeout in that case), how long until SIGKILL.
  absl::Duration term_grace = absl::Seconds(5);
  // Each listener's name and port (the bound one, for port 0), in config
  // order: Node workers get their site's first as PORT.
  std::vector<std::pair<std::string, int>> listener_ports;
  // Under a watchdog: workers get no PR_SET_PDEATHSIG, since the watchdog
  // keeps their channels and the next master adopts them
  // (docs/lifecycle.md). A master alone takes its workers with it.
  bool workers_outlive_master = false;
  // Where workers' stdout and stderr go when their site names log files:
  // pipes to the log writer (docs/logs.md). Unset: the files, opened at
  // each start.
  supervise::ProcessTable::StdioRouter stdio_router;
  // ddv's cgroup subtree, when it has one (docs/isolation.md): each worker
  // starts in its site's cgroup. Not owned; null: the master's cgroup.
  const supervise::CgroupTree* cgroups = nullptr;
  // The ddv-worker package's preload (node/ddv-worker/preload.js): added
  // to every Node worker's NODE_OPTIONS as --require, so a stock app
  // refuses another site's Host with 421 (docs/node.md). Empty, or a file
  // that cannot be read (logged at start): not added.
  std::string node_preload;
  // Master shards (docs/shards.md): whether no shard can still send the
  // worker a batch. kShutdown waits for it (the worker is picked no more
  // meanwhile): a ddv worker stops reading its channel after kShutdown, so
  // a batch behind it would wait for the worker's exit. Unset: always.
  std::function<bool(int)> shutdown_gate;
};

struct Worker {
  int site = -1;
  int index = 0;         // within the site: "a#1" is index 1
  int process_slot = -1;
  uint32_t generation = 0;  // bumps at every (re)start: stale completions
  UniqueFd channel;         // master's end
  UniqueFd child_end;       // inherited by every process of this slot
  bool ready = false;       // said hello since its last start
  bool retired = false;     // removed by a reload or a smaller process count
  bool restart_pending = false;  // rolling restart: stopping, then start again
  // Sent kShutdown (or SIGTERM) for its current process: no new
  // connections; SIGTERM at drain_deadline_ns if it is still running.
  bool draining = false;
  int64_t drain_deadline_ns = 0;  // monotonic
  bool channel_full = false;     // last send got EAGAIN; waiting for POLLOUT
  int64_t last_heard_ns = 0;     // any frame from the process (monotonic)
  uint64_t heartbeat_sequence = 0;
  bool channel_poll_armed = false;
  // Queued or in a message being sent; in pidfd mode also sent and not yet
  // acknowledged (SCM_RIGHTS needs no acknowledgement: see master.md).
  uint32_t outstanding = 0;
  // Connections handed to this slot's processes, ever (ddvctl status).
  uint64_t handed_off = 0;
  std::vector<uint32_t> queue;    // connections for the next batch
  std::vector<uint32_t> sending;  // connections in the message in flight
  std::unique_ptr<handoff::ScmRightsMessage> message;
  bool send_in_flight = false;
  // Adopted from an earlier master: its DDV_MASTER_PID names that master,
  // so it cannot pull sockets from us with pidfd_getfd; it gets SCM_RIGHTS
  // batches (which every worker takes, whatever its mode) until it restarts.
  bool scm_rights_only = false;
  // What the current process was started with (SpecFingerprint): a spec
  // changed since by a reload must not pass for the process's own.
  std::string started_fingerprint;
  // The process the watchdog holds a record of, 0 for none.
  pid_t recorded_pid = 0;
  // update_server_conf bodies accepted from the current process, kept in
  // its watchdog record so that a next master can replay them.
  std::vector<std::string> conf_updates;
  // Set for a `runtime = "node"` slot: its channel is a SOCK_STREAM speaking
  // Node's cluster IPC (docs/node.md), and `ready` means the app listens.
  std::unique_ptr<NodeChannel> node;
  // Draining, with kShutdown still to send once shutdown_gate allows.
  bool shutdown_deferred = false;
};

class WorkerPool {
 public:
  static absl::StatusOr<std::unique_ptr<WorkerPool>> Create(
      const WorkerPoolOptions& options, const config::Config& config);
  ~WorkerPool();

  // Starts every slot that has no process (adopted ones have one).
  absl::Status StartAll();

  struct AdoptResult {
    int worker = -1;            // -1: the record is not one of our slots
    bool exited = false;        // the process is gone; its slot starts anew
    bool spec_changed = false;  // started with another command or env
    std::vector<std::string> conf_updates;  // to replay, in order
  };
  // Takes over a worker the watchdog kept from an earlier master, before
  // StartAll (docs/lifecycle.md). The record's slot (site and index) must
  // exist with no process yet, with the same runtime.
  AdoptResult Adopt(watchdog::WorkerRecord record, int64_t now_ns);
  // What the watchdog keeps of `worker`'s current process (no fds: the
  // caller sends pidfd, channel and child end along).
  watchdog::WorkerRecord DescribeForWatchdog(int worker) const;
  // The master goes without stopping its workers (an upgrade hands them
  // to the next one): forget the processes, signal none.
  void AbandonAll() { processes_->AbandonAll(); }

  // Reload and update_server_conf. Sites are never renumbered: a removed
  // site keeps its index with no workers.
  // Adds the site's worker slots without starting them (StartSite does).
  // The site always gets the next index, even when this fails: the error
  // says why it has no workers.
  absl::StatusOr<int> AddSite(const config::SiteConfig& site);
  absl::Status StartSite(int site);
  // Starts the site's next worker; returns its index in the pool.
  absl::StatusOr<int> AddWorker(int site, const config::SiteConfig& config);
  // Stops a worker for good (its connections go to the others).
  void Retire(int worker);
  // Asks the worker's current process to finish and exit within `grace`
  // (see the file comment). It is picked no more; the master moves its
  // queue elsewhere.
  void BeginShutdown(int worker, absl::Duration grace);
  // kShutdown with `grace`; false when it could not be sent.
  bool SendShutdown(int worker, absl::Duration grace);
  // Graceful stop of the master: every worker shuts down, none restarts.
  void ShutdownAll(absl::Duration grace);
  // Worker processes not yet reaped.
  int LiveProcesses() const { return processes_->live_count(); }
  // kShutdown frames sent, ever (the ddv_worker_shutdowns_total counter).
  uint64_t shutdowns_sent() const { return shutdowns_sent_; }
  // Grows or shrinks the site to `count` live (not retired) workers.
  absl::Status SetProcessCount(int site, const config::SiteConfig& config,
                               int count);
  // New command, environment, logs or credentials: every worker of the site
  // starts with `config` from its next start on.
  void UpdateSpecs(int site, const config::SiteConfig& config);
  // A reload changed the listeners: Node workers of `config`'s sites get
  // the new PORT from their next start on. Running ones keep the one they
  // were started with; routing does not depend on it (docs/node.md).
  void SetListenerPorts(std::vector<std::pair<std::string, int>> ports,
                        const config::Config& config);
  // Restarts the site's workers. Those with no process (back-off, failed,
  // done, stopped) start at once, all together; running ones are replaced
  // one at a time: the next is stopped only when every other worker of the
  // site is up and has said hello, or has no process and no restart coming.
  void RollingRestart(int site);
  int LiveWorkers(int site) const;

  int size() const { return static_cast<int>(workers_.size()); }
  // The preload Node workers are started with; empty: none.
  const std::string& node_preload() const { return options_.node_preload; }
  Worker& at(int worker) { return workers_[worker]; }
  const Worker& at(int worker) const { return workers_[worker]; }
  const std::string& site_id(int site) const { return site_ids_[site]; }
  const supervise::ProcessTable& processes() const { return *processes_; }

  // Whether a completion tagged (worker, generation) is still current.
  bool Current(uint32_t worker, uint32_t generation) const;
  bool Alive(int worker) const;

  // A live worker of `site` with the fewest handoffs not taken yet; round
  // robin among ties. Prefers workers that said hello. -1 when none is alive.
  int Pick(int site, int exclude = -1);

  // The process of `worker` exited (its pidfd became readable): reap it and
  // let the supervisor decide on a restart. Returns false if it had not.
  // A rolling restart's new process is started by ContinueRestart, which the
  // master calls only after draining the channel (see the file comment).
  bool Reap(int worker);
  void ContinueRestart(int worker);
  // A retired worker whose process is gone: close its channel for good.
  void ReleaseIfRetired(int worker);
  // Takes what the dead process left unread in its end of the channel: the
  // master's own frames, with the fds of SCM_RIGHTS batches still inside,
  // so those connections can go to another worker.
  std::vector<handoff::ReceivedFrame> DrainChildEnd(int worker);
  // Bytes of frames sent to `worker` that it has not read yet.
  size_t UnreadBytes(int worker) const;

  // Restarts processes whose back-off expired, SIGTERMs workers that
  // overran their drain, SIGKILLs those that overran that too. `now_ns` is
  // CLOCK_MONOTONIC.
  void Tick(int64_t now_ns);
  // Workers (re)started since the last call: the master arms their polls.
  std::vector<int> TakeRestarted();
  // Workers asked to drain since the last call: their records change.
  std::vector<int> TakeDrainStarted();

  int pidfd(int worker) const;
  pid_t pid(int worker) const;
  // Signals the worker's current process through its pidfd, never by pid:
  // an adopted worker is reaped by the watchdog the moment it exits, so its
  // pid may already name another process. No-op without a process.
  void Signal(int worker, int sig) const;
  // For `ddvctl status`: the process state, except that a worker draining
  // after kShutdown shows "stopping", as one sent SIGTERM does.
  absl::string_view StateName(int worker) const;
  bool SiteFailed(int site) const;

  // Blocking, for the end of the master: SIGTERM whatever still runs,
  // SIGKILL after `grace`, reap.
  void StopAll(absl::Duration grace);

 private:
  explicit WorkerPool(const WorkerPoolOptions& options);
  void AddNodePreload(
      std::vector<std::pair<std::string, std::string>>* env) const;
  supervise::ProcessSpec MakeSpec(int site, const config::SiteConfig& config,
                                  int index, int child_fd) const;
  void ProgressRollingRestarts();
  // Whether sibling `o` keeps a rolling restart from stopping the next
  // running worker of its site: it is being replaced, starting, not ready
  // yet, or waiting out a back-off. A worker with no process and no restart
  // coming (failed, done, stopped) holds nothing.
  bool HoldsRollingRestart(int o) const;
  int SitePort(const config::SiteConfig& site) const;
  // Reads and drops everything queued on a stream channel end, closing any
  // fds in it.
  static void DiscardStream(int fd);
  // Sets an environment variable in every spec of the site's slots.
  void SetSiteEnv(int site, absl::string_view name, const std::string& value);
  // Hex digest of what a process starts with, minus what changes with each
  // master (its pid), stable across builds: compared on adoption.
  static std::string SpecFingerprint(const supervise::ProcessSpec& spec);

  WorkerPoolOptions options_;
  std::unique_ptr<supervise::ProcessTable> processes_;
  // A deque: adding workers (reload, update_server_conf) must not move the
  // ones the loop holds references to.
  std::deque<Worker> workers_;
  std::vector<int> slot_to_worker_;
  std::vector<std::string> site_ids_;
  std::vector<std::vector<int>> site_workers_;
  std::vector<uint32_t> round_robin_;
  std::vector<std::string> ticket_secrets_;  // per site
  std::vector<int> rolling_;                 // workers waiting to restart
  std::string handoff_mode_;
  std::vector<int> restarted_;
  std::vector<int> drain_started_;
  uint64_t shutdowns_sent_ = 0;
};

}  // namespace master
}  // namespace ddv

#endif  // DDV_SRC_MASTER_WORKER_POOL_H_
