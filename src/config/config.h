// The ddv config file (TOML, schema in docs/config.md) parsed and validated
// into plain structs. Everything a config can get wrong is caught here, with
// the FILE:LINE:COL of the offending key or value, so the master never starts
// (or reloads) with a config it would have to second-guess.
#ifndef DDV_SRC_CONFIG_CONFIG_H_
#define DDV_SRC_CONFIG_CONFIG_H_

#include <sys/socket.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "src/base/ip_network.h"

namespace ddv {
namespace config {

enum class Protocol {
  kHttp,  // route by the HTTP Host header
  kTls,   // route by the TLS ClientHello SNI (and ALPN)
  kTcp,   // no peek: every connection goes to the default site
};

enum class HandoffMode {
  kScmRights,  // sendmsg() with SCM_RIGHTS over the worker's Unix socket
  kPidfd,      // the worker takes the fd with pidfd_getfd()
};

// What the site's workers speak on their channel (docs/node.md).
enum class Runtime {
  kDdv,   // ddv's handoff protocol: the C++/C worker library, ddv_hello
  kNode,  // Node.js's cluster protocol: a stock Node app as a cluster worker
};

// How a listener's access log lines are written (docs/metrics.md).
enum class AccessLogFormat {
  kJson,    // one JSON object per line
  kLogfmt,  // key=value pairs, values quoted when they need it
};

// The names used in the config file: "http", "tls", "tcp"; "scm_rights",
// "pidfd"; "ddv", "node"; "json", "logfmt".
absl::string_view ProtocolName(Protocol protocol);
absl::string_view HandoffModeName(HandoffMode mode);
absl::string_view RuntimeName(Runtime runtime);
absl::string_view AccessLogFormatName(AccessLogFormat format);

// The resources a site's `limits` table may set (docs/isolation.md), in the
// order docs/config.md lists them. Each becomes one setrlimit() on every
// worker at start, as both soft and hard limit.
enum class ResourceKind {
  kNofile,        // RLIMIT_NOFILE: open files
  kNproc,         // RLIMIT_NPROC: processes of the worker's user
  kCore,          // RLIMIT_CORE: bytes of a core dump (0: none)
  kAsBytes,       // RLIMIT_AS: bytes of address space
  kMemlockBytes,  // RLIMIT_MEMLOCK: bytes locked (io_uring rings count)
};
// The key in `limits`: "nofile", "nproc", "core", "as_bytes",
// "memlock_bytes".
absl::string_view ResourceKindName(ResourceKind kind);
// A limit's value for "unlimited" (RLIM_INFINITY).
inline constexpr uint64_t kUnlimited = UINT64_MAX;

// [master]
struct MasterConfig {
  std::string control_socket = "/run/ddv/control.sock";
  int peek_timeout_ms = 5000;  // 1..600000
  int max_peek_bytes = 16384;  // 512..1048576
  HandoffMode handoff = HandoffMode::kScmRights;
  // The control socket's file mode (`control_socket_mode = "0660"`): the
  // owner always has read and write. Only the file's first gate: every
  // connection is also checked with SO_PEERCRED (docs/master.md).
  mode_t control_socket_mode = 0600;
  // `control_socket_group`: the socket is chowned to it and its members may
  // use ddvctl. Empty: root and the master's own user only. The gid is
  // resolved at load, like a site's `group`.
  std::string control_socket_group;
  gid_t control_socket_gid = 0;  // meaningful only with the group set
  // `metrics_address = "127.0.0.1:9150"`: where the master serves
  // Prometheus text (/metrics) and /healthz (docs/metrics.md). Validated
  // IP:PORT as written; empty: not served.
  std::string metrics_address;
};

// One [[listener]].
struct ListenerConfig {
  std::string name;     // unique, non-empty
  std::string address;  // as written, e.g. "0.0.0.0:80", "[::]:443"
  sockaddr_storage addr = {};
  socklen_t addr_len = 0;
  Protocol protocol = Protocol::kHttp;
  std::string default_site;     // may be empty; names a site that serves this
  bool proxy_protocol = false;  // accept PROXY v1/v2 from an L4 tier
  // `proxy_protocol_from`: the networks whose PROXY headers are believed;
  // a connection from anywhere else is reset unread. Empty: any source.
  std::vector<IpNetwork> proxy_protocol_from;
  // `v6only` (IPv6 addresses only): IPV6_V6ONLY, so "[::]" takes IPv6
  // alone; false takes IPv4 too, whose peers show as ::ffff:a.b.c.d.
  bool v6only = true;
  // Optional access log: one line per connection the master is done with
  // (docs/metrics.md). Absolute path; empty: none.
  std::string access_log;
  AccessLogFormat access_log_format = AccessLogFormat::kJson;
  double access_log_sample = 1.0;  // 0..1: the share of connections logged
  int line = 0;                 // of the [[listener]] header
};

// Whether a listener's connections are peeked before routing: `http` and
// `tls` always, `tcp` only to read a PROXY header. Peeked listeners get
// TCP_DEFER_ACCEPT.
bool IsPeeked(const ListenerConfig& listener);

// One [[site]].
struct SiteConfig {
  std::string id;                      // unique, [A-Za-z0-9_.-]+
  std::vector<std::string> command;    // argv; command[0] non-empty
  int processes = 1;                   // 1..1024
  Runtime runtime = Runtime::kDdv;     // `runtime = "node"`: Node cluster
  std::vector<std::string> hosts;      // normal form: "a.example.com",
                                       // "*.example.com"
  std::vector<std::string> listeners;  // empty = every listener
  bool is_default = false;             // `default = true`: at most one site
  std::string log_output, log_error, log_all;  // absolute paths or empty
  // Size rotation by the log writer (docs/logs.md): at log_max_bytes a file
  // becomes FILE.1 (FILE.1 becomes FILE.2, ...), log_keep of them kept.
  // 0: no rotation (log_keep is then refused).
  uint64_t log_max_bytes = 0;
  uint32_t log_keep = 5;
  std::vector<std::pair<std::string, std::string>> env;  // sorted by name
  std::string user, group;        // names that existed at load time, or empty
  std::vector<std::string> alpn;  // ALPN protocols this site claims on its
                                  // hosts, e.g. "acme-tls/1"
  std::vector<std::string> tls_cert, tls_key;  // passed to workers; as many
                                               // keys as certificates
  // What its workers may claim at run time with update_server_conf
  // (docs/master.md): host patterns in normal form, like `hosts`; empty
  // means nothing beyond the site's own hosts.
  std::vector<std::string> claimable_hosts;
  bool may_claim_default = false;  // whether a worker may claim the default
  // Isolation (docs/isolation.md). `limits`: setrlimit() on each worker at
  // start, sorted by kind, each at most once; values in the kind's unit,
  // kUnlimited for "unlimited". Kinds not listed keep the master's.
  std::vector<std::pair<ResourceKind, uint64_t>> limits;
  // The workers' working directory; empty: "/" (never the master's).
  std::string cwd;
  // The site's cgroup (when ddv has a delegated cgroup v2 subtree): its
  // memory.max in bytes and cpu.weight (1..10000). 0: not set.
  uint64_t memory_max = 0;
  uint32_t cpu_weight = 0;
  // Caps in the master: connections the site's workers hold (handed off,
  // not yet closed, as they report it) plus those waiting for one; and
  // those waiting for a worker alone. Past either, new connections of the
  // site are refused (503, TLS internal_error). 0: not set, no cap.
  uint32_t max_connections = 0;
  uint32_t max_pending = 0;
  // Workers refuse (421) a request whose Host is not one the master routes
  // to this site on the connection's listener (docs/isolation.md). False:
  // they check nothing, for a site that really serves any name.
  bool strict_host = true;
  int line = 0;                                // of the [[site]] header
};

struct Config {
  std::string path;  // as given to LoadConfigFile / ParseConfig
  // The TOML text it was parsed from, byte for byte: what the last good
  // config snapshot keeps (config_snapshot.h).
  std::string text;
  MasterConfig master;
  std::vector<ListenerConfig> listeners;  // at least one, in file order
  std::vector<SiteConfig> sites;          // at least one, in file order
};

// Reads and parses `path`. A file that cannot be read gives the status of the
// failed call (e.g. NotFound); any content error gives InvalidArgument whose
// message is exactly "FILE:LINE:COL: what is wrong", FILE being `path` as
// given.
absl::StatusOr<Config> LoadConfigFile(const std::string& path);

// Parses and validates `toml_text`; `path_for_messages` is the FILE in error
// messages and becomes Config::path. Checks that touch the system: an
// absolute command[0] must be an executable file; `user` and `group` must
// exist (getpwnam_r / getgrnam_r).
absl::StatusOr<Config> ParseConfig(absl::string_view toml_text,
                                   const std::string& path_for_messages);

// A failed load's errors for a person (--check_config, a refused reload):
// the status's message, one "FILE:LINE:COL: what is wrong" a line, then
// "N errors in FILE" when there are several; past `max_errors` the rest
// are counted, not shown. Any other status: its message.
std::string DescribeConfigErrors(const absl::Status& status,
                                 const std::string& path,
                                 size_t max_errors = SIZE_MAX);

// A few lines for --check_config: listeners, sites, hosts, defaults.
std::string DescribeConfig(const Config& config);

}  // namespace config
}  // namespace ddv

#endif  // DDV_SRC_CONFIG_CONFIG_H_
