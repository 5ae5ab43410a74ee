// A TLS server context with a fresh self-signed certificate for
// "t.localhost", for the hello tests that terminate TLS.
#ifndef DDV_TESTS_HELLO_TEST_TLS_CONTEXT_H_
#define DDV_TESTS_HELLO_TEST_TLS_CONTEXT_H_

#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "src/tls/tls_context.h"

namespace ddv {
namespace hello {
namespace testing {

// Writes NAME.crt and NAME.key under $TEST_TMPDIR (else /tmp), valid for an
// hour, and loads them.
absl::StatusOr<std::unique_ptr<tls::TlsServerContext>> MakeTestTlsContext(
    absl::string_view name);

}  // namespace testing
}  // namespace hello
}  // namespace ddv

#endif  // DDV_TESTS_HELLO_TEST_TLS_CONTEXT_H_
