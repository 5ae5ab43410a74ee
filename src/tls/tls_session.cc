// TlsSession over a small custom BIO: reads come from the bytes the loop fed,
// writes append to the bytes the loop will send. No socket, no copy beyond
// the one into and out of OpenSSL's record layer.
#include "src/tls/tls_session.h"

#include <openssl/bio.h>
#include <openssl/err.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "src/tls/openssl_util.h"

namespace ddv {
namespace tls {
namespace {

// Consumed input is dropped from the front of the buffer once this much
// has piled up (and it is more than what is left), so a long connection
// does not keep every byte it ever received.
constexpr size_t kCompactAbove = 64 * 1024;

using Buffers = TlsSession::Buffers;

Buffers* BuffersOf(BIO* bio) { return static_cast<Buffers*>(BIO_get_data(bio)); }

int BufferRead(BIO* bio, char* out, int size) {
  BIO_clear_retry_flags(bio);
  Buffers* b = BuffersOf(bio);
  size_t available = b->in.size() - b->in_pos;
  if (available == 0) {
    // Not EOF: the loop has simply not received more yet.
    BIO_set_retry_read(bio);
    return -1;
  }
  size_t n = std::min(available, static_cast<size_t>(std::max(size, 0)));
  std::memcpy(out, b->in.data() + b->in_pos, n);
  b->in_pos += n;
  return static_cast<int>(n);
}

int BufferWrite(BIO* bio, const char* data, int size) {
  BIO_clear_retry_flags(bio);
  if (size <= 0) return 0;
  BuffersOf(bio)->out.append(data, static_cast<size_t>(size));
  return size;
}

long BufferCtrl(BIO* bio, int cmd, long /*num*/, void* /*ptr*/) {
  Buffers* b = BuffersOf(bio);
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1;  // the loop sends; nothing is held back here
    case BIO_CTRL_PENDING:
      return static_cast<long>(b->in.size() - b->in_pos);
    case BIO_CTRL_WPENDING:
      return static_cast<long>(b->out.size());
    case BIO_CTRL_EOF:
      return 0;
    default:
      // Includes BIO_CTRL_GET_KTLS_SEND/RECV and the kTLS setters: a buffer
      // has no socket for the kernel to take over, so OpenSSL keeps the
      // record layer in user space (the kTLS fallback).
      return 0;
  }
}

int BufferCreate(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

const BIO_METHOD* BufferMethod() {
  static const BIO_METHOD* const method = [] {
    BIO_METHOD* m =
        BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ddv buffer");
    BIO_meth_set_read(m, BufferRead);
    BIO_meth_set_write(m, BufferWrite);
    BIO_meth_set_ctrl(m, BufferCtrl);
    BIO_meth_set_create(m, BufferCreate);
    return m;
  }();
  return method;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TlsSession>> TlsSession::Create(
    const TlsServerContext& context) {
  ERR_clear_error();
  SSL* ssl = context.NewSsl();
  if (ssl == nullptr) return OpenSslStatus("creating an SSL");
  std::unique_ptr<TlsSession> session(new TlsSession(
      ssl, context.shared_counters(), context.options().enable_ktls));
  BIO* rbio = BIO_new(BufferMethod());
  BIO* wbio = BIO_new(BufferMethod());
  if (rbio == nullptr || wbio == nullptr) {
    BIO_free(rbio);
    BIO_free(wbio);
    return OpenSslStatus("creating the TLS buffers");
  }
  BIO_set_data(rbio, &session->buffers_);
  BIO_set_data(wbio, &session->buffers_);
  SSL_set_bio(ssl, rbio, wbio);  // the SSL owns both now
  SSL_set_accept_state(ssl);
  return session;
}

TlsSession::TlsSession(SSL* ssl, std::shared_ptr<TlsCounters> counters,
                       bool count_ktls)
    : ssl_(ssl), counters_(std::move(counters)), count_ktls_(count_ktls) {}

TlsSession::~TlsSession() { SSL_free(ssl_); }

void TlsSession::FeedCiphertext(absl::string_view bytes) {
  Buffers& b = buffers_;
  if (b.in_pos == b.in.size()) {
    b.in.clear();
    b.in_pos = 0;
  } else if (b.in_pos > kCompactAbove && b.in_pos > b.in.size() - b.in_pos) {
    b.in.erase(0, b.in_pos);
    b.in_pos = 0;
  }
  b.in.append(bytes.data(), bytes.size());
}

void TlsSession::Fail(const char* doing, int ssl_error) {
  failed_ = true;
  std::string reasons = DrainOpenSslErrors();
  if (reasons.empty()) {
    reasons = absl::StrCat("SSL_get_error ", ssl_error);
  }
  error_ = absl::StrCat(doing, ": ", reasons);
}

void TlsSession::OnEstablished() {
  done_ = true;
  const char* sni = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name);
  sni_ = sni != nullptr ? sni : "";
  const unsigned char* alpn = nullptr;
  unsigned int alpn_len = 0;
  SSL_get0_alpn_selected(ssl_, &alpn, &alpn_len);
  alpn_.assign(reinterpret_cast<const char*>(alpn), alpn_len);
  version_ = SSL_get_version(ssl_);
  session_reused_ = SSL_session_reused(ssl_) == 1;
  ktls_send_ = BIO_get_ktls_send(SSL_get_wbio(ssl_));
  ktls_recv_ = BIO_get_ktls_recv(SSL_get_rbio(ssl_));
  TlsCounters& c = *counters_;
  c.handshakes.fetch_add(1, std::memory_order_relaxed);
  if (session_reused_) c.resumed.fetch_add(1, std::memory_order_relaxed);
  if (count_ktls_) {
    (ktls_send_ || ktls_recv_ ? c.ktls_active : c.ktls_fallback)
        .fetch_add(1, std::memory_order_relaxed);
  }
}

TlsSession::HandshakeStatus TlsSession::Handshake() {
  if (failed_) return HandshakeStatus::kError;
  if (done_) return HandshakeStatus::kDone;
  ERR_clear_error();
  int result = SSL_do_handshake(ssl_);
  if (result == 1) {
    OnEstablished();
    return HandshakeStatus::kDone;
  }
  int error = SSL_get_error(ssl_, result);
  if (error == SSL_ERROR_WANT_READ) return HandshakeStatus::kWantMore;
  Fail("TLS handshake", error);
  counters_->handshake_failures.fetch_add(1, std::memory_order_relaxed);
  return HandshakeStatus::kError;
}

TlsSession::ReadResult TlsSession::ReadPlaintext(char* buffer, size_t size) {
  if (failed_) return {ReadStatus::kError};
  if (peer_closed_) return {ReadStatus::kClosed};
  if (!done_) return {ReadStatus::kWantMore};
  ERR_clear_error();
  size_t read = 0;
  int result = SSL_read_ex(ssl_, buffer, size, &read);
  if (result == 1) return {ReadStatus::kData, read};
  int error = SSL_get_error(ssl_, result);
  switch (error) {
    case SSL_ERROR_WANT_READ:
      return {ReadStatus::kWantMore};
    case SSL_ERROR_ZERO_RETURN:
      peer_closed_ = true;
      return {ReadStatus::kClosed};
    default:
      Fail("TLS read", error);
      return {ReadStatus::kError};
  }
}

absl::Status TlsSession::WritePlaintext(absl::string_view bytes) {
  if (failed_) return absl::FailedPreconditionError(error_);
  if (!done_) {
    return absl::FailedPreconditionError("TLS write before the handshake");
  }
  if (bytes.empty()) return absl::OkStatus();
  ERR_clear_error();
  size_t written = 0;
  int result = SSL_write_ex(ssl_, bytes.data(), bytes.size(), &written);
  if (result != 1 || written != bytes.size()) {
    Fail("TLS write", SSL_get_error(ssl_, result));
    return absl::InternalError(error_);
  }
  return absl::OkStatus();
}

size_t TlsSession::TakeCiphertext(std::string* out) {
  std::string& produced = buffers_.out;
  size_t n = produced.size();
  if (n == 0) return 0;
  if (out->empty()) {
    // Hand the buffer over whole; ours starts again from the caller's old
    // (empty) one and keeps its capacity.
    out->swap(produced);
  } else {
    out->append(produced);
    produced.clear();
  }
  return n;
}

size_t TlsSession::pending_ciphertext() const { return buffers_.out.size(); }

bool TlsSession::HasBufferedInput() const {
  return buffers_.in_pos < buffers_.in.size() ||
         (done_ && SSL_pending(ssl_) > 0);
}

void TlsSession::Shutdown() {
  if (!done_ || failed_ || shutdown_sent_) return;
  shutdown_sent_ = true;
  ERR_clear_error();
  // 0 ("sent, the peer's has not arrived") is what we expect: we do not
  // wait for the peer's close_notify before closing (RFC 8446 §6.1 allows
  // it).
  if (SSL_shutdown(ssl_) < 0) ERR_clear_error();
}

}  // namespace tls
}  // namespace ddv
