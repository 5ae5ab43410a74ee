// A test worker for the log tests: on the worker library (it says hello,
// answers heartbeats and leaves on kShutdown), it writes numbered lines to
// stdout and stderr until it is told to stop, each line in one write(2):
//   line pid=<pid> out <n>
// and, as its last words on each stream, how many it wrote:
//   end pid=<pid> out <count>
// so a test can tell a lost line from one never written. It stops on
// kShutdown, on SIGTERM (the master's stop, or the parent-death signal when
// the master dies) and when the master is gone.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "src/worker/worker.h"

namespace {

std::atomic<bool> stop{false};

void OnTerm(int) { stop.store(true); }

// One write: a line under PIPE_BUF is never split by the kernel.
bool WriteLine(int fd, const std::string& line) {
  ssize_t n;
  do {
    n = write(fd, line.data(), line.size());
  } while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(line.size());
}

// Until stopped: a line on each stream every `interval_us`. Then the end
// lines, and the process exits (from here, so SIGTERM needs no help from
// the worker's loop).
void Print(long interval_us) {
  const std::string pid = absl::StrCat("pid=", getpid());
  uint64_t n = 0;
  while (!stop.load()) {
    if (!WriteLine(1, absl::StrCat("line ", pid, " out ", n, "\n")) ||
        !WriteLine(2, absl::StrCat("line ", pid, " err ", n, "\n"))) {
      _exit(3);  // a lost line must show, not pass unnoticed
    }
    ++n;
    usleep(interval_us);
  }
  WriteLine(1, absl::StrCat("end ", pid, " out ", n, "\n"));
  WriteLine(2, absl::StrCat("end ", pid, " err ", n, "\n"));
  _exit(0);
}

}  // namespace

int main(int argc, char** argv) {
  const long interval_us = argc > 1 ? std::atol(argv[1]) : 1000;
  signal(SIGPIPE, SIG_IGN);
  struct sigaction term {};
  term.sa_handler = OnTerm;
  sigaction(SIGTERM, &term, nullptr);
  absl::StatusOr<std::unique_ptr<ddv::worker::Worker>> worker =
      ddv::worker::Worker::FromEnvironment();
  if (!worker.ok()) {
    std::fprintf(stderr, "line_worker: %s\n",
                 worker.status().ToString().c_str());
    return 2;
  }
  std::thread printer(Print, interval_us);
  (*worker)->OnShutdown([](absl::Duration) { stop.store(true); });
  (*worker)->Run();  // returns on kShutdown or when the master is gone
  stop.store(true);
  printer.join();  // never returns: the printer exits the process
  return 0;
}
