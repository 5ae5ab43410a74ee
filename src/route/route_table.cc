// RouteTable: validation at build time, so a lookup is only hash probes.
#include "src/route/route_table.h"

#include <algorithm>
#include <cstddef>

#include "absl/container/btree_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "src/sniff/host_name.h"

namespace ddv {
namespace route {
namespace {

// RFC 7301 §3.1: a protocol name is 1 to 255 bytes.
constexpr size_t kMaxAlpnLength = 255;

// Normalises one hosts entry. Sets *wildcard for "*.suffix" and writes the
// suffix alone; exact names are written whole. Returns nullptr or why not.
const char* ParseHostPattern(absl::string_view pattern, bool* wildcard,
                             sniff::HostName* out) {
  constexpr absl::string_view kWildcardPrefix = "*.";
  *wildcard = false;
  if (pattern == "*") {
    return "a bare \"*\" would match every name; use a default site instead";
  }
  if (pattern.substr(0, kWildcardPrefix.size()) == kWildcardPrefix) {
    *wildcard = true;
    pattern.remove_prefix(kWildcardPrefix.size());
  }
  // Routes use SNI syntax (no port, no IP literal brackets) because it is
  // the stricter of the two, and a '*' anywhere else fails it too.
  return sniff::NormalizeHost(pattern, sniff::HostSyntax::kTlsSni, out);
}

// The client's most preferred protocol that the claims hold, or -1.
int FindAlpnClaim(const std::vector<std::pair<std::string, int>>& claims,
                  absl::Span<const absl::string_view> offered_alpn) {
  for (absl::string_view protocol : offered_alpn) {
    for (const auto& claim : claims) {
      if (claim.first == protocol) return claim.second;
    }
  }
  return -1;
}

// Calls `probe` with each proper dot-suffix of `host`, longest first:
// "x.y.a.test" → "y.a.test", "a.test", "test". Stops at the first probe that
// returns >= 0 and returns it; -1 if none does. Those suffixes are exactly
// the wildcard keys that can match: "*.a.test" is stored as "a.test", and
// "a.test" itself is never offered, so a wildcard never matches its suffix.
template <typename Probe>
int LongestSuffixMatch(absl::string_view host, const Probe& probe) {
  for (size_t dot = host.find('.'); dot != absl::string_view::npos;
       dot = host.find('.', dot + 1)) {
    int site = probe(host.substr(dot + 1));
    if (site >= 0) return site;
  }
  return -1;
}

std::string Quoted(absl::string_view text) {
  return absl::StrCat("\"", text, "\"");
}

}  // namespace

const char* MatchKindName(MatchKind kind) {
  switch (kind) {
    case MatchKind::kNone:
      return "none";
    case MatchKind::kAlpnExact:
      return "alpn_exact";
    case MatchKind::kAlpnWildcard:
      return "alpn_wildcard";
    case MatchKind::kExact:
      return "exact";
    case MatchKind::kWildcard:
      return "wildcard";
    case MatchKind::kListenerDefault:
      return "listener_default";
    case MatchKind::kGlobalDefault:
      return "global_default";
  }
  return "unknown";
}

absl::StatusOr<std::shared_ptr<const RouteTable>> RouteTable::Build(
    const RouteTableSpec& spec) {
  const int listener_count = static_cast<int>(spec.listener_names.size());
  const int site_count = static_cast<int>(spec.sites.size());
  auto listener_name = [&](int index) {
    return Quoted(spec.listener_names[index]);
  };
  auto site_name = [&](int index) { return Quoted(spec.sites[index].id); };

  if (!spec.listener_default_site.empty() &&
      static_cast<int>(spec.listener_default_site.size()) != listener_count) {
    return absl::InvalidArgumentError(absl::StrCat(
        "listener_default_site has ", spec.listener_default_site.size(),
        " entries for ", listener_count, " listeners"));
  }

  // Per-site checks that do not depend on other sites' hosts.
  int global_default = -1;
  absl::flat_hash_map<absl::string_view, int> site_by_id;
  for (int i = 0; i < site_count; ++i) {
    const SiteSpec& site = spec.sites[i];
    if (site.id.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("site #", i, " has an empty id"));
    }
    auto [it, inserted] = site_by_id.emplace(site.id, i);
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat(
          "site id ", site_name(i), " is used by sites #", it->second,
          " and #", i));
    }
    if (site.is_default) {
      if (global_default >= 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "sites ", site_name(global_default), " and ", site_name(i),
            " are both marked default; at most one site may be"));
      }
      global_default = i;
    }
    for (int listener : site.listeners) {
      if (listener < 0 || listener >= listener_count) {
        return absl::InvalidArgumentError(absl::StrCat(
            "site ", site_name(i), ": listener index ", listener,
            " is out of range (", listener_count, " listeners)"));
      }
    }
    for (const std::string& protocol : site.alpn) {
      if (protocol.empty() || protocol.size() > kMaxAlpnLength) {
        return absl::InvalidArgumentError(
            absl::StrCat("site ", site_name(i), ": ALPN protocol ",
                         Quoted(protocol), " must be 1 to 255 bytes"));
      }
    }
  }

  std::shared_ptr<RouteTable> table(new RouteTable());
  table->listeners_.resize(listener_count);
  table->site_count_ = site_count;
  for (int l = 0; l < listener_count; ++l) {
    if (spec.listener_default_site.empty()) break;
    const int site = spec.listener_default_site[l];
    if (site < -1 || site >= site_count) {
      return absl::InvalidArgumentError(
          absl::StrCat("listener ", listener_name(l), ": default site index ",
                       site, " is out of range (", site_count, " sites)"));
    }
    table->listeners_[l].default_site = site;
  }

  std::vector<int> served;  // listener indexes of the current site
  for (int i = 0; i < site_count; ++i) {
    const SiteSpec& site = spec.sites[i];
    served.clear();
    if (site.listeners.empty()) {
      for (int l = 0; l < listener_count; ++l) served.push_back(l);
    } else {
      served = site.listeners;
    }
    if (i == global_default) {
      for (int l : served) table->listeners_[l].global_default_site = i;
    }

    for (const std::string& pattern : site.hosts) {
      bool wildcard = false;
      sniff::HostName host;
      if (const char* error = ParseHostPattern(pattern, &wildcard, &host)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "site ", site_name(i), ": host ", Quoted(pattern), ": ", error));
      }
      for (int l : served) {
        Listener& listener = table->listeners_[l];
        if (site.alpn.empty()) {
          auto& routes = wildcard ? listener.wildcard : listener.exact;
          auto [it, inserted] = routes.try_emplace(host.view(), i);
          // A site may list one host twice (or in two spellings): harmless.
          if (!inserted && it->second != i) {
            return absl::InvalidArgumentError(absl::StrCat(
                "site ", site_name(i), ": host ", Quoted(pattern),
                " on listener ", listener_name(l),
                " is already claimed by site ", site_name(it->second)));
          }
          continue;
        }
        auto& claims = (wildcard ? listener.alpn_wildcard
                                 : listener.alpn_exact)[host.view()];
        for (const std::string& protocol : site.alpn) {
          int owner = -1;
          for (const auto& claim : claims) {
            if (claim.first == protocol) owner = claim.second;
          }
          if (owner == i) continue;
          if (owner >= 0) {
            return absl::InvalidArgumentError(absl::StrCat(
                "site ", site_name(i), ": host ", Quoted(pattern),
                " with ALPN ", Quoted(protocol), " on listener ",
                listener_name(l), " is already claimed by site ",
                site_name(owner)));
          }
          claims.emplace_back(protocol, i);
        }
      }
    }
  }
  return std::shared_ptr<const RouteTable>(std::move(table));
}

RouteResult RouteTable::Lookup(
    int listener, absl::string_view host,
    absl::Span<const absl::string_view> offered_alpn) const {
  if (listener < 0 || listener >= listener_count()) return RouteResult();
  const Listener& routes = listeners_[listener];

  if (!host.empty()) {
    // ALPN claims are rare (ACME responders); skip all of this unless the
    // listener has some and the client offered a protocol.
    if (!offered_alpn.empty()) {
      if (!routes.alpn_exact.empty()) {
        auto it = routes.alpn_exact.find(host);
        if (it != routes.alpn_exact.end()) {
          int site = FindAlpnClaim(it->second, offered_alpn);
          if (site >= 0) return {site, MatchKind::kAlpnExact};
        }
      }
      if (!routes.alpn_wildcard.empty()) {
        int site = LongestSuffixMatch(host, [&](absl::string_view suffix) {
          auto it = routes.alpn_wildcard.find(suffix);
          if (it == routes.alpn_wildcard.end()) return -1;
          return FindAlpnClaim(it->second, offered_alpn);
        });
        if (site >= 0) return {site, MatchKind::kAlpnWildcard};
      }
    }

    auto exact = routes.exact.find(host);
    if (exact != routes.exact.end()) return {exact->second, MatchKind::kExact};

    if (!routes.wildcard.empty()) {
      int site = LongestSuffixMatch(host, [&](absl::string_view suffix) {
        auto it = routes.wildcard.find(suffix);
        return it == routes.wildcard.end() ? -1 : it->second;
      });
      if (site >= 0) return {site, MatchKind::kWildcard};
    }
  }

  if (routes.default_site >= 0) {
    return {routes.default_site, MatchKind::kListenerDefault};
  }
  if (routes.global_default_site >= 0) {
    return {routes.global_default_site, MatchKind::kGlobalDefault};
  }
  return RouteResult();
}

std::vector<ListenerHosts> RouteTable::HostsOn(int listener) const {
  std::vector<ListenerHosts> hosts(site_count_);
  if (listener < 0 || listener >= listener_count()) return hosts;
  const Listener& routes = listeners_[listener];
  // Sorted and without duplicates (a host claimed for two ALPN protocols,
  // an exact name under two of one site's wildcards).
  std::vector<absl::btree_set<std::string>> own(site_count_);
  std::vector<absl::btree_set<std::string>> others(site_count_);
  auto pattern = [](absl::string_view key, bool wildcard) {
    return wildcard ? absl::StrCat("*.", key) : std::string(key);
  };

  // Lookup's fallback for a name no pattern matches.
  const int fallback = routes.default_site >= 0 ? routes.default_site
                                                : routes.global_default_site;
  if (fallback >= 0) hosts[fallback].is_default = true;

  for (const auto& [key, site] : routes.exact) own[site].insert(key);
  for (const auto& [key, site] : routes.wildcard) {
    own[site].insert(pattern(key, true));
  }
  for (bool wildcard : {false, true}) {
    for (const auto& [key, claims] :
         wildcard ? routes.alpn_wildcard : routes.alpn_exact) {
      for (const auto& claim : claims) {
        own[claim.second].insert(pattern(key, wildcard));
      }
    }
  }

  // Another site's pattern matters to a site when Lookup would try it
  // before one of the site's own for some name: an exact name or a
  // narrower wildcard below one of its wildcards (exact first, then the
  // longest suffix). To the fallback site every other pattern matters.
  for (bool wildcard : {false, true}) {
    for (const auto& [key, owner] : wildcard ? routes.wildcard : routes.exact) {
      std::string text = pattern(key, wildcard);
      if (fallback >= 0 && fallback != owner) others[fallback].insert(text);
      for (size_t dot = key.find('.'); dot != std::string::npos;
           dot = key.find('.', dot + 1)) {
        auto above = routes.wildcard.find(absl::string_view(key).substr(dot + 1));
        if (above != routes.wildcard.end() && above->second != owner) {
          others[above->second].insert(text);
        }
      }
    }
  }
  for (int site = 0; site < site_count_; ++site) {
    hosts[site].own.assign(own[site].begin(), own[site].end());
    hosts[site].others.assign(others[site].begin(), others[site].end());
  }
  return hosts;
}

}  // namespace route
}  // namespace ddv
