// WriteConfigSnapshot: temp file + fsync + rename + directory fsync.
#include "src/config/config_snapshot.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <vector>

#include "absl/strings/str_cat.h"
#include "src/base/errno_status.h"
#include "src/base/unique_fd.h"

namespace ddv {
namespace config {

std::string SnapshotPathFor(const std::string& control_socket) {
  if (control_socket.empty()) return "";
  const size_t slash = control_socket.rfind('/');
  const size_t dot = control_socket.rfind('.');
  const bool has_extension =
      dot != std::string::npos &&
      (slash == std::string::npos || dot > slash + 1);
  return absl::StrCat(
      has_extension ? control_socket.substr(0, dot) : control_socket,
      ".last-good.toml");
}

absl::Status WriteConfigSnapshot(const std::string& path,
                                 absl::string_view text) {
  const std::string doing = absl::StrCat("saving the last good config \"",
                                         path, "\"");
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "."
                          : slash == 0               ? "/"
                                                     : path.substr(0, slash);
  std::string temp = path + ".XXXXXX";
  std::vector<char> name(temp.begin(), temp.end());
  name.push_back('\0');
  // mkstemp creates the file 0600 and O_EXCL: no one else's file is reused.
  UniqueFd fd(mkostemp(name.data(), O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, "mkostemp", doing);
  temp.assign(name.data());
  size_t written = 0;
  while (written < text.size()) {
    ssize_t n = write(fd.get(), text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status status = ErrnoStatus(errno, "write", doing);
      unlink(temp.c_str());
      return status;
    }
    written += static_cast<size_t>(n);
  }
  if (fsync(fd.get()) != 0) {
    absl::Status status = ErrnoStatus(errno, "fsync", doing);
    unlink(temp.c_str());
    return status;
  }
  fd.Reset();
  if (rename(temp.c_str(), path.c_str()) != 0) {
    absl::Status status = ErrnoStatus(errno, "rename", doing);
    unlink(temp.c_str());
    return status;
  }
  // The rename itself must reach the disk, or a crash could bring back the
  // old snapshot after the new config ran.
  UniqueFd dir_fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir_fd || fsync(dir_fd.get()) != 0) {
    return ErrnoStatus(errno, dir_fd ? "fsync" : "open", doing);
  }
  return absl::OkStatus();
}

}  // namespace config
}  // namespace ddv
