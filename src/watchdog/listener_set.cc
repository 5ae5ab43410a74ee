#include "src/watchdog/listener_set.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "src/base/listen_socket.h"

namespace ddv {
namespace watchdog {

ListenerSet::ListenerSet(std::vector<std::string> names,
                         std::vector<UniqueFd> fds)
    : names_(std::move(names)), fds_(std::move(fds)) {}

int ListenerSet::Find(const std::string& name) const {
  for (size_t i = 0; i < names_.size(); ++i) {
    if (names_[i] == name) return i;
  }
  return -1;
}

std::vector<size_t> ListenerSet::Group(const std::string& name) const {
  std::vector<size_t> group;
  for (size_t i = 0; i < names_.size(); ++i) {
    if (ListenerOfSocketName(names_[i]) == name) group.push_back(i);
  }
  return group;
}

int ListenerSet::AddToSpec(supervise::ProcessSpec* spec) const {
  std::vector<std::string> named;
  int child_fd = 3;
  for (size_t i = 0; i < fds_.size(); ++i, ++child_fd) {
    spec->inherit_fds.emplace_back(fds_[i].get(), child_fd);
    named.push_back(absl::StrCat(names_[i], "=", child_fd));
  }
  spec->argv.push_back(
      absl::StrCat("--listen_fds=", absl::StrJoin(named, ",")));
  return child_fd;
}

}  // namespace watchdog
}  // namespace ddv
