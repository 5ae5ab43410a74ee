// ConnectionIo: every client connection of ddv_hello on the server's ring.
// It owns the connection slots and does their socket I/O: recv (multishot
// into the shared provided-buffer ring, or single-shot into a per-connection
// buffer), send, lingering close and close, and the idle and linger
// deadlines. Request bytes go to each connection's HttpResponder, through
// its TlsPump on TLS connections. The loop itself (HttpServer) routes the
// kOpRecv and kOpSend completions here.
#ifndef DDV_SRC_HELLO_CONNECTION_IO_H_
#define DDV_SRC_HELLO_CONNECTION_IO_H_

#include <liburing.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/time/time.h"
#include "src/base/unique_fd.h"
#include "src/hello/connection_info.h"
#include "src/hello/deadline_list.h"
#include "src/hello/http_responder.h"
#include "src/hello/server_stats.h"
#include "src/tls/tls_context.h"
#include "src/uring/buffer_ring.h"
#include "src/uring/ring.h"

namespace ddv {
namespace hello {

class ConnectionIo {
 public:
  struct Options {
    // No progress (no request bytes read, no response bytes taken) for this
    // long closes a connection.
    absl::Duration idle_timeout = absl::Seconds(60);
    // After the last response, how long to read and discard what the client
    // still sends before closing (nginx's lingering close).
    absl::Duration linger_timeout = absl::Seconds(5);
    // At a graceful stop, an idle keep-alive connection gets this long to
    // send one more request (answered with Connection: close) before it is
    // closed. Closing it at once would race a request already on its way,
    // which its client would see fail (HAProxy's idle-close-on-response).
    absl::Duration drain_idle_grace = absl::Seconds(1);
    size_t max_head_bytes = 16384;  // larger request heads get 431
    // Terminates TLS on connections opened with `info.tls`; not owned.
    tls::TlsServerContext* tls_context = nullptr;
  };

  // `ring`, `clock` and `stats` must outlive this. `buffers` null: each
  // connection reads with single-shot recvs into its own buffer.
  ConnectionIo(const Options& options, uring::Ring* ring,
               uring::BufferRing* buffers, const LoopClock* clock,
               HttpServerStats* stats);
  ~ConnectionIo();
  ConnectionIo(const ConnectionIo&) = delete;
  ConnectionIo& operator=(const ConnectionIo&) = delete;

  // Serves a connected socket whose first bytes may still be unread;
  // `info.skip_bytes` are discarded first, and `info.tls` connections are
  // decrypted (Options.tls_context must then be set).
  void Open(UniqueFd fd, ConnectionInfo info);

  // The completions of the ops this class submits, by connection index.
  void OnRecv(uint32_t index, const io_uring_cqe& cqe);
  void OnSend(uint32_t index, int result);

  // Graceful stop: from now on answers say Connection: close; busy
  // connections close after their answers, idle keep-alive ones after their
  // next answer or, if none comes, at the end of Options.drain_idle_grace.
  void BeginDrain();
  bool draining() const { return context_.draining; }
  // Requests of connections opened with a listener_key are checked by
  // `gate` (not owned; null: none are).
  void SetHostGate(HostGate* gate) { context_.host_gate = gate; }
  // The stop timeout passed: closes every connection still open.
  void CloseAll();
  // Closes the connections whose idle or linger deadline has passed, and
  // at the end of a drain's idle grace the idle keep-alive ones.
  void ExpireDeadlines();
  // The earliest of those deadlines if it is before `limit`, else `limit`.
  int64_t NextDeadline(int64_t limit) const;

 private:
  struct Connection;

  Connection* NewConnection(UniqueFd fd, ConnectionInfo info);
  void ArmRecv(Connection* c);
  void UpdateRecv(Connection* c);
  void Drive(Connection* c);
  void DriveAll();  // every open or lingering connection, as at a drain
  bool StartTls(Connection* c);
  void PumpTls(Connection* c);
  bool QueueTlsClose(Connection* c);
  bool HasUnreadInput(const Connection* c) const;
  void StartSend(Connection* c);
  void LingeringClose(Connection* c);
  void CloseNow(Connection* c);
  void MaybeFree(Connection* c);
  void Touch(Connection* c);

  const Options options_;
  uring::Ring* const ring_;
  uring::BufferRing* const buffers_;
  const LoopClock* const clock_;
  HttpServerStats* const stats_;
  ResponderContext context_;

  std::vector<std::unique_ptr<Connection>> connections_;
  std::vector<uint32_t> free_slots_;
  DeadlineList idle_deadlines_;
  DeadlineList linger_deadlines_;
  // While draining: when idle keep-alive connections close (0: done).
  int64_t drain_idle_close_ns_ = 0;
  // Decrypted bytes land here before parsing (TLS connections); one for all
  // connections, since each record is parsed before the next is read.
  std::unique_ptr<char[]> tls_plaintext_;
};

}  // namespace hello
}  // namespace ddv

#endif  // DDV_SRC_HELLO_CONNECTION_IO_H_
