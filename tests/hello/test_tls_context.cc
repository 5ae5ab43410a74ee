// MakeTestTlsContext: a self-signed certificate on disk, loaded.
#include "tests/hello/test_tls_context.h"

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "src/base/status_macros.h"
#include "src/tls/self_signed.h"

namespace ddv {
namespace hello {
namespace testing {

absl::StatusOr<std::unique_ptr<tls::TlsServerContext>> MakeTestTlsContext(
    absl::string_view name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string dir = tmp != nullptr ? tmp : "/tmp";
  tls::CertificateFiles files{absl::StrCat(dir, "/", name, ".crt"),
                              absl::StrCat(dir, "/", name, ".key")};
  DDV_RETURN_IF_ERROR(tls::WriteSelfSignedCertificate(
      {"t.localhost"}, files.cert_path, files.key_path, absl::Hours(1)));
  tls::TlsOptions options;
  options.certificates = {files};
  return tls::TlsServerContext::Create(options);
}

}  // namespace testing
}  // namespace hello
}  // namespace ddv
