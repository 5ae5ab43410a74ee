// Master, site views: each worker is told which names the master routes to
// its site on each listener (site_views.h), before its first connection and
// again after every change (a reload, a claim made or dropped, a retired
// listener's routes released), so it can refuse another site's Host with
// 421 (docs/isolation.md). ddv workers get `site_view` calls, which a
// library too old to know the method answers Unimplemented (so a new frame
// type, which it would take for a protocol error, is not needed); Node
// workers get {"ddv":"site_view"} lines, which the preload the master gives
// them takes out (docs/node.md).
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "glog/logging.h"
#include "src/base/socket_address.h"
#include "src/handoff/channel.h"
#include "src/master/master.h"

namespace ddv {
namespace master {
namespace {

// The address a listener socket is bound to ("" when it cannot say).
std::string BoundAddress(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof(address);
  if (fd < 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    return "";
  }
  absl::StatusOr<std::string> text = FormatSocketAddress(address);
  return text.ok() ? *text : "";
}

}  // namespace

const route::RouteTable* Master::RoutesOfSlot(size_t listener) const {
  const ListenerSlot& slot = listeners_[listener];
  return slot.config_index >= 0 ? routes_.get() : slot.routes.get();
}

void Master::UpdateSiteViews() {
  SiteViewState& state = site_views_;
  if (state.book.master().empty()) {
    // Workers outlive masters: this tells them a new one numbers the
    // listeners afresh.
    uint64_t id = 0;
    if (getrandom(&id, sizeof(id), 0) != sizeof(id)) id = MonotonicNowNs();
    state.book.set_master(absl::StrCat(getpid(), "-", absl::Hex(id)));
  }
  // Views change exactly when a listener slot's route table does (each is
  // immutable and swapped whole: a reload, strict_host included, a claim,
  // a released retired listener) or a site is added.
  bool changed = state.built_from.size() != listeners_.size() ||
                 state.book.sites() != static_cast<int>(config_.sites.size());
  for (size_t l = 0; l < listeners_.size() && !changed; ++l) {
    changed = RoutesOfSlot(l) != state.built_from[l];
  }
  if (changed) {
    state.built_from.resize(listeners_.size());
    state.addresses.resize(listeners_.size());
    std::vector<ListenerRoutes> listeners;
    for (size_t l = 0; l < listeners_.size(); ++l) {
      const ListenerSlot& slot = listeners_[l];
      state.built_from[l] = RoutesOfSlot(l);
      // Kept once learnt: a retired listener's socket may be closed (or
      // passed on) while its connections are still served.
      if (slot.fd) {
        std::string bound = BoundAddress(slot.fd.get());
        if (!bound.empty()) state.addresses[l] = std::move(bound);
      }
      if (state.addresses[l].empty()) state.addresses[l] = slot.config.address;
      ListenerRoutes routes;
      routes.index = static_cast<uint32_t>(l);
      routes.address = state.addresses[l];
      routes.retired = slot.config_index < 0;
      routes.v6only = slot.config.v6only &&
                      absl::StartsWith(routes.address, "[");
      routes.protocol = slot.config.protocol;
      routes.routes = state.built_from[l];
      routes.route_index =
          slot.config_index >= 0 ? slot.config_index : slot.route_index;
      listeners.push_back(std::move(routes));
    }
    if (state.book.Update(BuildSiteViews(config_, listeners))) {
      state.due = true;
      RerouteQueued();
    }
  }
  if (!state.due) return;
  // `due` stays set while the views go out: a Node send flushes the
  // outbox (FlushNode), which must not slip a connection in between a
  // view's parts.
  bool failed = false;
  // With shards, a worker whose view is due is no shard's target any more
  // (ShardTarget): published now, its new view goes out only once every
  // shard has adopted that, so no shard can send it a connection routed by
  // the old names after the new view, nor by the new ones before it
  // (docs/shards.md, "Barriers"). Meanwhile shards forward its site's
  // connections here, where they wait for the view like any.
  if (!shards_.empty()) PublishShardSnapshot();
  for (int w = 0; w < workers_->size(); ++w) {
    const Worker& worker = workers_->at(w);
    if (workers_->pid(w) <= 0 || !worker.channel) continue;
    if (!SiteViewPending(w)) continue;
    if (!ShardsDoneWith(w)) {
      failed = true;  // again next turn (a shard's adoption wakes us)
      continue;
    }
    if (SendSiteView(w)) {
      state.book.MarkSent(w, worker.generation, worker.site);
    } else {
      failed = true;  // a full channel: again next turn
    }
  }
  state.due = failed;
}

// A connection routed by the old names and still queued would reach its
// worker after the new view (batches wait for it), which may answer 421:
// each is routed again by its name now. Rare: only what the loop turn of a
// change (a reload, a claim) or the wait for a shard barrier queued.
void Master::RerouteQueued() {
  std::vector<uint32_t> moved;
  for (int w = 0; w < workers_->size(); ++w) {
    Worker& worker = workers_->at(w);
    if (worker.node || worker.queue.empty()) continue;
    std::vector<uint32_t> kept;
    for (uint32_t index : worker.queue) {
      Connection& c = connections_.at(index);
      if (c.state != ConnState::kQueued || c.worker != w) continue;
      std::vector<absl::string_view> offered;
      if (!c.alpn.empty()) offered = absl::StrSplit(c.alpn, ',');
      if (RouteOn(c.listener, c.host.view(), offered).site == c.site) {
        kept.push_back(index);
        continue;
      }
      if (worker.outstanding > 0) --worker.outstanding;
      moved.push_back(index);
    }
    worker.queue.swap(kept);
  }
  for (uint32_t index : moved) {
    Connection& c = connections_.at(index);
    ReleaseSite(c);
    c.state = ConnState::kRouted;
    std::vector<absl::string_view> offered;
    if (!c.alpn.empty()) offered = absl::StrSplit(c.alpn, ',');
    ++counters_.connections_rerouted;
    Route(index, RouteOn(c.listener, c.host.view(), offered).site);
  }
}

// Cheap enough for every FlushBatches: `due` is false but for the turns a
// view changed or a send failed.
bool Master::SiteViewPending(int w) const {
  if (!site_views_.due) return false;
  const Worker& worker = workers_->at(w);
  // A Node worker without the preload is never sent a view.
  if (worker.node && workers_->node_preload().empty()) return false;
  return site_views_.book.NeedsSend(w, worker.generation, worker.site);
}

bool Master::SendSiteView(int w) {
  Worker& worker = workers_->at(w);
  const std::vector<std::string>& parts = site_views_.book.parts(worker.site);
  if (worker.node) {
    for (const std::string& part : parts) {
      // {"ddv":"site_view", ...the part's fields}: the preload's message.
      std::string line = R"({"ddv":"site_view",)" + part.substr(1) + "\n";
      if (!SendToNode(w, std::move(line))) return false;
    }
    return true;
  }
  for (const std::string& part : parts) {
    handoff::Request request;
    request.id = site_views_.next_request_id++;
    request.method = handoff::kSiteViewMethod;
    request.body = part;
    absl::StatusOr<std::string> bytes = handoff::EncodeFrame(request);
    if (!bytes.ok()) {
      LOG(DFATAL) << "site view of " << workers_->site_id(worker.site)
                  << ": " << bytes.status();
      return true;  // retrying cannot help
    }
    absl::Status sent = handoff::SendFrame(worker.channel.get(), *bytes, {},
                                           absl::ZeroDuration());
    if (!sent.ok()) {
      // The parts start over next time: part 0 resets the worker's
      // assembly.
      LOG_EVERY_N(WARNING, 100)
          << "site view not sent to " << workers_->site_id(worker.site)
          << "#" << worker.index << ": " << sent;
      return false;
    }
  }
  return true;
}

}  // namespace master
}  // namespace ddv
