// ListenerRequests: binds for the master, and commits the set it names.
#include "src/watchdog/listener_requests.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "glog/logging.h"
#include "src/base/socket_address.h"

namespace ddv {
namespace watchdog {
namespace {

using json = nlohmann::json;

std::string StringField(const json& body, const char* key) {
  auto it = body.find(key);
  return it != body.end() && it->is_string() ? it->get<std::string>() : "";
}

// A boolean member, or `otherwise` when it is missing or not a boolean (a
// master older than the member).
bool BoolField(const json& body, const char* key, bool otherwise) {
  auto it = body.find(key);
  return it != body.end() && it->is_boolean() ? it->get<bool>() : otherwise;
}

}  // namespace

bool ListenerRequests::Handles(absl::string_view op) {
  return op == "bind" || op == "bind_abort" || op == "listeners";
}

void ListenerRequests::Handle(const LinkMessage& message, int link,
                              ListenerSet* set) {
  const std::string op = message.body["op"].get<std::string>();
  if (op == "bind") {
    int socket = -1;
    const json reply = Bind(message.body, &socket);
    std::vector<int> fds;
    if (socket >= 0) fds.push_back(socket);
    absl::Status sent = SendLinkMessage(link, reply, fds);
    // The master waits for this reply; without it its reload fails (and
    // aborts, which closes the socket here).
    if (!sent.ok()) {
      LOG(ERROR) << "watchdog: answering a bind: " << sent.message();
    }
  } else if (op == "bind_abort") {
    if (!pending_.empty()) {
      LOG(INFO) << "watchdog: the reload failed; closing " << pending_.size()
                << " listeners bound for it";
    }
    Abort();
  } else if (op == "listeners") {
    absl::Status status = Commit(message.body, set);
    if (!status.ok()) {
      LOG(ERROR) << "watchdog: keeping the listeners it has: "
                 << status.message();
    }
  }
}

json ListenerRequests::Bind(const json& request, int* socket) {
  *socket = -1;
  json reply = {{"op", "bound"},
                {"seq", request.value("seq", json(0))},
                {"name", StringField(request, "name")}};
  ListenSpec spec;
  spec.name = StringField(request, "name");
  spec.address = StringField(request, "address");
  spec.defer_accept = BoolField(request, "defer_accept", true);
  spec.v6only = BoolField(request, "v6only", true);
  spec.reuse_port = BoolField(request, "reuse_port", false);
  spec.group_member = BoolField(request, "group_member", false);
  absl::StatusOr<SocketAddress> address = ParseSocketAddress(spec.address);
  if (spec.name.empty() || !address.ok()) {
    reply["error"] = absl::StrCat(
        "watchdog: bad bind request for listener \"", spec.name, "\"",
        address.ok() ? "" : absl::StrCat(": ", address.status().message()));
    return reply;
  }
  spec.bind_to = *address;
  if (!refuse_binds_.empty()) {
    reply["error"] = absl::StrCat("watchdog: not binding listener \"",
                                  spec.name, "\" to ", spec.address, ": ",
                                  refuse_binds_);
    return reply;
  }
  absl::StatusOr<UniqueFd> bound = BindListenSocket(spec, options_);
  if (!bound.ok()) {
    LOG(WARNING) << "watchdog: " << bound.status().message();
    reply["error"] = std::string(bound.status().message());
    return reply;
  }
  const int64_t id = next_id_++;
  *socket = bound->get();
  pending_[id] = std::move(*bound);
  reply["id"] = id;
  LOG(INFO) << "watchdog: bound "
            << (spec.group_member ? "another socket of listener \""
                                  : "listener \"")
            << spec.name << "\" to " << spec.address << " for the master";
  return reply;
}

namespace {

// The ids of a set entry's "bound" member: one id (a master's single
// socket) or an array of them (a group's sockets); empty without one, and
// false when it is malformed.
bool BoundIds(const json& entry, std::vector<int64_t>* ids) {
  ids->clear();
  auto b = entry.find("bound");
  if (b == entry.end()) return true;
  if (b->is_number_integer()) {
    ids->push_back(b->get<int64_t>());
    return true;
  }
  if (!b->is_array()) return false;
  for (const json& id : *b) {
    if (!id.is_number_integer()) return false;
    ids->push_back(id.get<int64_t>());
  }
  return true;
}

// The sockets a set entry's "held" takes: the one of that name, and with
// "held_members" the rest of its group. A master older than groups never
// says so, and the others close: its one loop accepts on the first only.
std::vector<size_t> HeldSockets(const json& entry, const ListenerSet& set) {
  const std::string name = StringField(entry, "held");
  if (BoolField(entry, "held_members", false)) {
    // Not the group's sockets that stopped listening: a master took a
    // lost shard's out of the group (shutdown), and they close.
    std::vector<size_t> group;
    for (size_t i : set.Group(name)) {
      if (group.empty() || IsListening(set.fd(i))) group.push_back(i);
    }
    return group;
  }
  const int index = set.Find(name);
  if (index < 0) return {};
  return {static_cast<size_t>(index)};
}

}  // namespace

absl::Status ListenerRequests::Commit(const json& request, ListenerSet* set) {
  auto entries = request.find("set");
  if (entries == request.end() || !entries->is_array() || entries->empty()) {
    return absl::InvalidArgumentError("listeners: no \"set\" array");
  }
  // Checked whole before anything moves: a bad commit leaves the set alone.
  absl::flat_hash_set<std::string> names;
  absl::flat_hash_set<size_t> held;  // sockets of the current set, by index
  absl::flat_hash_set<int64_t> bound;
  std::vector<int64_t> ids;
  for (const json& entry : *entries) {
    const std::string name =
        entry.is_object() ? StringField(entry, "name") : "";
    if (name.empty() || !names.insert(name).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "listeners: an entry without a name, or \"", name, "\" twice"));
    }
    auto h = entry.find("held");
    const bool holds = h != entry.end() && h->is_string();
    if (holds) {
      const std::vector<size_t> sockets = HeldSockets(entry, *set);
      bool twice = false;
      for (size_t i : sockets) twice = twice || !held.insert(i).second;
      if (sockets.empty() || twice) {
        return absl::InvalidArgumentError(absl::StrCat(
            "listeners: \"", name, "\": no socket \"",
            h->get<std::string>(), "\" held, or taken twice"));
      }
    }
    if (!BoundIds(entry, &ids)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "listeners: \"", name, "\": \"bound\" is not an id or ids"));
    }
    if (!holds && ids.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "listeners: \"", name, "\" names neither \"held\" nor \"bound\""));
    }
    for (int64_t id : ids) {
      if (pending_.count(id) == 0 || !bound.insert(id).second) {
        return absl::InvalidArgumentError(absl::StrCat(
            "listeners: \"", name, "\": no bound socket ", id,
            ", or taken twice"));
      }
    }
  }
  // A listener's sockets stay adjacent, the ones it had first: the first
  // is the one its master's primary loop accepts on.
  std::vector<std::string> next_names;
  std::vector<UniqueFd> next_fds;
  for (const json& entry : *entries) {
    const std::string name = StringField(entry, "name");
    auto h = entry.find("held");
    size_t k = 0;
    if (h != entry.end() && h->is_string()) {
      for (size_t i : HeldSockets(entry, *set)) {
        next_names.push_back(GroupSocketName(name, k++));
        next_fds.push_back(set->Take(i));
      }
    }
    BoundIds(entry, &ids);
    for (int64_t id : ids) {
      auto it = pending_.find(id);
      next_names.push_back(GroupSocketName(name, k++));
      next_fds.push_back(std::move(it->second));
      pending_.erase(it);
    }
  }
  const size_t closed = set->size() - held.size();
  // The sockets of the old set that were not taken close with it; so do
  // binds the commit does not name.
  *set = ListenerSet(next_names, std::move(next_fds));
  pending_.clear();
  LOG(INFO) << "watchdog: listeners now " << absl::StrJoin(next_names, ", ")
            << " (" << bound.size() << " sockets new, " << closed
            << " closed)";
  return absl::OkStatus();
}

}  // namespace watchdog
}  // namespace ddv
