// Writes a self-signed certificate and its key (EC P-256) for a list of DNS
// names: the demo's certificate, and test fixtures. Not for production: no
// CA signs it, so clients must be told to trust it (curl -k, --cacert).
#ifndef DDV_SRC_TLS_SELF_SIGNED_H_
#define DDV_SRC_TLS_SELF_SIGNED_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace ddv {
namespace tls {

// `dns_names` (at least one; wildcards such as "*.a.localhost" allowed) all go
// into the subjectAltName; the first is also the subject CN. The certificate
// is valid from an hour ago (clock skew) for `validity`. Both files are
// written to a temporary name and renamed into place, so a reader never sees
// half a file; the key file is mode 0600. Errors name the file.
absl::Status WriteSelfSignedCertificate(const std::vector<std::string>& dns_names,
                                        const std::string& cert_path,
                                        const std::string& key_path,
                                        absl::Duration validity);

}  // namespace tls
}  // namespace ddv

#endif  // DDV_SRC_TLS_SELF_SIGNED_H_
