// ListenerSet: the listening sockets the watchdog owns, by name, in config
// order. Every master starts with them inherited from fd 3 up and learns
// them from --listen_fds=name=fd,...; while no master runs, clients wait in
// their backlogs. A listener of a master with shards is a SO_REUSEPORT
// group, one socket per loop (docs/shards.md): its sockets are adjacent
// entries, the first under the listener's name, the others "name#k"
// (GroupSocketName).
#ifndef DDV_SRC_WATCHDOG_LISTENER_SET_H_
#define DDV_SRC_WATCHDOG_LISTENER_SET_H_

#include <string>
#include <utility>
#include <vector>

#include "src/base/unique_fd.h"
#include "src/supervise/spawn.h"

namespace ddv {
namespace watchdog {

class ListenerSet {
 public:
  ListenerSet() = default;
  ListenerSet(std::vector<std::string> names, std::vector<UniqueFd> fds);

  // Adds the listeners to a master's spec: inherited at 3, 4, ... and named
  // in a --listen_fds argument. Returns the first fd number left free.
  int AddToSpec(supervise::ProcessSpec* spec) const;

  size_t size() const { return fds_.size(); }
  const std::string& name(size_t i) const { return names_[i]; }
  int fd(size_t i) const { return fds_[i].get(); }
  // The index of the (first) socket named `name`, or -1.
  int Find(const std::string& name) const;
  // The indexes of listener `name`'s sockets (its group), first first.
  std::vector<size_t> Group(const std::string& name) const;
  // Takes the socket out (the slot is left empty); for building a new set.
  UniqueFd Take(size_t i) { return std::move(fds_[i]); }

 private:
  std::vector<std::string> names_;
  std::vector<UniqueFd> fds_;
};

}  // namespace watchdog
}  // namespace ddv

#endif  // DDV_SRC_WATCHDOG_LISTENER_SET_H_
