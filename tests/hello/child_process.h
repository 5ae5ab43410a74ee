// Spawning the real ddv_hello binary (or curl) from tests, with every wait
// bounded and no process left behind.
#ifndef DDV_TESTS_HELLO_CHILD_PROCESS_H_
#define DDV_TESTS_HELLO_CHILD_PROCESS_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "src/base/unique_fd.h"

namespace ddv {
namespace hello {
namespace testing {

// The ddv_hello binary in the test's runfiles (data dep //src:ddv_hello).
std::string HelloPath();

struct Child {
  pid_t pid = -1;
  UniqueFd out;  // the child's stdout; its stderr goes to the test log
};

struct SpawnOptions {
  std::vector<std::string> extra_env;  // "NAME=value", added to ours
  int pass_fd = -1;                    // dup2()ed to `pass_fd_as` in the child
  int pass_fd_as = 3;
};

// posix_spawnp(argv); stdout on a pipe. pid is -1 on failure.
Child Spawn(const std::vector<std::string>& argv,
            const SpawnOptions& options = SpawnOptions());

// Reads `fd` until EOF or the deadline.
std::string ReadAll(int fd, absl::Duration limit);

// Reads one line (without the newline) or what came before the deadline.
std::string ReadLine(int fd, absl::Duration limit);

// The exit code (128 + signal for a signal death), or nullopt when the child
// still ran at the deadline; it is then SIGKILLed and reaped.
std::optional<int> WaitExit(pid_t pid, absl::Duration limit);

}  // namespace testing
}  // namespace hello
}  // namespace ddv

#endif  // DDV_TESTS_HELLO_CHILD_PROCESS_H_
