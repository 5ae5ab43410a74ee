// NormalizeHost: one pass over the bytes, no allocation.
#include "src/sniff/host_name.h"

namespace ddv {
namespace sniff {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsHex(char c) {
  return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
char ToLower(char c) { return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c; }
bool IsNameChar(char c) {
  char l = ToLower(c);
  return (l >= 'a' && l <= 'z') || IsDigit(c) || c == '-' || c == '_';
}

// Splits off ":port" from a Host value; returns false if the port is invalid.
bool StripPort(absl::string_view* host) {
  size_t colon = host->rfind(':');
  if (colon == absl::string_view::npos) return true;
  // Inside an IPv6 literal without a port, the last ':' precedes ']'.
  if (!host->empty() && host->front() == '[' &&
      host->find(']') > colon) {
    return true;
  }
  absl::string_view port = host->substr(colon + 1);
  // RFC 3986 allows an empty port ("host:"); more than 5 digits is not a port.
  if (port.size() > 5) return false;
  for (char c : port) {
    if (!IsDigit(c)) return false;
  }
  *host = host->substr(0, colon);
  return true;
}

const char* NormalizeIpv6Literal(absl::string_view host, HostName* out) {
  // host is "[...]"; RFC 3986 IP-literal. Zone ids and IPvFuture are refused.
  if (host.size() < 4 || host.back() != ']') return "bad IPv6 literal";
  for (char c : host.substr(1, host.size() - 2)) {
    if (!IsHex(c) && c != ':' && c != '.') return "bad IPv6 literal";
  }
  for (char c : host) out->AppendUnchecked(ToLower(c));
  return nullptr;
}

}  // namespace

const char* NormalizeHost(absl::string_view raw, HostSyntax syntax,
                          HostName* out) {
  out->Clear();
  absl::string_view host = raw;
  if (syntax == HostSyntax::kHttpHost) {
    if (!StripPort(&host)) return "bad port in host";
    if (!host.empty() && host.front() == '[') {
      if (host.size() > kMaxHostLength) return "host too long";
      return NormalizeIpv6Literal(host, out);
    }
  }
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  if (host.empty()) return "empty host";
  if (host.size() > kMaxHostLength) return "host too long";

  size_t label_length = 0;
  for (char c : host) {
    if (c == '.') {
      if (label_length == 0) {
        out->Clear();
        return "empty label in host";
      }
      label_length = 0;
    } else if (IsNameChar(c)) {
      // RFC 1035 §2.3.4: labels are at most 63 octets.
      if (++label_length > 63) {
        out->Clear();
        return "label too long in host";
      }
    } else {
      out->Clear();
      return "invalid character in host";
    }
    out->AppendUnchecked(ToLower(c));
  }
  if (label_length == 0) {
    out->Clear();
    return "empty label in host";
  }
  return nullptr;
}

}  // namespace sniff
}  // namespace ddv
