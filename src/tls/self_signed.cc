// Self-signed EC P-256 certificates with a SAN per name (OpenSSL 3 API).
#include "src/tls/self_signed.h"

#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <ctime>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "src/base/errno_status.h"
#include "src/tls/openssl_util.h"

namespace ddv {
namespace tls {
namespace {

// Adds one X.509v3 extension given in openssl.cnf syntax.
absl::Status AddExtension(X509* cert, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) {
    return OpenSslStatus(absl::StrCat("building extension ", OBJ_nid2sn(nid),
                                      "=", value),
                         absl::StatusCode::kInvalidArgument);
  }
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (!ok) return OpenSslStatus("adding an X.509 extension");
  return absl::OkStatus();
}

// Writes `bytes` to `path` with `mode` through a temporary file and a rename.
absl::Status WriteFileAtomically(const std::string& path,
                                 const std::string& bytes, mode_t mode) {
  std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  std::string doing = absl::StrCat("writing \"", path, "\"");
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return ErrnoStatus(errno, "open", doing);
  // O_CREAT's mode is filtered by the umask and ignored for an old file.
  if (fchmod(fd, mode) != 0) {
    int saved = errno;
    close(fd);
    unlink(tmp.c_str());
    return ErrnoStatus(saved, "fchmod", doing);
  }
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int saved = errno;
      close(fd);
      unlink(tmp.c_str());
      return ErrnoStatus(saved, "write", doing);
    }
    done += static_cast<size_t>(n);
  }
  if (close(fd) != 0) {
    int saved = errno;
    unlink(tmp.c_str());
    return ErrnoStatus(saved, "close", doing);
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    int saved = errno;
    unlink(tmp.c_str());
    return ErrnoStatus(saved, "rename", doing);
  }
  return absl::OkStatus();
}

// PEM text of whatever `write` puts into a memory BIO.
template <typename WriteFn>
absl::StatusOr<std::string> ToPem(WriteFn write, absl::string_view what) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || !write(bio.get())) {
    return OpenSslStatus(absl::StrCat("encoding the ", what, " as PEM"));
  }
  char* data = nullptr;
  long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

}  // namespace

absl::Status WriteSelfSignedCertificate(const std::vector<std::string>& dns_names,
                                        const std::string& cert_path,
                                        const std::string& key_path,
                                        absl::Duration validity) {
  if (dns_names.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("no DNS name for the certificate \"", cert_path, "\""));
  }
  if (validity <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("validity must be positive for \"", cert_path, "\""));
  }
  for (const std::string& name : dns_names) {
    // A SAN entry is one token of the extension's config syntax.
    if (name.empty() || name.find_first_of(",: \t\r\n") != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad DNS name \"", name, "\" for \"", cert_path, "\""));
    }
  }

  EvpPkeyPtr key(EVP_EC_gen("P-256"));
  if (key == nullptr) return OpenSslStatus("generating an EC P-256 key");

  X509Ptr cert(X509_new());
  if (cert == nullptr) return OpenSslStatus("allocating a certificate");
  X509_set_version(cert.get(), X509_VERSION_3);
  // A random positive 159-bit serial (RFC 5280 §4.1.2.2: at most 20 octets),
  // so two demo certificates never share issuer+serial.
  unsigned char serial_bytes[20];
  if (RAND_bytes(serial_bytes, sizeof(serial_bytes)) != 1) {
    return OpenSslStatus("drawing a serial number");
  }
  serial_bytes[0] &= 0x7f;
  BIGNUM* serial_bn = BN_bin2bn(serial_bytes, sizeof(serial_bytes), nullptr);
  bool serial_ok = serial_bn != nullptr &&
                   BN_to_ASN1_INTEGER(serial_bn,
                                      X509_get_serialNumber(cert.get())) !=
                       nullptr;
  BN_free(serial_bn);
  if (!serial_ok) return OpenSslStatus("setting the serial number");

  time_t now = time(nullptr);
  const long validity_seconds =
      static_cast<long>(absl::ToInt64Seconds(validity));
  if (X509_time_adj_ex(X509_getm_notBefore(cert.get()), 0, -3600, &now) ==
          nullptr ||
      X509_time_adj_ex(X509_getm_notAfter(cert.get()),
                       static_cast<int>(validity_seconds / 86400),
                       validity_seconds % 86400, &now) == nullptr) {
    return OpenSslStatus("setting the validity period");
  }

  // Subject = issuer = CN=<first name> (a CN holds at most 64 characters).
  X509_NAME* name = X509_get_subject_name(cert.get());
  std::string cn = dns_names[0].substr(0, 64);
  if (!X509_NAME_add_entry_by_txt(
          name, "CN", MBSTRING_UTF8,
          reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0) ||
      !X509_set_issuer_name(cert.get(), name) ||
      !X509_set_pubkey(cert.get(), key.get())) {
    return OpenSslStatus("setting the subject");
  }

  std::vector<std::string> sans;
  for (const std::string& n : dns_names) sans.push_back("DNS:" + n);
  absl::Status status;
  for (auto [nid, value] :
       {std::pair<int, std::string>{NID_subject_alt_name,
                                    absl::StrJoin(sans, ",")},
        {NID_basic_constraints, "critical,CA:FALSE"},
        {NID_key_usage, "critical,digitalSignature"},
        {NID_ext_key_usage, "serverAuth"},
        {NID_subject_key_identifier, "hash"}}) {
    status = AddExtension(cert.get(), nid, value);
    if (!status.ok()) return status;
  }
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) {
    return OpenSslStatus("signing the certificate");
  }

  absl::StatusOr<std::string> key_pem = ToPem(
      [&](BIO* bio) {
        return PEM_write_bio_PrivateKey(bio, key.get(), nullptr, nullptr, 0,
                                        nullptr, nullptr) == 1;
      },
      "private key");
  if (!key_pem.ok()) return key_pem.status();
  absl::StatusOr<std::string> cert_pem = ToPem(
      [&](BIO* bio) { return PEM_write_bio_X509(bio, cert.get()) == 1; },
      "certificate");
  if (!cert_pem.ok()) return cert_pem.status();

  // The key first: a reader that sees the new certificate finds its key.
  status = WriteFileAtomically(key_path, *key_pem, 0600);
  if (!status.ok()) return status;
  return WriteFileAtomically(cert_path, *cert_pem, 0644);
}

}  // namespace tls
}  // namespace ddv
