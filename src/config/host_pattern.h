// Host patterns in a site's `hosts`: an exact name ("a.example.com") or a
// wildcard over every name below a suffix ("*.example.com"), checked and put
// in the normal form the sniffers produce, so the route table compares bytes.
#ifndef DDV_SRC_CONFIG_HOST_PATTERN_H_
#define DDV_SRC_CONFIG_HOST_PATTERN_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ddv {
namespace config {

// Returns the normal form: ASCII lower case, one trailing dot dropped
// ("A.Example.COM." -> "a.example.com"; "*.Example.com" -> "*.example.com").
// Bracketed IPv6 literals ("[::1]") and IPv4 addresses are exact names too.
// Refused, with InvalidArgument naming the pattern: empty, "*" alone (use a
// default site), "*" anywhere but as the whole first label ("a.*.b", "*a.b"),
// a port ("a.example.com:80"), and anything sniff::NormalizeHost refuses
// (spaces, empty labels, non-ASCII, over-long names).
absl::StatusOr<std::string> NormalizeHostPattern(absl::string_view pattern);

}  // namespace config
}  // namespace ddv

#endif  // DDV_SRC_CONFIG_HOST_PATTERN_H_
