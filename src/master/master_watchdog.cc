// The master's side of the watchdog link (docs/lifecycle.md): it adopts
// the workers an earlier master left running, and records each process it
// starts so that the next master can adopt it in turn. The watchdog's
// copies of every worker's channel are what keep the worker serving while
// no master runs: a worker sees EOF, and leaves, only when no process
// holds the master's end. It also tells the watchdog what the service
// does, for systemd (serving, reloading, stopping; a master alone tells
// systemd itself).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "glog/logging.h"
#include "src/handoff/wire.h"
#include "src/master/master.h"
#include "src/watchdog/link.h"
#include "src/watchdog/worker_record.h"

namespace ddv {
namespace master {
namespace {

// How long a starting master waits for the watchdog's offer. The watchdog
// sends it right after the fork; only a wedged watchdog makes this expire,
// and then the master starts fresh workers beside the old ones.
constexpr absl::Duration kAdoptTimeout = absl::Seconds(5);

// How long the master waits for the watchdog's answer to a request (a
// bind, during a reload). The watchdog answers from its next loop turn;
// only a wedged one makes this expire, and the reload then fails.
constexpr absl::Duration kWatchdogReplyTimeout = absl::Seconds(5);

// A master says it serves (READY=1 for systemd) once every worker said
// hello or its site failed, or after this long: one site whose app never
// gets ready must not fail the whole service's start (systemd's
// TimeoutStartSec= is 90 s by default). STATUS= then counts the workers
// that are not ready. Under a watchdog that bounds a master's start
// (--master_start_timeout) by less than twice this, after half of that
// bound instead: slow workers must not make a working master look hung.
constexpr absl::Duration kServingWait = absl::Seconds(30);

// How often a changed status is sent on (STATUS=), and how often a master
// under a watchdog tells it that its loop turns (`alive`).
constexpr int64_t kServiceStatusEveryNs = 1000000000;

// STATUS= is one line of `systemctl status`: a reload's error is cut.
constexpr size_t kMaxServiceStatus = 1000;

// Waits until `fd` can take a message, or `deadline`.
bool WaitWritable(int fd, absl::Time deadline) {
  const absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return false;
  pollfd pfd{fd, POLLOUT, 0};
  return ::poll(&pfd, 1,
                static_cast<int>(absl::ToInt64Milliseconds(
                    absl::Ceil(left, absl::Milliseconds(1))))) > 0;
}

}  // namespace

absl::Status Master::AdoptWorkers() {
  if (!watchdog_link_) return absl::OkStatus();
  // What the link brings from now on is the loop's (OnWatchdogPoll, and
  // the inbox a reload's wait fills).
  adopted_ = true;
  const int64_t now = MonotonicNowNs();
  const absl::Time deadline = absl::Now() + kAdoptTimeout;
  std::vector<int> restart_sites;
  int adopted = 0, exited = 0, foreign = 0, replaced = 0;
  while (true) {
    absl::StatusOr<watchdog::LinkMessage> message =
        ReceiveFromWatchdog(deadline);
    if (!message.ok()) {
      if (absl::IsInvalidArgument(message.status())) {
        LOG(ERROR) << "from the watchdog: " << message.status().message();
        continue;
      }
      LOG(ERROR) << "no worker list from the watchdog ("
                 << message.status().message()
                 << "); starting workers without adopting any";
      break;
    }
    const std::string op = message->body["op"].get<std::string>();
    if (op == "adopt_end") {
      auto activated = message->body.find("socket_activated");
      if (activated != message->body.end() && activated->is_boolean() &&
          activated->get<bool>()) {
        options_.socket_activated = true;
      }
      auto lost = message->body.find("lost_in_crashes");
      if (lost != message->body.end() && lost->is_number_unsigned()) {
        counters_.connections_lost_in_master_crashes = lost->get<uint64_t>();
      }
      auto restarts = message->body.find("master_restarts");
      if (restarts != message->body.end() && restarts->is_number_unsigned()) {
        master_restarts_ = restarts->get<uint64_t>();  // ddv_master_restarts
      }
      auto hang_timeout = message->body.find("master_hang_timeout_ms");
      heartbeats_ = hang_timeout != message->body.end() &&
                    hang_timeout->is_number_unsigned() &&
                    hang_timeout->get<uint64_t>() > 0 &&
                    !options_.fault_no_heartbeats;
      auto start_timeout = message->body.find("master_start_timeout_ms");
      if (start_timeout != message->body.end() &&
          start_timeout->is_number_unsigned()) {
        start_timeout_ = absl::Milliseconds(start_timeout->get<uint64_t>());
      }
      auto hang_kills = message->body.find("master_hang_kills");
      if (hang_kills != message->body.end() &&
          hang_kills->is_number_unsigned()) {
        master_hang_kills_ = hang_kills->get<uint64_t>();
      }
      if (message->fds.size() == 1) {
        absl::StatusOr<watchdog::HeldGauge> gauge =
            watchdog::HeldGauge::Map(std::move(message->fds[0]));
        if (gauge.ok()) {
          held_gauge_ = *std::move(gauge);
        } else {
          LOG(WARNING) << gauge.status().message();
        }
      }
      break;
    }
    if (op != "worker") {
      LOG(WARNING) << "unexpected message from the watchdog: "
                   << message->body.dump();
      continue;
    }
    absl::StatusOr<watchdog::WorkerRecord> record =
        watchdog::DecodeWorkerRecord(*std::move(message));
    if (!record.ok()) {
      LOG(ERROR) << "from the watchdog: " << record.status().message();
      continue;
    }
    const std::string key = record->key();
    const pid_t pid = record->pid;
    // Keep the pidfd to stop a process that is not adopted.
    UniqueFd pidfd(fcntl(record->pidfd.get(), F_DUPFD_CLOEXEC, 0));
    bool stop = true;
    if (!record->node && record->wire_version != handoff::kProtocolVersion) {
      // Started under a master of another wire version (an upgrade across
      // a protocol change): neither side could read the other's frames.
      // SIGTERM makes it finish what it holds and exit (its channel is
      // closed with the record); its slot starts a worker of this build.
      ++replaced;
      LOG(WARNING) << "worker " << key << " pid " << pid
                   << " speaks handoff wire version " << record->wire_version
                   << ", this master " << handoff::kProtocolVersion
                   << "; SIGTERM, and a new worker takes its slot";
    } else {
      WorkerPool::AdoptResult result =
          workers_->Adopt(*std::move(record), now);
      if (result.worker >= 0) {
        ++adopted;
        ++counters_.workers_adopted;
        workers_->at(result.worker).recorded_pid = pid;
        if (!result.conf_updates.empty()) {
          adopted_conf_updates_.emplace_back(result.worker,
                                             std::move(result.conf_updates));
        }
        if (result.spec_changed) {
          LOG(INFO) << "worker " << key << " pid " << pid
                    << " was started with another command, environment or "
                       "user than the config has now; it will be restarted";
          restart_sites.push_back(workers_->at(result.worker).site);
        }
        continue;
      }
      if (result.exited) {
        ++exited;
        stop = false;
        LOG(WARNING) << "worker " << key << " pid " << pid
                     << " exited while no master ran; starting it again";
      } else {
        // A slot the config no longer has (a worker retired by a reload
        // just before the old master died, a site removed): it was being
        // drained; SIGTERM finishes that.
        ++foreign;
        LOG(WARNING) << "worker " << key << " pid " << pid
                     << " has no slot in the config; SIGTERM";
      }
    }
    if (stop && pidfd) {
      syscall(SYS_pidfd_send_signal, pidfd.get(), SIGTERM, nullptr, 0);
    }
    SendToWatchdog({{"op", "drop"}, {"key", key}, {"pid", pid}}, {});
  }
  for (int site : restart_sites) workers_->RollingRestart(site);
  if (adopted + exited + foreign + replaced > 0) {
    LOG(INFO) << "adopted " << adopted << " running workers from the "
              << "previous master (" << exited << " had exited, " << foreign
              << " had no slot, " << replaced
              << " spoke another wire version)";
  }
  return absl::OkStatus();
}

absl::Status Master::HangAtStartIfAsked() {
  if (options_.start_hang_token.empty() ||
      unlink(options_.start_hang_token.c_str()) != 0) {
    return absl::OkStatus();
  }
  // Removing the token is what makes this master the one: the next finds
  // none and starts clean. Its signals are blocked for the signalfd by
  // now, as a master stuck in a syscall here would have them: only
  // SIGKILL ends it (the watchdog's start check, or a stop's grace).
  LOG(ERROR) << "master hangs in its start, before it serves: injected "
                "fault (--start_hang_token="
             << options_.start_hang_token << ")";
  // Bounded by the watchdog's life: one that is gone judges nothing, and
  // this master would be left behind.
  pollfd link{watchdog_link_ ? watchdog_link_.get() : -1, 0, 0};
  while (true) {
    if (::poll(&link, 1, -1) > 0 &&
        (link.revents & (POLLHUP | POLLERR | POLLNVAL))) {
      return absl::UnavailableError(
          "the watchdog went away while this master hung in its start "
          "(--start_hang_token)");
    }
  }
}

void Master::ReplayAdoptedConfUpdates() {
  for (auto& [w, bodies] : adopted_conf_updates_) {
    for (const std::string& body : bodies) {
      // Checked against today's policy and claims like a new request.
      absl::Status status = UpdateServerConf(w, body);
      if (!status.ok()) {
        LOG(WARNING) << "replaying update_server_conf of adopted worker "
                     << workers_->site_id(workers_->at(w).site) << "#"
                     << workers_->at(w).index << ": " << status.message();
      }
    }
  }
  adopted_conf_updates_.clear();
}

void Master::RecordWorker(int w) {
  if (!watchdog_link_) return;
  Worker& worker = workers_->at(w);
  const int pidfd = workers_->pidfd(w);
  if (workers_->pid(w) == 0 || pidfd < 0 || !worker.channel ||
      !worker.child_end) {
    return;
  }
  watchdog::WorkerRecord record = workers_->DescribeForWatchdog(w);
  worker.recorded_pid = record.pid;
  SendToWatchdog(watchdog::EncodeWorkerRecord(record),
                 {pidfd, worker.channel.get(), worker.child_end.get()});
}

void Master::RecordWorkerReady(int w) {
  if (!watchdog_link_ || workers_->at(w).recorded_pid == 0) return;
  SendToWatchdog(
      watchdog::EncodeWorkerReady(workers_->DescribeForWatchdog(w)), {});
}

void Master::ForgetWorker(int w) {
  Worker& worker = workers_->at(w);
  if (!watchdog_link_ || worker.recorded_pid == 0) return;
  SendToWatchdog({{"op", "drop"},
                  {"key", absl::StrCat(workers_->site_id(worker.site), "#",
                                       worker.index)},
                  {"pid", worker.recorded_pid}},
                 {});
  worker.recorded_pid = 0;
}

absl::StatusOr<watchdog::LinkMessage> Master::ReceiveFromWatchdog(
    absl::Time deadline) {
  if (!watchdog_inbox_.empty()) {
    watchdog::LinkMessage message = std::move(watchdog_inbox_.front());
    watchdog_inbox_.pop_front();
    return message;
  }
  return watchdog::ReceiveLinkMessage(
      watchdog_link_.get(),
      std::max(deadline - absl::Now(), absl::ZeroDuration()));
}

absl::StatusOr<watchdog::LinkMessage> Master::AskWatchdog(
    nlohmann::json request, absl::string_view reply_op) {
  if (!watchdog_link_) {
    return absl::FailedPreconditionError("no link to the watchdog");
  }
  const absl::Time deadline = absl::Now() + kWatchdogReplyTimeout;
  const uint64_t seq = ++watchdog_seq_;
  request["seq"] = seq;
  // In order: what the link still holds for the watchdog (worker records)
  // goes first.
  while (!watchdog_outbox_.empty()) {
    FlushWatchdogLink();
    if (!watchdog_outbox_.empty() &&
        !WaitWritable(watchdog_link_.get(), deadline)) {
      return absl::DeadlineExceededError("the watchdog link stays full");
    }
  }
  while (true) {
    absl::Status sent = watchdog::SendLinkMessage(watchdog_link_.get(), request);
    if (sent.ok()) break;
    if (!absl::IsResourceExhausted(sent) ||
        !WaitWritable(watchdog_link_.get(), deadline)) {
      return sent;
    }
  }
  while (true) {
    absl::StatusOr<watchdog::LinkMessage> message = watchdog::ReceiveLinkMessage(
        watchdog_link_.get(),
        std::max(deadline - absl::Now(), absl::ZeroDuration()));
    if (absl::IsNotFound(message.status())) {
      // It may still answer: that reply (and a socket it carries) is read
      // and dropped by OnWatchdogPoll, never taken for a later request's.
      return absl::DeadlineExceededError(
          absl::StrCat("the watchdog did not answer within ",
                       absl::FormatDuration(kWatchdogReplyTimeout)));
    }
    if (absl::IsInvalidArgument(message.status())) {
      LOG(ERROR) << "from the watchdog: " << message.status().message();
      continue;
    }
    if (!message.ok()) return message.status();
    const std::string op = message->body["op"].get<std::string>();
    if (op == reply_op) {
      auto got = message->body.find("seq");
      if (got != message->body.end() && got->is_number_unsigned() &&
          got->get<uint64_t>() == seq) {
        return message;
      }
      // A reply to a request given up on; its fds close here.
      continue;
    }
    // At start, the worker offers (AdoptWorkers reads them); later, an
    // upgrade's answer (the loop hands it to HandleWatchdogMessage).
    watchdog_inbox_.push_back(*std::move(message));
  }
}

void Master::HandleWatchdogInbox() {
  while (!watchdog_inbox_.empty()) {
    watchdog::LinkMessage message = std::move(watchdog_inbox_.front());
    watchdog_inbox_.pop_front();
    HandleWatchdogMessage(std::move(message));
  }
}

void Master::SendToWatchdog(nlohmann::json body, std::vector<int> fds) {
  if (!watchdog_link_) return;
  if (watchdog_outbox_.empty()) {
    absl::Status sent =
        watchdog::SendLinkMessage(watchdog_link_.get(), body, fds);
    if (sent.ok()) return;
    if (!absl::IsResourceExhausted(sent)) {
      LOG_EVERY_N(ERROR, 100) << "watchdog link: " << sent.message()
                              << "; workers may not outlive this master";
      return;
    }
  }
  // Full: keep copies of the fds, since the worker may be gone (and its
  // fds closed) by the time there is room.
  PendingLinkMessage pending{std::move(body), {}};
  for (int fd : fds) pending.fds.emplace_back(fcntl(fd, F_DUPFD_CLOEXEC, 0));
  watchdog_outbox_.push_back(std::move(pending));
}

void Master::FlushWatchdogLink() {
  while (!watchdog_outbox_.empty()) {
    PendingLinkMessage& pending = watchdog_outbox_.front();
    std::vector<int> fds;
    for (const UniqueFd& fd : pending.fds) fds.push_back(fd.get());
    absl::Status sent =
        watchdog::SendLinkMessage(watchdog_link_.get(), pending.body, fds);
    if (absl::IsResourceExhausted(sent)) return;
    if (!sent.ok()) {
      LOG_EVERY_N(ERROR, 100) << "watchdog link: " << sent.message();
    }
    watchdog_outbox_.pop_front();
  }
}

void Master::ArmWatchdogPoll() {
  io_uring_sqe* sqe = Sqe(kOpWatchdogPoll, 0);
  io_uring_prep_poll_multishot(sqe, watchdog_link_.get(), POLLIN);
}

void Master::OnWatchdogPoll(io_uring_cqe* cqe) {
  if (!watchdog_link_) return;
  bool closed = cqe->res < 0 || (cqe->res & (POLLHUP | POLLERR));
  for (int i = 0; i < 64 && !closed; ++i) {
    absl::StatusOr<watchdog::LinkMessage> message =
        watchdog::ReceiveLinkMessage(watchdog_link_.get(),
                                     absl::ZeroDuration());
    if (absl::IsNotFound(message.status())) break;
    if (absl::IsUnavailable(message.status())) {
      closed = true;
      break;
    }
    if (!message.ok()) {
      LOG(ERROR) << "from the watchdog: " << message.status().message();
      continue;
    }
    HandleWatchdogMessage(*std::move(message));
  }
  if (closed) {
    // The watchdog is gone: PR_SET_PDEATHSIG brings our SIGTERM. Nothing
    // more can be recorded; the poll is not re-armed.
    LOG(ERROR) << "the link to the watchdog closed";
    watchdog_link_.Reset();
    return;
  }
  if (!(cqe->flags & IORING_CQE_F_MORE)) ArmWatchdogPoll();
}

void Master::HandleWatchdogMessage(watchdog::LinkMessage message) {
  const std::string op = message.body["op"].get<std::string>();
  if (op == "handover") {
    for (uint32_t slot : upgrade_clients_) {
      ReplyToControlClient(
          slot, absl::StrCat("ok: the binary on disk accepts the config; "
                             "master ",
                             getpid(), " hands over to it\n"));
    }
    upgrade_clients_.clear();
    BeginHandover();
  } else if (op == "upgrade_failed") {
    auto it = message.body.find("error");
    const std::string error = it != message.body.end() && it->is_string()
                                  ? it->get<std::string>()
                                  : std::string("no reason given");
    for (uint32_t slot : upgrade_clients_) {
      ReplyToControlClient(slot,
                           absl::StrCat("error: upgrade refused: ", error,
                                        "; this master keeps running\n"));
    }
    upgrade_clients_.clear();
    upgrade_requested_ = false;
  } else if (op == "bound") {
    // The answer to a bind the master stopped waiting for (its reload
    // failed and aborted): the socket it carries closes here.
    LOG(WARNING) << "a late answer from the watchdog, dropped: "
                 << message.body.dump();
  } else {
    LOG(WARNING) << "unexpected message from the watchdog: "
                 << message.body.dump();
  }
}

void Master::CheckUpgradeAnswer(int64_t now_ns) {
  if (!upgrade_requested_ || handing_over_ ||
      now_ns - upgrade_requested_ns_ < 30 * 1000000000LL) {
    return;
  }
  // The watchdog's check takes 10 s at most: an answer this late is lost.
  LOG(ERROR) << "upgrade: no answer from the watchdog in 30 s; giving up";
  for (uint32_t slot : upgrade_clients_) {
    ReplyToControlClient(slot,
                         "error: upgrade: the watchdog did not answer in 30 "
                         "s (see its log); this master keeps running\n");
  }
  upgrade_clients_.clear();
  upgrade_requested_ = false;
}

void Master::RequestUpgrade(int client) {
  if (!watchdog_link_) {
    const std::string error =
        "error: upgrade needs the watchdog, and this master runs alone "
        "(--watchdog=false); restart it with the new binary\n";
    LOG(WARNING) << error;
    if (client >= 0) ReplyToControlClient(client, error);
    return;
  }
  if (stopping_) {
    if (client >= 0) {
      ReplyToControlClient(client, "error: the master is stopping\n");
    }
    return;
  }
  if (client >= 0) upgrade_clients_.push_back(client);
  if (upgrade_requested_) return;  // one answer serves every client
  upgrade_requested_ = true;
  upgrade_requested_ns_ = MonotonicNowNs();
  LOG(INFO) << "upgrade: asking the watchdog to check the binary on disk";
  SendToWatchdog({{"op", "upgrade"}}, {});
}

void Master::BeginHandover() {
  if (stopping_) return;
  LOG(INFO) << "handing over to the next master: no more accepts; the "
               "connections held are handed off first";
  handing_over_ = true;
  StopAccepting();
}

void Master::TellService(nlohmann::json message) {
  if (watchdog_link_) {
    SendToWatchdog(std::move(message), {});
    return;
  }
  service_.Handle(message);
}

bool Master::WorkersUp() const {
  for (int w = 0; w < workers_->size(); ++w) {
    const Worker& worker = workers_->at(w);
    if (worker.retired || config_.sites[worker.site].processes == 0) continue;
    if (!worker.ready && !workers_->SiteFailed(worker.site)) return false;
  }
  return true;
}

std::string Master::ServiceSummary() const {
  int sites = 0, wanted = 0, ready = 0;
  std::vector<std::string> failed;
  for (size_t s = 0; s < config_.sites.size(); ++s) {
    if (config_.sites[s].processes == 0) continue;
    ++sites;
    if (workers_->SiteFailed(s)) failed.push_back(config_.sites[s].id);
  }
  for (int w = 0; w < workers_->size(); ++w) {
    const Worker& worker = workers_->at(w);
    if (worker.retired || config_.sites[worker.site].processes == 0) continue;
    ++wanted;
    if (worker.ready && workers_->pid(w) != 0) ++ready;
  }
  std::string summary =
      absl::StrCat("master ", getpid(), ": ", sites,
                   sites == 1 ? " site, " : " sites, ", ready, "/", wanted,
                   " workers ready");
  if (!failed.empty()) {
    absl::StrAppend(&summary, "; failed (crash loop): ",
                    absl::StrJoin(failed, ", "));
  }
  return summary;
}

void Master::ReportServiceState(int64_t now_ns) {
  if (now_ns >= next_loops_check_ns_) {
    // Once a second: did every shard turn its loop since the last check?
    next_loops_check_ns_ = now_ns + kServiceStatusEveryNs;
    loops_turning_ = ShardsTurned();
  }
  // A master alone tells systemd itself; a stuck shard withholds it too.
  if (!watchdog_link_ && loops_turning_) service_.Ping();
  // A stop's or a handover's status stands until the process is gone.
  if (stopping_) return;
  if (!serving_reported_) {
    const bool up = WorkersUp();
    const absl::Duration wait =
        start_timeout_ > absl::ZeroDuration()
            ? std::min(kServingWait, start_timeout_ / 2)
            : kServingWait;
    if (!up && now_ns - started_ns_ < absl::ToInt64Nanoseconds(wait)) {
      return;
    }
    serving_reported_ = true;
    service_status_ = ServiceSummary();
    if (!up) {
      LOG(WARNING) << "serving although not every worker is up after "
                   << absl::FormatDuration(wait) << ": " << service_status_;
    }
    nlohmann::json serving = {{"op", "serving"}, {"status", service_status_}};
    // The watchdog judges this master's heartbeats from now on.
    if (heartbeats_) serving["alive_every_ms"] = kServiceStatusEveryNs / 1000000;
    TellService(std::move(serving));
    next_service_status_ns_ = now_ns + kServiceStatusEveryNs;
    return;
  }
  if (now_ns < next_service_status_ns_) return;
  next_service_status_ns_ = now_ns + kServiceStatusEveryNs;
  // The watchdog's proof that every loop turns (--master_hang_timeout,
  // docs/lifecycle.md, "A master that hangs"): sent from this loop once
  // every shard's turned too, so a loop that stops turning stops it. None
  // before serving (starting), none once stopping or handing over
  // (returned above), none to a watchdog that does not judge them.
  if (watchdog_link_ && heartbeats_ && loops_turning_) {
    SendToWatchdog({{"op", "alive"}}, {});
  }
  std::string summary = ServiceSummary();
  if (summary == service_status_) return;
  service_status_ = std::move(summary);
  TellService({{"op", "status"}, {"status", service_status_}});
}

void Master::ReportReloading() {
  TellService({{"op", "reloading"},
               {"monotonic_usec", watchdog::ServiceNotifier::MonotonicNowUsec()},
               {"status", absl::StrCat("reloading ", config_.path)}});
}

void Master::ReportReloaded(const absl::Status& status) {
  // What follows compares with the summary alone: this text stays until
  // something changes.
  service_status_ = ServiceSummary();
  std::string text =
      status.ok()
          ? absl::StrCat("reloaded ", config_.path, "; ", service_status_)
          : absl::StrCat("reload failed, running the previous config: ",
                         status.message(), "; ", service_status_);
  if (text.size() > kMaxServiceStatus) {
    text.resize(kMaxServiceStatus - 3);
    text += "...";
  }
  TellService({{"op", "reloaded"}, {"status", std::move(text)}});
}

void Master::ReportStopping() {
  TellService(
      {{"op", "stopping"},
       {"status", absl::StrCat("stopping: master ", getpid(),
                               " drains its workers (up to ",
                               absl::FormatDuration(
                                   options_.workers.drain_timeout),
                               ")")}});
}

}  // namespace master
}  // namespace ddv
