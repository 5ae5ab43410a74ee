// TlsPump: one connection's TLS in ddv_hello, over a tls::TlsSession (memory
// BIOs, no I/O of its own). Received ciphertext goes in; the handshake runs;
// decrypted requests go to the connection's HttpResponder as far as its
// output space allows; its answers come back out as records, in one ordered
// stream with the handshake's own bytes. The socket stays with the caller.
#ifndef DDV_SRC_HELLO_TLS_PUMP_H_
#define DDV_SRC_HELLO_TLS_PUMP_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "src/hello/http_responder.h"
#include "src/tls/tls_context.h"
#include "src/tls/tls_session.h"

namespace ddv {
namespace hello {

// The largest TLS record's plaintext (RFC 8446 §5.1): one Decrypt() read.
inline constexpr size_t kTlsPlaintextBytes = 16 * 1024;
// A /bytes/N body is encrypted this much at a time, when the previous piece
// has been sent: a streaming connection holds at most this much ciphertext
// (plus one TLS record of overhead per 16 KiB).
inline constexpr size_t kTlsStreamChunk = 64 * 1024;

class TlsPump {
 public:
  // What Decrypt() stopped at. "Need more bytes" is the normal state of a
  // stream, so this is an enum, not a Status.
  enum class DecryptStatus {
    kIdle,        // no complete record left, or the responder stopped taking
                  // requests (backlogged or closing)
    kPeerClosed,  // close_notify: like a FIN, answer what came before it
    kError,       // a bad record: the alert is queued; close after it
  };

  TlsPump() = default;
  TlsPump(const TlsPump&) = delete;
  TlsPump& operator=(const TlsPump&) = delete;

  // A new session on `context`'s current certificates.
  absl::Status Start(const tls::TlsServerContext& context);
  // Frees the session (its SSL and buffers); the pump is then inactive.
  void Reset();
  // False on plaintext connections.
  bool active() const { return session_ != nullptr; }
  // The session, for its state (handshake_done, failed, sni, alpn, error).
  const tls::TlsSession& session() const { return *session_; }

  void FeedCiphertext(absl::string_view bytes) {
    session_->FeedCiphertext(bytes);
  }
  // Advances the handshake with what was fed. On kDone, `http` is told the
  // SNI and ALPN that were negotiated.
  tls::TlsSession::HandshakeStatus Handshake(HttpResponder* http);
  // After the handshake: decrypts into `scratch` and feeds `http` until the
  // input runs out or `http` stops taking requests (the rest stays
  // encrypted in the session, so memory stays bounded).
  DecryptStatus Decrypt(HttpResponder* http, char* scratch, size_t size);
  // Encrypts what `http` has queued (all its answers, else the next piece of
  // a streamed body) and appends every byte the session produced, in wire
  // order, to `*wire`. An error means the connection cannot go on.
  absl::Status Encrypt(HttpResponder* http, std::string* wire);
  // Queues close_notify, once; false when there is no session or it was
  // already queued. The caller then sends what Encrypt() produces.
  bool QueueClose();
  // Fed or decrypted bytes not yet taken: more requests may be in there.
  bool HasBufferedInput() const {
    return session_ != nullptr && session_->HasBufferedInput();
  }

 private:
  std::unique_ptr<tls::TlsSession> session_;
  bool close_queued_ = false;
};

}  // namespace hello
}  // namespace ddv

#endif  // DDV_SRC_HELLO_TLS_PUMP_H_
