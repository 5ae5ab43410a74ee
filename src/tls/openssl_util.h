// Small OpenSSL helpers shared by src/tls: owning pointers for OpenSSL
// objects and the error queue turned into an absl::Status.
#ifndef DDV_SRC_TLS_OPENSSL_UTIL_H_
#define DDV_SRC_TLS_OPENSSL_UTIL_H_

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace ddv {
namespace tls {

struct BioFree {
  void operator()(BIO* p) const { BIO_free_all(p); }
};
struct EvpPkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct X509StackFree {
  void operator()(STACK_OF(X509) * p) const { sk_X509_pop_free(p, X509_free); }
};
struct SslCtxFree {
  void operator()(SSL_CTX* p) const { SSL_CTX_free(p); }
};
struct SslFree {
  void operator()(SSL* p) const { SSL_free(p); }
};

using BioPtr = std::unique_ptr<BIO, BioFree>;
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, EvpPkeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using X509StackPtr = std::unique_ptr<STACK_OF(X509), X509StackFree>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;
using SslPtr = std::unique_ptr<SSL, SslFree>;

// Drains this thread's OpenSSL error queue into one line: the reason strings,
// oldest first, joined with "; " ("" when the queue is empty).
std::string DrainOpenSslErrors();

// `doing` plus whatever the error queue says, as `code` (default Internal).
// The queue is emptied, so a later error does not inherit stale entries.
absl::Status OpenSslStatus(absl::string_view doing,
                           absl::StatusCode code = absl::StatusCode::kInternal);

}  // namespace tls
}  // namespace ddv

#endif  // DDV_SRC_TLS_OPENSSL_UTIL_H_
