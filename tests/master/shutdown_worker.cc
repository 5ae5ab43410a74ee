// A test worker on the worker library for WorkerPool's shutdown tests: it
// says hello, and when kShutdown arrives appends "shutdown <grace_ms>" to
// $SHUTDOWN_LOG and exits 0, as a worker that drained would. With
// --ignore_shutdown it notes the request the same way but keeps running
// until a signal ends it (SIGTERM's default action).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/time/time.h"
#include "src/worker/worker.h"

int main(int argc, char** argv) {
  const bool ignore =
      argc > 1 && std::strcmp(argv[1], "--ignore_shutdown") == 0;
  absl::StatusOr<std::unique_ptr<ddv::worker::Worker>> worker =
      ddv::worker::Worker::FromEnvironment();
  if (!worker.ok()) {
    std::fprintf(stderr, "shutdown_worker: %s\n",
                 worker.status().ToString().c_str());
    return 2;
  }
  (*worker)->OnShutdown([](absl::Duration grace) {
    if (const char* path = std::getenv("SHUTDOWN_LOG")) {
      if (FILE* f = std::fopen(path, "a")) {
        std::fprintf(f, "shutdown %lld\n",
                     static_cast<long long>(absl::ToInt64Milliseconds(grace)));
        std::fclose(f);
      }
    }
  });
  absl::Status status = (*worker)->Run();
  if (!status.ok() || !(*worker)->shutdown_requested()) return 1;
  if (ignore) {
    for (;;) pause();
  }
  return 0;
}
