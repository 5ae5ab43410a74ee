// ListenerRequests: the watchdog's side of a reload that changes listeners
// (docs/master.md, "Listeners change live"). The listening sockets are the
// watchdog's, so it binds the new ones the master asks for and hands it a
// copy; when the master commits the reload, the set it names becomes the
// watchdog's ListenerSet, in the new config order, and every socket it no
// longer names is closed. The next master started gets that set.
//
// Messages (JSON on the link, link.h):
//   master → {"op":"bind","seq":N,"name":"x","address":"127.0.0.1:81",
//             "defer_accept":true,"v6only":true,"reuse_port":false,
//             "group_member":false}
//             (ListenSpec's fields; reuse_port: beside an old socket the
//             master opened with SO_REUSEPORT, which this reload closes;
//             group_member: another socket of the listener's SO_REUSEPORT
//             group, one per master loop, docs/shards.md)
//   watchdog → {"op":"bound","seq":N,"name":"x","id":K} + the socket, or
//              {"op":"bound","seq":N,"name":"x","error":"bind() failed ..."}
//   master → {"op":"bind_abort"}: what was bound and not committed is closed
//   master → {"op":"listeners","set":[{"name":"http","held":"http"},
//             {"name":"x","bound":K}, {"name":"y","held":"y","held_members":true,
//             "bound":[L]},
//             ...]}: the new set, in config order; "held" names a socket
//             of the current set (and with "held_members":true the rest of
//             its group: a master older than groups leaves them to close),
//             "bound" a bind's id or ids: a listener's sockets are the held
//             ones, then the bound, named "name", "name#1", ...
//             (GroupSocketName).
#ifndef DDV_SRC_WATCHDOG_LISTENER_REQUESTS_H_
#define DDV_SRC_WATCHDOG_LISTENER_REQUESTS_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "src/base/listen_socket.h"
#include "src/base/unique_fd.h"
#include "src/watchdog/link.h"
#include "src/watchdog/listener_set.h"

namespace ddv {
namespace watchdog {

class ListenerRequests {
 public:
  explicit ListenerRequests(const ListenOptions& options) : options_(options) {}

  // Whether `op` is one of the messages above that the master sends.
  static bool Handles(absl::string_view op);

  // Acts on one of them; a "bind" is answered on `link`.
  void Handle(const LinkMessage& message, int link, ListenerSet* set);

  // "bind": binds with the same code a master running alone uses, keeps the
  // socket until the commit, and returns the "bound" reply; `socket` gets
  // the bound socket (empty on failure) to send with it.
  nlohmann::json Bind(const nlohmann::json& request, int* socket);

  // "listeners": replaces `set` with the sockets the message names.
  // InvalidArgument for a malformed set, a name twice, a socket named twice
  // or one the watchdog does not hold; nothing changes then. Binds it does
  // not name are closed.
  absl::Status Commit(const nlohmann::json& request, ListenerSet* set);

  // "bind_abort", or the master is gone: sockets bound for it and not
  // committed are closed (a reload that failed changes nothing).
  void Abort() { pending_.clear(); }

  size_t pending() const { return pending_.size(); }

  // Socket activation: the listening sockets are systemd's, and every bind
  // is answered with `why` as its error. The master refuses such a reload
  // itself first (socket_activation.h); this keeps the rule where the
  // sockets are.
  void RefuseBinds(std::string why) { refuse_binds_ = std::move(why); }

 private:
  const ListenOptions options_;
  std::string refuse_binds_;  // empty: binds are done
  std::map<int64_t, UniqueFd> pending_;  // bound, not committed, by id
  int64_t next_id_ = 1;
};

}  // namespace watchdog
}  // namespace ddv

#endif  // DDV_SRC_WATCHDOG_LISTENER_REQUESTS_H_
