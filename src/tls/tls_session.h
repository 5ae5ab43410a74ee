// TlsSession: one server-side TLS connection with no I/O of its own, for
// event loops (io_uring) that own the socket. The loop feeds it the bytes it
// received, asks it to advance the handshake or decrypt, gives it plaintext
// to encrypt, and sends whatever it produced. Every produced byte (handshake
// flights, tickets, alerts, records, close_notify) comes out of
// TakeCiphertext() in wire order.
#ifndef DDV_SRC_TLS_TLS_SESSION_H_
#define DDV_SRC_TLS_TLS_SESSION_H_

#include <openssl/ssl.h>

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "src/tls/tls_context.h"

namespace ddv {
namespace tls {

class TlsSession {
 public:
  // "Want more bytes" is the normal state of a stream, not an error, so
  // these are enums (as the sniffers and the HTTP parser do).
  enum class HandshakeStatus {
    kDone,      // established; sni(), alpn(), version() are known
    kWantMore,  // feed more ciphertext (after sending TakeCiphertext())
    kError,     // fatal: send TakeCiphertext() (the alert), then close
  };
  enum class ReadStatus {
    kData,      // `bytes` of plaintext were written to the buffer
    kWantMore,  // no complete record buffered: feed more ciphertext
    kClosed,    // the peer sent close_notify: no more data will come
    kError,     // fatal (bad record, MAC failure): send the alert, close
  };
  struct ReadResult {
    ReadStatus status;
    size_t bytes = 0;
  };

  // A session on `context`'s current configuration. The session keeps that
  // configuration alive by itself: `context` may be reloaded or destroyed
  // while it runs.
  static absl::StatusOr<std::unique_ptr<TlsSession>> Create(
      const TlsServerContext& context);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  // Bytes received from the peer, in order. Copied; never refused.
  void FeedCiphertext(absl::string_view bytes);
  // Advances the handshake with what was fed. Counts the outcome once.
  HandshakeStatus Handshake();
  // Decrypts into `buffer` (call after kDone). Reading may also produce
  // bytes to send (a TLS 1.3 KeyUpdate answer, an alert).
  ReadResult ReadPlaintext(char* buffer, size_t size);
  // Encrypts `bytes` into records (after kDone). Never blocks: the output
  // waits in TakeCiphertext(), so callers bound how much they write.
  absl::Status WritePlaintext(absl::string_view bytes);
  // Appends every byte produced so far to `*out` and forgets them; returns
  // how many.
  size_t TakeCiphertext(std::string* out);
  size_t pending_ciphertext() const;
  // Fed bytes not yet consumed, or decrypted bytes not yet read: more calls
  // to ReadPlaintext() may return data without new input.
  bool HasBufferedInput() const;
  // Queues close_notify (RFC 8446 §6.1) once; no-op before the handshake is
  // done or after an error.
  void Shutdown();

  bool handshake_done() const { return done_; }
  bool failed() const { return failed_; }
  bool peer_closed() const { return peer_closed_; }
  // Why the last kError happened (OpenSSL's reasons), for logs.
  const std::string& error() const { return error_; }
  // From the handshake: the SNI the client sent ("" none), the ALPN
  // protocol selected ("" none), "TLSv1.2"/"TLSv1.3", and whether a ticket
  // resumed an earlier session.
  const std::string& sni() const { return sni_; }
  const std::string& alpn() const { return alpn_; }
  const std::string& version() const { return version_; }
  bool session_reused() const { return session_reused_; }
  // Whether OpenSSL handed the record layer to the kernel (BIO_get_ktls_*).
  bool ktls_send() const { return ktls_send_; }
  bool ktls_recv() const { return ktls_recv_; }

  // The underlying SSL, for tests and for inspection only.
  SSL* ssl() const { return ssl_; }

  // The transport buffers behind the session's BIOs (internal).
  struct Buffers {
    std::string in;
    size_t in_pos = 0;
    std::string out;
  };

 private:
  TlsSession(SSL* ssl, std::shared_ptr<TlsCounters> counters,
             bool count_ktls);
  void Fail(const char* doing, int ssl_error);
  void OnEstablished();

  SSL* ssl_;
  std::shared_ptr<TlsCounters> counters_;
  bool count_ktls_;
  Buffers buffers_;
  bool done_ = false;
  bool failed_ = false;
  bool peer_closed_ = false;
  bool shutdown_sent_ = false;
  bool session_reused_ = false;
  bool ktls_send_ = false;
  bool ktls_recv_ = false;
  std::string sni_;
  std::string alpn_;
  std::string version_;
  std::string error_;
};

}  // namespace tls
}  // namespace ddv

#endif  // DDV_SRC_TLS_TLS_SESSION_H_
