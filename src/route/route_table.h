// RouteTable: host (and ALPN) → site, per listener. An immutable snapshot
// built once from validated specs and swapped whole on reload, so lookups
// need no lock: callers hold a std::shared_ptr<const RouteTable>.
#ifndef DDV_SRC_ROUTE_ROUTE_TABLE_H_
#define DDV_SRC_ROUTE_ROUTE_TABLE_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "src/route/host_check.h"

namespace ddv {
namespace route {

struct SiteSpec {
  std::string id;
  // "a.example.com" or "*.example.com". A wildcard matches any depth below
  // its suffix ("x.example.com", "x.y.example.com"), never the suffix itself.
  std::vector<std::string> hosts;
  // Listener indexes this site serves; empty = every listener.
  std::vector<int> listeners;
  // The global default site (docs/design.md `default = true`). Only used on
  // the listeners the site serves: a site that does not speak TLS must not
  // get the TLS listener's unnamed connections.
  bool is_default = false;
  // If non-empty, the site claims only these ALPN protocols on its hosts
  // (e.g. "acme-tls/1" for a TLS-ALPN-01 responder) and no plain route: a
  // client that does not offer one of them goes to whoever owns the host.
  std::vector<std::string> alpn;
};

struct RouteTableSpec {
  std::vector<std::string> listener_names;
  // Per listener: a site index, or -1 for none. Empty = none anywhere.
  std::vector<int> listener_default_site;
  std::vector<SiteSpec> sites;
};

// Which rule chose the site, in the order they are tried.
enum class MatchKind {
  kNone,
  kAlpnExact,
  kAlpnWildcard,
  kExact,
  kWildcard,
  kListenerDefault,
  kGlobalDefault,
};

// For metrics labels and logs: "none", "alpn_exact", ..., "global_default".
const char* MatchKindName(MatchKind kind);

struct RouteResult {
  int site = -1;  // index into RouteTableSpec::sites, or -1
  MatchKind kind = MatchKind::kNone;
};

class RouteTable {
 public:
  // Validates `spec` and builds the lookup maps. Host patterns are normalised
  // with sniff::NormalizeHost (TLS SNI syntax, after stripping "*."); a bare
  // "*" or a '*' anywhere else is refused. The same host (or the same host
  // and ALPN protocol) claimed by two sites on one listener, more than one
  // default site, duplicate site ids and out-of-range listener or site
  // indexes are errors. Errors are absl::InvalidArgumentError naming the
  // site(s), host and listener.
  static absl::StatusOr<std::shared_ptr<const RouteTable>> Build(
      const RouteTableSpec& spec);

  // Picks the site for a connection on `listener` (an out-of-range index
  // gets kNone). `host` must already be normalised (a sniff::HostName
  // view); empty means the client sent no name and only defaults apply.
  // `offered_alpn` is the client's ALPN list, in its order of preference.
  // Order: an ALPN-claimed route for the host and an offered protocol
  // (exact host, then longest wildcard; the client's first protocol with a
  // claim wins), exact host, longest wildcard suffix, the listener's
  // default, the global default, none.
  // O(labels in host) hash probes; never allocates.
  RouteResult Lookup(
      int listener, absl::string_view host,
      absl::Span<const absl::string_view> offered_alpn = {}) const;

  int listener_count() const { return static_cast<int>(listeners_.size()); }
  int site_count() const { return site_count_; }

  // Per site (indexed as RouteTableSpec::sites): what it needs to answer
  // "does Lookup(listener, name) give this site?" for any name, offered no
  // ALPN, with a HostChecker. A site's ALPN-claimed hosts count as its own
  // (its connections offered that protocol); other sites' ALPN claims take
  // no names from it. Patterns are sorted. An out-of-range listener gives
  // every site nothing (no name routes there).
  std::vector<ListenerHosts> HostsOn(int listener) const;

 private:
  // ALPN protocol → site, for one host key. Rarely more than one entry.
  using AlpnClaims = std::vector<std::pair<std::string, int>>;

  struct Listener {
    // Keys are normalised hosts; for wildcards the suffix without "*.".
    // absl's string hash is transparent, so probing with a string_view
    // does not build a std::string.
    absl::flat_hash_map<std::string, int> exact;
    absl::flat_hash_map<std::string, int> wildcard;
    absl::flat_hash_map<std::string, AlpnClaims> alpn_exact;
    absl::flat_hash_map<std::string, AlpnClaims> alpn_wildcard;
    int default_site = -1;         // the listener's own default_site
    int global_default_site = -1;  // the `default = true` site, if it serves here
  };

  RouteTable() = default;

  std::vector<Listener> listeners_;
  int site_count_ = 0;
};

}  // namespace route
}  // namespace ddv

#endif  // DDV_SRC_ROUTE_ROUTE_TABLE_H_
