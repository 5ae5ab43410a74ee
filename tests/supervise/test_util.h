// Helpers shared by the supervisor tests: temp files, fd listings, bounded
// waits on real processes, and the path of the probe binary.
#ifndef DDV_TESTS_SUPERVISE_TEST_UTIL_H_
#define DDV_TESTS_SUPERVISE_TEST_UTIL_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "src/supervise/spawn.h"

namespace ddv::supervise::testing {

// A fresh directory under $TEST_TMPDIR (or /tmp).
std::string MakeTempDir();
// A fresh directory under /tmp that every user may enter (for `nobody`).
std::string MakeWorldDir();
std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& text);

// The open fds of this process, as "/proc/self/fd" lists them.
std::vector<int> OpenFds();

// Waits (poll) until `fd` is readable; false on timeout.
bool WaitReadable(int fd, absl::Duration timeout);
// Waits until `path` exists and is non-empty; false on timeout.
bool WaitForFile(const std::string& path, absl::Duration timeout);
// True once `pid` no longer exists (not even as a zombie); polls until
// `timeout`, calling `between` (e.g. a reaper) between looks.
bool WaitGone(pid_t pid, absl::Duration timeout, void (*between)() = nullptr);

// `/bin/sh -c script`, named "t#0".
ProcessSpec Shell(const std::string& script);
// Spawns, waits (at most 5 s) for the exit and reaps; on any failure records
// a test failure, kills the process and returns a default ExitStatus.
ExitStatus RunToExit(const ProcessSpec& spec,
                     const EnvList& base = CleanBaseEnv());

// Absolute path of tests/supervise/probe in the runfiles.
std::string ProbePath();
// A copy of the probe in a world-readable directory under /tmp, for tests
// that run it as another user (the runfiles live under /root).
std::string WorldProbePath();

}  // namespace ddv::supervise::testing

#endif  // DDV_TESTS_SUPERVISE_TEST_UTIL_H_
