// ShardSnapshot: what a master shard (docs/shards.md) needs to route a
// connection by itself, published by the primary loop (shard 0) whenever it
// changes and never modified after: the listener slots with their sockets
// and route tables, and per site the workers a shard may send to.
//
// A shard takes a new snapshot at the start of a loop turn and sends only
// during a turn, so once every shard has adopted epoch E nothing it sends
// can be based on an earlier one. The primary waits for that before it
// closes anything an older snapshot named: a retired listener's socket, a
// retired worker's channel (docs/shards.md, "Barriers").
#ifndef DDV_SRC_MASTER_SHARD_SNAPSHOT_H_
#define DDV_SRC_MASTER_SHARD_SNAPSHOT_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "src/config/config.h"
#include "src/route/route_table.h"

namespace ddv {
namespace master {

struct ShardSnapshot {
  uint64_t epoch = 0;
  // False from the start of a stop or handover on: accepts are cancelled
  // and what a shard holds is decided, sent or forwarded.
  bool accepting = true;
  int64_t peek_timeout_ns = 0;
  int64_t defer_accept_ns = 0;  // TCP_DEFER_ACCEPT's hold (see OnPeek)
  uint32_t max_peek_bytes = 0;

  struct Listener {
    config::ListenerConfig config;
    int fd = -1;          // the primary's; -1 once closed or passed on
    // The other sockets of the listener's SO_REUSEPORT group, shard 1's
    // first (docs/shards.md, "One socket per loop"); fewer than the shards
    // when the listeners' owner could not bind them (socket activation).
    std::vector<int> members;
    bool accept = false;  // running (not retired) and not stopping
    // Connections a shard may route itself. False when every connection of
    // the listener is logged (access_log): the log is the primary's, so the
    // shard forwards them.
    bool routed_here = false;
    std::shared_ptr<const route::RouteTable> routes;  // null: released
    int route_index = -1;

    // The socket shard `shard` (1..) accepts on: its own, or the primary's,
    // shared with it and any other shard without one.
    int SocketOf(int shard) const {
      return shard >= 1 && static_cast<size_t>(shard) <= members.size()
                 ? members[shard - 1]
                 : fd;
    }
    bool Shares(int shard) const {
      return shard < 1 || static_cast<size_t>(shard) > members.size();
    }
  };
  std::vector<Listener> listeners;  // by listener slot

  // A worker a shard may send to: ddv runtime (Node workers speak Node's
  // IPC, which one sender at a time owns), alive, said hello, has its
  // site's view, not draining, channel not full, site without caps.
  struct Target {
    int worker = -1;
    int channel = -1;  // the master's end (SOCK_SEQPACKET)
  };
  std::vector<std::vector<Target>> sites;  // by site index
};

}  // namespace master
}  // namespace ddv

#endif  // DDV_SRC_MASTER_SHARD_SNAPSHOT_H_
