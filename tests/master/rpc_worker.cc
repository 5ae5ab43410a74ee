// A test worker on the worker library: at start it sends the JSON in
// $RPC_UPDATE as an update_server_conf RPC (and a ping), and
// $RPC_MESSAGE_COUNT messages to site $RPC_MESSAGE_SITE's worker
// $RPC_MESSAGE_WORKER (default: any), then answers every handed-off HTTP
// request with one line saying what the master replied and how many
// messages it received:
//   site=<id> worker=<index> pid=<pid> ping=<ok|error> rpc=<ok|error text>
//   messages=<n>
// With $RPC_ONCE (a file path) only the first process to find no such file
// sends the update, so a test can watch a claim outlive a reload and die
// with the process that made it.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "src/handoff/wire.h"
#include "src/worker/worker.h"

int main() {
  absl::StatusOr<std::unique_ptr<ddv::worker::Worker>> worker =
      ddv::worker::Worker::FromEnvironment();
  if (!worker.ok()) {
    std::fprintf(stderr, "rpc_worker: %s\n", worker.status().ToString().c_str());
    return 2;
  }
  ddv::worker::Worker* w = worker->get();
  std::string rpc = "none";
  std::string ping = "none";
  w->Ping(absl::Seconds(5), [&](absl::StatusOr<nlohmann::json> reply) {
    ping = reply.ok() ? "ok" : "error";
  });
  const char* update = std::getenv("RPC_UPDATE");
  if (const char* once = std::getenv("RPC_ONCE")) {
    const int marker = open(once, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    if (marker < 0) {
      update = nullptr;
      rpc = "skipped";
    } else {
      close(marker);
    }
  }
  if (update != nullptr) {
    nlohmann::json body = nlohmann::json::parse(update, nullptr, false);
    w->Call("update_server_conf", body, absl::Seconds(5),
            [&](absl::StatusOr<nlohmann::json> reply) {
              rpc = reply.ok() ? "ok"
                               : absl::StrCat("error:",
                                              reply.status().message());
              for (char& c : rpc) {
                if (c == ' ') c = '_';
              }
            });
  }
  int messages = 0;
  w->OnMessage([&](const ddv::worker::IncomingMessage&) { ++messages; });
  if (const char* site = std::getenv("RPC_MESSAGE_SITE")) {
    const char* count = std::getenv("RPC_MESSAGE_COUNT");
    const char* index = std::getenv("RPC_MESSAGE_WORKER");
    const uint32_t target = index != nullptr
                                ? static_cast<uint32_t>(std::atoi(index))
                                : ddv::handoff::kAnyWorker;
    for (int i = 0; i < (count != nullptr ? std::atoi(count) : 1); ++i) {
      absl::Status sent = w->SendToWorker(site, target, {{"n", i}});
      if (!sent.ok()) std::fprintf(stderr, "rpc_worker: %s\n",
                                   sent.ToString().c_str());
    }
  }
  w->OnConnection([&](ddv::UniqueFd socket,
                      const ddv::worker::ConnectionInfo& info) {
    timeval tv{2, 0};
    setsockopt(socket.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    std::string head;
    char buf[4096];
    while (head.find("\r\n\r\n") == std::string::npos) {
      ssize_t n = recv(socket.get(), buf, sizeof(buf), 0);
      if (n <= 0) return;
      head.append(buf, n);
    }
    std::string body = absl::StrCat(
        "site=", info.site, " worker=", w->identity().worker_index,
        " pid=", getpid(), " ping=", ping, " rpc=", rpc,
        " messages=", messages, "\n");
    std::string response = absl::StrCat(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ",
        body.size(), "\r\nConnection: close\r\n\r\n", body);
    send(socket.get(), response.data(), response.size(), MSG_NOSIGNAL);
  });
  absl::Status status = w->Run();
  return status.ok() ? 0 : 1;
}
