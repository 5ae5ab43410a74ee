// TomlReader: parses TOML with toml++ and reads typed fields out of its
// tables, every error a Status reading "FILE:LINE:COL: what is wrong" at the
// node at fault. The schema itself lives in config.cc; this is its vocabulary.
#ifndef DDV_SRC_CONFIG_TOML_READER_H_
#define DDV_SRC_CONFIG_TOML_READER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

// Debian's toml++ is a compiled library (TOML_HEADER_ONLY=0, set by
// //third_party:tomlplusplus) built with exceptions: see TomlReader::Parse.
#include <toml++/toml.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace ddv {
namespace config {

// "a string", "an integer", ... for "must be X, got Y" messages.
absl::string_view TomlTypeName(const toml::node& node);

// Where ErrorList::ToStatus records how many errors its message holds.
inline constexpr absl::string_view kErrorCountPayload = "ddv.config.errors";

// Every error one load found. The loader goes on past an error wherever
// what follows does not depend on the value at fault, so one run of
// --check_config reports them all instead of one per edit.
class ErrorList {
 public:
  // Records `status` unless it is OK; returns status.ok(), so a caller can
  // go on with what depends on the value only when it was good.
  bool Add(const absl::Status& status);
  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }
  // OK when empty; else InvalidArgument whose message is every error, one
  // "FILE:LINE:COL: what is wrong" a line, in file order (by position, then
  // in the order found), each once.
  absl::Status ToStatus() const;

 private:
  struct Entry {
    uint32_t line = 0;
    uint32_t column = 0;
    std::string message;
  };
  std::vector<Entry> entries_;
};

class TomlReader {
 public:
  // `path` is FILE in every message; it must outlive the reader.
  explicit TomlReader(const std::string& path) : path_(path) {}

  // Parses `text` into `*root`; a syntax error is positioned by toml++.
  absl::Status Parse(absl::string_view text, toml::table* root) const;

  // InvalidArgument "FILE:LINE:COL: what" at a node, a key, or 1:1.
  absl::Status ErrorAt(const toml::node& node, absl::string_view what) const;
  absl::Status ErrorAt(const toml::key& key, absl::string_view what) const;
  absl::Status ErrorAtStart(absl::string_view what) const;

  // Unknown keys are errors, so a typo ("proceses") cannot silently fall
  // back to a default. Reports every unknown key, each with "did you mean"
  // when a known key is within two edits, else the known keys. `where`
  // names the table: "[[site]]".
  void CheckKeys(const toml::table& table, absl::string_view where,
                 absl::Span<const absl::string_view> known,
                 ErrorList* errors) const;

  // Typed fields. Each leaves *out unchanged when the key is absent, and
  // sets *node (when given) to the value, or nullptr when absent, for later
  // errors about the value's meaning.
  absl::Status ReadString(const toml::table& table, absl::string_view key,
                          std::string* out,
                          const toml::node** node = nullptr) const;
  absl::Status ReadBool(const toml::table& table, absl::string_view key,
                        bool* out, const toml::node** node = nullptr) const;
  // An integer in [min, max].
  absl::Status ReadInt(const toml::table& table, absl::string_view key, int min,
                       int max, int* out) const;
  absl::Status ReadInt64(const toml::table& table, absl::string_view key,
                         int64_t min, int64_t max, int64_t* out,
                         const toml::node** node = nullptr) const;
  // An array of strings; with `allow_single`, a lone string is an array of
  // one. `elements` (when given) receives each element's node.
  absl::Status ReadStringList(
      const toml::table& table, absl::string_view key, bool allow_single,
      std::vector<std::string>* out,
      std::vector<const toml::node*>* elements = nullptr,
      const toml::node** node = nullptr) const;

 private:
  absl::Status ErrorAt(const toml::source_region& where,
                       absl::string_view what) const;

  const std::string& path_;
};

}  // namespace config
}  // namespace ddv

#endif  // DDV_SRC_CONFIG_TOML_READER_H_
