// NormalizeHostPattern: wildcard rules on top of sniff::NormalizeHost, so a
// configured host and a sniffed one have the same normal form by construction.
#include "src/config/host_pattern.h"

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "src/sniff/host_name.h"

namespace ddv {
namespace config {
namespace {

absl::Status HostError(absl::string_view pattern, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("host \"", pattern, "\" ", what));
}

}  // namespace

absl::StatusOr<std::string> NormalizeHostPattern(absl::string_view pattern) {
  if (pattern.empty()) return absl::InvalidArgumentError("host is empty");
  if (pattern == "*" || pattern == "*.") {
    return HostError(pattern,
                     "matches everything: mark the site default = true "
                     "(or name it in a listener's default_site) instead");
  }

  absl::string_view name = pattern;
  bool wildcard = false;
  if (absl::StartsWith(name, "*.")) {
    wildcard = true;
    name.remove_prefix(2);
  }
  if (name.find('*') != absl::string_view::npos) {
    return HostError(pattern,
                     "has a misplaced \"*\": a wildcard is only allowed as "
                     "the whole first label, as in \"*.example.com\"");
  }

  sniff::HostName normal;
  if (!wildcard && absl::StartsWith(name, "[")) {
    // An IPv6 literal: with Host syntax NormalizeHost would strip a port, so
    // refuse one first.
    size_t close = name.find(']');
    if (close != absl::string_view::npos && close + 1 < name.size()) {
      return HostError(pattern, "must not include a port");
    }
    if (const char* error =
            sniff::NormalizeHost(name, sniff::HostSyntax::kHttpHost, &normal)) {
      return HostError(pattern, absl::StrCat("is not valid: ", error));
    }
    return std::string(normal.view());
  }
  if (name.find(':') != absl::string_view::npos) {
    return HostError(pattern, "must not include a port");
  }
  // SNI syntax: a DNS name (or dotted quad), no port, no brackets.
  if (const char* error =
          sniff::NormalizeHost(name, sniff::HostSyntax::kTlsSni, &normal)) {
    return HostError(pattern, absl::StrCat("is not valid: ", error));
  }
  if (wildcard) return absl::StrCat("*.", normal.view());
  return std::string(normal.view());
}

}  // namespace config
}  // namespace ddv
