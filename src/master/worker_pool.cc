// WorkerPool: specs, channels and the pick.
#include "src/master/worker_pool.h"

#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "glog/logging.h"
#include "src/base/errno_status.h"
#include "src/handoff/node_cluster.h"
#include "src/handoff/wire.h"
#include "src/handoff/worker_env.h"
#include "src/master/clock.h"
#include "src/master/worker_pick.h"

namespace ddv {
namespace master {
namespace {

// A site's `limits` key → the setrlimit resource.
int RlimitOf(config::ResourceKind kind) {
  switch (kind) {
    case config::ResourceKind::kNofile:
      return RLIMIT_NOFILE;
    case config::ResourceKind::kNproc:
      return RLIMIT_NPROC;
    case config::ResourceKind::kCore:
      return RLIMIT_CORE;
    case config::ResourceKind::kAsBytes:
      return RLIMIT_AS;
    case config::ResourceKind::kMemlockBytes:
      return RLIMIT_MEMLOCK;
  }
  return RLIMIT_NOFILE;
}

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

// A SOCK_SEQPACKET channel for ddv workers; Node's IPC needs a byte stream.
absl::StatusOr<std::pair<UniqueFd, UniqueFd>> MakeWorkerChannel(
    config::Runtime runtime) {
  if (runtime == config::Runtime::kDdv) return handoff::MakeChannelPair();
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0,
                 fds) != 0) {
    return ErrnoStatus(errno, "socketpair", "creating a Node worker channel");
  }
  return std::make_pair(UniqueFd(fds[0]), UniqueFd(fds[1]));
}

}  // namespace

WorkerPool::WorkerPool(const WorkerPoolOptions& options) : options_(options) {}

WorkerPool::~WorkerPool() = default;

absl::StatusOr<std::unique_ptr<WorkerPool>> WorkerPool::Create(
    const WorkerPoolOptions& options, const config::Config& config) {
  WorkerPoolOptions checked = options;
  if (!checked.node_preload.empty() &&
      access(checked.node_preload.c_str(), R_OK) != 0) {
    // Node would refuse to start at all with a --require it cannot load.
    // Only a config with Node sites needs it (a reload may add one).
    const bool node_sites = std::any_of(
        config.sites.begin(), config.sites.end(), [](const auto& site) {
          return site.runtime == config::Runtime::kNode;
        });
    LOG_IF(ERROR, node_sites)
        << "access() failed while checking the Node preload \""
        << checked.node_preload << "\": " << std::strerror(errno)
        << "; Node sites start without it and do not check hosts";
    checked.node_preload.clear();
  }
  std::unique_ptr<WorkerPool> pool(new WorkerPool(checked));
  // Back-off, health and stop deadlines run on the loop's monotonic clock.
  pool->processes_ = std::make_unique<supervise::ProcessTable>(
      options.backoff, [] { return MonotonicTime(); });
  if (!options.base_env.empty()) {
    pool->processes_->set_base_env(options.base_env);
  }
  if (options.stdio_router) {
    pool->processes_->set_stdio_router(options.stdio_router);
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
    // Whoever started it (ContinueRestart, the supervisor after a crash
    // mid-restart, a later `restart`), the replacement is here.
    worker.restart_pending = false;
    worker.draining = false;
    worker.shutdown_deferred = false;
    worker.drain_deadline_ns = 0;
    worker.last_heard_ns = 0;  // the heartbeat clock starts at its start
    worker.scm_rights_only = false;
    worker.conf_updates.clear();
    worker.started_fingerprint =
        SpecFingerprint(self->processes_->spec(slot));
    if (worker.node) worker.node->Reset();
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
        MakeWorkerChannel(site.runtime);
    if (!pair.ok()) return pair.status();
    channels.push_back(std::move(*pair));
  }
  for (int i = 0; i < site.processes; ++i) {
    Worker worker;
    worker.site = s;
    worker.index = i;
    worker.channel = std::move(channels[i].first);
    worker.child_end = std::move(channels[i].second);
    if (site.runtime == config::Runtime::kNode) {
      worker.node = std::make_unique<NodeChannel>();
    }
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
  if (site.runtime == config::Runtime::kNode) {
    // A stock Node cluster worker (lib/internal/cluster/child.js): the
    // master plays the primary over this channel. NODE_UNIQUE_ID is the
    // worker's cluster.worker.id, unique per slot.
    spec.env.emplace_back(handoff::node::kEnvChannelFd,
                          absl::StrCat(handoff::kWorkerChannelFd));
    spec.env.emplace_back(handoff::node::kEnvSerialization, "json");
    spec.env.emplace_back(handoff::node::kEnvUniqueId,
                          absl::StrCat(index + 1));
    spec.env.emplace_back(handoff::kEnvRuntime,
                          config::RuntimeName(site.runtime));
    spec.env.emplace_back(handoff::kEnvPort, absl::StrCat(SitePort(site)));
    if (!options_.node_preload.empty()) AddNodePreload(&spec.env);
  } else {
    spec.env.emplace_back(handoff::kEnvChannelFd,
                          absl::StrCat(handoff::kWorkerChannelFd));
    spec.env.emplace_back(handoff::kEnvHandoff, handoff_mode_);
  }
  spec.env.emplace_back(handoff::kEnvSite, site.id);
  spec.env.emplace_back(handoff::kEnvWorkerIndex, absl::StrCat(index));
  spec.env.emplace_back(handoff::kEnvMasterPid, absl::StrCat(getpid()));
  if (!site.tls_cert.empty()) {
    // Pairwise, ':'-joined (docs/tls.md); the worker terminates TLS.
    spec.env.emplace_back(handoff::kEnvTlsCert,
                          absl::StrJoin(site.tls_cert, ":"));
    spec.env.emplace_back(handoff::kEnvTlsKey,
                          absl::StrJoin(site.tls_key, ":"));
  }
  spec.env.emplace_back(handoff::kEnvTlsTicketSecret, ticket_secrets_[s]);
  if (!site.log_all.empty()) {
    spec.stdout_path = spec.stderr_path = site.log_all;
  } else {
    spec.stdout_path = site.log_output;
    spec.stderr_path = site.log_error;
  }
  spec.log_max_bytes = site.log_max_bytes;
  spec.log_keep = site.log_keep;
  spec.user = site.user;
  spec.group = site.group;
  spec.inherit_fds.emplace_back(child_fd, handoff::kWorkerChannelFd);
  if (options_.workers_outlive_master) spec.parent_death_signal = 0;
  // What keeps one site from another (docs/isolation.md): no controlling
  // terminal, no privileges from exec, its own limits, directory and
  // cgroup, nothing of the master's working directory.
  spec.new_session = true;
  spec.no_new_privs = true;
  for (const auto& [kind, value] : site.limits) {
    spec.rlimits.emplace_back(
        RlimitOf(kind), value == config::kUnlimited ? RLIM_INFINITY : value);
  }
  spec.cwd = site.cwd.empty() ? "/" : site.cwd;
  if (options_.cgroups != nullptr) {
    spec.cgroup = options_.cgroups->SiteDir(site.id);
  }
  return spec;
}

// NODE_OPTIONS gets `--require "PATH"` after whatever the site's env set
// (Node reads it like a command line: double quotes, backslash escapes).
void WorkerPool::AddNodePreload(
    std::vector<std::pair<std::string, std::string>>* env) const {
  std::string quoted = "\"";
  for (char c : options_.node_preload) {
    if (c == '"' || c == '\\') quoted += '\\';
    quoted += c;
  }
  quoted += '"';
  const std::string require = absl::StrCat("--require ", quoted);
  for (auto& [name, value] : *env) {
    if (name != "NODE_OPTIONS") continue;
    value = value.empty() ? require : absl::StrCat(value, " ", require);
    return;
  }
  env->emplace_back("NODE_OPTIONS", require);
}

std::string WorkerPool::SpecFingerprint(const supervise::ProcessSpec& spec) {
  // FNV-1a 64 over length-prefixed fields: stable across builds and
  // processes (absl::Hash is neither), and not a security boundary.
  uint64_t hash = 0xcbf29ce484222325ULL;
  auto add = [&hash](absl::string_view field) {
    const std::string length = absl::StrCat(field.size(), ":");
    for (absl::string_view part : {absl::string_view(length), field}) {
      for (unsigned char c : part) {
        hash ^= c;
        hash *= 0x100000001b3ULL;
      }
    }
  };
  for (const std::string& arg : spec.argv) add(arg);
  add("env");
  for (const auto& [name, value] : spec.env) {
    if (name == handoff::kEnvMasterPid) continue;
    add(name);
    add(value);
  }
  for (absl::string_view field :
       {absl::string_view(spec.stdout_path), absl::string_view(spec.stderr_path),
        absl::string_view(spec.user), absl::string_view(spec.group)}) {
    add(field);
  }
  // The log writer rotates by what the pipe was registered with: a worker
  // adopted under another rotation is replaced, as a reload would.
  if (spec.log_max_bytes != 0) {
    add(absl::StrCat("rotate ", spec.log_max_bytes, " ", spec.log_keep));
  }
  // Only when set, so that workers started before these existed keep
  // their fingerprint. A worker adopted outside its site's cgroup, or with
  // other limits or directory, is replaced.
  for (const auto& [resource, value] : spec.rlimits) {
    add(absl::StrCat("rlimit ", resource, " ", value));
  }
  if (!spec.cwd.empty() && spec.cwd != "/") add(absl::StrCat("cwd ", spec.cwd));
  if (!spec.cgroup.empty()) add(absl::StrCat("cgroup ", spec.cgroup));
  return absl::StrCat(absl::Hex(hash, absl::kZeroPad16));
}

void WorkerPool::SetSiteEnv(int s, absl::string_view name,
                            const std::string& value) {
  for (int w : site_workers_[s]) {
    supervise::ProcessSpec spec = processes_->spec(workers_[w].process_slot);
    for (auto& [key, current] : spec.env) {
      if (key == name) current = value;
    }
    processes_->SetSpec(workers_[w].process_slot, std::move(spec));
  }
}

WorkerPool::AdoptResult WorkerPool::Adopt(watchdog::WorkerRecord record,
                                          int64_t now_ns) {
  AdoptResult result;
  int found = -1;
  for (size_t s = 0; s < site_ids_.size() && found < 0; ++s) {
    if (site_ids_[s] != record.site) continue;
    for (int w : site_workers_[s]) {
      const Worker& worker = workers_[w];
      if (worker.index == record.index && !worker.retired &&
          processes_->pid(worker.process_slot) == 0 &&
          (worker.node != nullptr) == record.node) {
        found = w;
        break;
      }
    }
  }
  if (found < 0) return result;
  Worker& worker = workers_[found];
  struct pollfd exited = {record.pidfd.get(), POLLIN, 0};
  if (::poll(&exited, 1, 0) > 0) {
    // It died while no master ran. Its slot starts on the fresh channel:
    // a process the dead master started on the old one after its last
    // record could still hold it, so what is unread there is not ours to
    // take. Our copies close with the record.
    result.exited = true;
    return result;
  }
  result.worker = found;
  const int s = worker.site;
  if (!record.ticket_secret.empty() &&
      record.ticket_secret != ticket_secrets_[s]) {
    // Keep the site's TLS session tickets valid across the change of
    // master: the processes started from now on get the same secret.
    ticket_secrets_[s] = record.ticket_secret;
    SetSiteEnv(s, handoff::kEnvTlsTicketSecret, ticket_secrets_[s]);
  }
  // The slot's channel is the one the process holds.
  worker.channel = std::move(record.channel);
  worker.child_end = std::move(record.child_end);
  supervise::ProcessSpec spec = processes_->spec(worker.process_slot);
  for (auto& [from, to] : spec.inherit_fds) {
    if (to == handoff::kWorkerChannelFd) from = worker.child_end.get();
  }
  result.spec_changed = SpecFingerprint(spec) != record.spec_fingerprint;
  worker.started_fingerprint = record.spec_fingerprint;
  processes_->SetSpec(worker.process_slot, std::move(spec));
  processes_->Adopt(worker.process_slot, record.pid, std::move(record.pidfd));
  ++worker.generation;
  worker.ready = record.ready;
  worker.draining = record.draining;
  // It was told to leave by a master that is gone: it gets a whole drain
  // from now, then SIGTERM as usual.
  if (worker.draining) {
    worker.drain_deadline_ns =
        now_ns + absl::ToInt64Nanoseconds(options_.drain_timeout);
    // Its kShutdown may never have gone out (a master with shards defers
    // it, and the record says draining from the start): sent again. A
    // second one only restates the drain.
    if (!worker.node) worker.shutdown_deferred = true;
  }
  worker.restart_pending = false;
  worker.last_heard_ns = now_ns;
  worker.scm_rights_only = handoff_mode_ == handoff::kHandoffPidfd;
  if (worker.node) {
    // Sequence numbers above anything the earlier master can have used:
    // it numbered from 0, one per message, for far less than a day.
    worker.node->Adopt(record.ready ? record.node_server_key : std::string(),
                       record.node_speaks_ddv,
                       absl::ToUnixMicros(absl::Now()));
    worker.ready = record.ready && worker.node->listening;
  }
  result.conf_updates = std::move(record.conf_updates);
  worker.conf_updates.clear();  // replayed by the master, which adds them
  restarted_.push_back(found);
  return result;
}

watchdog::WorkerRecord WorkerPool::DescribeForWatchdog(int w) const {
  const Worker& worker = workers_[w];
  watchdog::WorkerRecord record;
  record.site = site_ids_[worker.site];
  record.index = worker.index;
  record.pid = processes_->pid(worker.process_slot);
  record.node = worker.node != nullptr;
  record.spec_fingerprint = worker.started_fingerprint;
  // A ddv worker that said hello speaks this master's version (the hello
  // was decoded); one not yet ready is this build's own library too, or it
  // will never be ready here either.
  record.wire_version = handoff::kProtocolVersion;
  record.ticket_secret = ticket_secrets_[worker.site];
  record.ready = worker.ready;
  record.draining = worker.draining;
  record.conf_updates = worker.conf_updates;
  if (worker.node) {
    record.node_server_key = worker.node->server_key();
    record.node_speaks_ddv = worker.node->speaks_ddv;
  }
  return record;
}

int WorkerPool::SitePort(const config::SiteConfig& site) const {
  const std::vector<std::pair<std::string, int>>& ports =
      options_.listener_ports;
  if (ports.empty()) return 0;
  if (site.listeners.empty()) return ports.front().second;
  for (const auto& [name, port] : ports) {
    if (name == site.listeners.front()) return port;
  }
  return 0;
}

absl::Status WorkerPool::StartAll() {
  for (Worker& worker : workers_) {
    if (processes_->pid(worker.process_slot) != 0) continue;  // adopted
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
      MakeWorkerChannel(site.runtime);
  if (!pair.ok()) return pair.status();
  worker.channel = std::move(pair->first);
  worker.child_end = std::move(pair->second);
  if (site.runtime == config::Runtime::kNode) {
    worker.node = std::make_unique<NodeChannel>();
  }
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
  BeginShutdown(w, options_.drain_timeout);
}

void WorkerPool::BeginShutdown(int w, absl::Duration grace) {
  Worker& worker = workers_[w];
  const int slot = worker.process_slot;
  if (processes_->pid(slot) == 0) {
    // No process (back-off, failed, never started): make sure none starts.
    processes_->Stop(slot, grace);
    return;
  }
  if (worker.draining) return;
  worker.draining = true;
  drain_started_.push_back(w);
  worker.drain_deadline_ns = MonotonicNowNs() + absl::ToInt64Nanoseconds(grace);
  const std::string name =
      absl::StrCat(site_ids_[worker.site], "#", worker.index);
  if (worker.node && worker.ready && worker.channel) {
    // Node's own drain: the worker closes its servers, finishes what it
    // holds and exits 0 (lib/internal/cluster/child.js, _disconnect).
    // Queued behind what is already in its outbox; the master's next
    // flush writes it (and moves those connections on as it does).
    if (worker.node->QueueLine(
            handoff::node::EncodeDisconnect(worker.node->NextSeq()))) {
      ++shutdowns_sent_;
      LOG(INFO) << "asked Node worker " << name << " pid "
                << processes_->pid(slot) << " to finish and exit "
                << "(disconnect, grace " << absl::FormatDuration(grace) << ")";
      return;
    }
    LOG(WARNING) << "cannot send disconnect to Node worker " << name
                 << "; SIGTERM instead";
  } else if (!worker.node && worker.ready && worker.channel) {
    if (options_.shutdown_gate && !options_.shutdown_gate(w)) {
      worker.shutdown_deferred = true;  // Tick sends it
      return;
    }
    if (SendShutdown(w, grace)) return;
  }
  // It has not said hello (just started, or it does not speak the
  // protocol), or its channel is full: the signal is the only way to reach
  // it.
  processes_->Stop(slot, grace);
}

bool WorkerPool::SendShutdown(int w, absl::Duration grace) {
  Worker& worker = workers_[w];
  const std::string name =
      absl::StrCat(site_ids_[worker.site], "#", worker.index);
  handoff::Shutdown shutdown;
  shutdown.grace_ms = static_cast<uint32_t>(std::clamp<int64_t>(
      absl::ToInt64Milliseconds(grace), 0, UINT32_MAX));
  absl::StatusOr<std::string> frame = handoff::EncodeFrame(shutdown);
  absl::Status sent = frame.ok()
                          ? handoff::SendFrame(worker.channel.get(), *frame,
                                               {}, absl::ZeroDuration())
                          : frame.status();
  if (!sent.ok()) {
    LOG(WARNING) << "cannot send kShutdown to worker " << name << ": " << sent
                 << "; SIGTERM instead";
    return false;
  }
  ++shutdowns_sent_;
  LOG(INFO) << "asked worker " << name << " pid "
            << processes_->pid(worker.process_slot)
            << " to finish and exit (kShutdown, grace "
            << absl::FormatDuration(grace) << ")";
  return true;
}

void WorkerPool::ShutdownAll(absl::Duration grace) {
  rolling_.clear();
  for (int w = 0; w < size(); ++w) {
    workers_[w].restart_pending = false;
    BeginShutdown(w, grace);
  }
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

void WorkerPool::SetListenerPorts(
    std::vector<std::pair<std::string, int>> ports,
    const config::Config& config) {
  options_.listener_ports = std::move(ports);
  // Sites the pool has yet to add get the new ports when they are added.
  for (size_t s = 0; s < config.sites.size() && s < site_ids_.size(); ++s) {
    const config::SiteConfig& site = config.sites[s];
    if (site.runtime != config::Runtime::kNode || site.processes == 0) continue;
    SetSiteEnv(s, handoff::kEnvPort, absl::StrCat(SitePort(site)));
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

bool WorkerPool::HoldsRollingRestart(int o) const {
  const Worker& other = workers_[o];
  if (other.retired) return false;
  if (other.restart_pending) return true;  // being replaced right now
  const int slot = other.process_slot;
  if (processes_->pid(slot) == 0) {
    // Waiting out a back-off: the supervisor brings it back, so wait for it.
    // Failed, done or stopped: nothing will, and waiting would be forever.
    return processes_->state(slot) == supervise::ProcessState::kBackoff;
  }
  return !other.ready || !Alive(o);  // on its way up, or on its way out
}

void WorkerPool::ProgressRollingRestarts() {
  // Workers with no process (back-off, failed, done, exited) have nothing
  // to stop, and their channel was drained when they died: start them all
  // now, whatever their siblings do. Waiting for siblings here could wait
  // forever: in a crash-looping site every worker is such a one. This also
  // revives a failed site.
  for (size_t i = 0; i < rolling_.size();) {
    const int w = rolling_[i];
    Worker& worker = workers_[w];
    if (worker.retired) {
      rolling_.erase(rolling_.begin() + i);
      continue;
    }
    if (processes_->pid(worker.process_slot) != 0) {
      ++i;
      continue;
    }
    rolling_.erase(rolling_.begin() + i);
    worker.restart_pending = false;
    absl::Status status = processes_->Start(worker.process_slot);
    if (!status.ok()) LOG(ERROR) << "restart: " << status;
  }
  // Running workers, one at a time per site: the next is asked to leave
  // only when no sibling is on its way up or being replaced.
  for (size_t i = 0; i < rolling_.size();) {
    const int w = rolling_[i];
    Worker& worker = workers_[w];
    bool held = false;
    for (int o : site_workers_[worker.site]) {
      if (o != w && HoldsRollingRestart(o)) held = true;
    }
    if (held) {
      ++i;
      continue;
    }
    rolling_.erase(rolling_.begin() + i);
    worker.restart_pending = true;
    BeginShutdown(w, options_.drain_timeout);
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
  const int slot = worker.process_slot;
  if (processes_->state(slot) != supervise::ProcessState::kExited) {
    // Still running; or it crashed and is the supervisor's again (back-off,
    // failed): not ours to restart, and it must not hold its siblings' turn.
    if (processes_->pid(slot) == 0) worker.restart_pending = false;
    return;
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
  const int k = PickLeastLoaded(
      n, round_robin_[site]++, [&](size_t i) -> std::optional<PickLoad> {
        const int w = candidates[i];
        const Worker& worker = workers_[w];
        if (w == exclude || worker.retired || worker.draining ||
            worker.channel_full || !Alive(w)) {
          return std::nullopt;
        }
        // A Node app that does not listen yet has nowhere to put a
        // connection: it would answer `accepted: false`.
        if (worker.node && !worker.ready) return std::nullopt;
        // Load is what it has not taken yet: queued or unacknowledged
        // connections, plus the bytes of handoffs still unread in its
        // channel (about 100 per connection). Probed only when there is a
        // choice.
        uint64_t load = worker.outstanding;
        if (n > 1) load += UnreadBytes(w) / 64;
        return PickLoad{worker.ready, load};
      });
  return k < 0 ? -1 : candidates[k];
}

bool WorkerPool::Reap(int worker) {
  const int slot = workers_[worker].process_slot;
  const pid_t before = processes_->pid(slot);
  if (workers_[worker].draining && before != 0 &&
      processes_->state(slot) != supervise::ProcessState::kStopping &&
      processes_->HasExited(slot)) {
    // It exited because we asked (kShutdown): a stop, not a crash to
    // restart with back-off. The table learns that from Stop(), whose
    // signal reaches only the zombie's process group now.
    processes_->Stop(slot, options_.term_grace);
  }
  processes_->OnExit(slot);
  return processes_->pid(slot) != before;
}

std::vector<handoff::ReceivedFrame> WorkerPool::DrainChildEnd(int worker) {
  std::vector<handoff::ReceivedFrame> frames;
  int fd = workers_[worker].child_end.get();
  if (fd < 0) return frames;  // released: a retired worker
  if (workers_[worker].node) {
    // A Node channel carries copies: the master keeps every socket until
    // the child says `accepted`, so what is unread is only discarded, and
    // what was said to the dead process (its outbox, its unanswered
    // connections, which the master re-routes) is forgotten.
    workers_[worker].node->Reset();
    DiscardStream(fd);
    return frames;
  }
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

void WorkerPool::DiscardStream(int fd) {
  char buffer[16384];
  for (int attempt = 0; attempt < 100000; ++attempt) {
    if (handoff::RecvBytesClosingFds(fd, buffer, sizeof(buffer)) <= 0) return;
  }
}

size_t WorkerPool::UnreadBytes(int worker) const {
  // SIOCOUTQ on a Unix socket: bytes sent and not yet consumed by the peer,
  // i.e. handoffs the worker has not picked up.
  int bytes = 0;
  const int fd = workers_[worker].channel.get();
  if (fd < 0 || ioctl(fd, SIOCOUTQ, &bytes) != 0 || bytes < 0) return 0;
  return static_cast<size_t>(bytes);
}

void WorkerPool::Tick(int64_t now_ns) {
  ProgressRollingRestarts();
  for (int w = 0; w < size(); ++w) {
    Worker& worker = workers_[w];
    const int slot = worker.process_slot;
    if (worker.shutdown_deferred &&
        (processes_->pid(slot) == 0 || !worker.channel ||
         !options_.shutdown_gate || options_.shutdown_gate(w))) {
      worker.shutdown_deferred = false;
      const absl::Duration grace =
          absl::Nanoseconds(std::max<int64_t>(0, worker.drain_deadline_ns - now_ns));
      if (processes_->pid(slot) != 0 && !SendShutdown(w, grace)) {
        processes_->Stop(slot, grace);
      }
    }
    if (!worker.draining || now_ns < worker.drain_deadline_ns ||
        processes_->pid(slot) == 0 ||
        processes_->state(slot) == supervise::ProcessState::kStopping) {
      continue;
    }
    LOG(WARNING) << "worker " << site_ids_[worker.site] << "#" << worker.index
                 << " pid " << processes_->pid(slot)
                 << " still running past its kShutdown grace; SIGTERM";
    processes_->Stop(slot, options_.term_grace);
  }
  processes_->RestartDue(absl::UnixEpoch() + absl::Nanoseconds(now_ns));
}

std::vector<int> WorkerPool::TakeDrainStarted() {
  std::vector<int> out;
  out.swap(drain_started_);
  return out;
}

std::vector<int> WorkerPool::TakeRestarted() {
  std::vector<int> out;
  out.swap(restarted_);
  return out;
}

int WorkerPool::pidfd(int worker) const {
  return processes_->pidfd(workers_[worker].process_slot);
}

void WorkerPool::Signal(int worker, int sig) const {
  const int fd = pidfd(worker);
  if (fd < 0) return;
  if (syscall(SYS_pidfd_send_signal, fd, sig, nullptr, 0) != 0 &&
      errno != ESRCH) {
    PLOG(WARNING) << "pidfd_send_signal(" << sig << ") to worker "
                  << site_ids_[workers_[worker].site] << "#"
                  << workers_[worker].index;
  }
}

pid_t WorkerPool::pid(int worker) const {
  return processes_->pid(workers_[worker].process_slot);
}

absl::string_view WorkerPool::StateName(int w) const {
  const int slot = workers_[w].process_slot;
  const supervise::ProcessState state = processes_->state(slot);
  if (workers_[w].draining && processes_->pid(slot) != 0 &&
      (state == supervise::ProcessState::kStarting ||
       state == supervise::ProcessState::kRunning)) {
    return supervise::ProcessStateName(supervise::ProcessState::kStopping);
  }
  return supervise::ProcessStateName(state);
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
