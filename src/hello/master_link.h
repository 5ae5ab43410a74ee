// MasterLink: ddv_hello under a ddv master. The worker channel and a timerfd
// for the worker library's heartbeats and RPC deadlines are polled by the
// HttpServer's own ring, so one thread and one io_uring serve both the
// handoffs and the clients. The only part of src/hello that knows the
// worker library.
#ifndef DDV_SRC_HELLO_MASTER_LINK_H_
#define DDV_SRC_HELLO_MASTER_LINK_H_

#include <memory>

#include "absl/status/statusor.h"
#include "src/base/unique_fd.h"
#include "src/hello/connection_info.h"
#include "src/hello/host_gate.h"
#include "src/hello/http_server.h"
#include "src/worker/worker.h"

namespace ddv {
namespace hello {

// The worker library's view of a handed-off socket → the server's.
ConnectionInfo ToServerInfo(const worker::WorkerIdentity& identity,
                            const worker::ConnectionInfo& in);

class MasterLink : public HostGate {
 public:
  // Hands every connection `w` receives to `server`, checks their requests'
  // hosts against the master's site view, and stops `server` when the
  // master says so or is gone. `server` must outlive the link; call on
  // the server's loop thread.
  static absl::StatusOr<std::unique_ptr<MasterLink>> Attach(
      std::unique_ptr<worker::Worker> w, HttpServer* server);

  MasterLink(const MasterLink&) = delete;
  MasterLink& operator=(const MasterLink&) = delete;

  // HostGate: the worker library's site view (Worker::CheckRequest).
  uint64_t generation() const override;
  route::HostVerdict Check(uint32_t listener_key, absl::string_view target,
                           absl::string_view host) override;

 private:
  MasterLink(std::unique_ptr<worker::Worker> w, UniqueFd timer,
             HttpServer* server);
  void Wire();
  // Reads every frame, then re-arms the timer for the library's next
  // deadline.
  void Drain();

  std::unique_ptr<worker::Worker> worker_;
  UniqueFd timer_;
  HttpServer* server_;
  int channel_id_ = -1;
  int timer_id_ = -1;
  // The server's open connections when last told to the library: while
  // any are open the link wakes every 100 ms to tell it again, so closes
  // reach the master's max_connections count (docs/isolation.md).
  uint64_t told_open_ = 0;
};

}  // namespace hello
}  // namespace ddv

#endif  // DDV_SRC_HELLO_MASTER_LINK_H_
