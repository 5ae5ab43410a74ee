// HostChecker: whether a request's Host (or absolute-form authority) is a
// name the master would route to this site on this listener, so a worker can
// answer 421 Misdirected Request (RFC 9110 §15.5.20) to a request that a
// reused connection carries for another site. The one matcher ddv_hello, the
// worker library (C++ and C) and the master's tests share; the Node port is
// node/ddv-worker/lib/host_check.js, held to the same cases
// (node/ddv-worker/test/host_cases.json). docs/isolation.md has the rules.
#ifndef DDV_SRC_ROUTE_HOST_CHECK_H_
#define DDV_SRC_ROUTE_HOST_CHECK_H_

#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ddv {
namespace route {

enum class HostVerdict {
  kAllowed,      // the master routes this name here (or there is no name)
  kMisdirected,  // another site's, or no site's: answer 421, then close
  kInvalid,      // not a host at all (bad syntax, userinfo): answer 400
};

// "allowed", "misdirected", "invalid": the names the shared case file uses.
const char* HostVerdictName(HostVerdict verdict);

// What one site needs to know about one listener to decide like the route
// table (RouteTable::HostsOn builds it from the table itself).
struct ListenerHosts {
  // The site gets this listener's names that match no pattern at all (it is
  // the listener's default_site, or the `default = true` site where the
  // listener has none).
  bool is_default = false;
  // Patterns that route to the site here: "a.test", "*.test" (normal form).
  std::vector<std::string> own;
  // Other sites' patterns that would win over the site's for some name:
  // names under one of its wildcards, narrower wildcards under one of them;
  // for a default site every other pattern on the listener.
  std::vector<std::string> others;
};
bool operator==(const ListenerHosts& a, const ListenerHosts& b);

// The authority a request names, as the master's sniffer reads it: an
// absolute-form target's ("http://b.test/x" → "b.test"; RFC 9112 §3.2.2:
// it wins over the Host field) or a CONNECT authority-form target's
// ("b.test:443"), else `host` (the Host field value, OWS trimmed; empty
// when absent) for origin-form ("/x") and asterisk-form ("*"). Sets
// *invalid where the master would answer 400: a scheme other than http and
// https, an empty authority, userinfo (RFC 9110 §4.2.4), an authority-form
// target without a port. Points into `target` or `host`.
absl::string_view RequestAuthority(absl::string_view target,
                                   absl::string_view host, bool* invalid);

// Whether the request (`target` and `host` as RequestAuthority takes them)
// names `routed`: the normalised Host or SNI the master routed its
// connection by. A connection's first request naming it is its site's by
// construction, so a worker allows it whatever its view says by then: a
// reload that moves the name away sends the new view while that request
// may still be unread (docs/isolation.md). Later requests on the
// connection are checked against the view. An empty `routed` names
// nothing.
bool NamesRoutedHost(absl::string_view target, absl::string_view host,
                     absl::string_view routed);

class HostChecker {
 public:
  // InvalidArgument naming the pattern when one is not in normal form.
  static absl::StatusOr<HostChecker> Create(const ListenerHosts& hosts);

  // `authority` as RequestAuthority gives it: a Host value, port allowed.
  // Empty (HTTP/1.0 without Host) is allowed: nothing names another site.
  // The order is the route table's: exact name, longest wildcard suffix,
  // then the default. Never allocates.
  HostVerdict Check(absl::string_view authority) const;

  // RequestAuthority + Check: the one call a request handler makes.
  HostVerdict CheckRequest(absl::string_view target,
                           absl::string_view host) const;

 private:
  HostChecker() = default;

  bool is_default_ = false;
  // Exact names; wildcards by their suffix ("*.test" is "test").
  absl::flat_hash_set<std::string> own_exact_, own_wildcard_;
  absl::flat_hash_set<std::string> other_exact_, other_wildcard_;
};

}  // namespace route
}  // namespace ddv

#endif  // DDV_SRC_ROUTE_HOST_CHECK_H_
