// ParseConfig: TOML → Config in three passes. First the TOML itself (syntax),
// then each table on its own (unknown keys, types, ranges, formats), then the
// references between tables (listeners ↔ sites, hosts, defaults). Every error
// carries the position toml++ recorded for the node at fault. The schema and
// its limits are documented in docs/config.md; keep the two in step.
#include "src/config/config.h"

#include <cstdlib>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/types/optional.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/str_join.h"
#include "src/base/errno_status.h"
#include "src/base/listen_socket.h"
#include "src/base/status_macros.h"
#include "src/base/unique_fd.h"
#include "src/config/host_pattern.h"
#include "src/config/listen_address.h"
#include "src/config/cross_checks.h"
#include "src/config/site_isolation.h"
#include "src/config/system_checks.h"
#include "src/config/toml_reader.h"

namespace ddv {
namespace config {
namespace {

constexpr int kMinProcesses = 1;
constexpr int kMaxProcesses = 1024;
// log_max_bytes: any size up to 1 PiB; log_keep: rotated files kept.
constexpr int64_t kMaxLogMaxBytes = int64_t{1} << 50;
constexpr int kMaxLogKeep = 1000;
constexpr int kMinPeekTimeoutMs = 1;
constexpr int kMaxPeekTimeoutMs = 600000;
constexpr int kMinMaxPeekBytes = 512;
constexpr int kMaxMaxPeekBytes = 1048576;
// RFC 7301 §3.1: a protocol name is 1 to 255 bytes.
constexpr size_t kMaxAlpnLength = 255;

// The keys each table accepts, in the order docs/config.md lists them.
constexpr absl::string_view kRootKeys[] = {"master", "listener", "site"};
constexpr absl::string_view kMasterKeys[] = {
    "control_socket", "control_socket_mode", "control_socket_group",
    "peek_timeout_ms", "max_peek_bytes", "handoff", "metrics_address"};
constexpr absl::string_view kListenerKeys[] = {
    "name",           "address",        "protocol", "default_site",
    "proxy_protocol", "proxy_protocol_from", "v6only", "access_log",
    "access_log_format", "access_log_sample"};
constexpr absl::string_view kSiteKeys[] = {
    "id",         "command",   "processes", "hosts",    "listeners",
    "default",    "alpn",      "env",       "user",     "group",
    "log_output", "log_error", "log_all",   "log_max_bytes", "log_keep",
    "tls_cert",   "tls_key",   "runtime",   "claimable_hosts",
    "may_claim_default", "limits", "cwd", "memory_max", "cpu_weight",
    "max_connections", "max_pending", "strict_host"};

absl::Status RequireAbsolutePath(const TomlReader& reader,
                                 const toml::node& node, absl::string_view key,
                                 absl::string_view path) {
  if (absl::StartsWith(path, "/")) return absl::OkStatus();
  return reader.ErrorAt(
      node, absl::StrCat(key, " \"", path, "\" must be an absolute path"));
}

// An optional absolute path, e.g. a log file: absolute because the daemon's
// working directory is not the config file's directory.
absl::Status ReadAbsolutePath(const TomlReader& reader,
                              const toml::table& table, absl::string_view key,
                              std::string* out) {
  const toml::node* node = nullptr;
  DDV_RETURN_IF_ERROR(reader.ReadString(table, key, out, &node));
  if (node == nullptr) return absl::OkStatus();
  return RequireAbsolutePath(reader, *node, key, *out);
}

// log_max_bytes and log_keep: the log writer rotates the site's files by
// size. Neither may be set where it would do nothing.
// `logs_read` says whether log_output, log_error and log_all were read
// without error: otherwise "needs a log file" could blame the wrong key.
void ParseLogRotation(const TomlReader& reader, const toml::table& table,
                      bool logs_read, SiteConfig* site, ErrorList* errors) {
  int64_t max_bytes = 0;
  const toml::node* max_node = nullptr;
  const bool max_read =
      errors->Add(reader.ReadInt64(table, "log_max_bytes", 0, kMaxLogMaxBytes,
                                   &max_bytes, &max_node));
  int keep = static_cast<int>(site->log_keep);
  errors->Add(reader.ReadInt(table, "log_keep", 0, kMaxLogKeep, &keep));
  site->log_max_bytes = static_cast<uint64_t>(max_bytes);
  site->log_keep = static_cast<uint32_t>(keep);
  if (const toml::node* keep_node = table.get("log_keep");
      keep_node != nullptr && max_read && max_bytes == 0) {
    errors->Add(reader.ErrorAt(*keep_node,
                               "log_keep needs log_max_bytes: files are "
                               "rotated only by size"));
  }
  if (logs_read && max_bytes > 0 && site->log_output.empty() &&
      site->log_error.empty() && site->log_all.empty()) {
    errors->Add(reader.ErrorAt(*max_node,
                               "log_max_bytes needs a log file to rotate: "
                               "log_output, log_error or log_all"));
  }
}

// Protocol and handoff names, as written in the file.
template <typename Enum>
struct NamedValue {
  absl::string_view name;
  Enum value;
};
constexpr NamedValue<Protocol> kProtocols[] = {{"http", Protocol::kHttp},
                                               {"tls", Protocol::kTls},
                                               {"tcp", Protocol::kTcp}};
constexpr NamedValue<HandoffMode> kHandoffModes[] = {
    {"scm_rights", HandoffMode::kScmRights}, {"pidfd", HandoffMode::kPidfd}};
constexpr NamedValue<Runtime> kRuntimes[] = {{"ddv", Runtime::kDdv},
                                             {"node", Runtime::kNode}};
constexpr NamedValue<AccessLogFormat> kAccessLogFormats[] = {
    {"json", AccessLogFormat::kJson}, {"logfmt", AccessLogFormat::kLogfmt}};

// Reads `key` as one of `names`; absent leaves *out unchanged and sets *node
// to nullptr.
template <typename Enum, size_t N>
absl::Status ReadEnum(const TomlReader& reader, const toml::table& table,
                      absl::string_view key, const NamedValue<Enum> (&names)[N],
                      Enum* out, const toml::node** node) {
  std::string text;
  DDV_RETURN_IF_ERROR(reader.ReadString(table, key, &text, node));
  if (*node == nullptr) return absl::OkStatus();
  std::vector<std::string> quoted;
  for (const NamedValue<Enum>& named : names) {
    if (named.name == text) {
      *out = named.value;
      return absl::OkStatus();
    }
    quoted.push_back(absl::StrCat("\"", named.name, "\""));
  }
  std::string choices =
      quoted.size() == 2
          ? absl::StrJoin(quoted, " or ")
          : absl::StrCat(absl::StrJoin(quoted.begin(), quoted.end() - 1, ", "),
                         " or ", quoted.back());
  return reader.ErrorAt(**node,
                        absl::StrCat(key, " \"", text, "\" must be ", choices));
}

// Site ids end up in file names, metric labels and process titles.
bool IsValidSiteId(absl::string_view id) {
  if (id.empty() || id == "." || id == "..") return false;
  for (char c : id) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' &&
        c != '.' && c != '-') {
      return false;
    }
  }
  return true;
}

// control_socket_mode: an octal string, as chmod(1) takes it ("0660",
// "660"). A string, because a TOML integer 0660 is a syntax error and 660
// would be decimal. The owner (root or the master's user, who run ddvctl)
// keeps read and write; set-id and sticky bits mean nothing on a socket.
absl::Status ReadControlSocketMode(const TomlReader& reader,
                                   const toml::table& table,
                                   MasterConfig* master) {
  constexpr absl::string_view kKey = "control_socket_mode";
  const toml::node* node =
      table.get(std::string_view(kKey.data(), kKey.size()));
  if (node == nullptr) return absl::OkStatus();
  if (!node->is_string()) {
    return reader.ErrorAt(
        *node, absl::StrCat(kKey, " must be a string of octal digits such as "
                                  "\"0660\", got ",
                            TomlTypeName(*node)));
  }
  const std::string& text = node->as_string()->get();
  const bool octal =
      (text.size() == 3 || text.size() == 4) &&
      std::all_of(text.begin(), text.end(),
                  [](char c) { return c >= '0' && c <= '7'; });
  if (!octal) {
    return reader.ErrorAt(
        *node, absl::StrCat(kKey, " \"", text,
                            "\" must be 3 or 4 octal digits, such as "
                            "\"0600\" or \"0660\""));
  }
  const mode_t mode =
      static_cast<mode_t>(std::strtoul(text.c_str(), nullptr, 8));
  if (mode & ~mode_t{0777}) {
    return reader.ErrorAt(
        *node, absl::StrCat(kKey, " \"", text,
                            "\" sets set-id or sticky bits; only "
                            "permission bits (0777) apply to a socket"));
  }
  if ((mode & 0600) != 0600) {
    return reader.ErrorAt(
        *node, absl::StrCat(kKey, " \"", text,
                            "\" must give the owner read and write (0600): "
                            "ddvctl needs both to connect"));
  }
  master->control_socket_mode = mode;
  return absl::OkStatus();
}

absl::Status ReadControlSocket(const TomlReader& reader,
                               const toml::table& table, MasterConfig* master) {
  const toml::node* node = nullptr;
  DDV_RETURN_IF_ERROR(reader.ReadString(table, "control_socket",
                                        &master->control_socket, &node));
  if (node == nullptr) return absl::OkStatus();
  DDV_RETURN_IF_ERROR(RequireAbsolutePath(reader, *node, "control_socket",
                                          master->control_socket));
  // sun_path holds the path and its terminating NUL.
  constexpr size_t kSunPathSize = sizeof(sockaddr_un{}.sun_path);
  if (master->control_socket.size() >= kSunPathSize) {
    return reader.ErrorAt(
        *node, absl::StrCat("control_socket is ", master->control_socket.size(),
                            " bytes; a Unix socket path must be shorter "
                            "than ",
                            kSunPathSize));
  }
  return absl::OkStatus();
}

// proxy_protocol_from: CIDR networks, only beside proxy_protocol = true.
absl::Status ParseProxyProtocolFrom(const TomlReader& reader,
                                    const toml::table& table,
                                    ListenerConfig* listener) {
  std::vector<std::string> written;
  std::vector<const toml::node*> elements;
  const toml::node* node = nullptr;
  DDV_RETURN_IF_ERROR(reader.ReadStringList(table, "proxy_protocol_from",
                                            /*allow_single=*/false, &written,
                                            &elements, &node));
  if (node == nullptr) return absl::OkStatus();
  if (!listener->proxy_protocol) {
    return reader.ErrorAt(*node,
                          "proxy_protocol_from needs proxy_protocol = true");
  }
  if (written.empty()) {
    return reader.ErrorAt(
        *node,
        "proxy_protocol_from must not be empty; leave it out to accept PROXY "
        "headers from any address");
  }
  for (size_t i = 0; i < written.size(); ++i) {
    absl::StatusOr<IpNetwork> network = IpNetwork::Parse(written[i]);
    if (!network.ok()) {
      return reader.ErrorAt(*elements[i], network.status().message());
    }
    listener->proxy_protocol_from.push_back(*network);
  }
  return absl::OkStatus();
}

// v6only: meaningful for IPv6 addresses only.
absl::Status ParseV6Only(const TomlReader& reader, const toml::table& table,
                         ListenerConfig* listener) {
  const toml::node* node = nullptr;
  DDV_RETURN_IF_ERROR(reader.ReadBool(table, "v6only", &listener->v6only, &node));
  if (node != nullptr && listener->addr.ss_family != AF_INET6) {
    return reader.ErrorAt(
        *node, absl::StrCat("v6only applies to IPv6 addresses only, and \"",
                            listener->address, "\" is IPv4"));
  }
  return absl::OkStatus();
}

// metrics_address: an IP:PORT as a listener's (docs/metrics.md).
absl::Status ReadMetricsAddress(const TomlReader& reader,
                                const toml::table& table,
                                MasterConfig* master) {
  const toml::node* node = nullptr;
  DDV_RETURN_IF_ERROR(reader.ReadString(table, "metrics_address",
                                        &master->metrics_address, &node));
  if (node == nullptr) return absl::OkStatus();
  absl::StatusOr<ListenAddress> address =
      ParseListenAddress(master->metrics_address);
  if (!address.ok()) {
    master->metrics_address.clear();  // not checked against the listeners
    return reader.ErrorAt(
        *node, absl::StrCat("metrics_address: ", address.status().message()));
  }
  return absl::OkStatus();
}

// access_log, access_log_format, access_log_sample (docs/metrics.md). The
// last two mean nothing without the first, so they are refused alone.
void ParseAccessLog(const TomlReader& reader, const toml::table& table,
                    ListenerConfig* listener, ErrorList* errors) {
  const toml::node* path = nullptr;
  if (errors->Add(reader.ReadString(table, "access_log", &listener->access_log,
                                    &path)) &&
      path != nullptr) {
    errors->Add(
        RequireAbsolutePath(reader, *path, "access_log", listener->access_log));
  }
  const toml::node* format = nullptr;
  errors->Add(ReadEnum(reader, table, "access_log_format", kAccessLogFormats,
                       &listener->access_log_format, &format));
  const toml::node* sample = table.get("access_log_sample");
  if (sample != nullptr) {
    // A float, or the integers 0 and 1 (TOML tells 1 from 1.0).
    double share = -1;
    if (const auto* f = sample->as_floating_point()) {
      share = f->get();
    } else if (const auto* i = sample->as_integer()) {
      share = static_cast<double>(i->get());
    }
    if (sample->as_floating_point() == nullptr &&
        sample->as_integer() == nullptr) {
      errors->Add(reader.ErrorAt(
          *sample, absl::StrCat("access_log_sample must be a number from 0 "
                                "to 1, got ",
                                TomlTypeName(*sample))));
    } else if (!(share >= 0.0 && share <= 1.0)) {  // NaN fails too
      errors->Add(reader.ErrorAt(
          *sample, absl::StrCat("access_log_sample must be from 0 to 1 (the "
                                "share of connections logged), got ",
                                share)));
    } else {
      listener->access_log_sample = share;
    }
  }
  if (path == nullptr) {
    const toml::node* alone = format != nullptr ? format : sample;
    if (alone != nullptr) {
      errors->Add(reader.ErrorAt(
          *alone, absl::StrCat(format != nullptr ? "access_log_format"
                                                 : "access_log_sample",
                               " needs access_log (the file to write)")));
    }
  }
}

// The metrics address must not be a listener's: the master would fail to
// bind one of the two.
void CheckMetricsAddress(
    const TomlReader& reader, const toml::table& root, const Config& config,
    const std::vector<internal::ListenerSource>& listener_sources,
    ErrorList* errors) {
  if (config.master.metrics_address.empty()) return;
  absl::StatusOr<ListenAddress> metrics =
      ParseListenAddress(config.master.metrics_address);
  if (!metrics.ok() || ListenPort(*metrics) == 0) return;
  for (size_t i = 0; i < config.listeners.size(); ++i) {
    if (listener_sources[i].address == nullptr ||
        !SameListenAddress(*metrics, listener_sources[i].parsed_address)) {
      continue;
    }
    // Set and valid, so [master] is a table holding it.
    const toml::node* node =
        root.get("master")->as_table()->get("metrics_address");
    errors->Add(reader.ErrorAt(
        *node, absl::StrCat("metrics_address \"",
                            config.master.metrics_address,
                            "\" is already used by listener \"",
                            config.listeners[i].name, "\"")));
    return;
  }
}

// Each key of [master] stands alone: every one is checked.
void ParseMaster(const TomlReader& reader, const toml::table& table,
                 MasterConfig* master, ErrorList* errors) {
  reader.CheckKeys(table, "[master]", kMasterKeys, errors);
  errors->Add(ReadControlSocket(reader, table, master));
  errors->Add(ReadControlSocketMode(reader, table, master));
  errors->Add(internal::ReadControlSocketGroup(reader, table, master));
  errors->Add(reader.ReadInt(table, "peek_timeout_ms", kMinPeekTimeoutMs,
                             kMaxPeekTimeoutMs, &master->peek_timeout_ms));
  errors->Add(reader.ReadInt(table, "max_peek_bytes", kMinMaxPeekBytes,
                             kMaxMaxPeekBytes, &master->max_peek_bytes));
  const toml::node* node = nullptr;
  errors->Add(ReadEnum(reader, table, "handoff", kHandoffModes,
                       &master->handoff, &node));
  errors->Add(ReadMetricsAddress(reader, table, master));
}

// "listener \"http\"" in messages, or "[[listener]]" when it has no good
// name.
std::string ListenerLabel(const ListenerConfig& listener,
                          const internal::ListenerSource& source) {
  return source.name != nullptr
             ? absl::StrCat("listener \"", listener.name, "\"")
             : std::string("[[listener]]");
}

// Every key of the [[listener]] is checked. A value in error is left out of
// `source`, so the checks across tables skip it rather than report its
// consequences.
void ParseListener(const TomlReader& reader, const toml::table& table,
                   ListenerConfig* listener, internal::ListenerSource* source,
                   ErrorList* errors) {
  source->table = &table;
  listener->line = static_cast<int>(table.source().begin.line);
  reader.CheckKeys(table, "[[listener]]", kListenerKeys, errors);

  const toml::node* name = nullptr;
  if (errors->Add(reader.ReadString(table, "name", &listener->name, &name))) {
    if (name == nullptr) {
      errors->Add(reader.ErrorAt(table, "[[listener]] needs a name"));
    } else if (listener->name.empty()) {
      errors->Add(reader.ErrorAt(*name, "listener name must not be empty"));
    } else if (listener->name.find_first_of(",=") != std::string::npos ||
               ListenerOfSocketName(listener->name) != listener->name) {
      // --listen_fds is "name=fd,..." and a group's other sockets are
      // "name#k" (listen_socket.h).
      errors->Add(reader.ErrorAt(
          *name, absl::StrCat("listener name \"", listener->name,
                              "\" must not contain \",\" or \"=\", nor end "
                              "in \"#\" and digits")));
    } else {
      source->name = name;
    }
  }

  const toml::node* address = nullptr;
  if (errors->Add(reader.ReadString(table, "address", &listener->address,
                                    &address))) {
    if (address == nullptr) {
      errors->Add(reader.ErrorAt(
          table, absl::StrCat(ListenerLabel(*listener, *source),
                              " needs an address")));
    } else if (absl::StatusOr<ListenAddress> parsed =
                   ParseListenAddress(listener->address);
               !parsed.ok()) {
      errors->Add(reader.ErrorAt(*address, parsed.status().message()));
    } else {
      source->address = address;
      source->parsed_address = *parsed;
      listener->addr = parsed->addr;
      listener->addr_len = parsed->addr_len;
    }
  }

  const toml::node* protocol = nullptr;
  // No default: guessing http for a TLS port would answer TLS clients with
  // HTTP errors.
  if (errors->Add(ReadEnum(reader, table, "protocol", kProtocols,
                           &listener->protocol, &protocol)) &&
      protocol == nullptr) {
    errors->Add(reader.ErrorAt(
        table, absl::StrCat(ListenerLabel(*listener, *source),
                            " needs a protocol: \"http\", \"tls\" or "
                            "\"tcp\"")));
  }

  const toml::node* default_site = nullptr;
  if (errors->Add(reader.ReadString(table, "default_site",
                                    &listener->default_site, &default_site)) &&
      default_site != nullptr) {
    if (listener->default_site.empty()) {
      errors->Add(
          reader.ErrorAt(*default_site,
                         "default_site must not be empty; leave it out "
                         "instead"));
    } else {
      source->default_site = default_site;
    }
  }
  errors->Add(
      reader.ReadBool(table, "proxy_protocol", &listener->proxy_protocol));
  errors->Add(ParseProxyProtocolFrom(reader, table, listener));
  // Only once the address is known: a bad one is reported already.
  if (source->address != nullptr) {
    errors->Add(ParseV6Only(reader, table, listener));
  }
  ParseAccessLog(reader, table, listener, errors);
}

// "site \"a\"" in messages, or "[[site]]" when it has no good id.
std::string SiteLabel(const SiteConfig& site,
                      const internal::SiteSource& source) {
  return source.id != nullptr ? absl::StrCat("site \"", site.id, "\"")
                              : std::string("[[site]]");
}

absl::Status ParseCommand(const TomlReader& reader, const toml::table& table,
                          const std::string& label, SiteConfig* site) {
  const toml::node* command = nullptr;
  std::vector<const toml::node*> elements;
  DDV_RETURN_IF_ERROR(reader.ReadStringList(
      table, "command",
      /*allow_single=*/false, &site->command, &elements, &command));
  if (command == nullptr) {
    return reader.ErrorAt(table, absl::StrCat(label, " needs a command"));
  }
  if (site->command.empty()) {
    return reader.ErrorAt(*command, "command must not be empty");
  }
  if (site->command[0].empty()) {
    return reader.ErrorAt(*elements[0], "command[0] must not be empty");
  }
  return internal::CheckExecutable(reader, *elements[0], &site->command[0]);
}

// hosts, normalised; the same host twice in one site is a typo. Only the
// good ones are kept, with their nodes in source->hosts (the host owner
// check points at them).
void ParseHosts(const TomlReader& reader, const toml::table& table,
                SiteConfig* site, internal::SiteSource* source,
                ErrorList* errors) {
  std::vector<std::string> written;
  std::vector<const toml::node*> elements;
  if (!errors->Add(reader.ReadStringList(
          table, "hosts", /*allow_single=*/false, &written, &elements))) {
    return;
  }
  absl::flat_hash_set<std::string> seen;
  for (size_t i = 0; i < written.size(); ++i) {
    absl::StatusOr<std::string> host = NormalizeHostPattern(written[i]);
    if (!host.ok()) {
      errors->Add(reader.ErrorAt(*elements[i], host.status().message()));
      continue;
    }
    if (!seen.insert(*host).second) {
      errors->Add(reader.ErrorAt(
          *elements[i], absl::StrCat("host \"", *host, "\" is listed twice")));
      continue;
    }
    site->hosts.push_back(*std::move(host));
    source->hosts.push_back(elements[i]);
  }
}

// claimable_hosts: the patterns of `hosts`, in the same normal form, so a
// claim is compared with them byte for byte (config_apply.h).
void ParseClaimableHosts(const TomlReader& reader, const toml::table& table,
                         SiteConfig* site, ErrorList* errors) {
  std::vector<std::string> written;
  std::vector<const toml::node*> elements;
  if (!errors->Add(reader.ReadStringList(table, "claimable_hosts",
                                         /*allow_single=*/false, &written,
                                         &elements))) {
    return;
  }
  for (size_t i = 0; i < written.size(); ++i) {
    absl::StatusOr<std::string> host = NormalizeHostPattern(written[i]);
    if (!host.ok()) {
      errors->Add(reader.ErrorAt(
          *elements[i],
          absl::StrCat("claimable_hosts: ", host.status().message())));
      continue;
    }
    if (std::find(site->claimable_hosts.begin(), site->claimable_hosts.end(),
                  *host) != site->claimable_hosts.end()) {
      errors->Add(reader.ErrorAt(
          *elements[i],
          absl::StrCat("claimable host \"", *host, "\" is listed twice")));
      continue;
    }
    site->claimable_hosts.push_back(*std::move(host));
  }
}

// listeners: each names a listener above; absent means every listener.
// With `names_known` false some listener has no good name, so a name not
// found may be that one's: not reported.
void ParseSiteListeners(const TomlReader& reader, const toml::table& table,
                        const std::vector<ListenerConfig>& listeners,
                        bool names_known, SiteConfig* site,
                        ErrorList* errors) {
  const toml::node* node = nullptr;
  std::vector<const toml::node*> elements;
  if (!errors->Add(reader.ReadStringList(
          table, "listeners",
          /*allow_single=*/false, &site->listeners, &elements, &node))) {
    return;
  }
  if (node != nullptr && site->listeners.empty()) {
    errors->Add(reader.ErrorAt(*node,
                               "listeners must not be empty; leave it out to "
                               "serve every listener"));
    return;
  }
  for (size_t i = 0; i < site->listeners.size(); ++i) {
    const std::string& name = site->listeners[i];
    if (names_known &&
        std::none_of(
            listeners.begin(), listeners.end(),
            [&name](const ListenerConfig& l) { return l.name == name; })) {
      errors->Add(reader.ErrorAt(
          *elements[i], absl::StrCat("no listener named \"", name, "\"")));
    }
    auto earlier = site->listeners.begin() + i;
    if (std::find(site->listeners.begin(), earlier, name) != earlier) {
      errors->Add(reader.ErrorAt(
          *elements[i],
          absl::StrCat("listener \"", name, "\" is listed twice")));
    }
  }
}

void ParseAlpn(const TomlReader& reader, const toml::table& table,
               SiteConfig* site, ErrorList* errors) {
  std::vector<const toml::node*> elements;
  if (!errors->Add(reader.ReadStringList(
          table, "alpn", /*allow_single=*/false, &site->alpn, &elements))) {
    return;
  }
  for (size_t i = 0; i < site->alpn.size(); ++i) {
    const std::string& protocol = site->alpn[i];
    if (protocol.empty() || protocol.size() > kMaxAlpnLength) {
      errors->Add(reader.ErrorAt(*elements[i],
                                 absl::StrCat("alpn[", i, "] must be 1 to ",
                                              kMaxAlpnLength, " bytes long")));
      continue;
    }
    auto earlier = site->alpn.begin() + i;
    if (std::find(site->alpn.begin(), earlier, protocol) != earlier) {
      errors->Add(reader.ErrorAt(
          *elements[i],
          absl::StrCat("alpn \"", protocol, "\" is listed twice")));
    }
  }
}

// env: a table of strings, added to the workers' environment.
void ParseEnv(const TomlReader& reader, const toml::table& table,
              SiteConfig* site, ErrorList* errors) {
  const toml::node* env = table.get("env");
  if (env == nullptr) return;
  const toml::table* env_table = env->as_table();
  if (env_table == nullptr) {
    errors->Add(reader.ErrorAt(
        *env, absl::StrCat("env must be a table of strings, got ",
                           TomlTypeName(*env))));
    return;
  }
  for (auto&& [key, value] : *env_table) {
    absl::string_view name(key.str().data(), key.str().size());
    // execve() takes "NAME=value" C strings.
    if (name.empty()) {
      errors->Add(reader.ErrorAt(key, "env name must not be empty"));
      continue;
    }
    if (name.find('=') != absl::string_view::npos) {
      errors->Add(reader.ErrorAt(
          key,
          absl::StrCat("env name \"", name, "\" must not contain \"=\"")));
      continue;
    }
    if (name.find('\0') != absl::string_view::npos) {
      errors->Add(reader.ErrorAt(key, "env name must not contain a NUL byte"));
      continue;
    }
    const auto* string = value.as_string();
    if (string == nullptr) {
      errors->Add(reader.ErrorAt(
          value, absl::StrCat("env.", name, " must be a string, got ",
                              TomlTypeName(value))));
      continue;
    }
    site->env.emplace_back(std::string(name), string->get());
  }
  std::sort(site->env.begin(), site->env.end());
}

// tls_cert / tls_key: a path or a list of paths each, paired by position.
void ParseTlsFiles(const TomlReader& reader, const toml::table& table,
                   const std::string& label, SiteConfig* site,
                   ErrorList* errors) {
  std::vector<const toml::node*> certs;
  std::vector<const toml::node*> keys;
  const toml::node* cert_node = nullptr;
  const toml::node* key_node = nullptr;
  const bool certs_read = errors->Add(reader.ReadStringList(
      table, "tls_cert",
      /*allow_single=*/true, &site->tls_cert, &certs, &cert_node));
  const bool keys_read = errors->Add(reader.ReadStringList(
      table, "tls_key",
      /*allow_single=*/true, &site->tls_key, &keys, &key_node));
  for (size_t i = 0; i < certs.size(); ++i) {
    errors->Add(
        RequireAbsolutePath(reader, *certs[i], "tls_cert", site->tls_cert[i]));
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    errors->Add(
        RequireAbsolutePath(reader, *keys[i], "tls_key", site->tls_key[i]));
  }
  if (!certs_read || !keys_read ||
      site->tls_cert.size() == site->tls_key.size()) {
    return;
  }
  // Point at the keys, or at the certificates when there are no keys.
  const toml::node& where = key_node != nullptr ? *key_node : *cert_node;
  errors->Add(reader.ErrorAt(
      where, absl::StrCat(label, " has ", site->tls_cert.size(),
                          " tls_cert and ", site->tls_key.size(),
                          " tls_key; give one key per certificate")));
}

// Every key of the [[site]] is checked; see ParseListener.
void ParseSite(const TomlReader& reader, const toml::table& table,
               const std::vector<ListenerConfig>& listeners,
               bool listener_names_known, SiteConfig* site,
               internal::SiteSource* source, ErrorList* errors) {
  source->table = &table;
  site->line = static_cast<int>(table.source().begin.line);
  reader.CheckKeys(table, "[[site]]", kSiteKeys, errors);

  const toml::node* id = nullptr;
  if (errors->Add(reader.ReadString(table, "id", &site->id, &id))) {
    if (id == nullptr) {
      errors->Add(reader.ErrorAt(table, "[[site]] needs an id"));
    } else if (!IsValidSiteId(site->id)) {
      errors->Add(reader.ErrorAt(
          *id, absl::StrCat("site id \"", site->id,
                            "\" must be non-empty and use only A-Z a-z "
                            "0-9 _ . -")));
    } else {
      source->id = id;
    }
  }
  const std::string label = SiteLabel(*site, *source);
  errors->Add(ParseCommand(reader, table, label, site));
  errors->Add(reader.ReadInt(table, "processes", kMinProcesses, kMaxProcesses,
                             &site->processes));
  const toml::node* runtime = nullptr;
  errors->Add(
      ReadEnum(reader, table, "runtime", kRuntimes, &site->runtime, &runtime));
  ParseHosts(reader, table, site, source, errors);
  ParseSiteListeners(reader, table, listeners, listener_names_known, site,
                     errors);
  const toml::node* is_default = nullptr;
  if (errors->Add(
          reader.ReadBool(table, "default", &site->is_default, &is_default))) {
    source->is_default = is_default;
  }
  ParseAlpn(reader, table, site, errors);
  ParseClaimableHosts(reader, table, site, errors);
  errors->Add(
      reader.ReadBool(table, "may_claim_default", &site->may_claim_default));
  errors->Add(reader.ReadBool(table, "strict_host", &site->strict_host));
  ParseEnv(reader, table, site, errors);
  internal::ReadAccount(reader, table, site, errors);
  bool logs_read = errors->Add(
      ReadAbsolutePath(reader, table, "log_output", &site->log_output));
  logs_read &= errors->Add(
      ReadAbsolutePath(reader, table, "log_error", &site->log_error));
  logs_read &=
      errors->Add(ReadAbsolutePath(reader, table, "log_all", &site->log_all));
  ParseLogRotation(reader, table, logs_read, site, errors);
  internal::ReadSiteIsolation(reader, table, site, errors);
  ParseTlsFiles(reader, table, label, site, errors);
}

// [[listener]] and [[site]]: a non-empty array of tables. "[listener]" (a
// plain table) is a likely slip and gets its own message.
absl::Status FindSection(const TomlReader& reader, const toml::table& root,
                         absl::string_view key, const toml::array** out) {
  const toml::node* node = root.get(std::string_view(key.data(), key.size()));
  std::string required =
      absl::StrCat("no [[", key, "]]: at least one is required");
  if (node == nullptr) return reader.ErrorAtStart(required);
  const toml::array* array = node->as_array();
  if (array != nullptr && array->empty())
    return reader.ErrorAt(*node, required);
  if (array == nullptr || !array->is_array_of_tables()) {
    return reader.ErrorAt(
        *node, absl::StrCat(key, " must be an array of tables: write [[", key,
                            "]], got ", TomlTypeName(*node)));
  }
  *out = array;
  return absl::OkStatus();
}

// Every table is checked, then the checks across tables run on what was
// good: a value in error is reported once, not again through what depends
// on it.
void ParseDocument(const TomlReader& reader, const toml::table& root,
                   Config* config, ErrorList* errors) {
  reader.CheckKeys(root, "the top level", kRootKeys, errors);

  if (const toml::node* master = root.get("master")) {
    const toml::table* table = master->as_table();
    if (table == nullptr) {
      errors->Add(reader.ErrorAt(
          *master, absl::StrCat("master must be a table, got ",
                                TomlTypeName(*master))));
    } else {
      ParseMaster(reader, *table, &config->master, errors);
    }
  }

  const toml::array* listeners = nullptr;
  const bool listeners_found =
      errors->Add(FindSection(reader, root, "listener", &listeners));
  std::vector<internal::ListenerSource> listener_sources;
  if (listeners_found) {
    listener_sources.resize(listeners->size());
    for (size_t i = 0; i < listeners->size(); ++i) {
      config->listeners.emplace_back();
      ParseListener(reader, *listeners->get(i)->as_table(),
                    &config->listeners.back(), &listener_sources[i], errors);
      internal::CheckUniqueListener(reader, config->listeners,
                                    listener_sources, i, errors);
    }
    CheckMetricsAddress(reader, root, *config, listener_sources, errors);
  }
  const bool listener_names_known =
      listeners_found &&
      std::all_of(listener_sources.begin(), listener_sources.end(),
                  [](const internal::ListenerSource& source) {
                    return source.name != nullptr;
                  });

  const toml::array* sites = nullptr;
  if (!errors->Add(FindSection(reader, root, "site", &sites))) return;
  std::vector<internal::SiteSource> site_sources(sites->size());
  for (size_t i = 0; i < sites->size(); ++i) {
    config->sites.emplace_back();
    ParseSite(reader, *sites->get(i)->as_table(), config->listeners,
              listener_names_known, &config->sites.back(), &site_sources[i],
              errors);
  }

  int default_site = -1;
  internal::CheckSites(reader, *config, site_sources, &default_site, errors);
  if (!listener_names_known) return;
  internal::CheckListenerDefaults(reader, *config, listener_sources,
                                  site_sources, default_site, errors);
  internal::CheckHostOwners(reader, *config, site_sources, errors);
}

}  // namespace

absl::string_view ProtocolName(Protocol protocol) {
  for (const NamedValue<Protocol>& named : kProtocols) {
    if (named.value == protocol) return named.name;
  }
  return "?";
}

absl::string_view HandoffModeName(HandoffMode mode) {
  for (const NamedValue<HandoffMode>& named : kHandoffModes) {
    if (named.value == mode) return named.name;
  }
  return "?";
}

absl::string_view ResourceKindName(ResourceKind kind) {
  switch (kind) {
    case ResourceKind::kNofile:
      return "nofile";
    case ResourceKind::kNproc:
      return "nproc";
    case ResourceKind::kCore:
      return "core";
    case ResourceKind::kAsBytes:
      return "as_bytes";
    case ResourceKind::kMemlockBytes:
      return "memlock_bytes";
  }
  return "?";
}

absl::string_view RuntimeName(Runtime runtime) {
  for (const NamedValue<Runtime>& named : kRuntimes) {
    if (named.value == runtime) return named.name;
  }
  return "?";
}

absl::string_view AccessLogFormatName(AccessLogFormat format) {
  for (const NamedValue<AccessLogFormat>& named : kAccessLogFormats) {
    if (named.value == format) return named.name;
  }
  return "?";
}

absl::StatusOr<Config> ParseConfig(absl::string_view toml_text,
                                   const std::string& path_for_messages) {
  TomlReader reader(path_for_messages);
  toml::table root;
  DDV_RETURN_IF_ERROR(reader.Parse(toml_text, &root));
  Config config;
  config.path = path_for_messages;
  config.text = std::string(toml_text);
  ErrorList errors;
  ParseDocument(reader, root, &config, &errors);
  if (!errors.empty()) return errors.ToStatus();
  return config;
}

absl::StatusOr<Config> LoadConfigFile(const std::string& path) {
  std::string doing = absl::StrCat("reading config \"", path, "\"");
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, "open", doing);
  std::string text;
  char buffer[65536];
  while (true) {
    ssize_t n = read(fd.get(), buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "read", doing);
    }
    if (n == 0) break;
    text.append(buffer, static_cast<size_t>(n));
  }
  return ParseConfig(text, path);
}

bool IsPeeked(const ListenerConfig& listener) {
  return listener.protocol != Protocol::kTcp || listener.proxy_protocol;
}

std::string DescribeConfigErrors(const absl::Status& status,
                                 const std::string& path, size_t max_errors) {
  size_t count = 1;
  if (absl::optional<absl::Cord> payload =
          status.GetPayload(kErrorCountPayload)) {
    if (!absl::SimpleAtoi(std::string(*payload), &count)) count = 1;
  }
  if (count <= 1) return std::string(status.message());
  // The first line stays the first error, as when there is one: a reader
  // (or a script) after "FILE:LINE:COL:" finds it where it always was.
  std::vector<absl::string_view> lines =
      absl::StrSplit(status.message(), '\n');
  std::string out;
  for (size_t i = 0; i < lines.size() && i < max_errors; ++i) {
    absl::StrAppend(&out, lines[i], "\n");
  }
  absl::StrAppend(&out, count, " errors in ", path);
  if (lines.size() > max_errors) {
    absl::StrAppend(&out, ", the first ", max_errors,
                    " above (ddv_master --check_config --config=", path,
                    " lists every one)");
  }
  return out;
}

std::string DescribeConfig(const Config& config) {
  std::string out = absl::StrCat(
      "config ", config.path, ": ", config.listeners.size(),
      config.listeners.size() == 1 ? " listener, " : " listeners, ",
      config.sites.size(), config.sites.size() == 1 ? " site" : " sites",
      "; handoff ", HandoffModeName(config.master.handoff), ", control socket ",
      config.master.control_socket);
  if (config.master.control_socket_mode != MasterConfig().control_socket_mode) {
    absl::StrAppend(&out, " mode ",
                    absl::StrFormat("%04o", config.master.control_socket_mode));
  }
  if (!config.master.control_socket_group.empty()) {
    absl::StrAppend(&out, " group ", config.master.control_socket_group);
  }
  if (!config.master.metrics_address.empty()) {
    absl::StrAppend(&out, "; metrics on ", config.master.metrics_address);
  }
  absl::StrAppend(&out, "\n");
  for (const ListenerConfig& listener : config.listeners) {
    absl::StrAppend(&out, "  listener ", listener.name, ": ", listener.address,
                    " ", ProtocolName(listener.protocol));
    if (!listener.default_site.empty()) {
      absl::StrAppend(&out, ", default_site ", listener.default_site);
    }
    if (listener.proxy_protocol) {
      absl::StrAppend(&out, ", proxy_protocol from ");
      if (listener.proxy_protocol_from.empty()) {
        // Not an error (the default), but worth a look: see docs/config.md.
        absl::StrAppend(&out, "any address (no proxy_protocol_from)");
      } else {
        absl::StrAppend(
            &out, absl::StrJoin(listener.proxy_protocol_from, " ",
                                [](std::string* to, const IpNetwork& n) {
                                  to->append(n.ToString());
                                }));
      }
    }
    if (listener.addr.ss_family == AF_INET6) {
      absl::StrAppend(&out, listener.v6only ? ", IPv6 only" : ", IPv6 and IPv4");
    }
    if (!listener.access_log.empty()) {
      absl::StrAppend(&out, ", access_log ", listener.access_log, " (",
                      AccessLogFormatName(listener.access_log_format));
      if (listener.access_log_sample != 1.0) {
        absl::StrAppend(&out, ", sample ", listener.access_log_sample);
      }
      absl::StrAppend(&out, ")");
    }
    absl::StrAppend(&out, "\n");
  }
  for (const SiteConfig& site : config.sites) {
    absl::StrAppend(
        &out, "  site ", site.id, ": ", site.processes,
        site.processes == 1 ? " process" : " processes", ", listeners ",
        site.listeners.empty() ? "all" : absl::StrJoin(site.listeners, " "),
        ", hosts ",
        site.hosts.empty() ? "none" : absl::StrJoin(site.hosts, " "));
    if (!site.alpn.empty()) {
      absl::StrAppend(&out, ", alpn ", absl::StrJoin(site.alpn, " "));
    }
    if (site.is_default) absl::StrAppend(&out, ", default");
    if (!site.claimable_hosts.empty()) {
      absl::StrAppend(&out, ", claimable ",
                      absl::StrJoin(site.claimable_hosts, " "));
    }
    if (site.may_claim_default) absl::StrAppend(&out, ", may claim default");
    if (!site.strict_host) absl::StrAppend(&out, ", any host (strict_host off)");
    if (site.runtime != Runtime::kDdv) {
      absl::StrAppend(&out, ", runtime ", RuntimeName(site.runtime));
    }
    // Isolation (docs/isolation.md), when set.
    for (const auto& [kind, value] : site.limits) {
      absl::StrAppend(&out, ", ", ResourceKindName(kind), " ",
                      value == kUnlimited ? std::string("unlimited")
                                          : absl::StrCat(value));
    }
    if (!site.cwd.empty()) absl::StrAppend(&out, ", cwd ", site.cwd);
    if (site.memory_max != 0) {
      absl::StrAppend(&out, ", memory_max ", site.memory_max);
    }
    if (site.cpu_weight != 0) {
      absl::StrAppend(&out, ", cpu_weight ", site.cpu_weight);
    }
    if (site.max_connections != 0) {
      absl::StrAppend(&out, ", max_connections ", site.max_connections);
    }
    if (site.max_pending != 0) {
      absl::StrAppend(&out, ", max_pending ", site.max_pending);
    }
    absl::StrAppend(&out, "\n");
  }
  return out;
}

}  // namespace config
}  // namespace ddv
