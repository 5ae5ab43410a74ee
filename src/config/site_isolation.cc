// ReadSiteIsolation: `limits`, `cwd`, `memory_max`, `cpu_weight`,
// `max_connections` and `max_pending` of a [[site]]. Ranges refuse what
// would only fail later, at every spawn, or kill a worker at once (a
// 4 KiB memory.max, a nofile below what a worker holds at start).
#include "src/config/site_isolation.h"

#include <errno.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "src/base/status_macros.h"

namespace ddv {
namespace config {
namespace internal {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;
// Largest finite value taken anywhere: beyond it "unlimited" says it.
constexpr uint64_t kMaxFinite = uint64_t{1} << 62;

struct ResourceRule {
  absl::string_view key;
  ResourceKind kind;
  uint64_t min;
  uint64_t max;
  bool bytes;  // a size: "2G" is taken too
};

// In docs/config.md's order. nofile: stdio and the channel are 4 fds
// before the worker opens anything. nproc: the kernel's PID_MAX_LIMIT.
// as_bytes: below 16 MiB not even a small program can exec.
constexpr ResourceRule kResourceRules[] = {
    {"nofile", ResourceKind::kNofile, 16, uint64_t{1} << 30, false},
    {"nproc", ResourceKind::kNproc, 1, uint64_t{1} << 22, false},
    {"core", ResourceKind::kCore, 0, kMaxFinite, true},
    {"as_bytes", ResourceKind::kAsBytes, 16 * kMiB, kMaxFinite, true},
    {"memlock_bytes", ResourceKind::kMemlockBytes, 0, kMaxFinite, true},
};

constexpr uint64_t kMinMemoryMax = kMiB;
constexpr int kMinCpuWeight = 1;  // cgroup v2's cpu.weight range
constexpr int kMaxCpuWeight = 10000;
constexpr int kMaxConnectionCap = 10000000;

// An integer, or (for sizes) "512M"; `unlimited_ok` also takes
// "unlimited". The value must lie in [min, max].
absl::Status ReadAmount(const TomlReader& reader, const toml::node& node,
                        absl::string_view key, uint64_t min, uint64_t max,
                        bool bytes, bool unlimited_ok, uint64_t* out) {
  uint64_t value = 0;
  if (const auto* integer = node.as_integer()) {
    const int64_t v = integer->get();
    if (v < 0) {
      return reader.ErrorAt(node, absl::StrCat(key, " must not be negative"));
    }
    value = static_cast<uint64_t>(v);
  } else if (const auto* string = node.as_string()) {
    const std::string& text = string->get();
    if (unlimited_ok && text == "unlimited") {
      *out = kUnlimited;
      return absl::OkStatus();
    }
    absl::StatusOr<uint64_t> size =
        bytes ? ParseByteSize(text)
              : absl::InvalidArgumentError("not a size");
    if (!size.ok()) {
      return reader.ErrorAt(
          node, absl::StrCat(key, " \"", text, "\" must be ",
                             bytes ? "a size such as \"512M\"" : "an integer",
                             unlimited_ok ? " or \"unlimited\"" : ""));
    }
    value = *size;
  } else {
    return reader.ErrorAt(
        node, absl::StrCat(key, " must be ",
                           bytes ? "an integer or a size such as \"512M\""
                                 : "an integer",
                           unlimited_ok ? " or \"unlimited\"" : "", ", got ",
                           TomlTypeName(node)));
  }
  if (value < min || value > max) {
    return reader.ErrorAt(node, absl::StrCat(key, " must be ", min, " to ",
                                             max, unlimited_ok
                                                 ? " or \"unlimited\""
                                                 : "",
                                             ", got ", value));
  }
  *out = value;
  return absl::OkStatus();
}

void ReadLimits(const TomlReader& reader, const toml::table& table,
                SiteConfig* site, ErrorList* errors) {
  const toml::node* node = table.get("limits");
  if (node == nullptr) return;
  const toml::table* limits = node->as_table();
  if (limits == nullptr) {
    errors->Add(reader.ErrorAt(
        *node, absl::StrCat("limits must be a table such as "
                            "{ nofile = 4096, core = 0 }, got ",
                            TomlTypeName(*node))));
    return;
  }
  std::vector<absl::string_view> keys;
  for (const ResourceRule& rule : kResourceRules) keys.push_back(rule.key);
  reader.CheckKeys(*limits, "limits", keys, errors);
  for (const ResourceRule& rule : kResourceRules) {
    const toml::node* value =
        limits->get(std::string_view(rule.key.data(), rule.key.size()));
    if (value == nullptr) continue;
    uint64_t amount = 0;
    if (errors->Add(ReadAmount(reader, *value,
                               absl::StrCat("limits.", rule.key), rule.min,
                               rule.max, rule.bytes,
                               /*unlimited_ok=*/true, &amount))) {
      site->limits.emplace_back(rule.kind, amount);
    }
  }
}

// An absolute path to a directory, checked now: a typo fails the load, not
// every start of the site's workers.
absl::Status ReadCwd(const TomlReader& reader, const toml::table& table,
                     SiteConfig* site) {
  const toml::node* node = nullptr;
  DDV_RETURN_IF_ERROR(reader.ReadString(table, "cwd", &site->cwd, &node));
  if (node == nullptr) return absl::OkStatus();
  if (site->cwd.empty() || site->cwd[0] != '/') {
    return reader.ErrorAt(*node, absl::StrCat("cwd \"", site->cwd,
                                              "\" must be an absolute path"));
  }
  struct stat st;
  if (::stat(site->cwd.c_str(), &st) != 0) {
    return reader.ErrorAt(*node, absl::StrCat("cwd \"", site->cwd,
                                              "\": ", strerror(errno)));
  }
  if (!S_ISDIR(st.st_mode)) {
    return reader.ErrorAt(*node, absl::StrCat("cwd \"", site->cwd,
                                              "\" is not a directory"));
  }
  return absl::OkStatus();
}

absl::Status ReadCap(const TomlReader& reader, const toml::table& table,
                     absl::string_view key, uint32_t* out) {
  int value = 0;
  DDV_RETURN_IF_ERROR(
      reader.ReadInt(table, key, 1, kMaxConnectionCap, &value));
  *out = static_cast<uint32_t>(value);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<uint64_t> ParseByteSize(absl::string_view text) {
  uint64_t multiplier = 1;
  if (!text.empty() && !absl::ascii_isdigit(text.back())) {
    switch (absl::ascii_toupper(text.back())) {
      case 'K':
        multiplier = uint64_t{1} << 10;
        break;
      case 'M':
        multiplier = uint64_t{1} << 20;
        break;
      case 'G':
        multiplier = uint64_t{1} << 30;
        break;
      case 'T':
        multiplier = uint64_t{1} << 40;
        break;
      default:
        return absl::InvalidArgumentError("unknown size suffix");
    }
    text.remove_suffix(1);
  }
  uint64_t number = 0;
  if (text.empty() ||
      !std::all_of(text.begin(), text.end(),
                   [](char c) { return absl::ascii_isdigit(c); }) ||
      !absl::SimpleAtoi(text, &number) || number > kMaxFinite / multiplier) {
    return absl::InvalidArgumentError("not a size");
  }
  return number * multiplier;
}

void ReadSiteIsolation(const TomlReader& reader, const toml::table& table,
                       SiteConfig* site, ErrorList* errors) {
  ReadLimits(reader, table, site, errors);
  errors->Add(ReadCwd(reader, table, site));
  if (const toml::node* node = table.get("memory_max")) {
    errors->Add(ReadAmount(reader, *node, "memory_max", kMinMemoryMax,
                           kMaxFinite, /*bytes=*/true,
                           /*unlimited_ok=*/false, &site->memory_max));
  }
  int weight = 0;
  if (errors->Add(reader.ReadInt(table, "cpu_weight", kMinCpuWeight,
                                 kMaxCpuWeight, &weight))) {
    site->cpu_weight = static_cast<uint32_t>(weight);
  }
  bool caps_read = errors->Add(
      ReadCap(reader, table, "max_connections", &site->max_connections));
  caps_read &=
      errors->Add(ReadCap(reader, table, "max_pending", &site->max_pending));
  if (caps_read && site->max_connections > 0 &&
      site->max_pending > site->max_connections) {
    errors->Add(reader.ErrorAt(
        *table.get("max_pending"),
        absl::StrCat("max_pending (", site->max_pending,
                     ") cannot exceed max_connections (",
                     site->max_connections,
                     "): waiting connections count against both")));
  }
}

}  // namespace internal
}  // namespace config
}  // namespace ddv
