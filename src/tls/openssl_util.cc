// The OpenSSL error queue as text and as an absl::Status.
#include "src/tls/openssl_util.h"

#include <openssl/err.h>

#include "absl/strings/str_cat.h"

namespace ddv {
namespace tls {

std::string DrainOpenSslErrors() {
  std::string out;
  const char* data = nullptr;
  int flags = 0;
  unsigned long code;
  while ((code = ERR_get_error_all(nullptr, nullptr, nullptr, &data,
                                   &flags)) != 0) {
    if (!out.empty()) out += "; ";
    const char* reason = ERR_reason_error_string(code);
    if (reason != nullptr) {
      out += reason;
    } else {
      char text[256];
      ERR_error_string_n(code, text, sizeof(text));
      out += text;
    }
    // The extra text says which file or call ("calling fopen(/x, r)").
    if ((flags & ERR_TXT_STRING) != 0 && data != nullptr && *data != '\0') {
      absl::StrAppend(&out, " (", data, ")");
    }
  }
  return out;
}

absl::Status OpenSslStatus(absl::string_view doing, absl::StatusCode code) {
  std::string errors = DrainOpenSslErrors();
  return absl::Status(code, errors.empty() ? std::string(doing)
                                           : absl::StrCat(doing, ": ", errors));
}

}  // namespace tls
}  // namespace ddv
