// A real OpenSSL TLS client over memory BIOs, and the pump that moves bytes
// between it and a TlsSession in-process: no sockets, so tests can cut,
// corrupt or delay any byte.
#ifndef DDV_TESTS_TLS_TLS_TEST_CLIENT_H_
#define DDV_TESTS_TLS_TLS_TEST_CLIENT_H_

#include <openssl/ssl.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "src/tls/tls_session.h"

namespace ddv {
namespace tls {
namespace testing {

// $TEST_TMPDIR (or /tmp) + "/" + name.
std::string TempPath(absl::string_view name);

// Writes NAME.crt / NAME.key (self-signed, for `hosts`) under TEST_TMPDIR.
CertificateFiles MakeCertificate(absl::string_view name,
                                 const std::vector<std::string>& hosts);

struct ClientOptions {
  std::string sni;                  // empty: no SNI extension
  std::vector<std::string> alpn;    // empty: no ALPN extension
  int min_version = TLS1_VERSION;   // to test refusals too
  int max_version = TLS1_3_VERSION;
  SSL_SESSION* session = nullptr;   // to resume (not owned)
};

class TestClient {
 public:
  explicit TestClient(const ClientOptions& options);
  ~TestClient();
  TestClient(const TestClient&) = delete;
  TestClient& operator=(const TestClient&) = delete;

  SSL* ssl() const { return ssl_; }
  // Bytes the client wants to send; then forgets them.
  std::string TakeOutput();
  void Feed(absl::string_view bytes);
  // SSL_do_handshake: 1 done, 0 wants more, -1 failed.
  int Step();
  // Reads whatever plaintext is available (processes TLS 1.3 tickets too).
  std::string ReadAvailable(bool* closed = nullptr);
  void Write(absl::string_view plaintext);
  // A copy of the newest session (with its ticket), to resume elsewhere;
  // caller frees. A copy, as CPython's ssl takes: OpenSSL marks the
  // original not resumable when its SSL is freed without a shutdown.
  SSL_SESSION* TakeSession() const {
    return SSL_SESSION_dup(SSL_get0_session(ssl_));
  }
  // DNS names in the certificate the server sent.
  std::vector<std::string> PeerDnsNames() const;
  std::string last_error;

 private:
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  BIO* in_ = nullptr;   // server → client (owned by ssl_)
  BIO* out_ = nullptr;  // client → server (owned by ssl_)
};

// Runs the handshake to the end, moving every byte both ways (in chunks of
// `chunk` bytes when non-zero). OK when both sides finished; the client then
// also reads the server's post-handshake messages (TLS 1.3 tickets).
absl::Status Handshake(TestClient& client, TlsSession& server,
                       size_t chunk = 0);

}  // namespace testing
}  // namespace tls
}  // namespace ddv

#endif  // DDV_TESTS_TLS_TLS_TEST_CLIENT_H_
