// HttpServer: ddv_hello's single-threaded io_uring HTTP/1.1 keep-alive server.
// It serves sockets it accepts itself (standalone mode, the benchmarks'
// "direct" baseline) and sockets a ddv master hands over, answering every
// request with one line that says which site, worker and client it saw.
// This class is the loop (ring, listeners, external fds, stop); the
// connections live in ConnectionIo (connection_io.h).
#ifndef DDV_SRC_HELLO_HTTP_SERVER_H_
#define DDV_SRC_HELLO_HTTP_SERVER_H_

#include <liburing.h>
#include <sys/socket.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "src/base/unique_fd.h"
#include "src/hello/connection_info.h"
#include "src/hello/deadline_list.h"
#include "src/hello/host_gate.h"
#include "src/hello/server_stats.h"
#include "src/uring/buffer_ring.h"
#include "src/uring/ring.h"

namespace ddv {
namespace tls {
class TlsServerContext;
}  // namespace tls

namespace hello {

class ConnectionIo;

// Threading: everything except Stop() must be called on the thread that
// called Create(); the ring is set up with IORING_SETUP_SINGLE_ISSUER, so the
// kernel itself refuses submissions from any other thread.
class HttpServer {
 public:
  struct Options {
    // Body labels for connections accepted by Listen() (standalone mode).
    std::string site_id = "standalone";
    int worker_index = 0;
    // A connection with no progress (no request bytes, no response bytes
    // taken by the client) for this long is closed.
    absl::Duration idle_timeout = absl::Seconds(60);
    // After the last response, how long to read and discard what the client
    // still sends before closing, so a close does not turn into an RST that
    // destroys the response in flight (nginx's lingering close).
    absl::Duration linger_timeout = absl::Seconds(5);
    // Graceful stop: connections still busy after this are closed.
    absl::Duration stop_timeout = absl::Seconds(10);
    // Graceful stop: an idle keep-alive connection may send one more request
    // (answered with Connection: close) for this long before it is closed,
    // so a request already on its way is not lost (ConnectionIo::Options).
    absl::Duration drain_idle_grace = absl::Seconds(1);
    // Multishot recv into a shared provided-buffer ring (one buffer per read,
    // returned at once) instead of one single-shot recv per read into a
    // per-connection buffer.
    bool recv_multishot = true;
    // A kernel thread polls the submission queue (costs a core).
    bool sqpoll = false;
    unsigned ring_entries = 1024;
    unsigned buffer_count = 1024;  // provided buffers, a power of two
    unsigned buffer_size = 4096;
    size_t max_head_bytes = 16384;  // larger request heads get 431
    // Terminates TLS on connections handed over with `info.tls` and on
    // listeners opened with Listen(address, /*tls=*/true). Not owned; must
    // outlive the server. Null: such connections are refused (closed).
    tls::TlsServerContext* tls_context = nullptr;
  };

  static absl::StatusOr<std::unique_ptr<HttpServer>> Create(Options options);
  ~HttpServer();

  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Listens on "ip:port" or "[ipv6]:port" with a multishot accept. Port 0
  // lets the kernel pick; port() then says which. With `tls` the accepted
  // connections speak TLS (Options.tls_context is then required).
  absl::Status Listen(absl::string_view address, bool tls = false);
  // The port of the most recent successful Listen().
  int port() const { return port_; }

  // Serves an already-connected socket whose first bytes are still unread
  // (the master only peeked). `info.skip_bytes` are discarded first.
  void AddConnection(UniqueFd fd, ConnectionInfo info);

  // Polls `fd` (multishot) on the server's ring and calls `on_readable` on
  // the loop thread whenever it becomes readable; the callback must read
  // until EAGAIN, because the poll reports edges, not levels. The fd stays
  // owned by the caller. Returns an id for UnregisterExternalFd.
  int RegisterExternalFd(int fd, std::function<void()> on_readable);
  void UnregisterExternalFd(int id);

  // Runs the loop until Stop() and the graceful drain finish. Call once.
  absl::Status Run();
  // Graceful stop: stop accepting, let busy connections finish their
  // responses (answered with Connection: close; sockets handed over
  // meanwhile are still served the same way) and idle keep-alive ones send
  // one more (Options::drain_idle_grace), then Run() returns. Connections
  // still busy after stop_timeout are closed. Asking again changes nothing:
  // a worker is asked by its master, by SIGTERM and by the master's
  // disappearance, often all at once, and each must let the drain run.
  // Thread-safe and async-signal-safe (an atomic store and an eventfd
  // write).
  void Stop();
  // Stop() with `timeout` instead of Options::stop_timeout for the busy
  // connections: the master's kShutdown says how long its drain allows
  // (--drain_timeout), so a long download is not cut at ddv_hello's own
  // default. Same thread rules as Stop().
  void StopWithin(absl::Duration timeout);
  // Stop() without waiting for busy connections: they are closed now (a
  // second Ctrl-C). Same thread rules as Stop().
  void StopNow();

  // Checks the host of every request on connections added with a
  // listener_key (MasterLink sets it); not owned, must outlive the server.
  void SetHostGate(HostGate* gate);

  const HttpServerStats& stats() const { return stats_; }

 private:
  struct Listener;
  struct ExternalFd;

  explicit HttpServer(Options options);
  absl::Status Init();

  void ArmAccept(size_t index);
  void OnAccept(size_t index, const io_uring_cqe& cqe);
  void ArmExternal(size_t id);
  void OnExternal(size_t id, const io_uring_cqe& cqe);
  void ArmWake();
  void OnWake(const io_uring_cqe& cqe);
  void BeginDrain();
  void RetryAccepts();
  int64_t NextWakeNanos() const;
  void Dispatch(const io_uring_cqe& cqe);

  Options options_;
  HttpServerStats stats_;
  // The destructor releases the buffer ring and then the ring first, so the
  // kernel holds no pointer into the connections' buffers when they go.
  std::unique_ptr<uring::Ring> ring_;
  // Provided-buffer ring (multishot recv); null in single-shot mode.
  std::unique_ptr<uring::BufferRing> buffers_;
  LoopClock clock_;
  std::unique_ptr<ConnectionIo> connections_;
  int port_ = 0;

  std::vector<std::unique_ptr<Listener>> listeners_;
  std::vector<std::unique_ptr<ExternalFd>> externals_;

  UniqueFd wake_fd_;  // eventfd that makes Stop() wake the loop
  bool wake_armed_ = false;
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> stop_now_requested_{false};
  // StopWithin's timeout in ns; -1: Options::stop_timeout.
  std::atomic<int64_t> stop_timeout_ns_{-1};
  bool running_ = false;
  bool forced_ = false;
  int64_t stop_deadline_ns_ = 0;
  int64_t accept_retry_ns_ = 0;  // 0: no accept waits for a retry
};

}  // namespace hello
}  // namespace ddv

#endif  // DDV_SRC_HELLO_HTTP_SERVER_H_
