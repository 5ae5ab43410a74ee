// WorkerPool: specs, channels and the pick.
#include "src/master/worker_pool.h"

#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <algorithm>
#include <unistd.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "glog/logging.h"
#include "src/handoff/worker_env.h"

namespace ddv {
namespace master {
namespace {

// 32 random bytes, hex: the TLS session-ticket secret every process of one
// site shares, so a session resumes on whichever process the next connection
// lands on (docs/tls.md).
absl::StatusOr<std::string> NewTicketSecret() {
  char bytes[32];
  if (getrandom(bytes, sizeof(bytes), 0) != sizeof(bytes)) {
    return absl::InternalError("getrandom() failed while making a ticket secret");
  }
  return absl::BytesToHexString(absl::string_view(bytes, sizeof(bytes)));
}

}  // namespace

WorkerPool::WorkerPool(const WorkerPoolOptions& options) : options_(options) {}

WorkerPool::~WorkerPool() = default;

absl::StatusOr<std::unique_ptr<WorkerPool>> WorkerPool::Create(
    const WorkerPoolOptions& options, const config::Config& config) {
  std::unique_ptr<WorkerPool> pool(new WorkerPool(options));
  pool->processes_ =
      std::make_unique<supervise::ProcessTable>(options.backoff);
  if (!options.base_env.empty()) {
    pool->processes_->set_base_env(options.base_env);
  }
  WorkerPool* self = pool.get();
  pool->processes_->set_on_started([self](int slot, pid_t pid) {
    if (slot < 0 || slot >= static_cast<int>(self->slot_to_worker_.size())) {
      return;
    }
    int w = self->slot_to_worker_[slot];
    Worker& worker = self->workers_[w];
    ++worker.generation;
    worker.ready = false;
    worker.last_heard_ns = 0;  // the heartbeat clock starts at its start
    self->restarted_.push_back(w);
  });
  pool->handoff_mode_ = config.master.handoff == config::HandoffMode::kPidfd
                            ? handoff::kHandoffPidfd
                            : handoff::kHandoffScmRights;
  for (const config::SiteConfig& site : config.sites) {
    absl::StatusOr<int> s = pool->AddSite(site);
    if (!s.ok()) return s.status();
  }
  return pool;
}

absl::StatusOr<int> WorkerPool::AddSite(const config::SiteConfig& site) {
  // The site index is registered whatever happens, so site indexes in the
  // pool and in the master's config never drift apart. If its workers
  // cannot be set up (out of fds, say), the site exists with none, and the
  // error says why; its connections get the no-worker answer.
  int s = site_ids_.size();
  site_ids_.push_back(site.id);
  site_workers_.emplace_back();
  round_robin_.push_back(0);
  absl::StatusOr<std::string> ticket_secret = NewTicketSecret();
  ticket_secrets_.push_back(ticket_secret.ok() ? *ticket_secret : "");
  if (!ticket_secret.ok()) return ticket_secret.status();
  std::vector<std::pair<UniqueFd, UniqueFd>> channels;
  for (int i = 0; i < site.processes; ++i) {
    absl::StatusOr<std::pair<UniqueFd, UniqueFd>> pair =
        handoff::MakeChannelPair();
    if (!pair.ok()) return pair.status();
    channels.push_back(std::move(*pair));
  }
  for (int i = 0; i < site.processes; ++i) {
    Worker worker;
    worker.site = s;
    worker.index = i;
    worker.channel = std::move(channels[i].first);
    worker.child_end = std::move(channels[i].second);
    worker.process_slot = processes_->Add(
        MakeSpec(s, site, i, worker.child_end.get()));
    if (static_cast<int>(slot_to_worker_.size()) <= worker.process_slot) {
      slot_to_worker_.resize(worker.process_slot + 1, -1);
    }
    slot_to_worker_[worker.process_slot] = workers_.size();
    site_workers_[s].push_back(workers_.size());
    workers_.push_back(std::move(worker));
  }
  return s;
}

supervise::ProcessSpec WorkerPool::MakeSpec(int s,
                                            const config::SiteConfig& site,
                                            int index, int child_fd) const {
  supervise::ProcessSpec spec;
  spec.name = absl::StrCat(site.id, "#", index);
  spec.argv = site.command;
  spec.env = site.env;
  spec.env.emplace_back(handoff::kEnvChannelFd,
                        absl::StrCat(handoff::kWorkerChannelFd));
  spec.env.emplace_back(handoff::kEnvSite, site.id);
  spec.env.emplace_back(handoff::kEnvWorkerIndex, absl::StrCat(index));
  spec.env.emplace_back(handoff::kEnvHandoff, handoff_mode_);
  spec.env.emplace_back(handoff::kEnvMasterPid, absl::StrCat(getpid()));
  if (!site.tls_cert.empty()) {
    // Pairwise, ':'-joined (docs/tls.md); the worker terminates TLS.
    spec.env.emplace_back(handoff::kEnvTlsCert,
                          absl::StrJoin(site.tls_cert, ":"));
    spec.env.emplace_back(handoff::kEnvTlsKey, absl::StrJoin(site.tls_key, ":"));
  }
  spec.env.emplace_back(handoff::kEnvTlsTicketSecret, ticket_secrets_[s]);
  if (!site.log_all.empty()) {
    spec.stdout_path = spec.stderr_path = site.log_all;
  } else {
    spec.stdout_path = site.log_output;
    spec.stderr_path = site.log_error;
  }
  spec.user = site.user;
  spec.group = site.group;
  spec.inherit_fds.emplace_back(child_fd, handoff::kWorkerChannelFd);
  return spec;
}

absl::Status WorkerPool::StartAll() {
  for (Worker& worker : workers_) {
    // A worker that cannot start (a bad user, a missing binary) is the
    // supervisor's to retry with back-off; the other sites still serve.
    absl::Status status = processes_->Start(worker.process_slot);
    if (!status.ok()) LOG(ERROR) << status;
  }
  return absl::OkStatus();
}

absl::Status WorkerPool::StartSite(int site) {
  absl::Status first;
  for (int w : site_workers_[site]) {
    absl::Status status = processes_->Start(workers_[w].process_slot);
    if (!status.ok() && first.ok()) first = status;
  }
  return first;
}

int WorkerPool::LiveWorkers(int site) const {
  int count = 0;
  for (int w : site_workers_[site]) {
    if (!workers_[w].retired) ++count;
  }
  return count;
}

absl::StatusOr<int> WorkerPool::AddWorker(int s,
                                          const config::SiteConfig& site) {
  Worker worker;
  worker.site = s;
  worker.index = LiveWorkers(s);
  absl::StatusOr<std::pair<UniqueFd, UniqueFd>> pair =
      handoff::MakeChannelPair();
  if (!pair.ok()) return pair.status();
  worker.channel = std::move(pair->first);
  worker.child_end = std::move(pair->second);
  worker.process_slot = processes_->Add(
      MakeSpec(s, site, worker.index, worker.child_end.get()));
  if (static_cast<int>(slot_to_worker_.size()) <= worker.process_slot) {
    slot_to_worker_.resize(worker.process_slot + 1, -1);
  }
  const int w = workers_.size();
  slot_to_worker_[worker.process_slot] = w;
  site_workers_[s].push_back(w);
  workers_.push_back(std::move(worker));
  absl::Status status = processes_->Start(workers_[w].process_slot);
  if (!status.ok()) return status;
  return w;
}

void WorkerPool::Retire(int w) {
  Worker& worker = workers_[w];
  if (worker.retired) return;
  worker.retired = true;
  worker.restart_pending = false;
  processes_->Stop(worker.process_slot, options_.stop_grace);
}

absl::Status WorkerPool::SetProcessCount(int s, const config::SiteConfig& site,
                                         int count) {
  while (LiveWorkers(s) < count) {
    absl::StatusOr<int> w = AddWorker(s, site);
    if (!w.ok()) return w.status();
  }
  // Retire from the highest index down, so indexes stay 0..count-1.
  for (auto it = site_workers_[s].rbegin();
       it != site_workers_[s].rend() && LiveWorkers(s) > count; ++it) {
    if (!workers_[*it].retired) Retire(*it);
  }
  return absl::OkStatus();
}

void WorkerPool::UpdateSpecs(int s, const config::SiteConfig& site) {
  for (int w : site_workers_[s]) {
    Worker& worker = workers_[w];
    if (worker.retired) continue;
    processes_->SetSpec(worker.process_slot,
                        MakeSpec(s, site, worker.index, worker.child_end.get()));
  }
}

void WorkerPool::RollingRestart(int s) {
  for (int w : site_workers_[s]) {
    if (workers_[w].retired) continue;
    if (std::find(rolling_.begin(), rolling_.end(), w) == rolling_.end()) {
      rolling_.push_back(w);
    }
  }
}

void WorkerPool::ProgressRollingRestarts() {
  for (size_t i = 0; i < rolling_.size();) {
    const int w = rolling_[i];
    Worker& worker = workers_[w];
    if (worker.retired) {
      rolling_.erase(rolling_.begin() + i);
      continue;
    }
    // One at a time per site: every other worker must be up and ready.
    bool others_ready = true;
    for (int o : site_workers_[worker.site]) {
      if (o == w || workers_[o].retired) continue;
      if (workers_[o].restart_pending || !workers_[o].ready || !Alive(o)) {
        others_ready = false;
      }
    }
    if (!others_ready) {
      ++i;
      continue;
    }
    rolling_.erase(rolling_.begin() + i);
    if (processes_->pid(worker.process_slot) == 0) {
      // No process (back-off, failed, exited): nothing to stop, and its
      // channel was drained when it died. Start it now; this also revives
      // a failed site.
      absl::Status status = processes_->Start(worker.process_slot);
      if (!status.ok()) LOG(ERROR) << "restart: " << status;
      continue;
    }
    worker.restart_pending = true;
    processes_->Stop(worker.process_slot, options_.stop_grace);
  }
}

void WorkerPool::ReleaseIfRetired(int w) {
  Worker& worker = workers_[w];
  if (!worker.retired || processes_->pid(worker.process_slot) != 0) return;
  worker.channel.Reset();
  worker.child_end.Reset();
}

void WorkerPool::ContinueRestart(int w) {
  Worker& worker = workers_[w];
  if (!worker.restart_pending) return;
  if (processes_->state(worker.process_slot) !=
      supervise::ProcessState::kExited) {
    return;  // still running, or crashed and left to the supervisor
  }
  worker.restart_pending = false;
  absl::Status status = processes_->Start(worker.process_slot);
  if (!status.ok()) LOG(ERROR) << "rolling restart: " << status;
}

bool WorkerPool::Current(uint32_t worker, uint32_t generation) const {
  return worker < workers_.size() &&
         (workers_[worker].generation & 0xffffff) == generation;
}

bool WorkerPool::Alive(int worker) const {
  int slot = workers_[worker].process_slot;
  supervise::ProcessState state = processes_->state(slot);
  return processes_->pid(slot) != 0 &&
         (state == supervise::ProcessState::kStarting ||
          state == supervise::ProcessState::kRunning);
}

int WorkerPool::Pick(int site, int exclude) {
  const std::vector<int>& candidates = site_workers_[site];
  const size_t n = candidates.size();
  int best = -1;
  uint64_t best_key = UINT64_MAX;
  // Start the scan at the round-robin cursor so ties rotate.
  uint32_t start = round_robin_[site]++;
  for (size_t k = 0; k < n; ++k) {
    int w = candidates[(start + k) % n];
    if (w == exclude || workers_[w].retired || workers_[w].channel_full ||
        !Alive(w)) {
      continue;
    }
    const Worker& worker = workers_[w];
    // Not ready (no hello yet) sorts after every ready worker. Load is what
    // it has not taken yet: queued or unacknowledged connections, plus the
    // bytes of handoffs still unread in its channel (about 100 per
    // connection). Probed only when there is a choice.
    uint64_t load = worker.outstanding;
    if (n > 1) load += UnreadBytes(w) / 64;
    uint64_t key = (worker.ready ? 0 : (1ull << 40)) + load;
    if (key < best_key) {
      best_key = key;
      best = w;
    }
  }
  return best;
}

bool WorkerPool::Reap(int worker) {
  int slot = workers_[worker].process_slot;
  pid_t before = processes_->pid(slot);
  processes_->OnExit(slot);
  return processes_->pid(slot) != before;
}

std::vector<handoff::ReceivedFrame> WorkerPool::DrainChildEnd(int worker) {
  std::vector<handoff::ReceivedFrame> frames;
  int fd = workers_[worker].child_end.get();
  if (fd < 0) return frames;  // released: a retired worker
  // Bounded: a channel holds far fewer messages than this.
  for (int attempt = 0; attempt < 100000; ++attempt) {
    absl::StatusOr<handoff::ReceivedFrame> frame =
        handoff::ReceiveFrame(fd, absl::ZeroDuration());
    if (!frame.ok()) {
      if (handoff::IsWouldBlock(frame.status()) ||
          handoff::IsPeerClosed(frame.status())) {
        break;
      }
      // Only our own frames are in there; one that fails to decode was
      // still dequeued, its fds closed.
      LOG(ERROR) << "draining a worker channel: " << frame.status();
      continue;
    }
    frames.push_back(std::move(*frame));
  }
  return frames;
}

size_t WorkerPool::UnreadBytes(int worker) const {
  // SIOCOUTQ on a Unix socket: bytes sent and not yet consumed by the peer,
  // i.e. handoffs the worker has not picked up.
  int bytes = 0;
  const int fd = workers_[worker].channel.get();
  if (fd < 0 || ioctl(fd, SIOCOUTQ, &bytes) != 0 || bytes < 0) return 0;
  return static_cast<size_t>(bytes);
}

void WorkerPool::Tick(absl::Time now) {
  ProgressRollingRestarts();
  processes_->RestartDue(now);
}

std::vector<int> WorkerPool::TakeRestarted() {
  std::vector<int> out;
  out.swap(restarted_);
  return out;
}

int WorkerPool::pidfd(int worker) const {
  return processes_->pidfd(workers_[worker].process_slot);
}

pid_t WorkerPool::pid(int worker) const {
  return processes_->pid(workers_[worker].process_slot);
}

bool WorkerPool::SiteFailed(int site) const {
  return processes_->SiteFailed(site_ids_[site]);
}

void WorkerPool::StopAll(absl::Duration grace) {
  absl::Status status = processes_->StopAllAndWait(grace);
  if (!status.ok()) LOG(WARNING) << status;
}

}  // namespace master
}  // namespace ddv
