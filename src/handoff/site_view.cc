// Site view parts: built within a size budget, reassembled strictly.
#include "src/handoff/site_view.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace ddv {
namespace handoff {
namespace {

using nlohmann::json;

// Upper bounds of what each piece adds to a part's JSON text. Patterns are
// host names (letters, digits, '-', '_', '.', '*'): nothing to escape.
// A part's own keys: with a 64-byte master id and the widest numbers,
// about 170 bytes.
constexpr size_t kPartOverhead = 192;      // braces, keys, numbers
constexpr size_t kListenerOverhead = 160;  // its keys, flags and index
constexpr size_t kPatternOverhead = 3;     // quotes and a comma

json ListenerHeader(const SiteViewListener& listener) {
  return {{"index", listener.index},
          {"address", listener.address},
          {"retired", listener.retired},
          {"v6only", listener.v6only},
          {"default", listener.hosts.is_default},
          {"own", json::array()},
          {"others", json::array()}};
}

absl::Status PartError(uint64_t part, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("site view part ", part, ": ", what));
}

// Reads `key` of `object` as an array of strings into `out` (appending).
bool ReadPatterns(const json& object, const char* key,
                  std::vector<std::string>* out) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_array()) return false;
  for (const json& pattern : *it) {
    if (!pattern.is_string()) return false;
    out->push_back(pattern.get<std::string>());
  }
  return true;
}

bool ReadBool(const json& object, const char* key, bool* out) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_boolean()) return false;
  *out = it->get<bool>();
  return true;
}

bool ReadUint(const json& object, const char* key, uint64_t max,
              uint64_t* out) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_number_unsigned()) return false;
  *out = it->get<uint64_t>();
  return *out <= max;
}

}  // namespace

bool operator==(const SiteViewListener& a, const SiteViewListener& b) {
  return a.index == b.index && a.address == b.address &&
         a.retired == b.retired && a.v6only == b.v6only &&
         a.hosts == b.hosts;
}

bool operator==(const SiteView& a, const SiteView& b) {
  return a.master == b.master && a.version == b.version &&
         a.strict == b.strict &&
         a.connections_report_ms == b.connections_report_ms &&
         a.listeners == b.listeners;
}

std::vector<json> EncodeSiteView(const SiteView& view, size_t max_part_bytes) {
  std::vector<json> parts;
  json part;
  size_t size = 0;
  auto start_part = [&] {
    part = {{"master", view.master},
            {"version", view.version},
            {"part", parts.size()},
            {"last", false},
            {"strict", view.strict},
            {"connections_report_ms", view.connections_report_ms},
            {"listeners", json::array()}};
    size = kPartOverhead;
  };
  auto finish_part = [&] { parts.push_back(std::move(part)); };
  start_part();
  for (const SiteViewListener& listener : view.listeners) {
    const size_t header = kListenerOverhead + listener.address.size();
    if (size + header > max_part_bytes && !part["listeners"].empty()) {
      finish_part();
      start_part();
    }
    part["listeners"].push_back(ListenerHeader(listener));
    size += header;
    const std::pair<const char*, const std::vector<std::string>*> lists[] = {
        {"own", &listener.hosts.own}, {"others", &listener.hosts.others}};
    for (const auto& [key, patterns] : lists) {
      for (const std::string& pattern : *patterns) {
        const size_t cost = pattern.size() + kPatternOverhead;
        if (size + cost > max_part_bytes) {
          // The listener goes on in the next part, under the same index.
          finish_part();
          start_part();
          part["listeners"].push_back(ListenerHeader(listener));
          size += header;
        }
        part["listeners"].back()[key].push_back(pattern);
        size += cost;
      }
    }
  }
  finish_part();
  parts.back()["last"] = true;
  return parts;
}

absl::StatusOr<std::optional<SiteView>> SiteViewAssembler::Add(
    const json& part) {
  uint64_t version = 0, number = 0;
  bool last = false, strict = true;
  auto listeners = part.find("listeners");
  if (!part.is_object() || !ReadUint(part, "part", UINT32_MAX, &number)) {
    assembling_ = false;
    return absl::InvalidArgumentError("site view part: no \"part\" number");
  }
  auto master = part.find("master");
  if (master == part.end() || !master->is_string() ||
      master->get_ref<const std::string&>().empty() ||
      master->get_ref<const std::string&>().size() > kMaxMasterIdLength ||
      !ReadUint(part, "version", UINT64_MAX, &version) ||
      !ReadBool(part, "last", &last) || !ReadBool(part, "strict", &strict) ||
      listeners == part.end() || !listeners->is_array()) {
    assembling_ = false;
    return PartError(
        number, "needs master, version, last, strict and a listeners array");
  }
  uint64_t report_ms = kDefaultConnectionsReportMs;
  if (part.contains("connections_report_ms") &&
      (!ReadUint(part, "connections_report_ms", kMaxConnectionsReportMs,
                 &report_ms) ||
       report_ms == 0)) {
    assembling_ = false;
    return PartError(number, absl::StrCat("connections_report_ms must be 1 to ",
                                          kMaxConnectionsReportMs));
  }
  if (number == 0) {
    view_ = SiteView();
    view_.master = master->get<std::string>();
    view_.version = version;
    view_.strict = strict;
    view_.connections_report_ms = static_cast<uint32_t>(report_ms);
    assembling_ = true;
    next_part_ = 0;
  }
  if (!assembling_ || number != next_part_ || version != view_.version ||
      strict != view_.strict ||
      master->get_ref<const std::string&>() != view_.master) {
    assembling_ = false;
    return PartError(number, absl::StrCat("out of order (expected part ",
                                          next_part_, " of version ",
                                          view_.version, ")"));
  }
  for (size_t i = 0; i < listeners->size(); ++i) {
    const json& entry = (*listeners)[i];
    SiteViewListener listener;
    uint64_t index = 0;
    auto address = entry.find("address");
    if (!entry.is_object() || !ReadUint(entry, "index", UINT32_MAX, &index) ||
        address == entry.end() || !address->is_string() ||
        !ReadBool(entry, "retired", &listener.retired) ||
        !ReadBool(entry, "default", &listener.hosts.is_default) ||
        !ReadPatterns(entry, "own", &listener.hosts.own) ||
        !ReadPatterns(entry, "others", &listener.hosts.others)) {
      assembling_ = false;
      return PartError(number,
                       "a listener needs index, address, retired, default, "
                       "own and others");
    }
    if (entry.contains("v6only") &&
        !ReadBool(entry, "v6only", &listener.v6only)) {
      assembling_ = false;
      return PartError(number, "a listener's v6only must be a boolean");
    }
    listener.index = static_cast<uint32_t>(index);
    listener.address = address->get<std::string>();
    absl::StatusOr<route::HostChecker> valid =
        route::HostChecker::Create(listener.hosts);
    if (!valid.ok()) {
      assembling_ = false;
      return PartError(number, valid.status().message());
    }
    // The continuation of the previous part's last listener.
    if (i == 0 && number > 0 && !view_.listeners.empty() &&
        view_.listeners.back().index == index) {
      route::ListenerHosts& hosts = view_.listeners.back().hosts;
      hosts.own.insert(hosts.own.end(), listener.hosts.own.begin(),
                       listener.hosts.own.end());
      hosts.others.insert(hosts.others.end(), listener.hosts.others.begin(),
                          listener.hosts.others.end());
      continue;
    }
    view_.listeners.push_back(std::move(listener));
  }
  ++next_part_;
  if (!last) return std::optional<SiteView>();
  assembling_ = false;
  return std::optional<SiteView>(std::move(view_));
}

}  // namespace handoff
}  // namespace ddv
