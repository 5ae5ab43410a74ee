// The site view: what the master tells each worker about the names it routes
// to the worker's site, per listener, so the worker can refuse a request for
// another site's name with 421 (docs/isolation.md). Pure encode/decode of its
// JSON parts, no I/O. It travels as master -> worker RPCs (`site_view`, a
// kRequest frame; docs/handoff.md) to ddv workers and as {"ddv":"site_view"}
// lines to Node workers (docs/node.md); both carry the same part objects.
#ifndef DDV_SRC_HANDOFF_SITE_VIEW_H_
#define DDV_SRC_HANDOFF_SITE_VIEW_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "src/route/host_check.h"

namespace ddv {
namespace handoff {

// The kRequest method (master -> worker) that carries one part.
inline constexpr char kSiteViewMethod[] = "site_view";
// A part's JSON stays under this, so a kRequest frame holding it fits
// kMaxFrameBytes with room for its header.
inline constexpr size_t kMaxSiteViewPartBytes = 96 * 1024;
inline constexpr size_t kMaxMasterIdLength = 64;
// A worker's connections report interval, before any view says otherwise,
// and the most a view may ask for.
inline constexpr uint32_t kDefaultConnectionsReportMs = 10;
inline constexpr uint32_t kMaxConnectionsReportMs = 60 * 1000;

// One listener of the master, as the site sees it.
struct SiteViewListener {
  uint32_t index = 0;   // the master's listener index (HandoffEntry)
  std::string address;  // the bound address, "127.0.0.1:8080", "[::]:443"
  // A listener a reload removed or replaced: it accepts nothing new, but
  // the connections it gave are still served. Where a live listener has
  // the same address, the live one's hosts apply to both.
  bool retired = false;
  // An IPv6 listener's IPV6_V6ONLY: a dual-stack "[::]" (false) also takes
  // IPv4 connections. Node workers find a connection's listener by its
  // local address and need it; absent from an older master's views (then
  // false).
  bool v6only = false;
  route::ListenerHosts hosts;
};
bool operator==(const SiteViewListener& a, const SiteViewListener& b);

struct SiteView {
  // Which master sent it (random, per master process): listener indexes
  // are that master's numbering, and a new master numbers afresh.
  std::string master;
  // Bumped by the master for every change it sends; starts over with each
  // master.
  uint64_t version = 0;
  // The site's strict_host: false, and workers check nothing.
  bool strict = true;
  // How often, at most, a worker reports the connections it holds (the
  // `connections` notification): often where the master counts them for
  // the site's max_connections, seldom where they only feed status. Each
  // report wakes the master; at low connection rates it is one wake-up per
  // connection. Absent from an older master's views (then the default).
  uint32_t connections_report_ms = kDefaultConnectionsReportMs;
  std::vector<SiteViewListener> listeners;
};
bool operator==(const SiteView& a, const SiteView& b);

// Splits `view` into JSON objects of at most `max_part_bytes` (as text),
// in order: {"master", "version", "part", "last", "strict",
// "connections_report_ms", "listeners":
// [{"index",
// "address", "retired", "v6only", "default", "own", "others"}]}. A listener whose
// patterns do not fit one part continues in the next (same index, the lists
// go on). Never empty: a view with no listeners is one part.
std::vector<nlohmann::json> EncodeSiteView(
    const SiteView& view, size_t max_part_bytes = kMaxSiteViewPartBytes);

// Reassembles parts. Part 0 starts a view (dropping any unfinished one, as
// when a new master starts over); the others must follow in order with the
// same master and version. Every pattern is checked (route::HostChecker's rules).
class SiteViewAssembler {
 public:
  // The whole view once `part` is its last part; nullopt while parts are
  // missing; InvalidArgument naming the field for a malformed or
  // out-of-order part (the view being assembled is dropped).
  absl::StatusOr<std::optional<SiteView>> Add(const nlohmann::json& part);

 private:
  bool assembling_ = false;
  uint64_t next_part_ = 0;
  SiteView view_;
};

}  // namespace handoff
}  // namespace ddv

#endif  // DDV_SRC_HANDOFF_SITE_VIEW_H_
