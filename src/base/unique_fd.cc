// UniqueFd: closes on destruction; EINTR from close() is not retried because on
// Linux the fd is released even then (retrying could close someone else's fd).
#include "src/base/unique_fd.h"

#include <unistd.h>

namespace ddv {

void UniqueFd::Reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

}  // namespace ddv
