// ServerThread: an HttpServer running on its own thread for in-process tests,
// with sockets handed over to it the way ddv_hello's worker channel does.
#ifndef DDV_TESTS_HELLO_SERVER_THREAD_H_
#define DDV_TESTS_HELLO_SERVER_THREAD_H_

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "src/base/unique_fd.h"
#include "src/hello/http_server.h"

namespace ddv {
namespace hello {
namespace testing {

// Runs an HttpServer on its own thread (the ring's single issuer), listening
// on 127.0.0.1:0. `setup` runs on that thread before Run(); handed-over
// sockets queued with Hand() reach AddConnection through an eventfd
// registered as an external fd, the way the worker channel does in
// ddv_hello.
class ServerThread {
 public:
  explicit ServerThread(HttpServer::Options options,
                        std::function<void(HttpServer&)> setup = nullptr);
  ~ServerThread() { StopAndJoin(); }

  int port() const { return port_; }

  void Hand(UniqueFd fd, ConnectionInfo info);

  // Stops and joins; true when Run() returned OK within `limit`.
  bool StopAndJoin(absl::Duration limit = absl::Seconds(5));

  const HttpServerStats& stats() const { return server_->stats(); }

 private:
  void TakeHandoffs();

  std::thread thread_;
  std::unique_ptr<HttpServer> server_;
  int port_ = 0;
  UniqueFd handoff_fd_;
  std::mutex mu_;
  std::deque<std::pair<UniqueFd, ConnectionInfo>> handoffs_;
  absl::Status run_status_;
  std::atomic<bool> done_{false};
};

}  // namespace testing
}  // namespace hello
}  // namespace ddv

#endif  // DDV_TESTS_HELLO_SERVER_THREAD_H_
