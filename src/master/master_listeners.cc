// Master, its listeners: the slots connections and accept ops are tagged
// with, a reload's new sockets (bound by the watchdog, which owns them, or
// by the master running alone), the watchdog's commit, and the drain of a
// listener a reload removed (docs/master.md, "Listeners change live").
#include <fcntl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "src/base/errno_status.h"
#include "src/base/listen_socket.h"
#include "src/base/socket_address.h"
#include "src/master/master.h"

namespace ddv {
namespace master {
namespace {

// Connection::listener is 16 bits: a master that has seen this many
// listeners (every change takes a new index) needs a restart to go on.
constexpr size_t kMaxListenerSlots = 65535;

// Bounds one drain: a flood arriving while it runs must not keep the loop
// here; what is left is reset when the socket closes (docs/master.md).
constexpr int kMaxDrainedConnections = 65536;

int BoundPort(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof(address);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    return 0;
  }
  return std::max(0, SocketAddressPort(address));
}

}  // namespace

absl::Status Master::TakeListeners(
    std::vector<UniqueFd> inherited,
    std::vector<std::vector<UniqueFd>> members) {
  std::vector<NewListener> bound(config_.listeners.size());
  std::vector<std::string> held_as(config_.listeners.size());
  for (size_t i = 0; i < config_.listeners.size(); ++i) {
    const config::ListenerConfig& listener = config_.listeners[i];
    ListenerSlot slot;
    slot.config = listener;
    slot.config_index = i;
    if (inherited[i]) {
      slot.fd = std::move(inherited[i]);
      slot.members = std::move(members[i]);
      held_as[i] = i < options_.listeners_held_as.size() &&
                           !options_.listeners_held_as[i].empty()
                       ? options_.listeners_held_as[i]
                       : listener.name;
      // The last good config may give it another protocol than the socket
      // was bound for (a crash in the middle of a reload).
      for (int fd : GroupSockets(slot)) {
        absl::Status defer =
            SetDeferAccept(fd, config::IsPeeked(listener), options_.listen);
        if (!defer.ok()) LOG(WARNING) << defer;
      }
      // Or another v6only, which a bound socket cannot change: it is
      // served as bound, and the running config says so, so the next
      // reload of the file binds the one it asks for beside it.
      if (listener.addr.ss_family == AF_INET6 &&
          IsV6Only(slot.fd.get()) != listener.v6only) {
        LOG(WARNING) << "listener \"" << listener.name << "\" "
                     << listener.address << ": the socket passed on is "
                     << (listener.v6only ? "dual stack" : "IPv6 only")
                     << ", the config says otherwise; serving it as it is "
                        "until the next reload rebinds it";
        config_.listeners[i].v6only = !listener.v6only;
        slot.config.v6only = config_.listeners[i].v6only;
      }
    } else {
      // Not passed on by the watchdog: a master that died between a
      // reload's commit and its snapshot, or run by hand with a partial
      // --listen_fds. The config is what this master serves.
      absl::StatusOr<UniqueFd> fd = AcquireListener(
          listener, /*beside=*/false, &bound[i].watchdog_id);
      if (!fd.ok()) {
        if (watchdog_link_) SendToWatchdog({{"op", "bind_abort"}}, {});
        return fd.status();
      }
      LOG(INFO) << "listener \"" << listener.name << "\" " << listener.address
                << " was not passed on; bound it";
      slot.fd = std::move(*fd);
    }
    listeners_.push_back(std::move(slot));
  }
  // Every master tells the watchdog the set it runs, so the next one gets
  // exactly that.
  if (watchdog_link_) CommitListeners(config_.listeners, held_as, bound);
  return absl::OkStatus();
}

void Master::GrowListenerGroups() {
  if (options_.shards <= 1) return;
  if (options_.socket_activated) {
    // systemd's sockets: a socket of ours in the group would close with
    // us, resetting what waits in it. The shards share the primary's.
    LOG(INFO) << "the listeners are systemd's: every loop accepts on the "
                 "one socket of each (docs/shards.md)";
    return;
  }
  std::vector<std::vector<int64_t>> bound(config_.listeners.size());
  for (ListenerSlot& slot : listeners_) {
    if (slot.config_index < 0 || !slot.fd) continue;
    GrowGroup(slot.config, slot.fd.get(), &slot.members,
              &bound[slot.config_index]);
  }
  // Sent even when nothing grew: it also ends binds the watchdog finished
  // after the master stopped waiting for them (a socket in the group
  // nobody accepts on).
  CommitGroups(bound);
}

void Master::CommitGroups(const std::vector<std::vector<int64_t>>& bound) {
  if (!watchdog_link_) return;
  // TakeListeners' commit named every socket by its listener's name; the
  // watchdog keeps only a group's sockets that still listen.
  nlohmann::json set = nlohmann::json::array();
  for (size_t i = 0; i < config_.listeners.size(); ++i) {
    const std::string& name = config_.listeners[i].name;
    nlohmann::json entry = {
        {"name", name}, {"held", name}, {"held_members", true}};
    if (i < bound.size() && !bound[i].empty()) entry["bound"] = bound[i];
    set.push_back(std::move(entry));
  }
  SendToWatchdog({{"op", "listeners"}, {"set", std::move(set)}}, {});
}

bool Master::ShardRuns(int id) const {
  return id >= 1 && static_cast<uint32_t>(id) < options_.shards &&
         std::find(lost_shards_.begin(), lost_shards_.end(), id) ==
             lost_shards_.end();
}

void Master::GrowGroup(const config::ListenerConfig& listener, int first,
                       std::vector<UniqueFd>* members,
                       std::vector<int64_t>* ids) {
  // A socket per shard, up to the first one lost (DetachLostShard): a
  // group's sockets go by shard id.
  size_t want = options_.shards - 1;
  for (int lost : lost_shards_) {
    want = std::min<size_t>(want, lost - 1);
  }
  if (options_.shards <= 1 || members->size() >= want ||
      options_.socket_activated) {
    return;
  }
  // Exactly the first socket's address (a port the kernel picked, the
  // v6only it was bound with): the kernel groups only those.
  ListenSpec spec = ListenSpecFor(listener);
  spec.bind_to.addr_len = sizeof(spec.bind_to.addr);
  if (getsockname(first, reinterpret_cast<sockaddr*>(&spec.bind_to.addr),
                  &spec.bind_to.addr_len) != 0) {
    LOG(WARNING) << ErrnoStatus(errno, "getsockname",
                                absl::StrCat("growing listener \"",
                                             listener.name, "\""));
    return;
  }
  absl::StatusOr<std::string> address = FormatSocketAddress(spec.bind_to.addr);
  if (address.ok()) spec.address = *address;
  spec.v6only = IsV6Only(first);
  spec.group_member = true;
  // The kernel adds a socket to the group of the one it finds listening on
  // the same address with SO_REUSEPORT on: the first stays so for good.
  if (members->empty()) {
    absl::Status on = SetReusePort(first, true);
    if (!on.ok()) {
      LOG(WARNING) << "listener \"" << listener.name << "\": " << on
                   << "; the shards accept on its one socket";
      return;
    }
  }
  while (members->size() < want) {
    int64_t id = -1;
    absl::StatusOr<UniqueFd> fd = AcquireSocket(spec, &id);
    if (!fd.ok()) {
      LOG(WARNING) << "listener \"" << listener.name << "\": "
                   << fd.status().message() << "; "
                   << want - members->size()
                   << " shards accept on the primary loop's socket";
      break;
    }
    members->push_back(std::move(*fd));
    if (id >= 0) ids->push_back(id);
  }
  if (members->empty()) {
    // Nothing joined: as before, nobody else may bind the port.
    absl::Status off = SetReusePort(first, false);
    if (!off.ok()) LOG(WARNING) << off;
  } else {
    LOG(INFO) << "listener \"" << listener.name << "\" " << spec.address
              << ": " << members->size() + 1
              << " sockets, one per loop (SO_REUSEPORT)";
  }
}

void Master::UpdateAcceptSharing() {
  for (uint32_t l = 0; l < listeners_.size(); ++l) {
    const ListenerSlot& slot = listeners_[l];
    // Shards without a socket of their own accept on the first, unless
    // the listener is logged (ShardSnapshot::Listener::SocketOf).
    bool shared = false;
    for (uint32_t id = slot.members.size() + 1; id < options_.shards; ++id) {
      shared = shared || ShardRuns(id);
    }
    accept_gate_.set_shared(l, shared && slot.config.access_log.empty());
  }
}

std::vector<int> Master::GroupSockets(const ListenerSlot& slot) {
  std::vector<int> fds;
  if (slot.fd) fds.push_back(slot.fd.get());
  for (const UniqueFd& member : slot.members) fds.push_back(member.get());
  return fds;
}

absl::StatusOr<UniqueFd> Master::AcquireListener(
    const config::ListenerConfig& listener, bool beside,
    int64_t* watchdog_id) {
  ListenSpec spec = ListenSpecFor(listener);
  spec.reuse_port = beside;
  return AcquireSocket(spec, watchdog_id);
}

absl::StatusOr<UniqueFd> Master::AcquireSocket(const ListenSpec& spec,
                                               int64_t* watchdog_id) {
  *watchdog_id = -1;
  if (!watchdog_link_) return BindListenSocket(spec, options_.listen);
  absl::StatusOr<watchdog::LinkMessage> reply =
      AskWatchdog({{"op", "bind"},
                   {"name", spec.name},
                   {"address", spec.address},
                   {"defer_accept", spec.defer_accept},
                   {"v6only", spec.v6only},
                   {"reuse_port", spec.reuse_port},
                   {"group_member", spec.group_member}},
                  "bound");
  if (!reply.ok()) {
    return absl::Status(reply.status().code(),
                        absl::StrCat("asking the watchdog to bind listener \"",
                                     spec.name, "\" to ", spec.address,
                                     ": ", reply.status().message()));
  }
  auto error = reply->body.find("error");
  if (error != reply->body.end() && error->is_string()) {
    // The watchdog's bind failed: its message names the call, the listener
    // and the address, as a master running alone would.
    return absl::FailedPreconditionError(error->get<std::string>());
  }
  auto id = reply->body.find("id");
  if (reply->fds.size() != 1 || id == reply->body.end() ||
      !id->is_number_integer()) {
    return absl::InternalError(absl::StrCat(
        "the watchdog's answer to binding listener \"", spec.name,
        "\" has no socket"));
  }
  *watchdog_id = id->get<int64_t>();
  return std::move(reply->fds[0]);
}

absl::StatusOr<std::vector<Master::NewListener>> Master::AcquireListeners(
    const ReloadPlan& plan) {
  const std::vector<config::ListenerConfig>& next = plan.next.listeners;
  const size_t new_slots = std::count_if(
      plan.listeners.next.begin(), plan.listeners.next.end(),
      [](const ListenerChange& c) { return c.keeps < 0; });
  if (listeners_.size() + new_slots > kMaxListenerSlots) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "this master has used ", listeners_.size(),
        " listener indexes (each listener change takes one); restart "
        "ddv_master to change listeners again"));
  }
  std::vector<NewListener> acquired(next.size());
  // Sockets this reload closes are still listening while the new ones are
  // bound. A new socket on the same port (the same address with another
  // v6only, "[::]" for "0.0.0.0", an address moved to a wider one) could
  // not be bound until they close, and closing first would refuse clients
  // in between: so both sides allow it with SO_REUSEPORT for the moment
  // (docs/master.md, "Listeners change live").
  std::vector<uint32_t> opened;  // slots whose SO_REUSEPORT went on
  auto abandon = [&](absl::Status status) {
    AbandonListeners(std::move(acquired));
    return status;
  };
  for (size_t i = 0; i < next.size(); ++i) {
    if (plan.listeners.next[i].socket_from >= 0) continue;
    const int port = SocketAddressPort(next[i].addr);
    bool beside = false;
    for (int r : plan.listeners.closed) {
      const uint32_t slot = SlotOfConfigIndex(r);
      if (port <= 0 || BoundPort(listeners_[slot].fd.get()) != port) continue;
      beside = true;
      if (std::find(opened.begin(), opened.end(), slot) != opened.end()) {
        continue;
      }
      absl::Status on = SetReusePort(listeners_[slot].fd.get(), true);
      if (!on.ok()) return abandon(on);
      opened.push_back(slot);
    }
    absl::StatusOr<UniqueFd> fd =
        AcquireListener(next[i], beside, &acquired[i].watchdog_id);
    if (!fd.ok()) return abandon(fd.status());
    acquired[i].fd = std::move(*fd);
    // A socket per loop, as the listeners the master started with.
    GrowGroup(next[i], acquired[i].fd.get(), &acquired[i].members,
              &acquired[i].member_ids);
  }
  return acquired;
}

uint32_t Master::SlotOfConfigIndex(int config_index) const {
  for (uint32_t l = 0; l < listeners_.size(); ++l) {
    if (listeners_[l].config_index == config_index) return l;
  }
  LOG(FATAL) << "no listener slot for config index " << config_index;
  return 0;
}

void Master::AbandonListeners(std::vector<NewListener> acquired) {
  // Our copies close with `acquired`; the watchdog closes its own, and a
  // bind it finishes after we stopped waiting (it handles the abort after
  // that bind).
  if (watchdog_link_) SendToWatchdog({{"op", "bind_abort"}}, {});
  // Running sockets opened for a bind beside them close them again (only a
  // reload in progress ever sets it).
  acquired.clear();
  for (const ListenerSlot& slot : listeners_) {
    // A group's sockets keep SO_REUSEPORT on for good (GrowGroup).
    if (!slot.fd || !slot.members.empty()) continue;
    absl::Status off = SetReusePort(slot.fd.get(), false);
    if (!off.ok()) LOG(WARNING) << "reload failed: " << off;
  }
}

void Master::CommitListeners(const std::vector<config::ListenerConfig>& next,
                             const std::vector<std::string>& held_as,
                             const std::vector<NewListener>& acquired) {
  nlohmann::json set = nlohmann::json::array();
  for (size_t i = 0; i < next.size(); ++i) {
    nlohmann::json entry = {{"name", next[i].name}};
    std::vector<int64_t> bound;
    if (!held_as[i].empty()) {
      // All of its group (a master older than groups takes the first).
      entry["held"] = held_as[i];
      entry["held_members"] = true;
    } else {
      bound.push_back(acquired[i].watchdog_id);
    }
    if (i < acquired.size()) {
      bound.insert(bound.end(), acquired[i].member_ids.begin(),
                   acquired[i].member_ids.end());
    }
    // One id as a number, as a watchdog older than groups reads it.
    if (bound.size() == 1) entry["bound"] = bound[0];
    if (bound.size() > 1) entry["bound"] = bound;
    set.push_back(std::move(entry));
  }
  SendToWatchdog({{"op", "listeners"}, {"set", std::move(set)}}, {});
}

void Master::ApplyListeners(const ReloadPlan& plan,
                            std::vector<NewListener> acquired,
                            std::shared_ptr<const route::RouteTable> old_routes) {
  ReleaseRetiredRoutes();
  // Running config index → slot.
  std::vector<uint32_t> slot_of(config_.listeners.size());
  for (uint32_t l = 0; l < listeners_.size(); ++l) {
    if (listeners_[l].config_index >= 0) {
      slot_of[listeners_[l].config_index] = l;
    }
  }
  const std::vector<int>& closed = plan.listeners.closed;
  for (int r : plan.listeners.retired) {
    ListenerSlot& slot = listeners_[slot_of[r]];
    slot.config_index = -1;
    slot.routes = old_routes;
    slot.route_index = r;
    slot.drain = std::find(closed.begin(), closed.end(), r) != closed.end();
    accept_gate_.Retire(slot_of[r]);
    LOG(INFO) << "reload: listener \"" << slot.config.name << "\" "
              << slot.config.address << " (index " << slot_of[r] << ") "
              << (slot.drain ? "removed: it stops accepting, and what waits "
                               "in its backlog is served before it closes"
                             : "changed: its socket goes on under a new "
                               "index");
  }
  const std::vector<config::ListenerConfig>& next = plan.next.listeners;
  for (size_t i = 0; i < next.size(); ++i) {
    const ListenerChange& change = plan.listeners.next[i];
    if (change.keeps >= 0) {
      ListenerSlot& slot = listeners_[slot_of[change.keeps]];
      slot.config = next[i];  // default_site may have changed: routing only
      slot.config_index = i;
      continue;
    }
    ListenerSlot slot;
    slot.config = next[i];
    slot.config_index = i;
    if (change.socket_from >= 0) {
      ListenerSlot& from = listeners_[slot_of[change.socket_from]];
      slot.fd = std::move(from.fd);
      slot.members = std::move(from.members);
    } else {
      slot.fd = std::move(acquired[i].fd);
      slot.members = std::move(acquired[i].members);
    }
    if (change.defer_accept_changes) {
      for (int fd : GroupSockets(slot)) {
        absl::Status defer =
            SetDeferAccept(fd, config::IsPeeked(next[i]), options_.listen);
        if (!defer.ok()) LOG(WARNING) << "reload: " << defer;
      }
    }
    const uint32_t index = accept_gate_.Add();
    DCHECK_EQ(index, listeners_.size());
    LOG(INFO) << "reload: listener \"" << next[i].name << "\" "
              << next[i].address << " " << config::ProtocolName(next[i].protocol)
              << " accepts as index " << index
              << (change.socket_from >= 0 ? " (the same socket)"
                                          : " (a new socket)");
    listeners_.push_back(std::move(slot));
  }
}

// A retired listener's route table is kept while anything accepted on it
// may still be routed: in the table or held. Checked at each reload, so a
// master changing listeners often does not keep every table it ever had.
void Master::ReleaseRetiredRoutes() {
  std::vector<bool> in_use(listeners_.size(), false);
  for (uint32_t index = 0; index < connections_.capacity(); ++index) {
    const Connection& c = connections_.at(index);
    if (c.state != ConnState::kFree) in_use[c.listener] = true;
  }
  for (const HeldConnection& held : held_) in_use[held.listener] = true;
  for (uint32_t l = 0; l < listeners_.size(); ++l) {
    ListenerSlot& slot = listeners_[l];
    // Nor while a shard may still route a connection by it.
    if (slot.config_index < 0 && !slot.drain && !in_use[l] &&
        ShardsQuietOn(l) && !ShardsHoldOn(l)) {
      slot.routes.reset();
    }
  }
}

void Master::CloseDrainedListeners() {
  for (uint32_t l = 0; l < listeners_.size(); ++l) {
    if (listeners_[l].drain && accept_gate_.Idle(l) && ShardsQuietOn(l)) {
      DrainListener(l);
    }
  }
}

// The accept op was cancelled and has completed, so nothing else takes
// from this backlog: what is queued there now is accepted here, at once,
// and served like any connection. Then the socket closes (the watchdog
// closed its copy at the commit), and new connections are refused. The
// window left: a client whose handshake is still in progress (or, with
// TCP_DEFER_ACCEPT, connected but silent) when the socket closes is reset.
void Master::DrainListener(uint32_t l) {
  ListenerSlot& slot = listeners_[l];
  slot.drain = false;
  // Every socket of its group: no loop accepts on any of them any more.
  std::vector<UniqueFd> sockets = std::move(slot.members);
  if (slot.fd) sockets.insert(sockets.begin(), std::move(slot.fd));
  slot.members.clear();
  if (sockets.empty()) return;
  int taken = 0;
  std::string why_stopped;
  // A graceful stop takes nothing new.
  for (const UniqueFd& fd : sockets) {
    if (stopping_ || !why_stopped.empty()) break;
    if (!IsListening(fd.get())) continue;  // a lost shard's, out already
    // O_NONBLOCK on the socket itself: nobody else accepts on it any more,
    // and accept4 gives the connections blocking, as always.
    const std::string doing =
        absl::StrCat("draining listener \"", slot.config.name, "\"");
    const int flags = fcntl(fd.get(), F_GETFL);
    if (flags < 0 || fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) < 0) {
      why_stopped =
          std::string(ErrnoStatus(errno, "fcntl(O_NONBLOCK)", doing).message());
    }
    while (why_stopped.empty() && taken < kMaxDrainedConnections) {
      const int accepted =
          accept4(fd.get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (accepted >= 0) {
        ++counters_.connections_accepted;
        ++stats_.listener(l).accepted;
        ++taken;
        TakeAccepted(UniqueFd(accepted), l);
        continue;
      }
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN) {
        why_stopped = std::string(ErrnoStatus(errno, "accept4", doing).message());
      }
      break;
    }
    if (taken == kMaxDrainedConnections) {
      why_stopped = "more kept arriving";
    }
  }
  LOG(INFO) << "listener \"" << slot.config.name << "\" "
            << slot.config.address << " closed; " << taken
            << " connections waiting in its backlog"
            << (sockets.size() > 1
                    ? absl::StrCat("s (", sockets.size(), " sockets)")
                    : std::string())
            << " were accepted"
            << (why_stopped.empty()
                    ? std::string()
                    : absl::StrCat(" (stopped early: ", why_stopped,
                                   "; the rest are reset)"));
}

void Master::TakeAccepted(UniqueFd fd, uint32_t listener) {
  if (!held_.empty() || connections_.in_use() == connections_.capacity()) {
    // Accepted after the table filled, before the gate's cancel took
    // effect. Resetting it would be the failure the gate exists to avoid:
    // hold it for the next free slot instead.
    ++counters_.accepted_over_limit;
    held_.push_back({std::move(fd), listener});
    return;
  }
  Admit(std::move(fd), listener);
}

route::RouteResult Master::RouteOn(
    uint32_t listener, absl::string_view host,
    absl::Span<const absl::string_view> offered_alpn) const {
  const ListenerSlot& slot = listeners_[listener];
  if (slot.config_index >= 0) {
    return routes_->Lookup(slot.config_index, host, offered_alpn);
  }
  // Released (ReleaseRetiredRoutes) only when nothing accepted on it was
  // left; one that comes back later (unread in a dead worker's channel,
  // held for a slot) has no site any more.
  if (!slot.routes) return route::RouteResult{};
  return slot.routes->Lookup(slot.route_index, host, offered_alpn);
}

void Master::UpdateListenerPorts(const config::Config& config) {
  std::vector<std::pair<std::string, int>> ports(config.listeners.size());
  for (const ListenerSlot& slot : listeners_) {
    if (slot.config_index < 0) continue;
    ports[slot.config_index] = {slot.config.name, BoundPort(slot.fd.get())};
  }
  options_.workers.listener_ports = ports;
  if (workers_) workers_->SetListenerPorts(std::move(ports), config);
}

}  // namespace master
}  // namespace ddv
