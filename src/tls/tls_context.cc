// TlsServerContext: one SSL_CTX per configuration generation. Everything its
// callbacks need (certificates by name, ALPN list, ticket keys, counters)
// hangs off the SSL_CTX itself as ex_data, so it lives exactly as long as the
// last session that uses that generation.
#include "src/tls/tls_context.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "glog/logging.h"
#include "src/base/errno_status.h"
#include "src/tls/openssl_util.h"
#include "src/tls/ticket_keys.h"

namespace ddv {
namespace tls {
namespace {

// TLS 1.2 suites: forward secret AEAD only (Mozilla's "intermediate" list
// without DHE). TLS 1.3: OpenSSL's three, AES-128-GCM first (the server's
// preference decides; it is the cheapest with AES-NI).
constexpr char kTls13Ciphersuites[] =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
    "TLS_CHACHA20_POLY1305_SHA256";
constexpr char kTls12Ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// Session tickets must only resume sessions of this application.
constexpr unsigned char kSessionIdContext[] = "ddv";

struct LoadedCert {
  X509Ptr leaf;
  EvpPkeyPtr key;
  X509StackPtr chain;
  std::string cert_path;
};

// Everything an SSL_CTX's callbacks use; owned by that SSL_CTX.
struct CtxState {
  std::vector<LoadedCert> certs;
  // Lower-case DNS name → certificates (indexes into `certs`) for it: more
  // than one when a name has, say, both an ECDSA and an RSA certificate.
  absl::flat_hash_map<std::string, std::vector<int>> exact;
  // "example.com" for "*.example.com": one label below it, as RFC 6125 §6.4.3
  // and X509_check_host match.
  absl::flat_hash_map<std::string, std::vector<int>> wildcard;
  std::vector<std::string> alpn;
  std::shared_ptr<TicketKeys> ticket_keys;
  std::shared_ptr<TlsCounters> counters;
  EVP_CIPHER* ticket_cipher = nullptr;  // AES-256-CBC, fetched once

  ~CtxState() { EVP_CIPHER_free(ticket_cipher); }

  // The certificates for `sni`: exact name, then the one-label wildcard;
  // nullptr for "use the default".
  const std::vector<int>* Lookup(absl::string_view sni) const {
    char lower[256];
    if (!sni.empty() && sni.back() == '.') sni.remove_suffix(1);
    if (sni.empty() || sni.size() >= sizeof(lower)) return nullptr;
    for (size_t i = 0; i < sni.size(); ++i) {
      lower[i] = absl::ascii_tolower(static_cast<unsigned char>(sni[i]));
    }
    absl::string_view name(lower, sni.size());
    if (auto it = exact.find(name); it != exact.end()) return &it->second;
    size_t dot = name.find('.');
    if (dot == absl::string_view::npos || dot == 0) return nullptr;
    if (auto it = wildcard.find(name.substr(dot + 1)); it != wildcard.end()) {
      return &it->second;
    }
    return nullptr;
  }
};

void FreeCtxState(void* /*parent*/, void* ptr, CRYPTO_EX_DATA* /*ad*/,
                  int /*index*/, long /*argl*/, void* /*argp*/) {
  delete static_cast<CtxState*>(ptr);
}

int CtxStateIndex() {
  static const int index =
      SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, FreeCtxState);
  return index;
}

CtxState* StateOf(SSL* ssl) {
  return static_cast<CtxState*>(
      SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), CtxStateIndex()));
}

std::string NormalizeName(absl::string_view name) {
  std::string out = absl::AsciiStrToLower(name);
  if (!out.empty() && out.back() == '.') out.pop_back();
  return out;
}

// The names a certificate is valid for: its DNS subjectAltNames, or, only
// when it has none, its subject CN (RFC 6125 §6.4.4).
std::vector<std::string> NamesOf(X509* cert) {
  std::vector<std::string> names;
  auto* sans = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
    const GENERAL_NAME* san = sk_GENERAL_NAME_value(sans, i);
    if (san->type != GEN_DNS) continue;
    const ASN1_STRING* s = san->d.dNSName;
    names.push_back(NormalizeName(absl::string_view(
        reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
        static_cast<size_t>(ASN1_STRING_length(s)))));
  }
  GENERAL_NAMES_free(sans);
  if (!names.empty()) return names;
  X509_NAME* subject = X509_get_subject_name(cert);
  int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (at >= 0) {
    const ASN1_STRING* s =
        X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at));
    names.push_back(NormalizeName(absl::string_view(
        reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
        static_cast<size_t>(ASN1_STRING_length(s)))));
  }
  return names;
}

absl::StatusOr<LoadedCert> LoadCertificate(const CertificateFiles& files) {
  LoadedCert loaded;
  loaded.cert_path = files.cert_path;
  std::string reading_cert =
      absl::StrCat("reading the certificate \"", files.cert_path, "\"");
  ERR_clear_error();
  BioPtr bio(BIO_new_file(files.cert_path.c_str(), "r"));
  if (bio == nullptr) {
    int saved = errno;
    ERR_clear_error();
    return ErrnoStatus(saved, "fopen", reading_cert);
  }
  loaded.leaf.reset(PEM_read_bio_X509_AUX(bio.get(), nullptr, nullptr,
                                          nullptr));
  if (loaded.leaf == nullptr) {
    return OpenSslStatus(
        absl::StrCat("no PEM certificate in \"", files.cert_path, "\""),
        absl::StatusCode::kInvalidArgument);
  }
  loaded.chain.reset(sk_X509_new_null());
  // The rest of the file is the chain, up to the first non-certificate.
  for (;;) {
    X509Ptr extra(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (extra == nullptr) {
      unsigned long error = ERR_peek_last_error();
      if (ERR_GET_LIB(error) == ERR_LIB_PEM &&
          ERR_GET_REASON(error) == PEM_R_NO_START_LINE) {
        ERR_clear_error();  // the normal end of the file
        break;
      }
      return OpenSslStatus(
          absl::StrCat("bad chain certificate in \"", files.cert_path, "\""),
          absl::StatusCode::kInvalidArgument);
    }
    sk_X509_push(loaded.chain.get(), extra.release());
  }

  std::string reading_key =
      absl::StrCat("reading the private key \"", files.key_path, "\"");
  BioPtr key_bio(BIO_new_file(files.key_path.c_str(), "r"));
  if (key_bio == nullptr) {
    int saved = errno;
    ERR_clear_error();
    return ErrnoStatus(saved, "fopen", reading_key);
  }
  loaded.key.reset(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (loaded.key == nullptr) {
    return OpenSslStatus(
        absl::StrCat("no PEM private key in \"", files.key_path, "\""),
        absl::StatusCode::kInvalidArgument);
  }
  if (X509_check_private_key(loaded.leaf.get(), loaded.key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat("the private key \"", files.key_path,
                     "\" does not match the certificate \"", files.cert_path,
                     "\""));
  }
  return loaded;
}

// Servername callback: runs while the ClientHello is processed, before the
// certificate is chosen, so swapping the SSL's certificates here decides
// which one is sent.
int OnServerName(SSL* ssl, int* alert, void* arg) {
  const CtxState& state = *static_cast<CtxState*>(arg);
  const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  const std::vector<int>* chosen =
      sni == nullptr ? nullptr : state.Lookup(sni);
  if (chosen == nullptr) {
    // The default certificate, already the SSL's own from its SSL_CTX.
    state.counters->sni_default.fetch_add(1, std::memory_order_relaxed);
    return SSL_TLSEXT_ERR_OK;
  }
  state.counters->sni_selected.fetch_add(1, std::memory_order_relaxed);
  if (chosen->size() == 1 && (*chosen)[0] == 0) return SSL_TLSEXT_ERR_OK;
  // Only the chosen name's certificates, or OpenSSL could still pick the
  // default one for a key type the client prefers.
  SSL_certs_clear(ssl);
  for (int i : *chosen) {
    const LoadedCert& cert = state.certs[static_cast<size_t>(i)];
    if (SSL_use_cert_and_key(ssl, cert.leaf.get(), cert.key.get(),
                             cert.chain.get(), 1) != 1) {
      *alert = SSL_AD_INTERNAL_ERROR;
      return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
  }
  return SSL_TLSEXT_ERR_OK;
}

// ALPN (RFC 7301 §3.2): the server's preference decides; nothing in common
// is not an error here, the connection just goes on without ALPN.
int OnAlpn(SSL* /*ssl*/, const unsigned char** out, unsigned char* out_len,
           const unsigned char* in, unsigned int in_len, void* arg) {
  const CtxState& state = *static_cast<CtxState*>(arg);
  for (const std::string& mine : state.alpn) {
    for (unsigned int i = 0; i < in_len;) {
      unsigned int len = in[i];
      if (len == 0 || i + 1 + len > in_len) break;  // malformed: stop here
      if (len == mine.size() && std::memcmp(in + i + 1, mine.data(), len) == 0) {
        *out = in + i + 1;
        *out_len = static_cast<unsigned char>(len);
        state.counters->alpn_selected.fetch_add(1, std::memory_order_relaxed);
        return SSL_TLSEXT_ERR_OK;
      }
      i += 1 + len;
    }
  }
  state.counters->alpn_none.fetch_add(1, std::memory_order_relaxed);
  return SSL_TLSEXT_ERR_NOACK;
}

// Session tickets (RFC 5077 §4 layout, TLS 1.2 and 1.3): encrypt under the
// current epoch's key; decrypt under the current or the previous one.
// Returns 1 (ok), 2 (ok, but issue a fresh ticket), 0 (unknown key: full
// handshake), -1 (error).
int OnTicketKey(SSL* ssl, unsigned char* key_name, unsigned char* iv,
                EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, int encrypt) {
  CtxState* state = StateOf(ssl);
  if (state == nullptr) return -1;
  TicketKey key;
  int result = 1;
  if (encrypt) {
    key = state->ticket_keys->Current();
    std::memcpy(key_name, key.name, TicketKey::kNameBytes);
    if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(state->ticket_cipher)) != 1) {
      return -1;
    }
    if (EVP_EncryptInit_ex(cipher, state->ticket_cipher, nullptr, key.aes_key,
                           iv) != 1) {
      return -1;
    }
    state->counters->tickets_issued.fetch_add(1, std::memory_order_relaxed);
  } else {
    bool previous = false;
    std::optional<TicketKey> found =
        state->ticket_keys->Find(key_name, &previous);
    if (!found.has_value()) {
      state->counters->tickets_unknown_key.fetch_add(
          1, std::memory_order_relaxed);
      return 0;
    }
    key = *found;
    if (EVP_DecryptInit_ex(cipher, state->ticket_cipher, nullptr, key.aes_key,
                           iv) != 1) {
      return -1;
    }
    if (previous) {
      state->counters->tickets_renewed.fetch_add(1, std::memory_order_relaxed);
      result = 2;
    }
  }
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key.hmac_key,
                                        sizeof(key.hmac_key)),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_end(),
  };
  int ok = EVP_MAC_CTX_set_params(mac, params);
  OPENSSL_cleanse(&key, sizeof(key));
  return ok == 1 ? result : -1;
}

// One SSL_CTX generation: reads the files, builds the name index, sets the
// protocol policy and the callbacks.
absl::StatusOr<SSL_CTX*> BuildSslCtx(const TlsOptions& options,
                                     std::shared_ptr<TicketKeys> ticket_keys,
                                     std::shared_ptr<TlsCounters> counters) {
  auto state = std::make_unique<CtxState>();
  state->alpn = options.alpn_protocols;
  state->ticket_keys = std::move(ticket_keys);
  state->counters = std::move(counters);
  for (const CertificateFiles& files : options.certificates) {
    absl::StatusOr<LoadedCert> loaded = LoadCertificate(files);
    if (!loaded.ok()) return loaded.status();
    const int index = static_cast<int>(state->certs.size());
    for (const std::string& name : NamesOf(loaded->leaf.get())) {
      if (name.rfind("*.", 0) == 0) {
        state->wildcard[name.substr(2)].push_back(index);
      } else if (!name.empty()) {
        state->exact[name].push_back(index);
      }
    }
    state->certs.push_back(*std::move(loaded));
  }
  state->ticket_cipher = EVP_CIPHER_fetch(nullptr, "AES-256-CBC", nullptr);
  if (state->ticket_cipher == nullptr) {
    return OpenSslStatus("fetching AES-256-CBC for session tickets");
  }

  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (ctx == nullptr) return OpenSslStatus("creating an SSL_CTX");
  SSL_CTX* c = ctx.get();
  SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION);
  uint64_t op = SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                SSL_OP_NO_COMPRESSION;
  if (options.enable_ktls) op |= SSL_OP_ENABLE_KTLS;
  SSL_CTX_set_options(c, op);
  // Idle keep-alive connections give their record buffers back.
  SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_set_cipher_list(c, kTls12Ciphers) != 1) {
    return OpenSslStatus("setting the TLS 1.2 cipher list");
  }
  if (SSL_CTX_set_ciphersuites(c, kTls13Ciphersuites) != 1) {
    return OpenSslStatus("setting the TLS 1.3 ciphersuites");
  }
  // The stateful cache is per process, useless across a site's processes;
  // tickets (stateless, TLS 1.2 and 1.3) carry the session instead.
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_session_id_context(c, kSessionIdContext,
                                 sizeof(kSessionIdContext) - 1);
  // A ticket's key decrypts for at least one rotation period.
  SSL_CTX_set_timeout(
      c, static_cast<long>(absl::ToInt64Seconds(options.ticket_rotation)));
  const LoadedCert& first = state->certs.front();
  if (SSL_CTX_use_cert_and_key(c, first.leaf.get(), first.key.get(),
                               first.chain.get(), 1) != 1) {
    return OpenSslStatus(
        absl::StrCat("using the certificate \"", first.cert_path, "\""),
        absl::StatusCode::kInvalidArgument);
  }
  CtxState* raw_state = state.get();
  if (SSL_CTX_set_ex_data(c, CtxStateIndex(), raw_state) != 1) {
    return OpenSslStatus("attaching the TLS state to the SSL_CTX");
  }
  state.release();  // the SSL_CTX owns it now (FreeCtxState)
  SSL_CTX_set_tlsext_servername_callback(c, OnServerName);
  SSL_CTX_set_tlsext_servername_arg(c, raw_state);
  SSL_CTX_set_alpn_select_cb(c, OnAlpn, raw_state);
  if (SSL_CTX_set_tlsext_ticket_key_evp_cb(c, OnTicketKey) != 1) {
    return OpenSslStatus("installing the session ticket key callback");
  }
  return ctx.release();
}

// Whether setsockopt(TCP_ULP, "tls") is known to this kernel. On a socket
// that is not connected it fails either way: ENOENT means no "tls" ULP (the
// module is absent), ENOTCONN means it exists.
bool ProbeKernelTls(std::string* why) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *why = absl::StrCat("socket() failed: ", std::strerror(errno));
    return false;
  }
  int result = setsockopt(fd, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls"));
  int saved = errno;
  close(fd);
  if (result == 0 || saved == ENOTCONN) {
    *why = "the kernel has the tls ULP";
    return true;
  }
  *why = absl::StrCat("setsockopt(TCP_ULP, \"tls\") failed: ",
                      std::strerror(saved),
                      saved == ENOENT ? " (no tls module in this kernel)" : "");
  return false;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TlsServerContext>> TlsServerContext::Create(
    TlsOptions options) {
  if (options.certificates.empty()) {
    return absl::InvalidArgumentError("TLS needs at least one certificate");
  }
  for (const CertificateFiles& files : options.certificates) {
    if (files.cert_path.empty() || files.key_path.empty()) {
      return absl::InvalidArgumentError(
          "every TLS certificate needs a certificate file and a key file");
    }
  }
  for (const std::string& proto : options.alpn_protocols) {
    if (proto.empty() || proto.size() > 255) {
      return absl::InvalidArgumentError(
          absl::StrCat("ALPN protocol \"", proto, "\" must be 1-255 bytes"));
    }
  }
  if (options.ticket_rotation < absl::Seconds(1)) {
    return absl::InvalidArgumentError(
        "the ticket rotation must be at least 1s");
  }
  std::string secret;
  if (options.ticket_secret_hex.empty()) {
    secret = TicketKeys::RandomSecret();
  } else {
    absl::StatusOr<std::string> parsed =
        TicketKeys::ParseSecretHex(options.ticket_secret_hex);
    if (!parsed.ok()) return parsed.status();
    secret = *std::move(parsed);
  }
  absl::StatusOr<std::unique_ptr<TicketKeys>> keys = TicketKeys::Create(
      std::move(secret), options.ticket_rotation, options.clock);
  if (!keys.ok()) return keys.status();

  std::unique_ptr<TlsServerContext> context(
      new TlsServerContext(std::move(options)));
  context->ticket_keys_ = std::move(*keys);
  absl::StatusOr<SSL_CTX*> ctx = BuildSslCtx(
      context->options_, context->ticket_keys_, context->counters_);
  if (!ctx.ok()) return ctx.status();
  context->ctx_ = *ctx;
  if (context->options_.enable_ktls) {
    context->kernel_has_tls_ulp_ = ProbeKernelTls(&context->ktls_probe_);
  } else {
    context->ktls_probe_ = "kTLS not asked for";
  }
  return context;
}

TlsServerContext::TlsServerContext(TlsOptions options)
    : options_(std::move(options)),
      counters_(std::make_shared<TlsCounters>()) {}

TlsServerContext::~TlsServerContext() { SSL_CTX_free(ctx_); }

absl::Status TlsServerContext::Reload() {
  absl::StatusOr<SSL_CTX*> ctx =
      BuildSslCtx(options_, ticket_keys_, counters_);
  if (!ctx.ok()) {
    counters_->reload_failures.fetch_add(1, std::memory_order_relaxed);
    return ctx.status();
  }
  // Sessions started on the old SSL_CTX hold their own references.
  SSL_CTX_free(ctx_);
  ctx_ = *ctx;
  counters_->reloads.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

SSL* TlsServerContext::NewSsl() const { return SSL_new(ctx_); }

}  // namespace tls
}  // namespace ddv
