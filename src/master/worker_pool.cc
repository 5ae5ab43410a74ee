// WorkerPool: specs, channels and the pick.
#include "src/master/worker_pool.h"

#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace ddv {
namespace master {

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
    self->restarted_.push_back(w);
  });
  pool->site_workers_.resize(config.sites.size());
  pool->round_robin_.assign(config.sites.size(), 0);
  const std::string handoff(config::HandoffModeName(config.master.handoff));
  for (size_t s = 0; s < config.sites.size(); ++s) {
    const config::SiteConfig& site = config.sites[s];
    pool->site_ids_.push_back(site.id);
    for (int i = 0; i < site.processes; ++i) {
      absl::StatusOr<std::pair<UniqueFd, UniqueFd>> pair =
          handoff::MakeChannelPair();
      if (!pair.ok()) return pair.status();
      Worker worker;
      worker.site = s;
      worker.index = i;
      worker.channel = std::move(pair->first);
      worker.child_end = std::move(pair->second);

      supervise::ProcessSpec spec;
      spec.name = absl::StrCat(site.id, "#", i);
      spec.argv = site.command;
      spec.env = site.env;
      spec.env.emplace_back("DDV_CHANNEL_FD", absl::StrCat(kWorkerChannelFd));
      spec.env.emplace_back("DDV_SITE", site.id);
      spec.env.emplace_back("DDV_WORKER_INDEX", absl::StrCat(i));
      spec.env.emplace_back("DDV_HANDOFF", handoff);
      spec.env.emplace_back("DDV_MASTER_PID", absl::StrCat(getpid()));
      if (!site.log_all.empty()) {
        spec.stdout_path = spec.stderr_path = site.log_all;
      } else {
        spec.stdout_path = site.log_output;
        spec.stderr_path = site.log_error;
      }
      spec.user = site.user;
      spec.group = site.group;
      spec.inherit_fds.emplace_back(worker.child_end.get(), kWorkerChannelFd);
      worker.process_slot = pool->processes_->Add(std::move(spec));
      if (static_cast<int>(pool->slot_to_worker_.size()) <=
          worker.process_slot) {
        pool->slot_to_worker_.resize(worker.process_slot + 1, -1);
      }
      pool->slot_to_worker_[worker.process_slot] = pool->workers_.size();
      pool->site_workers_[s].push_back(pool->workers_.size());
      pool->workers_.push_back(std::move(worker));
    }
  }
  return pool;
}

absl::Status WorkerPool::StartAll() {
  for (Worker& worker : workers_) {
    absl::Status status = processes_->Start(worker.process_slot);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
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
    if (w == exclude || !Alive(w)) continue;
    const Worker& worker = workers_[w];
    // Not ready (no hello yet) sorts after every ready worker.
    uint64_t key = (worker.ready ? 0 : (1ull << 40)) + worker.outstanding;
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

void WorkerPool::DrainChildEnd(int worker) {
  int fd = workers_[worker].child_end.get();
  int drained = 0;
  // Bounded: a channel holds far fewer messages than this.
  for (int attempt = 0; attempt < 100000; ++attempt) {
    absl::StatusOr<handoff::ReceivedFrame> frame =
        handoff::ReceiveFrame(fd, absl::ZeroDuration());
    if (!frame.ok()) {
      if (handoff::IsWouldBlock(frame.status()) ||
          handoff::IsPeerClosed(frame.status())) {
        break;
      }
      // A frame that fails to decode was still dequeued, its fds closed.
      ++drained;
      continue;
    }
    ++drained;  // its fds close with `frame`
  }
  if (drained > 0) {
    LOG(INFO) << "worker " << site_ids_[workers_[worker].site] << "#"
              << workers_[worker].index << " left " << drained
              << " unread messages; their connections go to another worker";
  }
}

void WorkerPool::Tick(absl::Time now) { processes_->RestartDue(now); }

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
