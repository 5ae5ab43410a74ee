// TlsPump: the TLS half of a ddv_hello connection, between the ring's bytes
// and the HttpResponder.
#include "src/hello/tls_pump.h"

#include <algorithm>
#include <utility>

#include "src/base/status_macros.h"

namespace ddv {
namespace hello {

absl::Status TlsPump::Start(const tls::TlsServerContext& context) {
  DDV_ASSIGN_OR_RETURN(session_, tls::TlsSession::Create(context));
  close_queued_ = false;
  return absl::OkStatus();
}

void TlsPump::Reset() {
  session_.reset();
  close_queued_ = false;
}

tls::TlsSession::HandshakeStatus TlsPump::Handshake(HttpResponder* http) {
  tls::TlsSession::HandshakeStatus status = session_->Handshake();
  if (status == tls::TlsSession::HandshakeStatus::kDone) {
    // The body reports what was negotiated, not what the master saw offered.
    http->SetNegotiated(session_->sni(), session_->alpn());
  }
  return status;
}

TlsPump::DecryptStatus TlsPump::Decrypt(HttpResponder* http, char* scratch,
                                        size_t size) {
  while (!http->close_after_flush() && !http->Backlogged()) {
    // Bytes left over from the last record come first.
    http->Resume();
    if (http->close_after_flush() || http->Backlogged()) break;
    tls::TlsSession::ReadResult read = session_->ReadPlaintext(scratch, size);
    switch (read.status) {
      case tls::TlsSession::ReadStatus::kData:
        http->Feed(absl::string_view(scratch, read.bytes));
        break;
      case tls::TlsSession::ReadStatus::kWantMore:
        return DecryptStatus::kIdle;
      case tls::TlsSession::ReadStatus::kClosed:
        return DecryptStatus::kPeerClosed;
      case tls::TlsSession::ReadStatus::kError:
        return DecryptStatus::kError;
    }
  }
  return DecryptStatus::kIdle;
}

absl::Status TlsPump::Encrypt(HttpResponder* http, std::string* wire) {
  // Before the handshake ends, and after a fatal error, only the session's
  // own bytes (flights, alerts) go out.
  if (session_->handshake_done() && !session_->failed()) {
    absl::Status status;
    if (!http->output().empty()) {
      status = session_->WritePlaintext(http->output());
      http->ClearOutput();
    } else if (http->stream_remaining() > 0) {
      absl::string_view piece = http->NextStreamChunk(kTlsStreamChunk);
      status = session_->WritePlaintext(piece);
      http->StreamSent(piece.size());
    }
    DDV_RETURN_IF_ERROR(status);
  }
  session_->TakeCiphertext(wire);
  return absl::OkStatus();
}

bool TlsPump::QueueClose() {
  if (session_ == nullptr || close_queued_) return false;
  close_queued_ = true;
  session_->Shutdown();
  return true;
}

}  // namespace hello
}  // namespace ddv
