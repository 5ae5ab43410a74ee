// Master: the io_uring loop that accepts, peeks, sniffs, routes and hands
// connections to site workers, and supervises those workers.
//
// Path of a connection (docs/design.md, docs/master.md): multishot accept →
// peek (MSG_PEEK into a provided buffer; SO_RCVLOWAT + POLL_FIRST to wait
// for more; an absolute link timeout at the peek deadline) → sniff (PROXY,
// then HTTP or TLS) → route → a worker's next handoff batch (SCM_RIGHTS
// sendmsg, after which the master closes its copy; or a pidfd offer the
// worker pulls and acknowledges). The master holds both ends of every worker
// channel, so a worker that dies with batches unread loses nothing: the
// master reads them back and hands those sockets to another worker of the
// site.
//
// The loop (Run) is liburing's proxy.c: submit and wait, one handler per
// completion op, then one control point where what signals and ddvctl asked
// for is done, in a fixed order (nginx's master cycle).
#ifndef DDV_SRC_MASTER_MASTER_H_
#define DDV_SRC_MASTER_MASTER_H_

#include <sys/types.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "nlohmann/json.hpp"
#include "src/base/unique_fd.h"
#include "src/config/config.h"
#include "src/handoff/node_cluster.h"
#include "src/handoff/wire.h"
#include "src/logwriter/log_writer_client.h"
#include "src/master/accept_gate.h"
#include "src/master/access_log.h"
#include "src/master/listener_socket.h"
#include "src/master/clock.h"
#include "src/master/config_apply.h"
#include "src/master/connection.h"
#include "src/master/counters.h"
#include "src/master/labeled_counters.h"
#include "src/master/metrics_server.h"
#include "src/master/peek_ring.h"
#include "src/master/shard.h"
#include "src/master/shard_snapshot.h"
#include "src/master/silent_peeks.h"
#include "src/master/site_caps.h"
#include "src/master/site_views.h"
#include "src/master/worker_pool.h"
#include "src/route/route_table.h"
#include "src/sniff/sniff_status.h"
#include "src/supervise/cgroup.h"
#include "src/uring/buffer_ring.h"
#include "src/uring/op_tag.h"
#include "src/uring/ring.h"
#include "src/watchdog/held_gauge.h"
#include "src/watchdog/link.h"
#include "src/watchdog/service_notifier.h"

namespace ddv {
namespace master {

// The exit status of a master that handed its workers over (an upgrade):
// the watchdog re-executes only on this one, never on a plain stop.
inline constexpr int kExitHandedOver = 3;

// The most connections one handoff message carries (--handoff_batch).
inline constexpr uint32_t kMaxHandoffBatch = handoff::kMaxEntriesPerBatch;

struct MasterOptions {
  uring::RingOptions ring;
  uint32_t peek_buffers = 1024;      // power of two
  uint32_t peek_buffer_size = 4096;  // most heads fit; bigger ones grow
  uint32_t max_connections = 16384;  // below the 20000 fd limit
  // How listeners are bound (when the master binds them: alone, or missing
  // from --listen_fds) and the TCP_DEFER_ACCEPT hold the peek deadline
  // allows for.
  ListenOptions listen;
  absl::Duration linger = absl::Seconds(1);       // after a refusal
  absl::Duration worker_wait = absl::Seconds(1);  // for a live worker
  uint32_t handoff_batch = 32;  // connections per message, 1..kMaxHandoffBatch
  // Connections a Node worker may hold unanswered (docs/node.md).
  uint32_t node_max_unaccepted = kNodeMaxUnaccepted;
  // The master probes each worker this often; a worker that has said
  // nothing for heartbeat_timeout (a stopped or deadlocked process) is
  // killed, its connections go to another worker and it is restarted.
  absl::Duration heartbeat_interval = absl::Seconds(5);
  absl::Duration heartbeat_timeout = absl::Seconds(20);
  WorkerPoolOptions workers;
  // The command line's [master] overrides, which every reload applies to
  // the file it loads before planning.
  MasterOverrides overrides;
  // The last good config (config_snapshot.h): after every successful start
  // and reload the master writes the text it applied here. "" writes none.
  std::string config_snapshot;
  // The link to the watchdog (docs/lifecycle.md), -1 when the master runs
  // alone. The master adopts the workers the watchdog kept and records
  // each worker it starts there, so that they outlive it.
  int watchdog_fd = -1;
  // The link to the log writer (docs/logs.md), for SIGUSR1 and `ddvctl
  // reopen`; not owned. Null: no writer, nothing to reopen.
  logwriter::LogWriterClient* log_writer = nullptr;
  // The watchdog's name for each inherited listener socket, in config
  // order ("" or absent: its own name), for the start commit.
  std::vector<std::string> listeners_held_as;
  // systemd, for a master alone (docs/lifecycle.md, "systemd"): where it
  // sends READY=1 and the rest itself. Under a watchdog the watchdog does,
  // from what the master tells it over the link.
  watchdog::ServiceNotifierOptions notify;
  // Event loops (docs/shards.md): this one, the primary, plus shards - 1
  // threads, each accepting on its own socket of every listener, that
  // route by themselves.
  uint32_t shards = 1;
  // Tests: shard 1's first loop fails after accepting this many
  // connections (--shard_fault_after); its replacement runs clean.
  uint64_t shard_fault_after = 0;
  bool shard_fault_hangs = false;  // --shard_fault=hang
  bool shard_fault_lost = false;   // --shard_fault=lost: not replaced
  // Tests: a master that removes this file at start hangs before it
  // serves (--start_hang_token); "" or no file: none does.
  std::string start_hang_token;
  // Tests: neither says it sends heartbeats nor sends them, as a master
  // from before the watchdog's hang check (--fault_no_heartbeats).
  bool fault_no_heartbeats = false;
  // The listeners came from socket activation: a reload may not add,
  // remove, rename or move one. Under a watchdog, its adopt_end says so.
  bool socket_activated = false;
};

class Master {
 public:
  // Takes the listening sockets (one per config listener, in order); an
  // empty one is bound at start, through the watchdog when there is one.
  // `listeners`: a socket per config listener; `group_members`, when given,
  // the other sockets of each one's SO_REUSEPORT group (docs/shards.md).
  static absl::StatusOr<std::unique_ptr<Master>> Create(
      const MasterOptions& options, config::Config config,
      std::vector<UniqueFd> listeners,
      std::vector<std::vector<UniqueFd>> group_members = {});
  ~Master();

  // Runs until SIGTERM/SIGINT (graceful drain) or a fatal error.
  absl::Status Run();
  // Run() ended by handing the workers over to the next master (an
  // upgrade): the process exits with kExitHandedOver.
  bool handed_over() const { return handing_over_; }

  // JSON for `ddvctl status --json`, Prometheus text for `ddvctl metrics`.
  std::string StatusJson() const;
  std::string MetricsText() const;
  const config::Config& config() const { return config_; }

 private:
  // The op of a completion, in its OpTag. Each has exactly one handler.
  enum Op : uint8_t {
    kOpAccept = 1,       // index: listener
    kOpPeek,             // index: connection (generation checked)
    kOpPeekTimeout,      // index: connection (generation checked)
    kOpRefuseSend,       // index: connection (generation checked)
    kOpLingerRecv,       // index: connection (generation checked)
    kOpLingerTimeout,    // index: connection (generation checked)
    kOpClose,            // index: connection (generation checked)
    kOpHandoffSend,      // index: worker; the channel outlives processes
    kOpChannelPoll,      // index: worker; the channel outlives processes
    kOpWorkerExitPoll,   // index: worker (generation: its process)
    kOpSignalPoll,       // the one signalfd
    kOpControlPoll,      // the one control socket
    kOpCancel,           // nothing to do on completion
    kOpChannelWritable,  // index: worker; the channel outlives processes
    kOpControlRecv,      // index: control client (generation checked)
    kOpControlTimeout,   // index: control client (generation checked)
    kOpWatchdogPoll,     // the one link to the watchdog
    kOpMetricsPoll,      // the metrics socket (generation: which socket)
    kOpScrapeRecv,       // index: metrics client (generation checked)
    kOpScrapeSend,       // index: metrics client (generation checked)
    kOpAccessLogWrite,   // index: access log file
    kOpShardInbox,       // the eventfd shards wake the primary with
    kOpHandoffClose,     // index: worker; the close linked to a handoff send
  };

  // Graceful stop, step by step (BeginStop, then StopStep every turn).
  enum class StopPhase : uint8_t {
    kRunning,
    kDrainingConnections,  // accepts cancelled; undecided ones finish
    kStoppingWorkers,      // kShutdown sent; waiting for them to exit
    kDone,
  };

  // What signals, ddvctl and worker RPCs asked the master to change. Their
  // handlers only record it here; RunControlPoint acts on it once per loop
  // turn, after the completion batch, so config_ and routes_ never change
  // under a handler.
  struct PendingControl {
    bool stop = false;    // SIGTERM, SIGINT, `ddvctl stop`
    bool reload = false;  // SIGHUP, `ddvctl reload`
    bool reopen = false;  // SIGUSR1 (`ddvctl reopen` is in reopen_clients)
    // Control clients waiting for the outcome of what they asked.
    std::vector<uint32_t> stop_clients;
    std::vector<uint32_t> reload_clients;
    bool upgrade = false;                  // SIGUSR2, `ddvctl upgrade`
    std::vector<uint32_t> upgrade_clients;
    std::vector<uint32_t> reopen_clients;
    struct Restart {
      uint32_t client;
      std::string site;
    };
    std::vector<Restart> restarts;  // `ddvctl restart SITE`
    struct ServerConf {
      int worker;
      uint32_t generation;  // of the asking process
      uint64_t request_id;
      std::string body;
    };
    std::vector<ServerConf> server_conf;  // update_server_conf RPCs
    // Worker processes that exited (slot, generation): their claims go.
    std::vector<std::pair<int, uint32_t>> exited;
  };

  Master(const MasterOptions& options, config::Config config);

  absl::Status Init(std::vector<UniqueFd> listeners,
                    std::vector<std::vector<UniqueFd>> group_members);
  io_uring_sqe* Sqe(Op op, uint32_t index, uint32_t generation = 0);

  // The dispatch: one case per op, each calling that op's handler.
  void OnCompletion(io_uring_cqe* cqe);

  // Connection path (master_connection.cc).
  // Once per loop turn: held connections take the free slots, then the
  // accept gate arms or cancels each listener's accept.
  void AdmitHeld();
  void UpdateAccepts(int64_t now_ns);
  void SubmitAccept(uint32_t listener, bool multishot);
  void CancelAccept(uint32_t listener);
  void OnAccept(uint32_t listener, io_uring_cqe* cqe);
  // Gives an accepted socket a slot (there must be one) and starts its peek.
  // A connection a shard forwarded (docs/shards.md): when it was accepted,
  // whether its peek deadline passed there, and whether the shard peeked
  // it (TCP_DEFER_ACCEPT's hold then counted against the deadline).
  struct Forwarded {
    int64_t accept_ns = 0;
    bool timed_out = false;
    bool peeked = false;
    bool silent = false;  // timed out with nothing received
    int64_t deadline_ns = 0;  // the shard's deadline; 0: from accept_ns
  };
  void Admit(UniqueFd fd, uint32_t listener, const Forwarded* forwarded = nullptr);
  // The connection a completion is for, with its in-flight count taken
  // down; nullptr (counted, logged at VLOG 1) when the slot was reused.
  Connection* CompletedOp(const uring::OpTag& tag);
  void SubmitPeek(uint32_t index, bool dont_wait);
  void OnPeek(const uring::OpTag& tag, io_uring_cqe* cqe);
  void OnPeekTimeout(const uring::OpTag& tag, io_uring_cqe* cqe);
  // Sniffs `prefix`; returns true when the connection moved on (routed,
  // refused or closed), false when it needs more bytes.
  bool Decide(uint32_t index, absl::string_view prefix);
  void Route(uint32_t index, int site);
  void RefuseUnparsable(uint32_t index, sniff::SniffStatus status);
  // Refusal: send → shutdown(SHUT_WR) → read and discard until EOF or the
  // linger time → close (nginx's lingering close).
  void Refuse(uint32_t index, Refusal refusal);
  void SubmitRefusal(uint32_t index);
  void OnRefuseSent(const uring::OpTag& tag, io_uring_cqe* cqe);
  void SubmitLinger(uint32_t index);
  void OnLingerRecv(const uring::OpTag& tag, io_uring_cqe* cqe);
  void OnLingerTimeout(const uring::OpTag& tag, io_uring_cqe* cqe);
  void Close(uint32_t index);
  void OnClosed(const uring::OpTag& tag, io_uring_cqe* cqe);
  void MaybeFree(uint32_t index);

  // Listeners (master_listeners.cc).
  // At start: binds the listeners `inherited` lacks and, under a watchdog,
  // tells it the set this master runs (its commit). `members`: the rest of
  // each inherited socket's group.
  absl::Status TakeListeners(std::vector<UniqueFd> inherited,
                             std::vector<std::vector<UniqueFd>> members);
  // With shards, once the master knows whether the listeners are systemd's
  // (adopt_end): each listener's group gets a socket per loop, and the
  // watchdog is told its new set (docs/shards.md, "One socket per loop").
  void GrowListenerGroups();
  // Binds sockets into `listener`'s SO_REUSEPORT group, whose first socket
  // is `first`, until `members` has one per shard; `ids` gets the
  // watchdog's id of each (for its commit). One that cannot be bound
  // leaves the shards without one accepting on `first` (logged).
  void GrowGroup(const config::ListenerConfig& listener, int first,
                 std::vector<UniqueFd>* members, std::vector<int64_t>* ids);
  // A shard that failed and could not be replaced: its socket of each
  // group stops listening (and leaves the group), and groups grow no
  // socket for it or any shard above it any more.
  void DetachLostShard(int id);
  // Tells the watchdog the running listeners' sockets: every one of each
  // group that still listens, plus `bound[i]` for config listener i.
  void CommitGroups(const std::vector<std::vector<int64_t>>& bound);
  // The shards running now (or to be started), by id.
  bool ShardRuns(int id) const;
  // Whether shards accept on listener `l`'s first socket too, for the
  // accept gate (AcceptGate::set_shared); after every listener change.
  void UpdateAcceptSharing();
  // A new socket for `listener`: the watchdog binds it (and keeps it until
  // the commit; `watchdog_id` names it then), or the master when alone.
  // `beside`: an old socket on the same port, about to close, allows it
  // (ListenSpec::reuse_port).
  absl::StatusOr<UniqueFd> AcquireListener(
      const config::ListenerConfig& listener, bool beside,
      int64_t* watchdog_id);
  // The same for any socket `spec` describes (a group's other sockets).
  absl::StatusOr<UniqueFd> AcquireSocket(const ListenSpec& spec,
                                         int64_t* watchdog_id);
  // The slot running config listener `config_index` (it must exist).
  uint32_t SlotOfConfigIndex(int config_index) const;
  // A reload's new sockets, one per plan.listeners.next entry that needs
  // one. All or nothing: on failure none is kept and the watchdog drops
  // what it bound. Changes nothing else.
  struct NewListener {
    UniqueFd fd;
    int64_t watchdog_id = -1;
    std::vector<UniqueFd> members;    // the rest of its group (GrowGroup)
    std::vector<int64_t> member_ids;  // the watchdog's ids of them
  };
  absl::StatusOr<std::vector<NewListener>> AcquireListeners(
      const ReloadPlan& plan);
  void AbandonListeners(std::vector<NewListener> acquired);
  // The watchdog's new set: `next`'s listeners, each with a socket the
  // watchdog holds under a running listener's name, or one it bound.
  void CommitListeners(const std::vector<config::ListenerConfig>& next,
                       const std::vector<std::string>& held_as,
                       const std::vector<NewListener>& acquired);
  // Carries the plan out on the listener slots (cannot fail): kept slots
  // take their new config, new ones are appended, retired ones stop
  // accepting and keep `old_routes` for what they accepted.
  void ApplyListeners(const ReloadPlan& plan,
                      std::vector<NewListener> acquired,
                      std::shared_ptr<const route::RouteTable> old_routes);
  // Retired listeners whose accept has stopped: what waits in their
  // backlog is taken, then the socket is closed. Every loop turn.
  void CloseDrainedListeners();
  void ReleaseRetiredRoutes();
  void DrainListener(uint32_t listener);
  // A connection accepted on `listener`: a slot now, or held for the next.
  void TakeAccepted(UniqueFd fd, uint32_t listener);
  // The route for a connection on `listener`: the running table, or for a
  // retired listener the one it had.
  route::RouteResult RouteOn(
      uint32_t listener, absl::string_view host,
      absl::Span<const absl::string_view> offered_alpn = {}) const;
  // Node workers get their site's first listener's port as PORT.
  void UpdateListenerPorts(const config::Config& config);

  // Worker side (master_handoff.cc).
  // Puts a routed connection in the queue of a worker of c.site (not
  // c.worker if another is alive), or makes it wait for one.
  void QueueForWorker(uint32_t index);
  // Connections queued for a worker that was asked to shut down go to
  // another worker instead.
  void RequeueFromDraining(int worker);
  void FlushBatches();
  void SubmitBatch(int worker);
  void OnHandoffSent(int worker, io_uring_cqe* cqe);
  void OnHandoffClosed(int worker, io_uring_cqe* cqe);
  void OnChannelPoll(int worker, io_uring_cqe* cqe);
  void OnChannelWritable(int worker);
  void OnChannelReadable(int worker);
  void OnAcknowledged(int worker, uint64_t id);
  void OnPullFailed(int worker, uint64_t id, int error);
  void ReleaseRetired(int worker);
  // ReleaseRetired for every retired worker with no process: one retired
  // in back-off or failed has no exit to wait for.
  void ReleaseRetiredWithoutProcess();
  void OnWorkerExitPoll(const uring::OpTag& tag);
  void OnWorkerExit(int worker);
  void ReclaimFromWorker(int worker);
  void ArmWorker(int worker);
  void ArmWorkerChannel(int worker);
  void ReclaimFromDeadWorkers();
  void RecoverUnread(int worker);
  void OnWorkerRequest(int worker, const handoff::Request& request);
  void ForwardMessage(int worker, handoff::Message message);
  void Reply(int worker, uint64_t id, absl::Status status,
             const std::string& body);
  void CheckWaiting(int64_t now_ns);
  void CheckHeartbeats(int64_t now_ns);

  // Node.js workers: the cluster primary's side (master_node.cc).
  void FlushNode(int worker);
  void OnNodeReadable(int worker);
  void OnNodeQueryServer(int worker, const handoff::node::ChildMessage& m);
  void OnNodeAccepted(int worker, int64_t ack, bool accepted);
  void OnNodeUserMessage(int worker, const std::string& line);
  // Queues and flushes; false when the worker's outbox is full.
  bool SendToNode(int worker, std::string line);
  static std::string NodeReplyLine(uint64_t id, const absl::Status& status,
                                   const std::string& body);
  static std::string NodeMessageLine(const handoff::Message& message);
  static std::string NodePingLine(uint64_t seq);

  // Site views (master_site_view.cc): which names route to each worker's
  // site, sent before its first connection and after every change, for
  // its 421 check (docs/isolation.md). Once per loop turn, before the
  // next batches go out.
  void UpdateSiteViews();
  // The route table listener slot `listener` goes by (null: released).
  const route::RouteTable* RoutesOfSlot(size_t listener) const;
  // Sends `worker` its site's current view; false when its channel (or
  // Node outbox) is full.
  bool SendSiteView(int worker);
  // Whether `worker` still lacks its site's view (a send found its channel
  // full): its connections wait in its queue until the view went out, so a
  // worker never gets a connection it would check by an older view.
  bool SiteViewPending(int worker) const;
  // Queued connections whose name routes elsewhere since: routed again.
  void RerouteQueued();

  // Signals, the control socket and the control point (master_control.cc).
  absl::Status InitSignals();
  void ArmSignalPoll();
  void ArmControlPoll();
  void OnSignalPoll(io_uring_cqe* cqe);
  void OnControlPoll(io_uring_cqe* cqe);
  void OnSignals();
  void OnControlReadable();
  void SubmitControlRecv(uint32_t slot);
  void OnControlRecv(const uring::OpTag& tag, io_uring_cqe* cqe);
  void OnControlTimeout(const uring::OpTag& tag);
  // The SO_PEERCRED check of a new control client (control_access.h).
  void CheckControlPeer(uint32_t slot);
  void LogControlRefusal(uint32_t slot);
  // The socket file's mode and group from `master` ([master]).
  absl::Status ApplyControlSocketAccess(const config::MasterConfig& master);
  // Answers `line` now, or records it in pending_ and keeps the client
  // until the control point answers it.
  void OnControlCommand(uint32_t slot, absl::string_view line);
  void ReplyToControlClient(uint32_t slot, const std::string& reply);
  // The one place the master acts on pending_, in nginx's order: stop,
  // claims of exited workers, reload, worker conf updates, restarts,
  // upgrade, reopen.
  void RunControlPoint();
  absl::Status Reload();
  // Asks the log writer to reopen every log file; each `ddvctl reopen`
  // client is handed to it with the request, and answered by it.
  void ReopenLogs(const std::vector<uint32_t>& clients);
  // Writes config_.text to options_.config_snapshot; a failure is logged,
  // not fatal (the running config is good either way).
  void SaveConfigSnapshot();
  void BeginStop();
  // What a stop and a handover share: no more accepts, then StopStep.
  void StopAccepting();
  // Moves the graceful stop on; returns true when Run() may return.
  bool StopStep(int64_t now_ns);

  // Config changes (master_reconfigure.cc).
  absl::Status ApplyConfig(const config::Config& loaded);
  absl::Status UpdateServerConf(int worker, const std::string& body);
  // Drops the claims of worker processes that exited, and routes without
  // them.
  void DropClaimsOfExited(
      const std::vector<std::pair<int, uint32_t>>& exited);
  void LogDroppedClaim(const Claim& claim, absl::string_view why);

  // The watchdog link (master_watchdog.cc).
  // Takes over the workers the watchdog offers, before any is started.
  absl::Status AdoptWorkers();
  // The next message from the watchdog: one set aside while waiting for a
  // reply, else one read from the link (waiting until `deadline`).
  absl::StatusOr<watchdog::LinkMessage> ReceiveFromWatchdog(
      absl::Time deadline);
  // Sends `request` (after whatever the link still holds) and waits for
  // the watchdog's reply, {"op": reply_op} with the same "seq", for a few
  // seconds at most: a reload is not the hot path. Other messages read
  // meanwhile wait in watchdog_inbox_: the worker offers at start (for
  // AdoptWorkers), later an upgrade's answer (HandleWatchdogInbox). A
  // reply that comes too late is dropped by HandleWatchdogMessage.
  absl::StatusOr<watchdog::LinkMessage> AskWatchdog(nlohmann::json request,
                                                    absl::string_view reply_op);
  // What the watchdog sends a running master (an upgrade's answer), from
  // the link's poll or from the inbox once the loop turn allows.
  void HandleWatchdogMessage(watchdog::LinkMessage message);
  void HandleWatchdogInbox();
  // Replays the update_server_conf bodies adopted workers had accepted,
  // once the routes exist.
  void ReplayAdoptedConfUpdates();
  std::vector<std::pair<int, std::vector<std::string>>> adopted_conf_updates_;
  // Tells the watchdog about `worker`'s new process, its readiness, or
  // that its slot is gone for good.
  void RecordWorker(int worker);
  void RecordWorkerReady(int worker);
  void ForgetWorker(int worker);
  void SendToWatchdog(nlohmann::json body, std::vector<int> fds);
  void ArmWatchdogPoll();
  void OnWatchdogPoll(io_uring_cqe* cqe);
  // `ddvctl upgrade`, SIGUSR2: asks the watchdog, which checks the binary
  // on disk and answers "handover" (BeginHandover) or "upgrade_failed".
  void RequestUpgrade(int client);
  // --start_hang_token: the one master that removes the token hangs here,
  // in its start, until killed or until the watchdog is gone (then an
  // error). Otherwise returns at once.
  absl::Status HangAtStartIfAsked();
  // Gives up on an upgrade the watchdog never answered (30 s).
  void CheckUpgradeAnswer(int64_t now_ns);
  // Stops accepting, hands off what it holds, then Run() returns leaving
  // every worker running for the next master (docs/lifecycle.md).
  void BeginHandover();
  // Retries what a full link refused; called every loop turn.
  void FlushWatchdogLink();

  // What the service does, for systemd (docs/lifecycle.md, "systemd"):
  // sent to the watchdog, or by a master alone through service_.
  // Every loop turn: "serving" once every worker is up (or
  // kServingWait has passed), then the status when it changes; a master
  // alone also pings systemd's watchdog.
  void ReportServiceState(int64_t now_ns);
  void ReportReloading();
  void ReportReloaded(const absl::Status& status);
  void ReportStopping();
  void TellService(nlohmann::json message);
  // Every wanted worker said hello, or its site failed.
  bool WorkersUp() const;
  // "master 123: 3 sites, 4/4 workers ready; failed: x" for STATUS=.
  std::string ServiceSummary() const;

  // Status and metrics (master_status.cc).
  Counters CountersNow() const;
  // Whether the front door is up: every listener has its socket and every
  // site a live worker that said hello, and no stop is under way. `why`
  // gets the reasons when not.
  bool Healthy(std::string* why) const;

  // Metrics and health over HTTP, outcomes, the access logs
  // (master_metrics.cc; docs/metrics.md).
  // How the master was done with connection `index` (before it closes or
  // refuses it: the access log reads its peer). `now_ns` 0: read here when
  // needed.
  void RecordOutcome(uint32_t index, Outcome outcome, int64_t now_ns = 0);
  // The same for a connection refused before it had a slot (an untrusted
  // PROXY peer), from its listener and peer.
  void RecordRefusedAtAccept(uint32_t listener, Outcome outcome,
                             const sockaddr_storage& peer);
  // At start: the metrics socket and the access logs. Neither can fail the
  // start: a metrics address that cannot be bound is retried every second,
  // an access log that cannot be opened is logged and left out until a
  // reopen.
  void StartObservability();
  absl::StatusOr<UniqueFd> BindMetrics(const std::string& address);
  void UseMetricsSocket(UniqueFd fd, const std::string& address);
  void ArmMetricsPoll();
  void OnMetricsPoll(const uring::OpTag& tag, io_uring_cqe* cqe);
  void AcceptScrapes();
  ScrapeClient* CompletedScrapeOp(const uring::OpTag& tag);
  void SubmitScrapeRecv(uint32_t slot);
  void OnScrapeRecv(const uring::OpTag& tag, io_uring_cqe* cqe);
  void Answer(uint32_t slot, const ScrapeRequest& request);
  void SubmitScrapeSend(uint32_t slot);
  void OnScrapeSent(const uring::OpTag& tag, io_uring_cqe* cqe);
  // Shuts the client's socket down so its op in flight ends; it closes
  // then, counted as `outcome` (unless its answer was already out).
  void CutScrape(uint32_t slot, ScrapeOutcome outcome);
  void CloseScrape(uint32_t slot);
  // Every loop turn: deadlines, clients waiting in the backlog, a bind to
  // retry.
  void CheckScrapes(int64_t now_ns);
  // The access logs: each listener slot's file (by its config, a retired
  // slot by the running listener of its name).
  void BindAccessLogs();
  void FlushAccessLogs();
  void OnAccessLogWritten(uint32_t file, io_uring_cqe* cqe);
  void ReopenAccessLogs();
  // A stop waits (2 s at most) for the access logs' writes in flight.
  bool AccessLogsDrained(int64_t now_ns);
  // A reload's share: a new metrics socket when the address changed, the
  // access logs the new listeners name opened. Done before anything
  // changes; fails the reload with the reason.
  struct ObservabilityChange {
    bool metrics_changes = false;
    std::string metrics_address;
    UniqueFd metrics_fd;
  };
  absl::StatusOr<ObservabilityChange> PrepareObservability(
      const config::Config& next);
  void CommitObservability(ObservabilityChange change);
  // A connection reached worker `w` / was refused 503 for want of a worker
  // of `site`: the global counter, and the per-site (and per-worker) ones
  // `ddvctl status --json` shows and `ddvctl top` turns into rates.
  void CountHandedOff(int w);
  void CountUnavailable(int site);

  // Shards (master_shards.cc, docs/shards.md).
  // At start, once the workers have their views: the other loops.
  absl::Status StartShards();
  // What the shards may route by now; published (a new epoch) only when it
  // differs from the last. Every loop turn.
  void PublishShardSnapshot();
  // Without the listeners' configs, which publishing copies in.
  std::shared_ptr<ShardSnapshot> BuildShardSnapshot() const;
  // Whether the primary would let a shard send to `worker` now.
  bool ShardTarget(int worker) const;
  void ArmShardInbox();
  ShardOptions ShardOptionsFor(int id);
  // What the shards forwarded and counted; a failed shard is replaced.
  // Every loop turn, and when a shard wakes the primary.
  void TakeShardReports();
  // Every shard reports having adopted `epoch` (or a later one).
  bool ShardsAdopted(uint64_t epoch) const;
  // Whether every shard's loop turned since the last call (once a second,
  // before `alive` goes to the watchdog): a stuck shard withholds it, and
  // the watchdog replaces the master (docs/lifecycle.md).
  bool ShardsTurned();
  // No shard may still accept on listener slot `listener` (its socket may
  // close).
  bool ShardsQuietOn(uint32_t listener) const;
  // Some shard holds a connection accepted on listener slot `listener`.
  bool ShardsHoldOn(uint32_t listener) const;
  // No shard may still send to `worker` (its channel may close, and what
  // it left unread is all there will be).
  bool ShardsDoneWith(int worker) const;
  // Shards hold no connection and accept nothing (a stop may go on).
  bool ShardsDrained() const;
  nlohmann::json ShardsJson() const;
  std::string ShardsMetricsText() const;

  // Isolation (master_isolation.cc, docs/isolation.md).
  // At start, before any worker: ddv's cgroup subtree when it has one
  // (else says once why not), each site's cgroup, and the caps.
  void InitIsolation();
  // A reload: the sites' cgroups (memory.max and cpu.weight apply to the
  // running workers) and caps, from `next`.
  void ApplyIsolation(const config::Config& next);
  // Route's gate: true when `site` may take the connection, which then
  // counts as pending; false after refusing it (503, TLS alert).
  bool AdmitToSite(uint32_t index, int site);
  // The master let the connection go (handed off, refused, closed).
  void ReleaseSite(Connection& c);
  SiteCaps::WorkerRef CapsRef(int worker) const;
  // A worker's `connections` notification (docs/handoff.md).
  void OnConnectionsReport(int worker, const std::string& body);
  // A worker's process exited: its connections are gone; the cgroup of a
  // removed site goes with its last worker.
  void OnSiteWorkerExit(int worker);
  // The site's limits, cgroup usage and caps, for `ddvctl status --json`.
  nlohmann::json SiteIsolationJson(int site) const;

  // A ddvctl connection, served through the ring. A slot is reused only
  // when its fd is closed and none of its ops is in flight.
  struct ControlClient {
    UniqueFd fd;
    char buffer[512];
    size_t length = 0;
    uint32_t generation = 0;
    uint8_t inflight = 0;
    bool resubmit = false;
    bool awaiting_control_point = false;  // its reply comes from there
    __kernel_timespec deadline{};
    // The peer check's verdict at accept (MayControl), and who it was, for
    // the refusal and its log line.
    bool allowed = false;
    int64_t peer_uid = -1;  // -1: the kernel could not say
    pid_t peer_pid = 0;
  };

  ControlClient* CompletedControlOp(const uring::OpTag& tag);

  MasterOptions options_;
  config::Config config_;  // the file's (and RPC process counts)
  // Hosts and defaults workers claimed with update_server_conf: routed
  // with config_ (WithClaims), re-checked at every reload, dropped when
  // the claiming process exits.
  std::vector<Claim> claims_;
  std::shared_ptr<const route::RouteTable> routes_;
  // ~Master tears these two down first, before the memory their ops use.
  std::unique_ptr<uring::Ring> ring_;
  std::unique_ptr<uring::BufferRing> peek_buffers_;
  ConnectionTable connections_;
  // One slot per listener the master has accepted on, by its index: the
  // index connections, accept ops, the accept gate and handoff entries
  // (listener_index) carry. Stable for the master's life: a listener a
  // reload adds, or changes so that its connections are handled
  // differently (address, protocol, PROXY), gets the next index, and the
  // old one stays, retired, for connections accepted on it.
  struct ListenerSlot {
    config::ListenerConfig config;  // how its connections are handled
    UniqueFd fd;  // empty once closed, or passed on to the slot after it
    // The rest of its SO_REUSEPORT group, one per shard, shard 1's first
    // (docs/shards.md, "One socket per loop"); they go with `fd`.
    std::vector<UniqueFd> members;
    int config_index = -1;  // in config_.listeners; -1 once retired
    // Retired: the route table it had and its index there, so what it
    // accepted is routed as it would have been.
    std::shared_ptr<const route::RouteTable> routes;
    int route_index = -1;
    bool drain = false;  // retired with its own socket: drain, then close
  };
  // A slot's socket and the rest of its group.
  static std::vector<int> GroupSockets(const ListenerSlot& slot);
  std::vector<ListenerSlot> listeners_;
  AcceptGate accept_gate_;
  std::vector<AcceptGate::Action> accept_actions_;  // scratch for the gate
  // Sockets accepted after the table filled, before the pause took effect
  // (AcceptGate bounds how many). Never reset: each takes the next free
  // slot, before anything new is accepted.
  struct HeldConnection {
    UniqueFd fd;
    uint32_t listener;
    std::optional<Forwarded> forwarded = std::nullopt;  // a shard's
  };
  std::deque<HeldConnection> held_;
  std::unique_ptr<WorkerPool> workers_;
  std::vector<uint32_t> waiting_;      // kWaitingForWorker connections
  std::vector<uint32_t> no_buffer_;    // peeks to retry when buffers return
  SilentPeeks silent_;  // peeks of connections that sent nothing yet
  std::vector<char> linger_scratch_;   // discarded bytes of refused peers
  UniqueFd signal_fd_;
  UniqueFd control_fd_;
  UniqueFd watchdog_link_;
  // Connections held, published every loop turn for the watchdog.
  watchdog::HeldGauge held_gauge_;
  struct PendingLinkMessage {
    nlohmann::json body;
    std::vector<UniqueFd> fds;  // our own copies until sent
  };
  std::deque<PendingLinkMessage> watchdog_outbox_;
  // Read while waiting for a reply, for ReceiveFromWatchdog (at start: the
  // workers offered).
  std::deque<watchdog::LinkMessage> watchdog_inbox_;
  uint64_t watchdog_seq_ = 0;  // of the last request
  bool adopted_ = false;       // AdoptWorkers has run
  std::vector<uint32_t> upgrade_clients_;  // waiting for the watchdog
  bool upgrade_requested_ = false;
  int64_t upgrade_requested_ns_ = 0;
  bool handing_over_ = false;
  // systemd (ReportServiceState): a master alone's own notifier; what was
  // reported last.
  watchdog::ServiceNotifier service_;
  bool serving_reported_ = false;
  std::string service_status_;
  int64_t next_service_status_ns_ = 0;
  // The path bound at start: the one a reload's mode or group applies to.
  std::string control_socket_path_;
  // Refused control clients are logged at most once per 10 s, with how
  // many were refused since (a local user looping on ddvctl must not fill
  // the log).
  int64_t control_refusal_logged_ns_ = 0;
  uint64_t control_refusals_unlogged_ = 0;
  std::array<ControlClient, 16> control_clients_;
  // Every control slot was busy at the last accept: clients wait in the
  // backlog and RunControlPoint accepts them when a slot frees.
  bool control_backlog_waiting_ = false;
  PendingControl pending_;
  struct SiteViewState {
    SiteViewBook book;
    // Per listener slot: the table the views were built from, and the
    // address it was bound to.
    std::vector<const route::RouteTable*> built_from;
    std::vector<std::string> addresses;
    bool due = false;  // some worker process may lack its view
    uint64_t next_request_id = 1;
  };
  SiteViewState site_views_;
  // Node's server data per site and server key (master_node.cc).
  absl::flat_hash_map<std::string, std::string> node_server_data_;
  // Per target site id: whose turn it is for a message to any worker.
  absl::flat_hash_map<std::string, uint32_t> message_round_robin_;
  int64_t next_heartbeat_ns_ = 0;
  Counters counters_;
  // Per listener and per site (docs/metrics.md).
  LabeledCounters stats_;
  MetricsServer metrics_;
  AccessLogs access_logs_;
  int64_t access_logs_drain_since_ns_ = 0;
  // Masters the watchdog restarted before this one (adopt_end).
  uint64_t master_restarts_ = 0;
  // Of those, the ones it killed because they hung (adopt_end).
  uint64_t master_hang_kills_ = 0;
  // The watchdog judges heartbeats (its adopt_end gave a hang timeout): the
  // master says so in `serving` and sends `alive` every second.
  bool heartbeats_ = false;
  // The watchdog's --master_start_timeout (adopt_end; zero: none): it
  // says `serving` by half of it, workers up or not.
  absl::Duration start_timeout_ = absl::ZeroDuration();
  // Every loop (the shards too) turned in the last second: `alive` and, for
  // a master alone, systemd's WATCHDOG=1 go out only then.
  bool loops_turning_ = true;
  int64_t next_loops_check_ns_ = 0;
  // By site index (sites are never renumbered); grown on first count.
  struct SiteCounters {
    uint64_t handed_off = 0;
    uint64_t unavailable = 0;
  };
  std::vector<SiteCounters> site_counters_;
  bool stopping_ = false;
  StopPhase stop_phase_ = StopPhase::kRunning;
  int64_t stop_deadline_ns_ = 0;   // of the current stop phase
  int64_t drain_deadline_ns_ = 0;  // of the whole stop: --drain_timeout
  int64_t started_ns_ = 0;
  // ddv's cgroup subtree; unset when it has none (docs/isolation.md).
  std::optional<supervise::CgroupTree> cgroups_;
  // Per-site max_pending and max_connections.
  SiteCaps site_caps_;
  // Shards (docs/shards.md): empty with --shards=1.
  std::vector<std::unique_ptr<Shard>> shards_;
  std::vector<ShardState> shard_states_;  // read every loop turn
  // Each shard's loop turns when `alive` was last sent to the watchdog.
  std::vector<uint64_t> shard_turns_at_alive_;
  UniqueFd shard_inbox_;
  uint64_t shard_inbox_value_ = 0;
  std::shared_ptr<const ShardSnapshot> shard_snapshot_;
  // By worker: the first epoch published without it as a target (0 while
  // it is one).
  std::vector<uint64_t> shard_excluded_epoch_;
  // Set every loop turn while the primary's table is full (shards then
  // arm no new accept: what they forward would have nowhere to go).
  std::atomic<bool> shards_hold_off_{false};
  uint64_t shards_replaced_ = 0;
  // Shards that failed and could not be replaced (DetachLostShard).
  std::vector<int> lost_shards_;
};

}  // namespace master
}  // namespace ddv

#endif  // DDV_SRC_MASTER_MASTER_H_
