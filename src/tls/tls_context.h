// TlsServerContext: what a worker needs to terminate TLS for one site. It
// loads the site's certificates (the first is the default) and picks one per
// connection by SNI, negotiates ALPN from the server's own list, shares
// session-ticket keys with the site's other processes (HKDF of a shared
// secret and the epoch), asks for kTLS, and reloads its files on demand.
#ifndef DDV_SRC_TLS_TLS_CONTEXT_H_
#define DDV_SRC_TLS_TLS_CONTEXT_H_

#include <openssl/ssl.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "src/handoff/worker_env.h"

namespace ddv {
namespace tls {

class TicketKeys;

// The master's contract with its workers (docs/tls.md): per site, the PEM
// paths joined by ':' (pairwise), and 64 hex digits shared by the site's
// processes. Spelled once, in src/handoff/worker_env.h.
using handoff::kEnvTlsCert;
using handoff::kEnvTlsKey;
using handoff::kEnvTlsTicketSecret;

struct CertificateFiles {
  std::string cert_path;  // PEM: the leaf, then its chain
  std::string key_path;   // PEM private key matching the leaf
};

struct TlsOptions {
  // At least one; the first is served when the SNI matches no other (or the
  // client sent none).
  std::vector<CertificateFiles> certificates;
  // ALPN, in server preference order: the first of these the client offers
  // is selected; none in common means no ALPN at all. Put "h2" here only
  // when the application speaks HTTP/2.
  std::vector<std::string> alpn_protocols = {"http/1.1"};
  // 64 hex digits shared by every process of the site, so a ticket issued
  // by one resumes on another. Empty: a random secret for this process.
  std::string ticket_secret_hex;
  // Ticket keys change every `ticket_rotation` (aligned to unix time);
  // tickets under the previous key are still accepted (and renewed).
  absl::Duration ticket_rotation = absl::Hours(1);
  // Sets SSL_OP_ENABLE_KTLS so OpenSSL hands the record layer to the kernel
  // where the transport allows it; sessions count whether it engaged.
  bool enable_ktls = true;
  // Wall clock for the ticket epochs; default absl::Now. Tests inject one.
  std::function<absl::Time()> clock;
};

// Counted across reloads. Relaxed atomics: sessions of any thread may count.
struct TlsCounters {
  std::atomic<uint64_t> handshakes{0};          // completed
  std::atomic<uint64_t> handshake_failures{0};  // fatal alert or bad input
  std::atomic<uint64_t> resumed{0};             // of `handshakes`
  std::atomic<uint64_t> sni_selected{0};  // a certificate matched the SNI
  std::atomic<uint64_t> sni_default{0};   // no SNI, or no cert matched it
  std::atomic<uint64_t> alpn_selected{0};
  std::atomic<uint64_t> alpn_none{0};          // offered, nothing in common
  std::atomic<uint64_t> tickets_issued{0};
  std::atomic<uint64_t> tickets_renewed{0};    // accepted under previous key
  std::atomic<uint64_t> tickets_unknown_key{0};  // full handshake instead
  std::atomic<uint64_t> ktls_active{0};    // kernel TLS engaged (send or recv)
  std::atomic<uint64_t> ktls_fallback{0};  // asked for, user-space records
  std::atomic<uint64_t> reloads{0};
  std::atomic<uint64_t> reload_failures{0};
};

class TlsServerContext {
 public:
  // Reads every file now; errors name the file.
  static absl::StatusOr<std::unique_ptr<TlsServerContext>> Create(
      TlsOptions options);
  ~TlsServerContext();
  TlsServerContext(const TlsServerContext&) = delete;
  TlsServerContext& operator=(const TlsServerContext&) = delete;

  // Re-reads the certificate and key files and uses them for connections
  // started from now on; sessions already running keep the SSL_CTX they
  // started with (it is reference counted). On any error nothing changes
  // and the Status names the file. Not thread-safe against NewSsl().
  absl::Status Reload();

  // A server-side SSL on the current configuration (nullptr when OpenSSL
  // cannot allocate one). The caller owns it.
  SSL* NewSsl() const;

  const TlsOptions& options() const { return options_; }
  TlsCounters& counters() const { return *counters_; }
  std::shared_ptr<TlsCounters> shared_counters() const { return counters_; }
  // Whether this kernel has the "tls" TCP ULP (probed once at Create with
  // setsockopt(TCP_ULP)), and why not; informational.
  bool kernel_has_tls_ulp() const { return kernel_has_tls_ulp_; }
  const std::string& ktls_probe() const { return ktls_probe_; }

 private:
  explicit TlsServerContext(TlsOptions options);

  TlsOptions options_;
  std::shared_ptr<TlsCounters> counters_;
  std::shared_ptr<TicketKeys> ticket_keys_;
  SSL_CTX* ctx_ = nullptr;  // one reference held; sessions hold their own
  bool kernel_has_tls_ulp_ = false;
  std::string ktls_probe_;
};

}  // namespace tls
}  // namespace ddv

#endif  // DDV_SRC_TLS_TLS_CONTEXT_H_
