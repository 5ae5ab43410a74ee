// A test worker on the worker library's C++ API that checks every request's
// host with Worker::CheckRequest, as docs/worker.md tells apps to: 421 and
// close for another site's host, else 200 with one line
//   site=<id> worker=<index> pid=<pid> host=<Host>
// It serves one connection at a time, keep-alive, until the client closes
// (or is idle for 2 s). With $CLAIM_HOSTS (comma-separated) it claims those
// hosts at start (update_server_conf); with $CLAIM_ONCE (a file path) only
// the first process to find no such file does, so a test can watch a claim
// die with the process that made it.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "src/worker/worker.h"

namespace {

bool SendAll(int fd, const std::string& bytes) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent,
                     MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

// Serves `fd` until the client closes, goes idle, or is refused.
void Serve(ddv::worker::Worker* w, int fd,
           const ddv::worker::ConnectionInfo& info) {
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string in;
  char buf[4096];
  for (int requests = 1;; ++requests) {
    size_t end;
    while ((end = in.find("\r\n\r\n")) == std::string::npos) {
      ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) return;
      in.append(buf, static_cast<size_t>(n));
    }
    std::string head = in.substr(0, end);
    in.erase(0, end + 4);
    std::vector<std::string> lines = absl::StrSplit(head, "\r\n");
    std::vector<std::string> request_line =
        absl::StrSplit(lines[0], ' ', absl::SkipEmpty());
    const std::string target = request_line.size() > 1 ? request_line[1] : "";
    std::string host;
    for (size_t i = 1; i < lines.size(); ++i) {
      if (absl::StartsWithIgnoreCase(lines[i], "host:")) {
        host = std::string(absl::StripAsciiWhitespace(lines[i].substr(5)));
      }
    }
    // The first request was routed by its name (docs/worker.md).
    switch (w->CheckRequest(info, target, host,
                            /*first_request=*/requests == 1)) {
      case ddv::worker::HostVerdict::kAllowed:
        break;
      case ddv::worker::HostVerdict::kMisdirected:
        SendAll(fd,
                "HTTP/1.1 421 Misdirected Request\r\nContent-Length: 12\r\n"
                "Connection: close\r\n\r\nmisdirected\n");
        return;
      case ddv::worker::HostVerdict::kInvalid:
        SendAll(fd,
                "HTTP/1.1 400 Bad Request\r\nContent-Length: 4\r\n"
                "Connection: close\r\n\r\nbad\n");
        return;
    }
    const std::string body = absl::StrCat(
        "site=", w->identity().site, " worker=", w->identity().worker_index,
        " pid=", getpid(), " host=", host.empty() ? "-" : host,
        " misdirected=", w->misdirected_requests(), "\n");
    if (!SendAll(fd, absl::StrCat("HTTP/1.1 200 OK\r\nContent-Length: ",
                                  body.size(), "\r\n\r\n", body))) {
      return;
    }
  }
}

}  // namespace

int main() {
  absl::StatusOr<std::unique_ptr<ddv::worker::Worker>> worker =
      ddv::worker::Worker::FromEnvironment();
  if (!worker.ok()) {
    std::fprintf(stderr, "host_check_worker: %s\n",
                 worker.status().ToString().c_str());
    return 2;
  }
  ddv::worker::Worker* w = worker->get();
  const char* claim = std::getenv("CLAIM_HOSTS");
  if (const char* once = std::getenv("CLAIM_ONCE")) {
    const int marker =
        open(once, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    if (marker < 0) {
      claim = nullptr;
    } else {
      close(marker);
    }
  }
  if (claim != nullptr) {
    ddv::worker::ServerConfUpdate update;
    update.add_hosts = absl::StrSplit(claim, ',', absl::SkipEmpty());
    w->UpdateServerConf(update, absl::Seconds(5),
                        [](absl::StatusOr<nlohmann::json> reply) {
                          std::fprintf(stderr, "host_check_worker: claim %s\n",
                                       reply.ok()
                                           ? "ok"
                                           : reply.status().ToString().c_str());
                        });
  }
  w->OnConnection([w](ddv::UniqueFd socket,
                      const ddv::worker::ConnectionInfo& info) {
    Serve(w, socket.get(), info);
  });
  absl::Status status = w->Run();
  return status.ok() ? 0 : 1;
}
