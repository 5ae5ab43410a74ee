// Test helpers shared by the handoff and worker tests: real loopback TCP
// connections to hand off, and the open-fd listing used by leak checks.
#ifndef DDV_TESTS_HANDOFF_TEST_SOCKETS_H_
#define DDV_TESTS_HANDOFF_TEST_SOCKETS_H_

#include <sys/socket.h>
#include <sys/types.h>

#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "src/base/unique_fd.h"

namespace ddv {
namespace testing {

// One accepted loopback TCP connection: `client` is the connecting end,
// `server` the accepted one (the socket a master would hand off).
struct TcpPair {
  UniqueFd client;
  UniqueFd server;
};

// A listening socket on 127.0.0.1 with a kernel-chosen port.
class LoopbackListener {
 public:
  static absl::StatusOr<LoopbackListener> Create();
  absl::StatusOr<TcpPair> Connect();
  int port() const { return port_; }

 private:
  UniqueFd fd_;
  int port_ = 0;
};

// The fds of this process, from /proc/self/fd (the directory's own fd left
// out), to compare before and after an operation that must not leak.
// A connected loopback TCP pair from a throwaway listener. On failure both
// fds are invalid (the caller's own checks then fail).
TcpPair ConnectedTcpPair();

std::set<int> OpenFds();

// "ip:port" of getsockname()/getpeername(); empty on failure.
std::string LocalAddress(int fd);
std::string PeerAddress(int fd);

// Reads until `expected` bytes arrived or `timeout` passed (poll-based, works
// on blocking and non-blocking fds). Returns what was read.
std::string ReadExactly(int fd, size_t expected, absl::Duration timeout);

// Reads until EOF or `timeout`.
std::string ReadUntilEof(int fd, absl::Duration timeout);

bool WriteAll(int fd, const std::string& data);

// waitpid() with a deadline; kills the child (SIGKILL) when it expires.
// Returns the wait status, or -1 if the child had to be killed.
int WaitForChild(pid_t pid, absl::Duration timeout);

}  // namespace testing
}  // namespace ddv

#endif  // DDV_TESTS_HANDOFF_TEST_SOCKETS_H_
