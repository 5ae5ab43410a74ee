// Loopback TCP pairs, fd listings and bounded reads for the handoff tests.
#include "tests/handoff/test_sockets.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "src/base/errno_status.h"

namespace ddv {
namespace testing {
namespace {

std::string Format(const sockaddr_storage& addr) {
  char text[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&addr);
    ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
    return absl::StrCat(text, ":", ntohs(in->sin_port));
  }
  if (addr.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
    return absl::StrCat("[", text, "]:", ntohs(in6->sin6_port));
  }
  return "";
}

}  // namespace

absl::StatusOr<LoopbackListener> LoopbackListener::Create() {
  LoopbackListener listener;
  listener.fd_.Reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!listener.fd_) return ErrnoStatus(errno, "socket", "test listener");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(listener.fd_.get(), reinterpret_cast<sockaddr*>(&addr),
             sizeof(addr)) != 0) {
    return ErrnoStatus(errno, "bind", "test listener");
  }
  if (::listen(listener.fd_.get(), 256) != 0) {
    return ErrnoStatus(errno, "listen", "test listener");
  }
  socklen_t len = sizeof(addr);
  ::getsockname(listener.fd_.get(), reinterpret_cast<sockaddr*>(&addr), &len);
  listener.port_ = ntohs(addr.sin_port);
  return listener;
}

absl::StatusOr<TcpPair> LoopbackListener::Connect() {
  TcpPair pair;
  pair.client.Reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!pair.client) return ErrnoStatus(errno, "socket", "test client");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port_));
  if (::connect(pair.client.get(), reinterpret_cast<sockaddr*>(&addr),
                sizeof(addr)) != 0) {
    return ErrnoStatus(errno, "connect", "test client");
  }
  pair.server.Reset(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!pair.server) return ErrnoStatus(errno, "accept4", "test listener");
  return pair;
}

TcpPair ConnectedTcpPair() {
  absl::StatusOr<LoopbackListener> listener = LoopbackListener::Create();
  if (!listener.ok()) return {};
  absl::StatusOr<TcpPair> pair = listener->Connect();
  if (!pair.ok()) return {};
  return std::move(*pair);
}

std::set<int> OpenFds() {
  std::set<int> fds;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return fds;
  int own = ::dirfd(dir);
  while (dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    int fd = std::atoi(entry->d_name);
    if (fd != own) fds.insert(fd);
  }
  ::closedir(dir);
  return fds;
}

std::string LocalAddress(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return "";
  }
  return Format(addr);
}

std::string PeerAddress(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return "";
  }
  return Format(addr);
}

namespace {

// Shared read loop: stops at `expected` bytes (0: only at EOF) or timeout.
std::string ReadLoop(int fd, size_t expected, absl::Duration timeout) {
  std::string out;
  absl::Time deadline = absl::Now() + timeout;
  char buf[4096];
  while (expected == 0 || out.size() < expected) {
    int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (ms <= 0) break;
    pollfd p{fd, POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(ms));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    size_t want = sizeof(buf);
    if (expected != 0 && expected - out.size() < want) {
      want = expected - out.size();
    }
    // read(), not recv(): the helper also reads pipes.
    ssize_t r = ::read(fd, buf, want);
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (r <= 0) break;
    out.append(buf, static_cast<size_t>(r));
  }
  return out;
}

}  // namespace

std::string ReadExactly(int fd, size_t expected, absl::Duration timeout) {
  return ReadLoop(fd, expected, timeout);
}

std::string ReadUntilEof(int fd, absl::Duration timeout) {
  return ReadLoop(fd, 0, timeout);
}

bool WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::send(fd, data.data() + done, data.size() - done,
                       MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, 1000);
      continue;
    }
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

int WaitForChild(pid_t pid, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) return -1;
    if (absl::Now() >= deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    ::usleep(2000);
  }
}

}  // namespace testing
}  // namespace ddv
