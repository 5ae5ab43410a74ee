// TomlReader: positioned errors and typed field reads over toml++. Holds the
// only try/catch in ddv (see Parse).
#include "src/config/toml_reader.h"

#include <algorithm>
#include <cstdint>
#include <utility>
#include <string_view>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/cord.h"
#include "absl/types/optional.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace ddv {
namespace config {
namespace {

// absl::string_view is its own type in Debian's abseil; toml++ speaks
// std::string_view.
std::string_view Std(absl::string_view s) {
  return std::string_view(s.data(), s.size());
}
absl::string_view Absl(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

// Where ErrorAt puts an error's position ("LINE:COL") beside its message,
// for ErrorList to sort by without parsing FILE, which may hold colons.
constexpr absl::string_view kPositionPayload = "ddv.config.position";

// Levenshtein distance, for "did you mean".
size_t EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1,
                         diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

bool ErrorList::Add(const absl::Status& status) {
  if (status.ok()) return true;
  Entry entry;
  entry.message = std::string(status.message());
  // An error without a position (none today) sorts first.
  if (absl::optional<absl::Cord> position = status.GetPayload(kPositionPayload)) {
    std::pair<std::string, std::string> parts =
        absl::StrSplit(std::string(*position), ':');
    if (!absl::SimpleAtoi(parts.first, &entry.line) ||
        !absl::SimpleAtoi(parts.second, &entry.column)) {
      entry.line = entry.column = 0;
    }
  }
  entries_.push_back(std::move(entry));
  return false;
}

absl::Status ErrorList::ToStatus() const {
  if (entries_.empty()) return absl::OkStatus();
  std::vector<const Entry*> sorted;
  for (const Entry& entry : entries_) sorted.push_back(&entry);
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const Entry* a, const Entry* b) {
                     return a->line != b->line ? a->line < b->line
                                               : a->column < b->column;
                   });
  std::vector<absl::string_view> lines;
  absl::flat_hash_set<absl::string_view> seen;
  for (const Entry* entry : sorted) {
    // The same value can fail two checks with the same words (a host listed
    // twice, seen by two listeners): say it once.
    if (seen.insert(entry->message).second) lines.push_back(entry->message);
  }
  absl::Status status = absl::InvalidArgumentError(absl::StrJoin(lines, "\n"));
  status.SetPayload(kErrorCountPayload, absl::Cord(absl::StrCat(lines.size())));
  return status;
}

absl::string_view TomlTypeName(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

// Debian's libtomlplusplus is compiled with TOML_EXCEPTIONS=1: the .so
// exports only the toml::v3::ex ABI, in which toml::parse() returns the table
// itself (toml::parse_result is an alias of toml::table there) and throws
// toml::parse_error on bad syntax. Compiling our side with
// TOML_EXCEPTIONS=0 would link against the noex symbols, which the library
// does not have. So this is the one try/catch in ddv: it turns the exception
// into a Status, and nothing else can escape it (bad_alloc aside).
absl::Status TomlReader::Parse(absl::string_view text,
                               toml::table* root) const {
  try {
    *root = toml::parse(Std(text), std::string_view(path_));
  } catch (const toml::parse_error& e) {
    return ErrorAt(e.source(), Absl(e.description()));
  }
  return absl::OkStatus();
}

absl::Status TomlReader::ErrorAt(const toml::source_region& where,
                                 absl::string_view what) const {
  // Nodes toml++ did not read from the text (none in a parsed document, but
  // the empty region of ErrorAtStart) have line 0: say 1:1.
  uint32_t line = std::max<uint32_t>(where.begin.line, 1);
  uint32_t column = std::max<uint32_t>(where.begin.column, 1);
  absl::Status status = absl::InvalidArgumentError(
      absl::StrCat(path_, ":", line, ":", column, ": ", what));
  status.SetPayload(kPositionPayload,
                    absl::Cord(absl::StrCat(line, ":", column)));
  return status;
}

absl::Status TomlReader::ErrorAt(const toml::node& node,
                                 absl::string_view what) const {
  return ErrorAt(node.source(), what);
}

absl::Status TomlReader::ErrorAt(const toml::key& key,
                                 absl::string_view what) const {
  return ErrorAt(key.source(), what);
}

absl::Status TomlReader::ErrorAtStart(absl::string_view what) const {
  return ErrorAt(toml::source_region{}, what);
}

void TomlReader::CheckKeys(const toml::table& table, absl::string_view where,
                           absl::Span<const absl::string_view> known,
                           ErrorList* errors) const {
  for (auto&& [key, node] : table) {
    absl::string_view name = Absl(key.str());
    if (std::find(known.begin(), known.end(), name) != known.end()) continue;
    absl::string_view best;
    size_t best_distance = 3;  // suggest only within two edits
    for (absl::string_view candidate : known) {
      size_t distance = EditDistance(name, candidate);
      if (distance < best_distance && distance < candidate.size()) {
        best = candidate;
        best_distance = distance;
      }
    }
    std::string hint =
        best.empty()
            ? absl::StrCat("; known keys: ", absl::StrJoin(known, ", "))
            : absl::StrCat(" (did you mean \"", best, "\"?)");
    errors->Add(ErrorAt(
        key, absl::StrCat("unknown key \"", name, "\" in ", where, hint)));
  }
}

absl::Status TomlReader::ReadString(const toml::table& table,
                                    absl::string_view key, std::string* out,
                                    const toml::node** node) const {
  const toml::node* value = table.get(Std(key));
  if (node != nullptr) *node = value;
  if (value == nullptr) return absl::OkStatus();
  const auto* string = value->as_string();
  if (string == nullptr) {
    return ErrorAt(*value, absl::StrCat(key, " must be a string, got ",
                                        TomlTypeName(*value)));
  }
  *out = string->get();
  return absl::OkStatus();
}

absl::Status TomlReader::ReadBool(const toml::table& table,
                                  absl::string_view key, bool* out,
                                  const toml::node** node) const {
  const toml::node* value = table.get(Std(key));
  if (node != nullptr) *node = value;
  if (value == nullptr) return absl::OkStatus();
  const auto* boolean = value->as_boolean();
  if (boolean == nullptr) {
    return ErrorAt(*value, absl::StrCat(key, " must be true or false, got ",
                                        TomlTypeName(*value)));
  }
  *out = boolean->get();
  return absl::OkStatus();
}

absl::Status TomlReader::ReadInt(const toml::table& table,
                                 absl::string_view key, int min, int max,
                                 int* out) const {
  int64_t v = *out;
  absl::Status status = ReadInt64(table, key, min, max, &v);
  *out = static_cast<int>(v);
  return status;
}

absl::Status TomlReader::ReadInt64(const toml::table& table,
                                   absl::string_view key, int64_t min,
                                   int64_t max, int64_t* out,
                                   const toml::node** node) const {
  const toml::node* value = table.get(Std(key));
  if (node != nullptr) *node = value;
  if (value == nullptr) return absl::OkStatus();
  const auto* integer = value->as_integer();
  if (integer == nullptr) {
    return ErrorAt(*value, absl::StrCat(key, " must be an integer, got ",
                                        TomlTypeName(*value)));
  }
  int64_t v = integer->get();
  if (v < min || v > max) {
    return ErrorAt(*value, absl::StrCat(key, " must be between ", min, " and ",
                                        max, ", got ", v));
  }
  *out = v;
  return absl::OkStatus();
}

absl::Status TomlReader::ReadStringList(
    const toml::table& table, absl::string_view key, bool allow_single,
    std::vector<std::string>* out, std::vector<const toml::node*>* elements,
    const toml::node** node) const {
  const toml::node* value = table.get(Std(key));
  if (node != nullptr) *node = value;
  if (value == nullptr) return absl::OkStatus();
  out->clear();
  if (elements != nullptr) elements->clear();
  if (allow_single && value->is_string()) {
    out->push_back(value->as_string()->get());
    if (elements != nullptr) elements->push_back(value);
    return absl::OkStatus();
  }
  const auto* array = value->as_array();
  if (array == nullptr) {
    return ErrorAt(
        *value,
        absl::StrCat(key, " must be ", allow_single ? "a string or " : "",
                     "an array of strings, got ", TomlTypeName(*value)));
  }
  for (size_t i = 0; i < array->size(); ++i) {
    const toml::node& element = *array->get(i);
    const auto* string = element.as_string();
    if (string == nullptr) {
      return ErrorAt(element,
                     absl::StrCat(key, "[", i, "] must be a string, got ",
                                  TomlTypeName(element)));
    }
    out->push_back(string->get());
    if (elements != nullptr) elements->push_back(&element);
  }
  return absl::OkStatus();
}

}  // namespace config
}  // namespace ddv
