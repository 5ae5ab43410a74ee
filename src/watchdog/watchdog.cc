// RunWatchdog: a poll() loop over a signalfd, the master's pidfd and the
// link to the master. It exits only when asked to stop (a signal, or a
// master that stopped on request); any other end of the master is
// restarted, forever, and the workers it leaves behind are handed to the
// next master (docs/lifecycle.md). It is the process systemd watches: it
// alone tells systemd how the service is (ServiceNotifier).
#include "src/watchdog/watchdog.h"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <memory>
#include <optional>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "src/base/sd_notify.h"
#include "src/logwriter/writer_process.h"
#include "src/watchdog/hang_check.h"
#include "src/watchdog/held_gauge.h"
#include "src/watchdog/link.h"
#include "src/watchdog/listener_requests.h"
#include "src/watchdog/listener_set.h"
#include "src/watchdog/service_notifier.h"
#include "src/watchdog/upgrade_state.h"
#include "src/watchdog/worker_record.h"

namespace ddv {
namespace watchdog {
namespace {

class Watchdog {
 public:
  Watchdog(const WatchdogOptions& options, std::vector<UniqueFd> listeners,
           std::vector<WorkerRecord> workers, logwriter::KeptWriter writer)
      : options_(options),
        listeners_(options.listener_names, std::move(listeners)),
        listener_requests_(options.listen),
        kept_writer_(std::move(writer)),
        hang_check_(options.master_hang_timeout, options.master_start_timeout) {
    for (WorkerRecord& record : workers) {
      const std::string key = record.key();
      records_.insert_or_assign(key, std::move(record));
    }
  }

  int Run();

 private:
  // A new link for the next master, and its spec: the master's command
  // line, the listeners and the link's child end.
  absl::Status PrepareLink();
  // Queues every record for the master just started, then "adopt_end".
  void OfferRecords();
  // Writes what is queued for the master; false when the link is full.
  bool FlushOffers();
  // Reads what the master sent, at most `limit` messages (the loop's
  // bound, so a master cannot keep the watchdog from its signals; a dead
  // master's messages are read to the end).
  void ReadLink(size_t limit = 256);
  void HandleLinkMessage(LinkMessage message);
  // `handed_over`: it exited for an upgrade that could not re-execute, so
  // even status 0 means "start another", not "stop".
  void OnMasterExit(pid_t running, bool handed_over);
  // Upgrade: checks the binary on disk, then asks the master to hand over.
  void StartUpgrade();
  // Runs the binary on disk with --check_config on the last good config.
  absl::Status CheckNewBinary();
  // After the master handed over: execve() of the binary on disk, keeping
  // listeners and records. Returns only if that failed.
  void ReExecute();
  // The log writer beside the master (docs/logs.md): started, or taken
  // back after an upgrade, in table_, so it is restarted like the master.
  void StartLogWriter();
  // Kills the master when it serves and has been silent for
  // --master_hang_timeout, or has not said it serves within
  // --master_start_timeout of its start; once per loop turn, after the
  // link was read.
  void CheckMasterHang();
  // A master was just started: its records go to it, and its start is
  // timed.
  void OnMasterStarted();

  const WatchdogOptions& options_;
  ListenerSet listeners_;
  ListenerRequests listener_requests_;  // a reload's binds and commit
  supervise::BackoffPolicy policy_;
  std::unique_ptr<supervise::ProcessTable> table_;
  int slot_ = -1;
  // After table_: stopped and waited for before the table goes.
  std::unique_ptr<logwriter::SupervisedLogWriter> log_writer_;
  logwriter::KeptWriter kept_writer_;  // from the image before an upgrade
  UniqueFd link_;              // our end, for the running master
  UniqueFd link_child_end_;    // inherited by the next master started
  std::deque<std::string> offer_keys_;  // records still to send
  bool offer_end_pending_ = false;
  size_t offered_ = 0;
  absl::flat_hash_map<std::string, WorkerRecord> records_;  // by key()
  // What the running master holds; what a dead one held is lost, counted
  // and passed on to the next master.
  HeldGauge held_;
  uint64_t lost_in_crashes_ = 0;
  bool stopping_ = false;
  bool upgrading_ = false;  // the master was asked to hand over
  absl::Time upgrade_deadline_ = absl::InfiniteFuture();
  std::deque<absl::Time> recent_exits_;  // within crash_loop_window
  ServiceNotifier service_;  // systemd's NOTIFY_SOCKET, if it gave one
  MasterHangCheck hang_check_;
  // The master killed because it hung, until its exit is handled, and why;
  // masters killed so, at their start or later (ddv_master_hang_kills).
  pid_t hung_master_ = 0;
  HangVerdict hung_why_{};
  uint64_t hang_kills_ = 0;
};

absl::Status Watchdog::PrepareLink() {
  absl::StatusOr<std::pair<UniqueFd, UniqueFd>> pair = MakeLinkPair();
  if (!pair.ok()) return pair.status();
  link_ = std::move(pair->first);
  link_child_end_ = std::move(pair->second);
  supervise::ProcessSpec spec;
  spec.name = "master";
  spec.argv = options_.master_argv;
  const int link_fd = listeners_.AddToSpec(&spec);
  spec.inherit_fds.emplace_back(link_child_end_.get(), link_fd);
  spec.argv.push_back(absl::StrCat("--watchdog_fd=", link_fd));
  if (log_writer_ != nullptr) {
    spec.inherit_fds.emplace_back(log_writer_->master_end(), link_fd + 1);
    spec.argv.push_back(absl::StrCat("--log_writer_fd=", link_fd + 1));
  }
  table_->SetSpec(slot_, std::move(spec));
  offer_keys_.clear();
  offer_end_pending_ = false;
  return absl::OkStatus();
}

void Watchdog::OfferRecords() {
  // The master inherited its end; ours must not keep the socket open for
  // the one after it.
  link_child_end_.Reset();
  offer_keys_.clear();
  for (const auto& [key, record] : records_) offer_keys_.push_back(key);
  offer_end_pending_ = true;
  offered_ = 0;
  FlushOffers();
}

bool Watchdog::FlushOffers() {
  while (!offer_keys_.empty()) {
    auto it = records_.find(offer_keys_.front());
    if (it != records_.end()) {
      absl::Status sent =
          SendLinkMessage(link_.get(), EncodeWorkerRecord(it->second),
                          WorkerRecordFds(it->second));
      if (absl::IsResourceExhausted(sent)) return false;
      if (!sent.ok()) {
        // This record only (too large, say): the others still go.
        LOG(ERROR) << "watchdog: offering worker " << it->first
                   << " to the master: " << sent.message()
                   << "; that worker is not adopted";
      } else {
        ++offered_;
      }
    }
    offer_keys_.pop_front();
  }
  if (offer_end_pending_) {
    nlohmann::json end = {
        {"op", "adopt_end"},
        {"count", offered_},
        {"lost_in_crashes", lost_in_crashes_},
        {"socket_activated", options_.socket_activated},
        // Restarts of the master after an exit not asked for (the
        // ddv_master_restarts gauge).
        {"master_restarts", static_cast<uint64_t>(table_->restarts(slot_))},
        // Of those, the ones killed because they hung (ddv_master_hang_kills).
        {"master_hang_kills", hang_kills_},
        // Whether to send `alive` every second (0: the check is off).
        {"master_hang_timeout_ms",
         absl::ToInt64Milliseconds(hang_check_.timeout())},
        // How long it may take to say `serving` (0: unbounded): it says so
        // after half of this at the latest, whether its workers are up
        // or not (docs/lifecycle.md, "A master that hangs").
        {"master_start_timeout_ms",
         absl::ToInt64Milliseconds(hang_check_.start_timeout())}};
    std::vector<int> fds;
    if (held_.valid()) fds.push_back(held_.fd());
    absl::Status sent = SendLinkMessage(link_.get(), end, fds);
    if (absl::IsResourceExhausted(sent)) return false;
    offer_end_pending_ = false;
    if (offered_ > 0) {
      LOG(INFO) << "watchdog: offered " << offered_
                << " running workers to master " << table_->pid(slot_);
    }
  }
  return true;
}

void Watchdog::ReadLink(size_t limit) {
  for (size_t i = 0; i < limit && link_; ++i) {
    absl::StatusOr<LinkMessage> message =
        ReceiveLinkMessage(link_.get(), absl::ZeroDuration());
    if (absl::IsNotFound(message.status())) return;
    if (absl::IsUnavailable(message.status())) {
      link_.Reset();  // the master is gone; its exit is handled by pidfd
      return;
    }
    if (!message.ok()) {
      LOG(ERROR) << "watchdog: from the master: " << message.status().message();
      continue;
    }
    HandleLinkMessage(*std::move(message));
  }
}

void Watchdog::HandleLinkMessage(LinkMessage message) {
  const std::string op = message.body["op"].get<std::string>();
  // Only `alive` counts: it comes from the master's loop once every loop
  // (its shards too) turned, where other messages (worker records, status)
  // can come while a shard is stuck.
  const absl::Duration now = MasterHangCheck::MonotonicNow();
  if (op == "alive") {
    hang_check_.Heard(now);
    return;
  }
  // Its start is over (every master says `serving`); from now on it is
  // judged by its heartbeats if it says it sends them (one older than the
  // check does not, and is not judged). Not one stopping, handing over or
  // already judged hung.
  if (op == "serving" && !stopping_ && !upgrading_ && hung_master_ == 0) {
    hang_check_.Serving(now, message.body.contains("alive_every_ms"));
  }
  if (op == "stopping") hang_check_.Off();  // its stop has no heartbeats
  // serving, status, reloading, reloaded, stopping: for systemd.
  if (service_.Handle(message.body)) return;
  if (ListenerRequests::Handles(op)) {
    listener_requests_.Handle(message, link_.get(), &listeners_);
    return;
  }
  if (op == "worker") {
    absl::StatusOr<WorkerRecord> record =
        DecodeWorkerRecord(std::move(message));
    if (!record.ok()) {
      LOG(ERROR) << "watchdog: " << record.status().message();
      return;
    }
    const std::string key = record->key();
    records_.insert_or_assign(key, *std::move(record));
    return;
  }
  if (op == "ready") {
    auto key = message.body.find("key");
    if (key == message.body.end() || !key->is_string()) return;
    auto it = records_.find(key->get<std::string>());
    if (it != records_.end()) ApplyWorkerReady(message.body, &it->second);
    return;
  }
  if (op == "upgrade") {
    StartUpgrade();
    return;
  }
  if (op == "drop") {
    auto key = message.body.find("key");
    auto pid = message.body.find("pid");
    if (key == message.body.end() || !key->is_string() ||
        pid == message.body.end() || !pid->is_number_integer()) {
      return;
    }
    auto it = records_.find(key->get<std::string>());
    // Only the process the master means: a newer one may be recorded.
    if (it != records_.end() && it->second.pid == pid->get<int>()) {
      records_.erase(it);
    }
    return;
  }
  LOG(WARNING) << "watchdog: unknown message from the master: "
               << message.body.dump();
}

void Watchdog::OnMasterExit(pid_t running, bool handed_over) {
  // The delay logged is from the exit, not from after the work below.
  const absl::Time now = absl::Now();
  // Whatever it sent before dying (a record of a worker it just started)
  // is still worth keeping, however it was reaped.
  if (link_) ReadLink(SIZE_MAX);
  link_.Reset();
  hang_check_.Off();  // the next master is judged once it serves
  // A reload it did not commit never happened.
  listener_requests_.Abort();
  // A master that handed over or stopped held none (it handed them off).
  const uint64_t held = held_.Get();
  held_.Set(0);
  if (held > 0 && !stopping_) {
    lost_in_crashes_ += held;
    LOG(WARNING) << "watchdog: master pid " << running << " died holding "
                 << held << " connections it had accepted and not yet "
                 << "handed off; they are lost (" << lost_in_crashes_
                 << " so far)";
  }
  offer_keys_.clear();
  offer_end_pending_ = false;
  const std::optional<supervise::ExitStatus> exit = table_->last_exit(slot_);
  std::string how = exit ? exit->ToString() : std::string("an unknown status");
  if (running == hung_master_) {
    const std::string silence = absl::FormatDuration(
        absl::Trunc(hung_why_.silence, absl::Milliseconds(100)));
    absl::StrAppend(
        &how, ", killed by the watchdog: it hung (",
        hung_why_.kind == HangVerdict::Kind::kNotServing
            ? absl::StrCat("not serving ", silence, " after its start")
            : absl::StrCat("no heartbeat for ", silence),
        ")");
    hung_master_ = 0;
  }
  if (stopping_) return;
  if (exit && exit->exited() && exit->code == 0 && !handed_over) return;
  absl::Status link = PrepareLink();
  if (!link.ok()) LOG(ERROR) << "watchdog: " << link.message();
  recent_exits_.push_back(now);
  while (recent_exits_.front() <= now - policy_.crash_loop_window) {
    recent_exits_.pop_front();
  }
  const std::string next = absl::StrCat(
      "restarting in ",
      absl::FormatDuration(absl::Ceil(
          std::max(table_->restart_at(slot_) - now, absl::ZeroDuration()),
          absl::Milliseconds(1))),
      "; the listeners stay open and clients wait in the backlog",
      records_.empty()
          ? ""
          : absl::StrCat("; ", records_.size(),
                         " workers keep serving and wait for it"));
  const bool config_error =
      exit && exit->exited() && exit->code == supervise::kExitNoRestart;
  if (static_cast<int>(recent_exits_.size()) > policy_.crash_loop_limit) {
    LOG(ERROR) << "watchdog: the master is crash-looping ("
               << recent_exits_.size() << " exits within "
               << absl::FormatDuration(policy_.crash_loop_window)
               << "; the last, pid " << running << ", " << how
               << (config_error ? ": it refused its config or flags" : "")
               << "); still retrying, at most "
               << absl::FormatDuration(policy_.max) << " apart: " << next;
  } else if (config_error) {
    LOG(ERROR) << "watchdog: master pid " << running << " exited with "
               << how << ": it refused its config or flags (see its "
               << "log); " << next;
  } else {
    LOG(WARNING) << "watchdog: master pid " << running << " ended with "
                 << how << "; " << next;
  }
  // Not READY=1 again when the next master serves: for systemd the
  // service never stopped (docs/lifecycle.md, "systemd").
  service_.Status(absl::StrCat("master pid ", running, " ended with ", how,
                               "; ", next));
}

absl::Status Watchdog::CheckNewBinary() {
  supervise::ProcessSpec check;
  check.name = "upgrade-check";
  check.argv = options_.master_argv;
  // The config the new master would run: the last good one if there is one.
  for (const std::string& arg : options_.master_argv) {
    constexpr absl::string_view kSnapshot = "--config_snapshot=";
    if (absl::StartsWith(arg, kSnapshot) &&
        access(arg.substr(kSnapshot.size()).c_str(), R_OK) == 0) {
      check.argv.push_back(
          absl::StrCat("--config=", arg.substr(kSnapshot.size())));
    }
  }
  check.argv.push_back("--check_config");
  // Its summary is not for the log; errors go to stderr, which is ours.
  check.stdout_path = "/dev/null";
  absl::StatusOr<supervise::Spawned> spawned = supervise::Spawn(check);
  if (!spawned.ok()) return spawned.status();
  pollfd done = {spawned->pidfd.get(), POLLIN, 0};
  if (poll(&done, 1, 10000) <= 0) {
    kill(spawned->pid, SIGKILL);
    poll(&done, 1, 5000);
    supervise::TryReap(spawned->pidfd.get()).IgnoreError();
    return absl::DeadlineExceededError(absl::StrCat(
        options_.master_argv[0], " --check_config did not finish in 10s"));
  }
  absl::StatusOr<supervise::ExitStatus> exit =
      supervise::TryReap(spawned->pidfd.get());
  if (!exit.ok()) return exit.status();
  if (!exit->exited() || exit->code != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(options_.master_argv[0], " --check_config ended with ",
                     exit->ToString(), " (its reason is in the log)"));
  }
  return absl::OkStatus();
}

void Watchdog::StartUpgrade() {
  const pid_t master = table_->pid(slot_);
  absl::Status status;
  if (upgrading_) {
    status = absl::FailedPreconditionError("an upgrade is already under way");
  } else if (master == 0 || !link_) {
    status = absl::FailedPreconditionError(
        "no master is running to hand over; it restarts with the binary on "
        "disk anyway");
  } else if (!offer_keys_.empty() || offer_end_pending_) {
    status = absl::UnavailableError(
        "the master is still starting (adopting workers); try again");
  } else {
    // The check may block this loop for 15 s: systemd's watchdog hears
    // from us just before and just after (ddv.service: WatchdogSec=30s).
    service_.Ping(/*force=*/true);
    status = CheckNewBinary();
    service_.Ping(/*force=*/true);
  }
  if (!status.ok()) {
    LOG(ERROR) << "watchdog: upgrade refused: " << status.message();
    if (link_) {
      SendLinkMessage(link_.get(), {{"op", "upgrade_failed"},
                                    {"error", std::string(status.message())}})
          .IgnoreError();
    }
    return;
  }
  LOG(INFO) << "watchdog: upgrade: " << options_.master_argv[0]
            << " accepts the config; asking master " << master
            << " to hand over";
  upgrading_ = true;
  upgrade_deadline_ = absl::Now() + options_.stop_grace;
  // A handover ends its loop: from now on upgrade_deadline_ bounds it.
  hang_check_.Off();
  // READY=1 comes when the re-executed watchdog's master serves.
  service_.Reloading(ServiceNotifier::MonotonicNowUsec(),
                     absl::StrCat("upgrading: master ", master,
                                  " hands over, then ",
                                  options_.master_argv[0],
                                  " re-executes in place"));
  absl::Status sent = SendLinkMessage(link_.get(), {{"op", "handover"}});
  if (!sent.ok()) {
    // It cannot hear us: it goes the hard way. Its workers live on.
    LOG(WARNING) << "watchdog: cannot ask the master to hand over ("
                 << sent.message() << "); SIGKILL";
    kill(master, SIGKILL);
  }
}

void Watchdog::ReExecute() {
  std::vector<const WorkerRecord*> workers;
  for (const auto& [key, record] : records_) workers.push_back(&record);
  KeptServiceState service;
  service.socket_activated = options_.socket_activated;
  service.ready_sent = service_.ready_sent();
  service.reloading = service_.reloading();
  absl::StatusOr<UniqueFd> state = WriteWatchdogState(
      options_.master_argv, listeners_, workers, log_writer_.get(), service);
  if (!state.ok()) {
    LOG(ERROR) << "watchdog: upgrade: " << state.status().message()
               << "; starting a master from this watchdog instead";
    return;
  }
  std::vector<std::string> args = options_.self_argv;
  args.push_back(absl::StrCat("--watchdog_state_fd=", state->get()));
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  LOG(INFO) << "watchdog: upgrade: re-executing " << options_.master_argv[0]
            << " as pid " << getpid() << " with " << listeners_.size()
            << " listening sockets and " << records_.size() << " workers";
  google::FlushLogFiles(google::GLOG_INFO);
  execve(options_.master_argv[0].c_str(), argv.data(), environ);
  PLOG(ERROR) << "watchdog: upgrade: execve(" << options_.master_argv[0]
              << ") failed; starting a master from this watchdog instead";
  RestoreCloseOnExec(listeners_, workers, log_writer_.get());
}

void Watchdog::CheckMasterHang() {
  const std::optional<HangVerdict> verdict =
      hang_check_.Check(MasterHangCheck::MonotonicNow());
  const pid_t master = table_->pid(slot_);
  if (!verdict || master == 0) return;
  // Its loop stopped turning, or its start never ended: nobody accepts,
  // and it would never end by itself. Killed, it is a master that died:
  // its workers live on, what it held undecided is lost, and the next one
  // adopts the workers.
  hung_master_ = master;
  hung_why_ = *verdict;
  ++hang_kills_;
  const std::string silence = absl::FormatDuration(
      absl::Trunc(verdict->silence, absl::Milliseconds(100)));
  if (verdict->kind == HangVerdict::Kind::kNotServing) {
    LOG(ERROR) << "watchdog: master pid " << master
               << " has not said it serves " << silence
               << " after its start (--master_start_timeout="
               << absl::FormatDuration(hang_check_.start_timeout())
               << "): it hangs starting; killing it (SIGKILL); its workers "
                  "live on";
  } else {
    LOG(ERROR) << "watchdog: master pid " << master
               << " sent no heartbeat for " << silence
               << " (--master_hang_timeout="
               << absl::FormatDuration(hang_check_.timeout())
               << "); killing it (SIGKILL); its workers live on";
  }
  if (kill(master, SIGKILL) < 0) {
    PLOG(ERROR) << "kill(" << master << ", SIGKILL) failed while killing "
                << "the hung master";
  }
}

void Watchdog::OnMasterStarted() {
  LOG(INFO) << "watchdog " << getpid() << " started master "
            << table_->pid(slot_);
  service_.Status(absl::StrCat("starting master pid ", table_->pid(slot_)));
  OfferRecords();
  // Whether it was started first, restarted after an exit or a hang, or
  // by a re-executed watchdog after an upgrade: it has to serve in time.
  hang_check_.Started(MasterHangCheck::MonotonicNow());
}

void Watchdog::StartLogWriter() {
  if (options_.log_writer_command.empty()) return;
  absl::StatusOr<std::unique_ptr<logwriter::SupervisedLogWriter>> writer =
      logwriter::SupervisedLogWriter::Start(options_.log_writer_command,
                                            table_.get(),
                                            std::move(kept_writer_));
  if (!writer.ok()) {
    LOG(ERROR) << "watchdog: no log writer: " << writer.status().message()
               << "; workers write their log files directly";
    return;
  }
  log_writer_ = *std::move(writer);
}

int Watchdog::Run() {
  absl::Status status = supervise::BecomeSubreaper();
  if (!status.ok()) LOG(WARNING) << status;
  absl::StatusOr<ServiceNotifier> notifier =
      ServiceNotifier::Create(options_.notify);
  if (notifier.ok()) {
    service_ = *std::move(notifier);
  } else {
    LOG(ERROR) << "watchdog: systemd is not told about the service: "
               << notifier.status().message();
  }
  if (hang_check_.timeout() > absl::ZeroDuration()) {
    LOG(INFO) << "watchdog: a serving master silent for "
              << absl::FormatDuration(hang_check_.timeout())
              << " hangs and is killed (--master_hang_timeout)";
  }
  if (hang_check_.start_timeout() > absl::ZeroDuration()) {
    LOG(INFO) << "watchdog: a master not serving "
              << absl::FormatDuration(hang_check_.start_timeout())
              << " after its start hangs and is killed "
                 "(--master_start_timeout)";
  }
  if (service_.ping_interval() > absl::ZeroDuration()) {
    LOG(INFO) << "watchdog: WATCHDOG=1 to systemd every "
              << absl::FormatDuration(service_.ping_interval());
  }
  if (options_.socket_activated) {
    listener_requests_.RefuseBinds(
        "the listening sockets came from systemd (socket activation); add "
        "a socket to its units instead, and restart the service");
  }

  sigset_t mask;
  sigemptyset(&mask);
  for (int sig : {SIGHUP, SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGCHLD}) {
    sigaddset(&mask, sig);
  }
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  UniqueFd signal_fd(signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signal_fd) {
    PLOG(ERROR) << "signalfd() failed while starting the watchdog";
    return 1;
  }

  // The watchdog holds the listeners: while it runs, clients queue in the
  // backlog for the next master. Giving up would turn them all away, so a
  // config error (status 2) or a crash loop only slows the restarts down.
  policy_ = options_.backoff;
  policy_.never_give_up = true;
  table_ = std::make_unique<supervise::ProcessTable>(policy_);
  // The master inherits our environment (its flags may depend on it), but
  // for systemd's notification variables: only this process speaks for
  // the service (NotifyAccess=main). Ours stay set, for an upgrade's
  // execve.
  std::vector<std::pair<std::string, std::string>> env;
  for (char** e = environ; *e != nullptr; ++e) {
    absl::string_view kv(*e);
    size_t eq = kv.find('=');
    if (eq == absl::string_view::npos) continue;
    if (IsSystemdNotifyVariable(kv.substr(0, eq))) continue;
    env.emplace_back(std::string(kv.substr(0, eq)),
                     std::string(kv.substr(eq + 1)));
  }
  table_->set_base_env(env);
  slot_ = table_->Add(supervise::ProcessSpec());
  if (absl::StatusOr<HeldGauge> gauge = HeldGauge::Create(); gauge.ok()) {
    held_ = *std::move(gauge);
  } else {
    LOG(WARNING) << "watchdog: " << gauge.status().message()
                 << "; connections lost in master crashes are not counted";
  }
  // Before the first master, so its first workers already have it.
  StartLogWriter();
  status = PrepareLink();
  if (!status.ok()) {
    LOG(ERROR) << "watchdog: " << status.message();
    return 1;
  }
  status = table_->Start(slot_);
  if (status.ok()) {
    OnMasterStarted();
  } else {
    LOG(ERROR) << "watchdog: cannot start the master: " << status.message()
               << "; retrying after back-off";
  }

  while (true) {
    const pid_t running = table_->pid(slot_);
    pollfd to_poll[3] = {{signal_fd.get(), POLLIN, 0},
                         {table_->pidfd(slot_), POLLIN, 0},
                         {link_.get(), POLLIN, 0}};
    if (!offer_keys_.empty() || offer_end_pending_) to_poll[2].events |= POLLOUT;
    if (running == 0) to_poll[2].fd = -1;  // the next master's, unused yet
    const int timeout_ms = static_cast<int>(std::min<int64_t>(
        100, absl::ToInt64Milliseconds(
                 absl::Ceil(service_.UntilPing(), absl::Milliseconds(1)))));
    int n = poll(to_poll, 3, timeout_ms);
    service_.Ping();
    if (n < 0 && errno != EINTR) {
      PLOG(ERROR) << "poll() failed in the watchdog loop";
      return 1;
    }
    signalfd_siginfo info;
    while (read(signal_fd.get(), &info, sizeof(info)) == sizeof(info)) {
      int sig = info.ssi_signo;
      if (sig == SIGCHLD) continue;
      pid_t master = table_->pid(slot_);
      if (sig == SIGTERM || sig == SIGINT) {
        LOG(INFO) << "watchdog: signal " << sig << ", stopping the master";
        service_.Stopping(
            master > 0
                ? absl::StrCat("stopping: master ", master,
                               " drains its workers (up to ",
                               absl::FormatDuration(options_.stop_grace), ")")
                : std::string("stopping: no master runs"));
        stopping_ = true;
        upgrading_ = false;
        hang_check_.Off();  // stop_grace bounds its drain
        table_->Stop(slot_, options_.stop_grace);
      } else if (sig == SIGUSR2) {
        StartUpgrade();
      } else if (sig == SIGUSR1 && master > 0) {
        // The master reopens its access logs and asks the writer, which
        // holds the workers' log files, to reopen them (docs/logs.md).
        kill(master, sig);
      } else if (sig == SIGUSR1 && log_writer_ != nullptr) {
        log_writer_->Reopen();  // no master now: the writer's files only
      } else if (master > 0) {
        kill(master, sig);  // SIGHUP: reload (SIGUSR1: no writer to ask)
      }
    }
    if (link_ && running != 0) {
      if (to_poll[2].revents & POLLIN) ReadLink();
      if (link_ && (!offer_keys_.empty() || offer_end_pending_)) FlushOffers();
    }
    if (table_->pidfd(slot_) >= 0 && (to_poll[1].revents & POLLIN)) {
      table_->OnExit(slot_);  // OnMasterExit reads what it sent first
    }
    // Orphaned workers of a dead master are our children now: reaped here.
    table_->ReapOrphans();
    // Decide on the exit whichever path reaped the master (its pidfd, or
    // ReapOrphans).
    bool handed_over = false;
    if (running != 0 && table_->pid(slot_) != running && upgrading_) {
      upgrading_ = false;
      upgrade_deadline_ = absl::InfiniteFuture();
      const std::optional<supervise::ExitStatus> exit =
          table_->last_exit(slot_);
      // Only a master that says it handed over (its own exit status) left
      // its workers for the next one; one that stopped instead (a stop
      // asked meanwhile) is a stop.
      if (exit && exit->exited() && exit->code == kExitHandedOver) {
        handed_over = true;
        if (link_) ReadLink(SIZE_MAX);
        link_.Reset();
        ReExecute();  // returns only if it failed: go on as a crash
      }
    }
    if (running != 0 && table_->pid(slot_) != running) {
      const std::optional<supervise::ExitStatus> exit =
          table_->last_exit(slot_);
      OnMasterExit(running, handed_over);
      if (stopping_) {
        LOG(INFO) << "watchdog: master pid " << running << " stopped ("
                  << (exit ? exit->ToString() : "an unknown status")
                  << "), exiting";
        return 0;
      }
      if (exit && exit->exited() && exit->code == 0 && !handed_over) {
        // The master exits 0 only when asked to stop (ddvctl stop, or a
        // signal sent to it directly): that is final, not a crash.
        LOG(INFO) << "watchdog: master stopped on request, exiting";
        table_->Stop(slot_, absl::ZeroDuration());  // cancels the restart
        return 0;
      }
    }
    CheckMasterHang();
    if (table_->pid(slot_) == 0 &&
        (stopping_ ||
         table_->state(slot_) == supervise::ProcessState::kExited)) {
      LOG(INFO) << "watchdog: master stopped, exiting";
      return 0;
    }
    if (upgrading_ && absl::Now() >= upgrade_deadline_ &&
        table_->pid(slot_) != 0) {
      LOG(WARNING) << "watchdog: the master did not hand over in time; "
                      "SIGKILL (its workers live on)";
      kill(table_->pid(slot_), SIGKILL);
      upgrade_deadline_ = absl::InfiniteFuture();
    }
    // A master starts only with a fresh link: the spec names its fd, and
    // a stale number may now be a worker record's fd. Until one can be
    // made (out of fds, say), the master waits in its back-off.
    if (table_->pid(slot_) == 0 && !link_child_end_) {
      absl::Status link = PrepareLink();
      if (!link.ok()) {
        LOG_EVERY_N(ERROR, 50) << "watchdog: " << link.message()
                               << "; the master waits for a link";
      }
    }
    if (table_->pid(slot_) != 0 || link_child_end_) {
      table_->RestartDue(absl::Now());
    }
    if (table_->pid(slot_) != 0 && table_->pid(slot_) != running) {
      OnMasterStarted();
    }
  }
}

}  // namespace

int RunWatchdog(const WatchdogOptions& options,
                std::vector<UniqueFd> listeners,
                std::vector<WorkerRecord> workers,
                logwriter::KeptWriter log_writer) {
  Watchdog watchdog(options, std::move(listeners), std::move(workers),
                    std::move(log_writer));
  return watchdog.Run();
}

}  // namespace watchdog
}  // namespace ddv
