// HttpResponder: one connection's HTTP/1.1 side in ddv_hello. It takes the
// request bytes as they arrive (plaintext, or decrypted by the TlsPump),
// answers every complete request into an output queue, skips request bodies,
// and says when the connection must close. It does no I/O of its own except
// one lazy getpeername() for the body's peer= field, so tests can drive it
// with strings.
#ifndef DDV_SRC_HELLO_HTTP_RESPONDER_H_
#define DDV_SRC_HELLO_HTTP_RESPONDER_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "src/hello/connection_info.h"
#include "src/hello/host_gate.h"
#include "src/hello/request_parser.h"
#include "src/hello/server_stats.h"

namespace ddv {
namespace hello {

// Stop parsing pipelined requests (and reading) once this much response is
// queued, so a client that writes without reading cannot grow our memory.
inline constexpr size_t kOutputHighWater = 256 * 1024;

// Per-connection strings keep their capacity across requests and reuse of
// the slot; only unusually large ones are given back.
inline void ShrinkIfHuge(std::string* s) {
  constexpr size_t kShrinkAbove = 1024 * 1024;
  if (s->capacity() > kShrinkAbove) std::string().swap(*s);
}

// What every responder of one server shares; owned by the server.
struct ResponderContext {
  int pid = 0;                    // the body's pid=
  size_t max_head_bytes = 16384;  // larger request heads get 431
  bool draining = false;  // stopping: every answer says Connection: close
  HttpServerStats* stats = nullptr;  // requests, bad_requests, heads_too_large
  // Checks each request's host on connections with a listener_key; null
  // (standalone): nothing is checked.
  HostGate* host_gate = nullptr;
};

class HttpResponder {
 public:
  // `context` must outlive the responder.
  explicit HttpResponder(const ResponderContext* context)
      : context_(context) {}
  HttpResponder(const HttpResponder&) = delete;
  HttpResponder& operator=(const HttpResponder&) = delete;

  // Starts over for a new connection (slots are reused). When `info.peer` is
  // empty the body's peer= is getpeername(`peer_fd`), looked up once, when
  // the first such body is built.
  void Reset(ConnectionInfo info, int peer_fd);
  // The connection is gone: its identity strings are freed now rather than
  // when the slot is reused.
  void Release();

  // Received request bytes, in order. Parsed in place while nothing waits
  // before them and output has room (the common case: no copy); what is not
  // parsed yet is kept for Resume(). Inline, like Resume() and TakeOutput():
  // they run for every read and send.
  void Feed(absl::string_view data) {
    if (in_.empty() && !Backlogged()) {
      FeedInPlace(data);
    } else if (!close_after_flush_) {
      in_.append(data.data(), data.size());
    }
  }
  // Parses kept bytes, as far as output space allows.
  void Resume() {
    if (!in_.empty() && !close_after_flush_ && !Backlogged()) ParseKept();
  }
  // Forgets kept bytes: after the last response input is only discarded.
  void DropInput() { in_.clear(); }
  bool HasUnparsedInput() const { return !in_.empty(); }

  // The answers queued and not yet taken for sending, in order.
  const std::string& output() const { return output_; }
  // Moves the queued answers into `*to`, which must be empty.
  void TakeOutput(std::string* to) {
    to->swap(output_);
    ShrinkIfHuge(&output_);
  }
  // Forgets the queued answers (they were handed to the TLS session).
  void ClearOutput();
  // After output(): this many bytes of a /bytes/N body, sent straight from
  // StreamBlock(), a chunk at a time.
  uint64_t stream_remaining() const { return stream_remaining_; }
  // The body's next bytes, at most `max`: StreamBlock() from where the last
  // send stopped, so a short send does not shift the pattern clients check.
  absl::string_view NextStreamChunk(size_t max) const;
  void StreamSent(uint64_t bytes) {
    stream_remaining_ -= bytes;
    stream_sent_ += bytes;
  }
  // The /bytes/N filler: one shared read-only block, so streaming a body
  // allocates nothing. Byte i of every body is StreamBlock()[i % size()]:
  // 64-byte lines of 'a'..'z' cycling, the 64th a newline (docs/hello.md).
  static absl::string_view StreamBlock();

  // Enough is queued (or a body streams): stop parsing and reading until the
  // client takes it, so TCP flow control pushes back on it.
  bool Backlogged() const {
    return stream_remaining_ > 0 || output_.size() >= kOutputHighWater;
  }
  // Inside a request body still being skipped.
  bool InBody() const { return body_remaining_ > 0 || body_chunked_; }
  // Requests answered on this connection.
  uint64_t requests() const { return requests_; }

  // No more requests are answered: once the queued output is sent the
  // connection closes. `must_linger`: the client may still be sending (we
  // rejected its request mid-stream), so the close must linger even if
  // nothing is unread at the moment.
  void CloseAfterFlush(bool must_linger);
  bool close_after_flush() const { return close_after_flush_; }
  bool must_linger() const { return must_linger_; }

  // What the TLS handshake saw and negotiated replaces what the master saw
  // offered.
  void SetNegotiated(absl::string_view sni, absl::string_view alpn);

 private:
  // Which Connection header a response carries (RFC 9112 §9.3, §9.6).
  enum class ConnectionHeader { kNone, kClose, kKeepAlive };
  static const char* HeaderLine(ConnectionHeader header);

  // Feed() and Resume() past their checks.
  void FeedInPlace(absl::string_view data);
  void ParseKept();
  // Answers the requests at the front of `data`; returns the bytes used.
  size_t Process(absl::string_view data);
  void Respond(const RequestHead& request);
  // Whether `request` may be answered here; if not, its 421 (or 400) is
  // queued and the connection closes after it.
  bool HostAllowed(const RequestHead& request);
  void AppendHello(absl::string_view host, ConnectionHeader connection_header,
                   bool head_only);
  // GET /proxy: what the connection's PROXY header said (docs/hello.md).
  void AppendProxy(ConnectionHeader connection_header, bool head_only);
  void AppendError(absl::string_view status, absl::string_view body,
                   ConnectionHeader connection_header);
  void BuildIdentity();

  const ResponderContext* context_;
  int peer_fd_ = -1;

  uint64_t requests_ = 0;
  bool close_after_flush_ = false;
  bool must_linger_ = false;

  // Input: the body of the request just answered, and unparsed bytes (a
  // partial head, or pipelined requests waiting for output space).
  uint64_t body_remaining_ = 0;
  bool body_chunked_ = false;
  ChunkedBodySkipper chunked_;
  size_t scan_from_ = 0;
  std::string in_;

  // Output: answers, then stream_remaining_ bytes of filler. Parsing stops
  // while a stream is queued, so nothing can be queued after it.
  std::string output_;
  uint64_t stream_remaining_ = 0;
  uint64_t stream_sent_ = 0;  // of the body streaming now

  // Who the connection is: the body is prefix + Host + suffix.
  ConnectionInfo info_;
  bool identity_ready_ = false;
  std::string body_prefix_;
  std::string body_suffix_;

  // The last 200 response, reused while the Host header and the Connection
  // header stay the same (they do for every keep-alive benchmark client).
  bool cache_valid_ = false;
  ConnectionHeader cached_header_ = ConnectionHeader::kNone;
  bool cached_head_only_ = false;
  std::string cached_host_;
  std::string cached_response_;

  // The last Host the gate allowed (origin-form requests), and the gate's
  // generation then: keep-alive clients repeat one Host, so the check runs
  // once per connection, again only after a new site view.
  bool host_allowed_valid_ = false;
  uint64_t host_allowed_generation_ = 0;
  std::string host_allowed_;
};

}  // namespace hello
}  // namespace ddv

#endif  // DDV_SRC_HELLO_HTTP_RESPONDER_H_
