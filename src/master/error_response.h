// The answers the master itself gives when it cannot hand a connection over
// (docs/design.md "Routing"). HTTP gets a complete response with Connection:
// close; TLS gets a fatal alert or nothing.
#ifndef DDV_SRC_MASTER_ERROR_RESPONSE_H_
#define DDV_SRC_MASTER_ERROR_RESPONSE_H_

#include "absl/strings/string_view.h"

namespace ddv {
namespace master {

enum class Refusal {
  kNoSite,         // HTTP 421 · TLS unrecognized_name alert
  kUnavailable,    // HTTP 503 · TLS internal_error alert (site has no worker)
  kTimeout,        // HTTP 408 · TLS close
  kTooLarge,       // HTTP 431 · TLS close
  kMalformed,      // HTTP 400 · TLS close
};

// Bytes to send before closing; empty means close without a word.
absl::string_view HttpRefusal(Refusal refusal);
absl::string_view TlsRefusal(Refusal refusal);

}  // namespace master
}  // namespace ddv

#endif  // DDV_SRC_MASTER_ERROR_RESPONSE_H_
