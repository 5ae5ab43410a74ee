// The in-process TLS client for src/tls tests.
#include "tests/tls/tls_test_client.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "src/tls/openssl_util.h"
#include "src/tls/self_signed.h"

namespace ddv {
namespace tls {
namespace testing {

std::string TempPath(absl::string_view name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name);
}

CertificateFiles MakeCertificate(absl::string_view name,
                                 const std::vector<std::string>& hosts) {
  CertificateFiles files{TempPath(absl::StrCat(name, ".crt")),
                         TempPath(absl::StrCat(name, ".key"))};
  absl::Status status = WriteSelfSignedCertificate(
      hosts, files.cert_path, files.key_path, absl::Hours(24));
  if (!status.ok()) std::abort();
  return files;
}

TestClient::TestClient(const ClientOptions& options) {
  ctx_ = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx_, options.min_version);
  SSL_CTX_set_max_proto_version(ctx_, options.max_version);
  if (options.min_version < TLS1_2_VERSION) {
    // Let the old versions be offered at all (OpenSSL 3's level 1 forbids
    // them), so the server's refusal is what is tested.
    SSL_CTX_set_security_level(ctx_, 0);
    SSL_CTX_set_cipher_list(ctx_, "DEFAULT:@SECLEVEL=0");
  }
  SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_OFF);
  ssl_ = SSL_new(ctx_);
  in_ = BIO_new(BIO_s_mem());
  out_ = BIO_new(BIO_s_mem());
  BIO_set_mem_eof_return(in_, -1);
  SSL_set_bio(ssl_, in_, out_);
  SSL_set_connect_state(ssl_);
  if (!options.sni.empty()) {
    SSL_set_tlsext_host_name(ssl_, options.sni.c_str());
  }
  if (!options.alpn.empty()) {
    std::string wire;
    for (const std::string& p : options.alpn) {
      wire.push_back(static_cast<char>(p.size()));
      wire += p;
    }
    SSL_set_alpn_protos(ssl_, reinterpret_cast<const unsigned char*>(wire.data()),
                        static_cast<unsigned int>(wire.size()));
  }
  if (options.session != nullptr) {
    // A copy: SSL_free without a shutdown marks the SSL's session not
    // resumable, and tests offer one session to several servers.
    SSL_SESSION* copy = SSL_SESSION_dup(options.session);
    SSL_set_session(ssl_, copy);
    SSL_SESSION_free(copy);
  }
}

TestClient::~TestClient() {
  SSL_free(ssl_);
  SSL_CTX_free(ctx_);
}

std::string TestClient::TakeOutput() {
  std::string out;
  char buf[16384];
  int n;
  while ((n = BIO_read(out_, buf, sizeof(buf))) > 0) out.append(buf, n);
  return out;
}

void TestClient::Feed(absl::string_view bytes) {
  if (!bytes.empty()) {
    BIO_write(in_, bytes.data(), static_cast<int>(bytes.size()));
  }
}

int TestClient::Step() {
  ERR_clear_error();
  int r = SSL_do_handshake(ssl_);
  if (r == 1) return 1;
  int e = SSL_get_error(ssl_, r);
  if (e == SSL_ERROR_WANT_READ) return 0;
  last_error = absl::StrCat("client: SSL_get_error ", e, " ",
                            DrainOpenSslErrors());
  return -1;
}

std::string TestClient::ReadAvailable(bool* closed) {
  std::string out;
  char buf[16384];
  for (;;) {
    size_t n = 0;
    ERR_clear_error();
    if (SSL_read_ex(ssl_, buf, sizeof(buf), &n) == 1) {
      out.append(buf, n);
      continue;
    }
    int e = SSL_get_error(ssl_, 0);
    if (e == SSL_ERROR_ZERO_RETURN && closed != nullptr) *closed = true;
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_ZERO_RETURN) {
      last_error = absl::StrCat("client read: ", DrainOpenSslErrors());
    }
    return out;
  }
}

void TestClient::Write(absl::string_view plaintext) {
  size_t written = 0;
  SSL_write_ex(ssl_, plaintext.data(), plaintext.size(), &written);
}

std::vector<std::string> TestClient::PeerDnsNames() const {
  std::vector<std::string> names;
  X509* cert = SSL_get0_peer_certificate(ssl_);
  if (cert == nullptr) return names;
  auto* sans = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
    const GENERAL_NAME* san = sk_GENERAL_NAME_value(sans, i);
    if (san->type != GEN_DNS) continue;
    names.emplace_back(
        reinterpret_cast<const char*>(ASN1_STRING_get0_data(san->d.dNSName)),
        static_cast<size_t>(ASN1_STRING_length(san->d.dNSName)));
  }
  GENERAL_NAMES_free(sans);
  return names;
}

absl::Status Handshake(TestClient& client, TlsSession& server, size_t chunk) {
  bool client_done = false;
  bool server_done = false;
  for (int round = 0; round < 50; ++round) {
    if (!client_done) {
      int r = client.Step();
      if (r < 0) {
        // Deliver the server's alert reasons too, if any.
        return absl::UnknownError(
            absl::StrCat(client.last_error, " / server: ", server.error()));
      }
      client_done = r == 1;
    }
    std::string to_server = client.TakeOutput();
    if (chunk == 0) {
      server.FeedCiphertext(to_server);
    }
    for (size_t i = 0; chunk != 0 && i < to_server.size(); i += chunk) {
      server.FeedCiphertext(absl::string_view(to_server).substr(i, chunk));
      if (!server_done) {
        TlsSession::HandshakeStatus s = server.Handshake();
        if (s == TlsSession::HandshakeStatus::kError) break;
      }
    }
    if (!server_done) {
      switch (server.Handshake()) {
        case TlsSession::HandshakeStatus::kDone:
          server_done = true;
          break;
        case TlsSession::HandshakeStatus::kWantMore:
          break;
        case TlsSession::HandshakeStatus::kError: {
          std::string alert;
          server.TakeCiphertext(&alert);
          client.Feed(alert);
          client.Step();
          return absl::UnknownError(absl::StrCat("server: ", server.error()));
        }
      }
    }
    std::string to_client;
    server.TakeCiphertext(&to_client);
    client.Feed(to_client);
    if (client_done && server_done && to_client.empty() && to_server.empty()) {
      client.ReadAvailable();  // NewSessionTicket (TLS 1.3)
      return absl::OkStatus();
    }
  }
  return absl::DeadlineExceededError("handshake did not finish in 50 rounds");
}

}  // namespace testing
}  // namespace tls
}  // namespace ddv
