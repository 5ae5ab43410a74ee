// BindListener / BindAll / taking over --listen_fds.
#include "src/master/listener_socket.h"

#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ddv {
namespace master {

ListenSpec ListenSpecFor(const config::ListenerConfig& listener) {
  ListenSpec spec;
  spec.name = listener.name;
  spec.address = listener.address;
  spec.bind_to.addr = listener.addr;
  spec.bind_to.addr_len = listener.addr_len;
  spec.defer_accept = config::IsPeeked(listener);
  spec.v6only = listener.v6only;
  return spec;
}

absl::StatusOr<UniqueFd> BindListener(const config::ListenerConfig& listener,
                                      const ListenOptions& options) {
  return BindListenSocket(ListenSpecFor(listener), options);
}

absl::StatusOr<std::vector<UniqueFd>> BindAll(const config::Config& config,
                                              const ListenOptions& options) {
  std::vector<UniqueFd> fds;
  for (const config::ListenerConfig& listener : config.listeners) {
    absl::StatusOr<UniqueFd> fd = BindListener(listener, options);
    if (!fd.ok()) return fd.status();
    fds.push_back(std::move(*fd));
  }
  return fds;
}

absl::StatusOr<std::vector<std::vector<int>>> ParseListenFdList(
    absl::string_view text, const std::vector<std::string>& listener_names,
    std::vector<int>* strangers) {
  std::vector<std::vector<int>> by_listener(listener_names.size());
  std::vector<int> seen;
  std::vector<int> unnamed;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(part, '=');
    int fd = -1;
    if (!absl::SimpleAtoi(kv.second, &fd) || fd < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--listen_fds: bad entry \"", part, "\""));
    }
    if (std::find(seen.begin(), seen.end(), fd) != seen.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--listen_fds: fd ", fd, " is named twice"));
    }
    seen.push_back(fd);
    bool named = false;
    // "name#k": another socket of the listener's group.
    const absl::string_view listener = ListenerOfSocketName(kv.first);
    for (size_t i = 0; i < listener_names.size(); ++i) {
      if (listener_names[i] == listener) {
        by_listener[i].push_back(fd);
        named = true;
      }
    }
    if (!named) unnamed.push_back(fd);
  }
  if (strangers != nullptr) *strangers = std::move(unnamed);
  return by_listener;
}

absl::StatusOr<std::vector<UniqueFd>> TakeListenFds(
    absl::string_view text, const config::Config& config,
    std::vector<std::string>* held_as,
    std::vector<std::vector<UniqueFd>>* members) {
  std::vector<std::string> names;
  for (const config::ListenerConfig& listener : config.listeners) {
    names.push_back(listener.name);
  }
  std::vector<int> strangers;
  absl::StatusOr<std::vector<std::vector<int>>> by_listener =
      ParseListenFdList(text, names, &strangers);
  if (!by_listener.ok()) return by_listener.status();
  // The watchdog's name of each fd (the text parsed cleanly above).
  absl::flat_hash_map<int, std::string> name_of;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(part, '=');
    int fd = -1;
    if (absl::SimpleAtoi(kv.second, &fd)) {
      name_of[fd] = std::string(ListenerOfSocketName(kv.first));
    }
  }
  std::vector<UniqueFd> fds(names.size());
  std::vector<std::vector<UniqueFd>> group(names.size());
  std::vector<std::string> held(names.size());
  // A listener's first socket is fds[i], the rest of its SO_REUSEPORT
  // group (docs/shards.md) group[i].
  const auto take = [&](size_t i, int fd) {
    if (!fds[i]) {
      fds[i] = UniqueFd(fd);
    } else {
      group[i].emplace_back(fd);
    }
  };
  for (size_t i = 0; i < names.size(); ++i) {
    const config::ListenerConfig& listener = config.listeners[i];
    for (int fd : (*by_listener)[i]) {
      if (ListensOn(fd, {listener.addr, listener.addr_len})) {
        take(i, fd);
        held[i] = names[i];
      } else {
        strangers.push_back(fd);
      }
    }
  }
  for (size_t i = 0; i < names.size(); ++i) {
    const config::ListenerConfig& listener = config.listeners[i];
    sockaddr_storage wanted{};
    std::memcpy(&wanted, &listener.addr,
                std::min<size_t>(sizeof(wanted), listener.addr_len));
    // Port 0 ("any") names no one socket: matched by name only, as a
    // reload's plan does.
    if (fds[i] || SocketAddressPort(wanted) <= 0) continue;
    for (int& fd : strangers) {
      if (fd < 0 || !ListensOn(fd, {listener.addr, listener.addr_len})) {
        continue;
      }
      // The first socket held under another name on this address, and the
      // rest of its group (the same name, the same address).
      if (held[i].empty()) {
        held[i] = name_of[fd];
      } else if (name_of[fd] != held[i]) {
        continue;
      }
      take(i, fd);
      fd = -1;
    }
  }
  strangers.erase(std::remove(strangers.begin(), strangers.end(), -1),
                  strangers.end());
  if (held_as != nullptr) *held_as = std::move(held);
  // Without `members`, a group's other sockets close with `group`.
  if (members != nullptr) *members = std::move(group);
  for (int fd : strangers) {
    // Only a listening socket is surely the watchdog's: anything else named
    // here is not ours to close.
    if (IsListening(fd)) UniqueFd closed(fd);
  }
  return fds;
}

}  // namespace master
}  // namespace ddv
