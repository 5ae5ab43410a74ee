// Master, shards (docs/shards.md): the primary loop's side. It starts the
// other loops, tells them what they may route by (a ShardSnapshot, a new
// epoch whenever it changes), takes what they forward and count, and holds
// back whatever would pull a socket or a channel from under a shard still
// using an older snapshot until every shard has adopted a newer one.
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "src/base/errno_status.h"
#include "src/master/master.h"
#include "src/master/prometheus_text.h"

namespace ddv {
namespace master {

absl::Status Master::StartShards() {
  if (options_.shards <= 1) return absl::OkStatus();
  shard_inbox_ = UniqueFd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!shard_inbox_) {
    return ErrnoStatus(errno, "eventfd", "starting the master shards");
  }
  ArmShardInbox();
  PublishShardSnapshot();
  for (uint32_t id = 1; id < options_.shards; ++id) {
    ShardOptions shard = ShardOptionsFor(static_cast<int>(id));
    // Only the first loop of shard 1: its replacement runs clean.
    if (id == 1) {
      shard.fault_after_accepts = options_.shard_fault_after;
      shard.fault_hangs = options_.shard_fault_hangs;
    }
    absl::StatusOr<std::unique_ptr<Shard>> started =
        Shard::Start(shard, shard_snapshot_);
    if (!started.ok()) {
      return absl::Status(started.status().code(),
                          absl::StrCat("master shard ", id, ": ",
                                       started.status().message()));
    }
    shards_.push_back(std::move(*started));
  }
  shard_states_.resize(shards_.size());
  LOG(INFO) << options_.shards << " master shards: this loop and "
            << shards_.size() << " more";
  return absl::OkStatus();
}

ShardOptions Master::ShardOptionsFor(int id) {
  ShardOptions shard;
  shard.id = id;
  shard.ring = options_.ring;
  shard.peek_buffers = options_.peek_buffers;
  shard.peek_buffer_size = options_.peek_buffer_size;
  shard.max_connections = options_.max_connections;
  shard.handoff_batch = options_.handoff_batch;
  shard.primary_wake_fd = shard_inbox_.get();
  shard.hold_off = &shards_hold_off_;
  return shard;
}

void Master::ArmShardInbox() {
  io_uring_sqe* sqe = Sqe(kOpShardInbox, 0);
  io_uring_prep_poll_multishot(sqe, shard_inbox_.get(), POLLIN);
}

bool Master::ShardTarget(int w) const {
  const Worker& worker = workers_->at(w);
  if (worker.node || worker.retired || worker.draining ||
      worker.channel_full || !worker.ready || !worker.channel ||
      !workers_->Alive(w) || SiteViewPending(w)) {
    return false;
  }
  // A site with caps is counted where the caps are: here.
  return worker.site >= 0 &&
         static_cast<size_t>(worker.site) < config_.sites.size() &&
         site_caps_.max_pending(worker.site) == 0 &&
         site_caps_.max_connections(worker.site) == 0;
}

std::shared_ptr<ShardSnapshot> Master::BuildShardSnapshot() const {
  auto s = std::make_shared<ShardSnapshot>();
  s->accepting = !stopping_;
  s->peek_timeout_ns = config_.master.peek_timeout_ms * 1000000LL;
  s->defer_accept_ns = options_.listen.defer_accept_seconds * 1000000000LL;
  s->max_peek_bytes = config_.master.max_peek_bytes;
  s->listeners.resize(listeners_.size());
  for (size_t l = 0; l < listeners_.size(); ++l) {
    const ListenerSlot& slot = listeners_[l];
    ShardSnapshot::Listener& out = s->listeners[l];
    // `config` is copied only into a snapshot that gets published
    // (PublishShardSnapshot): this runs every loop turn.
    // Its group's other sockets go with `fd` (they are bound before the
    // shards start and move and close with it): copied, like `config`,
    // only into a snapshot that gets published.
    out.fd = slot.fd.get();
    out.routed_here = slot.config.access_log.empty();
    // A logged listener's connections all go to the primary; a shard
    // accepts there only on a socket of its own, whose connections the
    // kernel gives no other loop, and forwards them.
    out.accept = slot.config_index >= 0 && slot.fd;
    if (slot.config_index >= 0) {
      out.routes = routes_;
      out.route_index = slot.config_index;
    } else {
      out.routes = slot.routes;
      out.route_index = slot.route_index;
    }
  }
  s->sites.resize(config_.sites.size());
  for (int w = 0; w < workers_->size(); ++w) {
    if (!ShardTarget(w)) continue;
    const Worker& worker = workers_->at(w);
    s->sites[worker.site].push_back({w, worker.channel.get()});
  }
  return s;
}

namespace {

bool SameListeners(const ShardSnapshot& a, const ShardSnapshot& b) {
  if (a.listeners.size() != b.listeners.size()) return false;
  for (size_t l = 0; l < a.listeners.size(); ++l) {
    const ShardSnapshot::Listener& x = a.listeners[l];
    const ShardSnapshot::Listener& y = b.listeners[l];
    if (x.fd != y.fd || x.accept != y.accept ||
        x.routed_here != y.routed_here || x.routes != y.routes ||
        x.route_index != y.route_index) {
      return false;
    }
  }
  return true;
}

bool SameTargets(const ShardSnapshot& a, const ShardSnapshot& b) {
  if (a.sites.size() != b.sites.size()) return false;
  for (size_t s = 0; s < a.sites.size(); ++s) {
    if (a.sites[s].size() != b.sites[s].size()) return false;
    for (size_t i = 0; i < a.sites[s].size(); ++i) {
      if (a.sites[s][i].worker != b.sites[s][i].worker ||
          a.sites[s][i].channel != b.sites[s][i].channel) {
        return false;
      }
    }
  }
  return true;
}

}  // namespace

void Master::PublishShardSnapshot() {
  std::shared_ptr<ShardSnapshot> next = BuildShardSnapshot();
  const ShardSnapshot* last = shard_snapshot_.get();
  // Reloads change the route table (a new one every time), so comparing
  // the tables' identity covers the config a listener carries too.
  const bool changed =
      last == nullptr || last->accepting != next->accepting ||
      last->peek_timeout_ns != next->peek_timeout_ns ||
      last->max_peek_bytes != next->max_peek_bytes ||
      !SameListeners(*last, *next) || !SameTargets(*last, *next);
  if (changed) {
    for (size_t l = 0; l < listeners_.size(); ++l) {
      next->listeners[l].config = listeners_[l].config;
      for (const UniqueFd& member : listeners_[l].members) {
        next->listeners[l].members.push_back(member.get());
      }
    }
    next->epoch = (last == nullptr ? 0 : last->epoch) + 1;
    shard_snapshot_ = next;
    for (const std::unique_ptr<Shard>& shard : shards_) {
      shard->Publish(shard_snapshot_);
    }
  }
  // The first epoch each worker is not a target in (see ShardsDoneWith).
  const ShardSnapshot& now = *shard_snapshot_;
  const size_t n = static_cast<size_t>(workers_->size());
  shard_excluded_epoch_.resize(n, 0);
  std::vector<bool> target(n, false);
  for (const std::vector<ShardSnapshot::Target>& site : now.sites) {
    for (const ShardSnapshot::Target& t : site) target[t.worker] = true;
  }
  for (size_t w = 0; w < n; ++w) {
    if (target[w]) {
      shard_excluded_epoch_[w] = 0;
    } else if (shard_excluded_epoch_[w] == 0) {
      shard_excluded_epoch_[w] = now.epoch;
    }
  }
}

void Master::DetachLostShard(int id) {
  lost_shards_.push_back(id);
  bool detached = false;
  for (ListenerSlot& slot : listeners_) {
    if (!slot.fd || id < 1 || static_cast<size_t>(id) > slot.members.size()) {
      continue;
    }
    // Its socket of the group would keep the connections the kernel
    // hashes to it with no loop to accept them. shutdown(SHUT_RD) on a
    // listening socket stops it listening whoever else holds it (the
    // watchdog's copy too): it leaves the group, and what waited in it is
    // reset. The watchdog drops it at the commit below.
    if (shutdown(slot.members[id - 1].get(), SHUT_RD) != 0) {
      PLOG(ERROR) << "listener \"" << slot.config.name
                  << "\": taking shard " << id << "'s socket out of the group";
      continue;
    }
    detached = true;
    // An error: connections were reset.
    LOG(ERROR) << "listener \"" << slot.config.name << "\": shard " << id
               << "'s socket left the group; connections waiting in it "
                  "were reset";
  }
  // Shards above it without a socket of their own share the primary's
  // (GrowGroup binds none for it or above any more).
  UpdateAcceptSharing();
  if (detached) CommitGroups({});
}

void Master::TakeShardReports() {
  if (shards_.empty()) return;
  uint64_t drained = 0;
  (void)read(shard_inbox_.get(), &drained, sizeof(drained));
  ShardReport report;
  for (size_t i = 0; i < shards_.size(); ++i) {
    // One critical section for both: what it forwarded is never seen
    // apart from the state that says it is gone (drained, or failed).
    shards_[i]->TakeReport(&report, &shard_states_[i]);
    if (shard_states_[i].failed) {
      // Its ring failed (logged by it); what it held was forwarded in the
      // report just taken. A new loop takes its place; the others and the
      // workers never notice.
      const int id = shards_[i]->id();
      shards_[i].reset();
      absl::StatusOr<std::unique_ptr<Shard>> started =
          options_.shard_fault_lost
              ? absl::ResourceExhaustedError(
                    "injected fault (--shard_fault=lost)")
              : Shard::Start(ShardOptionsFor(id), shard_snapshot_);
      if (!started.ok()) {
        LOG(ERROR) << "master shard " << id
                   << " could not be replaced: " << started.status();
        // The primary carries on, and so do the other shards; its sockets
        // leave the groups (DetachLostShard).
        DetachLostShard(id);
        shards_.erase(shards_.begin() + i);
        shard_states_.erase(shard_states_.begin() + i);
        if (i < shard_turns_at_alive_.size()) {
          shard_turns_at_alive_.erase(shard_turns_at_alive_.begin() + i);
        }
        --i;
        continue;
      }
      ++shards_replaced_;
      LOG(WARNING) << "master shard " << id << " replaced";
      shards_[i] = std::move(*started);
      shard_states_[i] = ShardState{};
      shard_states_[i].id = id;
    }
  }
#define DDV_ADD_SHARD_COUNTER(name, help) counters_.name += report.counters.name;
  DDV_MASTER_COUNTERS(DDV_ADD_SHARD_COUNTER)
#undef DDV_ADD_SHARD_COUNTER
  for (size_t l = 0; l < report.listeners.size() && l < listeners_.size();
       ++l) {
    ShardReport::ListenerDelta& delta = report.listeners[l];
    for (uint64_t k = 0; k < delta.closed; ++k) {
      stats_.CountOutcome(static_cast<uint32_t>(l), -1, Outcome::kClosed);
    }
    counters_.connections_accepted += delta.accepted;
    stats_.listener(l).accepted += delta.accepted;
    stats_.listener(l).handoff_latency.Merge(delta.handoff_latency);
    stats_.listener(l).peek_bytes.Merge(delta.peek_bytes);
  }
  for (const ShardReport::Routed& routed : report.routed) {
    if (routed.worker < 0 || routed.worker >= workers_->size()) continue;
    for (uint64_t k = 0; k < routed.count; ++k) {
      stats_.CountOutcome(routed.listener, routed.site, Outcome::kRouted);
      CountHandedOff(routed.worker);
      site_caps_.HandedOff(CapsRef(routed.worker));
    }
  }
  for (ForwardedConnection& f : report.forwarded) {
    if (f.listener >= listeners_.size()) continue;  // closes with `f`
    const Forwarded from{f.accept_ns, f.timed_out, f.peeked, f.silent,
                         f.deadline_ns};
    if (!held_.empty() || connections_.in_use() == connections_.capacity()) {
      held_.push_back({std::move(f.fd), f.listener, from});
      continue;
    }
    Admit(std::move(f.fd), f.listener, &from);
  }
}

bool Master::ShardsAdopted(uint64_t epoch) const {
  for (const ShardState& state : shard_states_) {
    if (state.adopted_epoch < epoch) return false;
  }
  return true;
}

bool Master::ShardsTurned() {
  shard_turns_at_alive_.resize(shard_states_.size(), UINT64_MAX);
  bool all = true;
  for (size_t i = 0; i < shard_states_.size(); ++i) {
    const uint64_t turns = shard_states_[i].turns;
    // Unequal, not greater: a replaced shard counts from zero again.
    if (turns == shard_turns_at_alive_[i]) {
      all = false;
      LOG(WARNING) << "master shard " << shard_states_[i].id
                   << " has not turned its loop since the last heartbeat; "
                      "none goes to the watchdog";
    }
    shard_turns_at_alive_[i] = turns;
  }
  return all;
}

bool Master::ShardsQuietOn(uint32_t listener) const {
  if (shards_.empty()) return true;
  // The snapshot they adopted must already say "no accept" here: a shard
  // whose table happened to be full has none armed, but would arm one.
  const ShardSnapshot& now = *shard_snapshot_;
  if (listener < now.listeners.size() && now.listeners[listener].accept) {
    return false;
  }
  if (!ShardsAdopted(now.epoch)) return false;
  for (const ShardState& state : shard_states_) {
    if (listener < state.accepting.size() && state.accepting[listener]) {
      return false;
    }
  }
  return true;
}

bool Master::ShardsHoldOn(uint32_t listener) const {
  for (const ShardState& state : shard_states_) {
    if (listener < state.holding.size() && state.holding[listener] > 0) {
      return true;
    }
  }
  return false;
}

bool Master::ShardsDoneWith(int w) const {
  if (shards_.empty()) return true;
  if (static_cast<size_t>(w) >= shard_excluded_epoch_.size()) return false;
  const uint64_t epoch = shard_excluded_epoch_[w];
  return epoch != 0 && ShardsAdopted(epoch);
}

bool Master::ShardsDrained() const {
  // Each shard runs a snapshot that stops accepting (any will do: targets
  // may change during a drain) and holds nothing.
  for (const ShardState& state : shard_states_) {
    if (state.snapshot_accepting || state.connections > 0) return false;
    for (bool armed : state.accepting) {
      if (armed) return false;
    }
  }
  return true;
}

nlohmann::json Master::ShardsJson() const {
  nlohmann::json shards = nlohmann::json::array();
  shards.push_back({{"id", 0},
                    {"primary", true},
                    {"connections", connections_.in_use()}});
  for (const ShardState& state : shard_states_) {
    shards.push_back({{"id", state.id},
                      {"connections", state.connections},
                      {"accepted", state.accepted},
                      {"handed_off", state.handed_off},
                      {"forwarded", state.forwarded},
                      {"batches", state.batches},
                      {"closed_before_decision",
                       state.closed_before_decision},
                      {"epoch", state.adopted_epoch}});
  }
  return shards;
}

std::string Master::ShardsMetricsText() const {
  if (shards_.empty()) return "";
  PrometheusText text;
  text.Family("ddv_shards", "gauge", "master event loops (--shards)");
  text.Sample("ddv_shards", {}, static_cast<uint64_t>(shards_.size() + 1));
  text.Family("ddv_shards_replaced_total", "counter",
              "shards whose loop failed and was started again");
  text.Sample("ddv_shards_replaced_total", {}, shards_replaced_);
  text.Family("ddv_shard_connections", "gauge",
              "connections a shard holds now (shard 0: the primary)");
  text.Sample("ddv_shard_connections", {{"shard", "0"}},
              static_cast<uint64_t>(connections_.in_use()));
  for (const ShardState& state : shard_states_) {
    const std::string id = absl::StrCat(state.id);
    text.Sample("ddv_shard_connections", {{"shard", id}},
                static_cast<uint64_t>(state.connections));
  }
  struct Family {
    const char* name;
    const char* help;
    uint64_t ShardState::*field;
  };
  static constexpr Family kFamilies[] = {
      {"ddv_shard_connections_accepted_total",
       "connections a shard (1..N-1) accepted", &ShardState::accepted},
      {"ddv_shard_connections_handed_off_total",
       "connections a shard sent to a worker itself", &ShardState::handed_off},
      {"ddv_shard_connections_forwarded_total",
       "connections a shard gave to the primary (refusals, timeouts, Node "
       "workers, capped sites, full channels)",
       &ShardState::forwarded},
      {"ddv_shard_handoff_batches_total", "handoff messages a shard sent",
       &ShardState::batches},
  };
  for (const Family& family : kFamilies) {
    text.Family(family.name, "counter", family.help);
    for (const ShardState& state : shard_states_) {
      text.Sample(family.name, {{"shard", absl::StrCat(state.id)}},
                  state.*family.field);
    }
  }
  return text.Take();
}

}  // namespace master
}  // namespace ddv
