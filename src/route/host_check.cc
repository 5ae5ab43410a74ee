// HostChecker: the route table's lookup order, answered for one site only.
#include "src/route/host_check.h"

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "src/sniff/host_name.h"

namespace ddv {
namespace route {
namespace {

// RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
bool IsScheme(absl::string_view scheme) {
  if (scheme.empty() || !absl::ascii_isalpha(scheme[0])) return false;
  for (char c : scheme) {
    if (!absl::ascii_isalnum(c) && c != '+' && c != '-' && c != '.') {
      return false;
    }
  }
  return true;
}

// Adds one pattern of `hosts` to the exact or the wildcard set.
absl::Status AddPattern(absl::string_view pattern,
                        absl::flat_hash_set<std::string>* exact,
                        absl::flat_hash_set<std::string>* wildcard) {
  const bool is_wildcard = absl::StartsWith(pattern, "*.");
  absl::string_view name = is_wildcard ? pattern.substr(2) : pattern;
  sniff::HostName normal;
  const char* error =
      sniff::NormalizeHost(name, sniff::HostSyntax::kTlsSni, &normal);
  if (error == nullptr && normal.view() != name) error = "not in normal form";
  if (error != nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("host pattern \"", pattern, "\": ", error));
  }
  (is_wildcard ? wildcard : exact)->emplace(name);
  return absl::OkStatus();
}

}  // namespace

const char* HostVerdictName(HostVerdict verdict) {
  switch (verdict) {
    case HostVerdict::kAllowed:
      return "allowed";
    case HostVerdict::kMisdirected:
      return "misdirected";
    case HostVerdict::kInvalid:
      return "invalid";
  }
  return "unknown";
}

bool operator==(const ListenerHosts& a, const ListenerHosts& b) {
  return a.is_default == b.is_default && a.own == b.own &&
         a.others == b.others;
}

absl::string_view RequestAuthority(absl::string_view target,
                                   absl::string_view host, bool* invalid) {
  *invalid = false;
  // Origin-form ("/x") and asterisk-form ("*") leave the Host field in
  // charge. The rest name their host as the master's sniffer reads them
  // (src/sniff/http_sniffer.cc): an absolute-form target, http or https
  // only; anything else is CONNECT's authority-form, host ":" port.
  if (target.empty() || target[0] == '/' || target == "*") return host;
  const size_t separator = target.find("://");
  if (separator != absl::string_view::npos &&
      IsScheme(target.substr(0, separator))) {
    const absl::string_view scheme = target.substr(0, separator);
    absl::string_view authority = target.substr(separator + 3);
    authority = authority.substr(0, authority.find_first_of("/?#"));
    // RFC 9110 §4.2.1: an empty host is invalid; §4.2.4: userinfo is an
    // error.
    if ((!absl::EqualsIgnoreCase(scheme, "http") &&
         !absl::EqualsIgnoreCase(scheme, "https")) ||
        authority.empty() || authority.find('@') != absl::string_view::npos) {
      *invalid = true;
    }
    return authority;
  }
  const size_t colon = target.rfind(':');
  const size_t bracket = target.rfind(']');
  if (colon == absl::string_view::npos || colon + 1 == target.size() ||
      (bracket != absl::string_view::npos && colon < bracket) ||
      target.find('@') != absl::string_view::npos) {
    *invalid = true;
  }
  return target;
}

absl::StatusOr<HostChecker> HostChecker::Create(const ListenerHosts& hosts) {
  HostChecker checker;
  checker.is_default_ = hosts.is_default;
  for (const std::string& pattern : hosts.own) {
    absl::Status status = AddPattern(pattern, &checker.own_exact_,
                                     &checker.own_wildcard_);
    if (!status.ok()) return status;
  }
  for (const std::string& pattern : hosts.others) {
    absl::Status status = AddPattern(pattern, &checker.other_exact_,
                                     &checker.other_wildcard_);
    if (!status.ok()) return status;
  }
  return checker;
}

HostVerdict HostChecker::Check(absl::string_view authority) const {
  if (authority.empty()) return HostVerdict::kAllowed;
  sniff::HostName host;
  if (sniff::NormalizeHost(authority, sniff::HostSyntax::kHttpHost, &host) !=
      nullptr) {
    return HostVerdict::kInvalid;
  }
  const absl::string_view name = host.view();
  // A name has one owner per listener, so own and other never share a key:
  // the first set that holds it decides, as the table's first hit does.
  if (own_exact_.contains(name)) return HostVerdict::kAllowed;
  if (other_exact_.contains(name)) return HostVerdict::kMisdirected;
  // Proper dot-suffixes, longest first: the wildcard keys that can match.
  for (size_t dot = name.find('.'); dot != absl::string_view::npos;
       dot = name.find('.', dot + 1)) {
    const absl::string_view suffix = name.substr(dot + 1);
    if (own_wildcard_.contains(suffix)) return HostVerdict::kAllowed;
    if (other_wildcard_.contains(suffix)) return HostVerdict::kMisdirected;
  }
  return is_default_ ? HostVerdict::kAllowed : HostVerdict::kMisdirected;
}

bool NamesRoutedHost(absl::string_view target, absl::string_view host,
                     absl::string_view routed) {
  if (routed.empty()) return false;
  bool invalid = false;
  const absl::string_view authority = RequestAuthority(target, host, &invalid);
  if (invalid || authority.empty()) return false;
  sniff::HostName name;
  if (sniff::NormalizeHost(authority, sniff::HostSyntax::kHttpHost, &name) !=
      nullptr) {
    return false;
  }
  return name.view() == routed;
}

HostVerdict HostChecker::CheckRequest(absl::string_view target,
                                      absl::string_view host) const {
  bool invalid = false;
  absl::string_view authority = RequestAuthority(target, host, &invalid);
  if (invalid) return HostVerdict::kInvalid;
  return Check(authority);
}

}  // namespace route
}  // namespace ddv
