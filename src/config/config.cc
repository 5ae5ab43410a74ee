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
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/str_join.h"
#include "src/base/errno_status.h"
#include "src/base/status_macros.h"
#include "src/base/unique_fd.h"
#include "src/config/host_pattern.h"
#include "src/config/listen_address.h"
#include "src/config/toml_reader.h"

namespace ddv {
namespace config {
namespace {

constexpr int kMinProcesses = 1;
constexpr int kMaxProcesses = 1024;
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
    "peek_timeout_ms", "max_peek_bytes", "handoff"};
constexpr absl::string_view kListenerKeys[] = {
    "name", "address", "protocol", "default_site", "proxy_protocol"};
constexpr absl::string_view kSiteKeys[] = {
    "id",         "command",   "processes", "hosts",    "listeners",
    "default",    "alpn",      "env",       "user",     "group",
    "log_output", "log_error", "log_all",   "tls_cert", "tls_key",
    "runtime",    "claimable_hosts", "may_claim_default"};

// Where the values the cross checks look at came from.
struct ListenerSource {
  const toml::table* table = nullptr;
  const toml::node* name = nullptr;
  const toml::node* address = nullptr;
  const toml::node* default_site = nullptr;
  ListenAddress parsed_address;
};

struct SiteSource {
  const toml::table* table = nullptr;
  const toml::node* id = nullptr;
  const toml::node* is_default = nullptr;
  std::vector<const toml::node*> hosts;
};

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

uid_t IdOf(const passwd& entry) { return entry.pw_uid; }
gid_t IdOf(const group& entry) { return entry.gr_gid; }

// getpwnam_r / getgrnam_r want a caller buffer; ERANGE means "bigger".
// Sets *found, and *id (when given) to the uid or gid found; a failed
// lookup (not "no such name") is an error.
template <typename Entry, typename Lookup, typename Id = unsigned>
absl::Status LookUpName(const std::string& name, Lookup lookup,
                        int buffer_size_name, absl::string_view call,
                        absl::string_view kind, bool* found,
                        Id* id = nullptr) {
  long hint = sysconf(buffer_size_name);
  std::vector<char> buffer(hint > 0 ? static_cast<size_t>(hint) : 16384);
  Entry entry;
  Entry* result = nullptr;
  int rc;
  while ((rc = lookup(name.c_str(), &entry, buffer.data(), buffer.size(),
                      &result)) == ERANGE &&
         buffer.size() < (size_t{1} << 24)) {
    buffer.resize(buffer.size() * 2);
  }
  // glibc reports "no such name" as 0 with a null result; some NSS modules
  // say ENOENT instead.
  if (rc != 0 && rc != ENOENT) {
    return ErrnoStatus(rc, call,
                       absl::StrCat("looking up ", kind, " \"", name, "\""));
  }
  *found = rc == 0 && result != nullptr;
  if (*found && id != nullptr) *id = IdOf(*result);
  return absl::OkStatus();
}

// `user` and `group` are resolved now, so a typo fails the load instead of
// every worker spawn.
absl::Status ReadAccount(const TomlReader& reader, const toml::table& table,
                         SiteConfig* site) {
  const toml::node* node = nullptr;
  DDV_RETURN_IF_ERROR(
      reader.ReadString(table, "user", &site->user, &node));
  if (node != nullptr) {
    bool found = false;
    absl::Status status =
        LookUpName<passwd>(site->user, getpwnam_r, _SC_GETPW_R_SIZE_MAX,
                           "getpwnam_r", "user", &found);
    if (!status.ok()) return reader.ErrorAt(*node, status.message());
    if (!found) {
      return reader.ErrorAt(
          *node, absl::StrCat("user \"", site->user, "\" does not exist"));
    }
  }
  DDV_RETURN_IF_ERROR(
      reader.ReadString(table, "group", &site->group, &node));
  if (node != nullptr) {
    bool found = false;
    absl::Status status =
        LookUpName<group>(site->group, getgrnam_r, _SC_GETGR_R_SIZE_MAX,
                          "getgrnam_r", "group", &found);
    if (!status.ok()) return reader.ErrorAt(*node, status.message());
    if (!found) {
      return reader.ErrorAt(
          *node, absl::StrCat("group \"", site->group, "\" does not exist"));
    }
  }
  return absl::OkStatus();
}

// A bare command[0] ("ddv_hello") is looked up in the master's PATH now,
// and replaced by the absolute path found: workers are exec'ed without a
// PATH search (supervise::Spawn), and a reload must not depend on the PATH
// a worker would see.
absl::Status ResolveInPath(const TomlReader& reader, const toml::node& node,
                           std::string* program) {
  if (program->find('/') != std::string::npos) {
    return reader.ErrorAt(node, absl::StrCat("command[0] \"", *program,
                                             "\" must be an absolute path "
                                             "or a bare name found in PATH"));
  }
  const char* path = std::getenv("PATH");
  for (absl::string_view dir :
       absl::StrSplit(path != nullptr ? path : "/usr/bin:/bin", ':')) {
    if (dir.empty() || dir.front() != '/') continue;
    std::string candidate = absl::StrCat(dir, "/", *program);
    struct stat st;
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        access(candidate.c_str(), X_OK) == 0) {
      *program = candidate;
      return absl::OkStatus();
    }
  }
  return reader.ErrorAt(node, absl::StrCat("command[0] \"", *program,
                                           "\" was not found in PATH"));
}

// command[0] must be an executable file now, so a typo fails the load (or
// the reload) instead of crash-looping a site.
absl::Status CheckExecutable(const TomlReader& reader, const toml::node& node,
                             std::string* program_in_out) {
  if (!absl::StartsWith(*program_in_out, "/")) {
    return ResolveInPath(reader, node, program_in_out);
  }
  const std::string& program = *program_in_out;
  auto error = [&](absl::string_view what) {
    return reader.ErrorAt(node,
                          absl::StrCat("command[0] \"", program, "\" ", what));
  };
  struct stat st;
  if (stat(program.c_str(), &st) != 0) {
    int stat_errno = errno;
    if (stat_errno == ENOENT || stat_errno == ENOTDIR) {
      return error("does not exist");
    }
    return reader.ErrorAt(
        node, ErrnoStatus(stat_errno, "stat",
                          absl::StrCat("checking command[0] \"", program, "\""))
                  .message());
  }
  if (S_ISDIR(st.st_mode)) return error("is a directory");
  if (!S_ISREG(st.st_mode)) return error("is not a regular file");
  if (access(program.c_str(), X_OK) != 0) return error("is not executable");
  return absl::OkStatus();
}

// control_socket_mode: an octal string, as chmod(1) takes it ("0660",
// "660"). A string, because a TOML integer 0660 is a syntax error and 660
// would be decimal. The owner (root or the master's user, who run ddvctl)
// keeps read and write; set-id and sticky bits mean nothing on a socket.
absl::Status ReadControlSocketMode(const TomlReader& reader,
                                   const toml::table& table,
                                   MasterConfig* master) {
  constexpr absl::string_view kKey = "control_socket_mode";
  const toml::node* node = table.get(std::string_view(kKey.data(), kKey.size()));
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
  const mode_t mode = static_cast<mode_t>(std::strtoul(text.c_str(), nullptr, 8));
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

// control_socket_group is resolved now, so a typo fails the load instead of
// the master's start (chown) or, worse, locking the group out silently.
absl::Status ReadControlSocketGroup(const TomlReader& reader,
                                    const toml::table& table,
                                    MasterConfig* master) {
  const toml::node* node = nullptr;
  DDV_RETURN_IF_ERROR(reader.ReadString(table, "control_socket_group",
                                        &master->control_socket_group, &node));
  if (node == nullptr) return absl::OkStatus();
  if (master->control_socket_group.empty()) {
    return reader.ErrorAt(
        *node, "control_socket_group must not be empty; leave it out instead");
  }
  bool found = false;
  absl::Status status = LookUpName<group>(
      master->control_socket_group, getgrnam_r, _SC_GETGR_R_SIZE_MAX,
      "getgrnam_r", "group", &found, &master->control_socket_gid);
  if (!status.ok()) return reader.ErrorAt(*node, status.message());
  if (!found) {
    return reader.ErrorAt(
        *node, absl::StrCat("control_socket_group \"",
                            master->control_socket_group,
                            "\" does not exist"));
  }
  return absl::OkStatus();
}

absl::Status ParseMaster(const TomlReader& reader, const toml::table& table,
                         MasterConfig* master) {
  DDV_RETURN_IF_ERROR(reader.CheckKeys(table, "[master]", kMasterKeys));

  const toml::node* node = nullptr;
  DDV_RETURN_IF_ERROR(reader.ReadString(table, "control_socket",
                                               &master->control_socket, &node));
  if (node != nullptr) {
    DDV_RETURN_IF_ERROR(RequireAbsolutePath(
        reader, *node, "control_socket", master->control_socket));
    // sun_path holds the path and its terminating NUL.
    constexpr size_t kSunPathSize = sizeof(sockaddr_un{}.sun_path);
    if (master->control_socket.size() >= kSunPathSize) {
      return reader.ErrorAt(
          *node,
          absl::StrCat("control_socket is ", master->control_socket.size(),
                       " bytes; a Unix socket path must be shorter "
                       "than ",
                       kSunPathSize));
    }
  }
  DDV_RETURN_IF_ERROR(ReadControlSocketMode(reader, table, master));
  DDV_RETURN_IF_ERROR(ReadControlSocketGroup(reader, table, master));
  DDV_RETURN_IF_ERROR(
      reader.ReadInt(table, "peek_timeout_ms", kMinPeekTimeoutMs,
                     kMaxPeekTimeoutMs, &master->peek_timeout_ms));
  DDV_RETURN_IF_ERROR(reader.ReadInt(table, "max_peek_bytes",
                                            kMinMaxPeekBytes, kMaxMaxPeekBytes,
                                            &master->max_peek_bytes));
  return ReadEnum(reader, table, "handoff", kHandoffModes, &master->handoff,
                  &node);
}

absl::Status ParseListener(const TomlReader& reader, const toml::table& table,
                           ListenerConfig* listener, ListenerSource* source) {
  source->table = &table;
  listener->line = static_cast<int>(table.source().begin.line);
  DDV_RETURN_IF_ERROR(
      reader.CheckKeys(table, "[[listener]]", kListenerKeys));

  DDV_RETURN_IF_ERROR(
      reader.ReadString(table, "name", &listener->name, &source->name));
  if (source->name == nullptr) {
    return reader.ErrorAt(table, "[[listener]] needs a name");
  }
  if (listener->name.empty()) {
    return reader.ErrorAt(*source->name, "listener name must not be empty");
  }

  DDV_RETURN_IF_ERROR(reader.ReadString(
      table, "address", &listener->address, &source->address));
  if (source->address == nullptr) {
    return reader.ErrorAt(table, absl::StrCat("listener \"", listener->name,
                                              "\" needs an address"));
  }
  absl::StatusOr<ListenAddress> address = ParseListenAddress(listener->address);
  if (!address.ok()) {
    return reader.ErrorAt(*source->address, address.status().message());
  }
  source->parsed_address = *address;
  listener->addr = address->addr;
  listener->addr_len = address->addr_len;

  const toml::node* protocol = nullptr;
  DDV_RETURN_IF_ERROR(ReadEnum(reader, table, "protocol", kProtocols,
                                      &listener->protocol, &protocol));
  // No default: guessing http for a TLS port would answer TLS clients with
  // HTTP errors.
  if (protocol == nullptr) {
    return reader.ErrorAt(
        table, absl::StrCat("listener \"", listener->name,
                            "\" needs a protocol: \"http\", \"tls\" or "
                            "\"tcp\""));
  }

  DDV_RETURN_IF_ERROR(reader.ReadString(
      table, "default_site", &listener->default_site, &source->default_site));
  if (source->default_site != nullptr && listener->default_site.empty()) {
    return reader.ErrorAt(
        *source->default_site,
        "default_site must not be empty; leave it out instead");
  }
  return reader.ReadBool(table, "proxy_protocol", &listener->proxy_protocol);
}

absl::Status ParseCommand(const TomlReader& reader, const toml::table& table,
                          SiteConfig* site) {
  const toml::node* command = nullptr;
  std::vector<const toml::node*> elements;
  DDV_RETURN_IF_ERROR(reader.ReadStringList(
      table, "command",
      /*allow_single=*/false, &site->command, &elements, &command));
  if (command == nullptr) {
    return reader.ErrorAt(
        table, absl::StrCat("site \"", site->id, "\" needs a command"));
  }
  if (site->command.empty()) {
    return reader.ErrorAt(*command, "command must not be empty");
  }
  if (site->command[0].empty()) {
    return reader.ErrorAt(*elements[0], "command[0] must not be empty");
  }
  return CheckExecutable(reader, *elements[0], &site->command[0]);
}

// hosts, normalised; the same host twice in one site is a typo.
absl::Status ParseHosts(const TomlReader& reader, const toml::table& table,
                        SiteConfig* site, SiteSource* source) {
  std::vector<std::string> written;
  DDV_RETURN_IF_ERROR(reader.ReadStringList(
      table, "hosts", /*allow_single=*/false, &written, &source->hosts));
  absl::flat_hash_set<std::string> seen;
  for (size_t i = 0; i < written.size(); ++i) {
    absl::StatusOr<std::string> host = NormalizeHostPattern(written[i]);
    if (!host.ok()) {
      return reader.ErrorAt(*source->hosts[i], host.status().message());
    }
    if (!seen.insert(*host).second) {
      return reader.ErrorAt(
          *source->hosts[i],
          absl::StrCat("host \"", *host, "\" is listed twice"));
    }
    site->hosts.push_back(*std::move(host));
  }
  return absl::OkStatus();
}

// claimable_hosts: the patterns of `hosts`, in the same normal form, so a
// claim is compared with them byte for byte (config_apply.h).
absl::Status ParseClaimableHosts(const TomlReader& reader,
                                 const toml::table& table, SiteConfig* site) {
  std::vector<std::string> written;
  std::vector<const toml::node*> elements;
  DDV_RETURN_IF_ERROR(reader.ReadStringList(table, "claimable_hosts",
                                            /*allow_single=*/false, &written,
                                            &elements));
  for (size_t i = 0; i < written.size(); ++i) {
    absl::StatusOr<std::string> host = NormalizeHostPattern(written[i]);
    if (!host.ok()) {
      return reader.ErrorAt(*elements[i],
                            absl::StrCat("claimable_hosts: ",
                                         host.status().message()));
    }
    if (std::find(site->claimable_hosts.begin(), site->claimable_hosts.end(),
                  *host) != site->claimable_hosts.end()) {
      return reader.ErrorAt(
          *elements[i],
          absl::StrCat("claimable host \"", *host, "\" is listed twice"));
    }
    site->claimable_hosts.push_back(*std::move(host));
  }
  return absl::OkStatus();
}

// listeners: each names a listener above; absent means every listener.
absl::Status ParseSiteListeners(const TomlReader& reader,
                                const toml::table& table,
                                const std::vector<ListenerConfig>& listeners,
                                SiteConfig* site) {
  const toml::node* node = nullptr;
  std::vector<const toml::node*> elements;
  DDV_RETURN_IF_ERROR(reader.ReadStringList(
      table, "listeners",
      /*allow_single=*/false, &site->listeners, &elements, &node));
  if (node != nullptr && site->listeners.empty()) {
    return reader.ErrorAt(*node,
                          "listeners must not be empty; leave it out to serve "
                          "every listener");
  }
  for (size_t i = 0; i < site->listeners.size(); ++i) {
    const std::string& name = site->listeners[i];
    if (std::none_of(
            listeners.begin(), listeners.end(),
            [&name](const ListenerConfig& l) { return l.name == name; })) {
      return reader.ErrorAt(*elements[i],
                            absl::StrCat("no listener named \"", name, "\""));
    }
    auto earlier = site->listeners.begin() + i;
    if (std::find(site->listeners.begin(), earlier, name) != earlier) {
      return reader.ErrorAt(*elements[i], absl::StrCat("listener \"", name,
                                                       "\" is listed twice"));
    }
  }
  return absl::OkStatus();
}

absl::Status ParseAlpn(const TomlReader& reader, const toml::table& table,
                       SiteConfig* site) {
  std::vector<const toml::node*> elements;
  DDV_RETURN_IF_ERROR(reader.ReadStringList(
      table, "alpn", /*allow_single=*/false, &site->alpn, &elements));
  for (size_t i = 0; i < site->alpn.size(); ++i) {
    const std::string& protocol = site->alpn[i];
    if (protocol.empty() || protocol.size() > kMaxAlpnLength) {
      return reader.ErrorAt(*elements[i],
                            absl::StrCat("alpn[", i, "] must be 1 to ",
                                         kMaxAlpnLength, " bytes long"));
    }
    auto earlier = site->alpn.begin() + i;
    if (std::find(site->alpn.begin(), earlier, protocol) != earlier) {
      return reader.ErrorAt(*elements[i], absl::StrCat("alpn \"", protocol,
                                                       "\" is listed twice"));
    }
  }
  return absl::OkStatus();
}

// env: a table of strings, added to the workers' environment.
absl::Status ParseEnv(const TomlReader& reader, const toml::table& table,
                      SiteConfig* site) {
  const toml::node* env = table.get("env");
  if (env == nullptr) return absl::OkStatus();
  const toml::table* env_table = env->as_table();
  if (env_table == nullptr) {
    return reader.ErrorAt(*env,
                          absl::StrCat("env must be a table of strings, got ",
                                       TomlTypeName(*env)));
  }
  for (auto&& [key, value] : *env_table) {
    absl::string_view name(key.str().data(), key.str().size());
    // execve() takes "NAME=value" C strings.
    if (name.empty()) {
      return reader.ErrorAt(key, "env name must not be empty");
    }
    if (name.find('=') != absl::string_view::npos) {
      return reader.ErrorAt(
          key, absl::StrCat("env name \"", name, "\" must not contain \"=\""));
    }
    if (name.find('\0') != absl::string_view::npos) {
      return reader.ErrorAt(key, "env name must not contain a NUL byte");
    }
    const auto* string = value.as_string();
    if (string == nullptr) {
      return reader.ErrorAt(
          value, absl::StrCat("env.", name, " must be a string, got ",
                              TomlTypeName(value)));
    }
    site->env.emplace_back(std::string(name), string->get());
  }
  std::sort(site->env.begin(), site->env.end());
  return absl::OkStatus();
}

// tls_cert / tls_key: a path or a list of paths each, paired by position.
absl::Status ParseTlsFiles(const TomlReader& reader, const toml::table& table,
                           SiteConfig* site) {
  std::vector<const toml::node*> certs;
  std::vector<const toml::node*> keys;
  const toml::node* cert_node = nullptr;
  const toml::node* key_node = nullptr;
  DDV_RETURN_IF_ERROR(reader.ReadStringList(
      table, "tls_cert",
      /*allow_single=*/true, &site->tls_cert, &certs, &cert_node));
  DDV_RETURN_IF_ERROR(reader.ReadStringList(
      table, "tls_key",
      /*allow_single=*/true, &site->tls_key, &keys, &key_node));
  for (size_t i = 0; i < certs.size(); ++i) {
    DDV_RETURN_IF_ERROR(
        RequireAbsolutePath(reader, *certs[i], "tls_cert", site->tls_cert[i]));
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    DDV_RETURN_IF_ERROR(
        RequireAbsolutePath(reader, *keys[i], "tls_key", site->tls_key[i]));
  }
  if (site->tls_cert.size() == site->tls_key.size()) return absl::OkStatus();
  // Point at the keys, or at the certificates when there are no keys.
  const toml::node& where = key_node != nullptr ? *key_node : *cert_node;
  return reader.ErrorAt(
      where, absl::StrCat("site \"", site->id, "\" has ", site->tls_cert.size(),
                          " tls_cert and ", site->tls_key.size(),
                          " tls_key; give one key per certificate"));
}

absl::Status ParseSite(const TomlReader& reader, const toml::table& table,
                       const std::vector<ListenerConfig>& listeners,
                       SiteConfig* site, SiteSource* source) {
  source->table = &table;
  site->line = static_cast<int>(table.source().begin.line);
  DDV_RETURN_IF_ERROR(reader.CheckKeys(table, "[[site]]", kSiteKeys));

  DDV_RETURN_IF_ERROR(
      reader.ReadString(table, "id", &site->id, &source->id));
  if (source->id == nullptr) {
    return reader.ErrorAt(table, "[[site]] needs an id");
  }
  if (!IsValidSiteId(site->id)) {
    return reader.ErrorAt(
        *source->id, absl::StrCat("site id \"", site->id,
                                  "\" must be non-empty and use only A-Z a-z "
                                  "0-9 _ . -"));
  }
  DDV_RETURN_IF_ERROR(ParseCommand(reader, table, site));
  DDV_RETURN_IF_ERROR(reader.ReadInt(table, "processes", kMinProcesses,
                                            kMaxProcesses, &site->processes));
  const toml::node* runtime = nullptr;
  DDV_RETURN_IF_ERROR(
      ReadEnum(reader, table, "runtime", kRuntimes, &site->runtime, &runtime));
  DDV_RETURN_IF_ERROR(ParseHosts(reader, table, site, source));
  DDV_RETURN_IF_ERROR(
      ParseSiteListeners(reader, table, listeners, site));
  DDV_RETURN_IF_ERROR(reader.ReadBool(
      table, "default", &site->is_default, &source->is_default));
  DDV_RETURN_IF_ERROR(ParseAlpn(reader, table, site));
  DDV_RETURN_IF_ERROR(ParseClaimableHosts(reader, table, site));
  DDV_RETURN_IF_ERROR(
      reader.ReadBool(table, "may_claim_default", &site->may_claim_default));
  DDV_RETURN_IF_ERROR(ParseEnv(reader, table, site));
  DDV_RETURN_IF_ERROR(ReadAccount(reader, table, site));
  DDV_RETURN_IF_ERROR(
      ReadAbsolutePath(reader, table, "log_output", &site->log_output));
  DDV_RETURN_IF_ERROR(
      ReadAbsolutePath(reader, table, "log_error", &site->log_error));
  DDV_RETURN_IF_ERROR(
      ReadAbsolutePath(reader, table, "log_all", &site->log_all));
  return ParseTlsFiles(reader, table, site);
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

bool Serves(const SiteConfig& site, const std::string& listener) {
  return site.listeners.empty() ||
         std::find(site.listeners.begin(), site.listeners.end(), listener) !=
             site.listeners.end();
}

absl::Status CheckUniqueListener(const TomlReader& reader,
                                 const std::vector<ListenerConfig>& listeners,
                                 const std::vector<ListenerSource>& sources,
                                 size_t i) {
  const ListenerConfig& listener = listeners[i];
  for (size_t j = 0; j < i; ++j) {
    if (listeners[j].name == listener.name) {
      return reader.ErrorAt(
          *sources[i].name,
          absl::StrCat("listener name \"", listener.name,
                       "\" is already used on line ", listeners[j].line));
    }
    // Port 0 asks the kernel for a fresh port each time: no clash.
    if (ListenPort(sources[i].parsed_address) != 0 &&
        SameListenAddress(sources[i].parsed_address,
                          sources[j].parsed_address)) {
      return reader.ErrorAt(*sources[i].address,
                            absl::StrCat("address \"", listener.address,
                                         "\" is already used by listener \"",
                                         listeners[j].name, "\""));
    }
  }
  return absl::OkStatus();
}

// Unique site ids, and at most one `default = true`. Returns the default
// site's index in *default_site, or -1.
absl::Status CheckSites(const TomlReader& reader, const Config& config,
                        const std::vector<SiteSource>& sources,
                        int* default_site) {
  absl::flat_hash_map<std::string, size_t> by_id;
  *default_site = -1;
  for (size_t i = 0; i < config.sites.size(); ++i) {
    const SiteConfig& site = config.sites[i];
    auto [it, inserted] = by_id.emplace(site.id, i);
    if (!inserted) {
      return reader.ErrorAt(
          *sources[i].id,
          absl::StrCat("site id \"", site.id,
                       "\" is already used by the site on line ",
                       config.sites[it->second].line));
    }
    if (!site.is_default) continue;
    if (*default_site >= 0) {
      return reader.ErrorAt(
          *sources[i].is_default,
          absl::StrCat("site \"", site.id,
                       "\" has default = true, but so does site \"",
                       config.sites[*default_site].id,
                       "\"; at most one site may be the default"));
    }
    *default_site = static_cast<int>(i);
  }
  return absl::OkStatus();
}

// Each listener's default_site exists and serves it; a tcp listener, which
// cannot route by name, has a default of some kind.
absl::Status CheckListenerDefaults(const TomlReader& reader,
                                   const Config& config,
                                   const std::vector<ListenerSource>& sources,
                                   int default_site) {
  for (size_t i = 0; i < config.listeners.size(); ++i) {
    const ListenerConfig& listener = config.listeners[i];
    if (!listener.default_site.empty()) {
      auto site = std::find_if(config.sites.begin(), config.sites.end(),
                               [&listener](const SiteConfig& s) {
                                 return s.id == listener.default_site;
                               });
      if (site == config.sites.end()) {
        return reader.ErrorAt(
            *sources[i].default_site,
            absl::StrCat("default_site \"", listener.default_site,
                         "\" is not a site id"));
      }
      if (!Serves(*site, listener.name)) {
        return reader.ErrorAt(
            *sources[i].default_site,
            absl::StrCat("default_site \"", listener.default_site,
                         "\" does not serve listener \"", listener.name,
                         "\": add \"", listener.name,
                         "\" to that site's listeners"));
      }
    }
    if (listener.protocol == Protocol::kTcp && listener.default_site.empty() &&
        (default_site < 0 ||
         !Serves(config.sites[default_site], listener.name))) {
      return reader.ErrorAt(
          *sources[i].table,
          absl::StrCat("listener \"", listener.name,
                       "\" is tcp, which cannot route by name: give it a "
                       "default_site, or mark a site that serves it "
                       "default = true"));
    }
  }
  return absl::OkStatus();
}

// Each (listener, host, ALPN) has one owner. A site with `alpn` claims its
// hosts only for those protocols (e.g. an ACME tls-alpn-01 responder beside
// the real site); a site without claims them for everything else.
absl::Status CheckHostOwners(const TomlReader& reader, const Config& config,
                             const std::vector<SiteSource>& sources) {
  std::map<std::tuple<std::string, std::string, std::string>, size_t> owners;
  for (size_t i = 0; i < config.sites.size(); ++i) {
    const SiteConfig& site = config.sites[i];
    std::vector<std::string> alpns = site.alpn;
    if (alpns.empty()) alpns.push_back("");
    for (size_t h = 0; h < site.hosts.size(); ++h) {
      for (const ListenerConfig& listener : config.listeners) {
        if (!Serves(site, listener.name)) continue;
        for (const std::string& alpn : alpns) {
          auto [it, inserted] = owners.emplace(
              std::make_tuple(listener.name, site.hosts[h], alpn), i);
          if (inserted) continue;
          std::string with_alpn =
              alpn.empty() ? "" : absl::StrCat(" with ALPN \"", alpn, "\"");
          return reader.ErrorAt(
              *sources[i].hosts[h],
              absl::StrCat("host \"", site.hosts[h], "\"", with_alpn,
                           " is on both site \"", config.sites[it->second].id,
                           "\" and site \"", site.id,
                           "\", which share listener \"", listener.name, "\""));
        }
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ParseDocument(const TomlReader& reader, const toml::table& root,
                           Config* config) {
  DDV_RETURN_IF_ERROR(
      reader.CheckKeys(root, "the top level", kRootKeys));

  if (const toml::node* master = root.get("master")) {
    const toml::table* table = master->as_table();
    if (table == nullptr) {
      return reader.ErrorAt(
          *master,
          absl::StrCat("master must be a table, got ", TomlTypeName(*master)));
    }
    DDV_RETURN_IF_ERROR(ParseMaster(reader, *table, &config->master));
  }

  const toml::array* listeners = nullptr;
  DDV_RETURN_IF_ERROR(FindSection(reader, root, "listener", &listeners));
  std::vector<ListenerSource> listener_sources(listeners->size());
  for (size_t i = 0; i < listeners->size(); ++i) {
    config->listeners.emplace_back();
    DDV_RETURN_IF_ERROR(
        ParseListener(reader, *listeners->get(i)->as_table(),
                      &config->listeners.back(), &listener_sources[i]));
    DDV_RETURN_IF_ERROR(
        CheckUniqueListener(reader, config->listeners, listener_sources, i));
  }

  const toml::array* sites = nullptr;
  DDV_RETURN_IF_ERROR(FindSection(reader, root, "site", &sites));
  std::vector<SiteSource> site_sources(sites->size());
  for (size_t i = 0; i < sites->size(); ++i) {
    config->sites.emplace_back();
    DDV_RETURN_IF_ERROR(
        ParseSite(reader, *sites->get(i)->as_table(), config->listeners,
                  &config->sites.back(), &site_sources[i]));
  }

  int default_site = -1;
  DDV_RETURN_IF_ERROR(
      CheckSites(reader, *config, site_sources, &default_site));
  DDV_RETURN_IF_ERROR(
      CheckListenerDefaults(reader, *config, listener_sources, default_site));
  return CheckHostOwners(reader, *config, site_sources);
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

absl::string_view RuntimeName(Runtime runtime) {
  for (const NamedValue<Runtime>& named : kRuntimes) {
    if (named.value == runtime) return named.name;
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
  DDV_RETURN_IF_ERROR(ParseDocument(reader, root, &config));
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
  absl::StrAppend(&out, "\n");
  for (const ListenerConfig& listener : config.listeners) {
    absl::StrAppend(&out, "  listener ", listener.name, ": ", listener.address,
                    " ", ProtocolName(listener.protocol));
    if (!listener.default_site.empty()) {
      absl::StrAppend(&out, ", default_site ", listener.default_site);
    }
    if (listener.proxy_protocol) absl::StrAppend(&out, ", proxy_protocol");
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
    if (site.runtime != Runtime::kDdv) {
      absl::StrAppend(&out, ", runtime ", RuntimeName(site.runtime));
    }
    absl::StrAppend(&out, "\n");
  }
  return out;
}

}  // namespace config
}  // namespace ddv
