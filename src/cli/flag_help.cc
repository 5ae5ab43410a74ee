// RenderHelp and ParseFlags over gflags' registry (see flag_help.h).
#include "src/cli/flag_help.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gflags/gflags.h"

namespace ddv {
namespace cli {
namespace {

constexpr size_t kWidth = 79;
constexpr size_t kHelpColumn = 28;  // where descriptions start

// "config=FILE" -> "config".
absl::string_view FlagName(absl::string_view entry) {
  return entry.substr(0, entry.find('='));
}

// Appends `words` filled to kWidth, every line after the first indented to
// `indent`; the first starts at `column`.
void AppendFilled(absl::string_view words, size_t column, size_t indent,
                  std::string* out) {
  bool first_word = true;
  for (absl::string_view word :
       absl::StrSplit(words, absl::ByAnyChar(" \n"), absl::SkipEmpty())) {
    if (!first_word && column + 1 + word.size() > kWidth) {
      absl::StrAppend(out, "\n", std::string(indent, ' '));
      column = indent;
    } else if (!first_word) {
      out->push_back(' ');
      ++column;
    }
    out->append(word.data(), word.size());
    column += word.size();
    first_word = false;
  }
  out->push_back('\n');
}

std::string DefaultText(const gflags::CommandLineFlagInfo& info) {
  if (info.type == "bool") {
    return info.default_value == "true" ? "(default: true)" : "";
  }
  if (info.default_value.empty()) return "";
  return absl::StrCat("(default: ", info.default_value, ")");
}

void AppendFlag(absl::string_view entry, std::string* out) {
  const std::string name(FlagName(entry));
  gflags::CommandLineFlagInfo info;
  if (!gflags::GetCommandLineFlagInfo(name.c_str(), &info)) {
    // Only a group table naming a flag that is not linked gets here: say
    // so rather than hide it.
    absl::StrAppend(out, "  --", entry, "  (not a flag of this binary)\n");
    return;
  }
  const std::string head = absl::StrCat("  --", entry);
  out->append(head);
  size_t column = head.size();
  if (column + 2 > kHelpColumn) {
    absl::StrAppend(out, "\n", std::string(kHelpColumn, ' '));
  } else {
    out->append(kHelpColumn - column, ' ');
  }
  std::string text = info.description;
  const std::string default_text = DefaultText(info);
  if (!default_text.empty()) absl::StrAppend(&text, " ", default_text);
  AppendFilled(text, kHelpColumn, kHelpColumn, out);
}

void AppendGroup(absl::string_view title, absl::string_view note,
                 absl::Span<const absl::string_view> flags, std::string* out) {
  absl::StrAppend(out, "\n", title, ":\n");
  if (!note.empty()) {
    out->append("  ");
    AppendFilled(note, 2, 2, out);
  }
  for (absl::string_view entry : flags) AppendFlag(entry, out);
}

bool IsOwn(const gflags::CommandLineFlagInfo& info, absl::string_view file) {
  return !file.empty() && absl::EndsWith(info.filename, file);
}

// Whether `arg` asks for help the way gflags spells it ("--help", "-help",
// "--help=true"), or "-h", which gflags does not know.
bool Asks(absl::string_view arg, absl::string_view flag) {
  if (!absl::ConsumePrefix(&arg, "--") && !absl::ConsumePrefix(&arg, "-")) {
    return false;
  }
  return arg == flag || arg == absl::StrCat(flag, "=true");
}

}  // namespace

std::vector<std::string> UngroupedFlags(const HelpText& help) {
  std::set<absl::string_view> listed;
  for (const FlagGroup& group : help.groups) {
    for (absl::string_view entry : group.flags) listed.insert(FlagName(entry));
  }
  std::vector<gflags::CommandLineFlagInfo> all;
  gflags::GetAllFlags(&all);
  std::vector<std::string> ungrouped;
  for (const gflags::CommandLineFlagInfo& info : all) {
    if (IsOwn(info, help.own_file) && listed.count(info.name) == 0) {
      ungrouped.push_back(info.name);
    }
  }
  return ungrouped;
}

std::string RenderHelp(const HelpText& help, bool full) {
  std::string out(help.usage);
  if (!help.before.empty()) absl::StrAppend(&out, "\n", help.before);
  std::set<std::string> shown;
  for (const FlagGroup& group : help.groups) {
    if (group.full_only && !full) continue;
    AppendGroup(group.title, group.note, group.flags, &out);
    for (absl::string_view entry : group.flags) {
      shown.insert(std::string(FlagName(entry)));
    }
  }
  const std::vector<std::string> ungrouped = UngroupedFlags(help);
  if (!ungrouped.empty()) {
    std::vector<absl::string_view> entries(ungrouped.begin(), ungrouped.end());
    AppendGroup("Other", "", entries, &out);
    shown.insert(ungrouped.begin(), ungrouped.end());
  }
  if (!help.after.empty()) absl::StrAppend(&out, "\n", help.after);
  if (!full) {
    absl::StrAppend(&out,
                    "\n--helpfull also lists the flags of the libraries "
                    "linked in\n(logging, flag parsing).\n");
    return out;
  }
  // The libraries' flags, by source file, in gflags' own words.
  std::map<std::string, std::vector<gflags::CommandLineFlagInfo>> by_file;
  std::vector<gflags::CommandLineFlagInfo> all;
  gflags::GetAllFlags(&all);
  for (const gflags::CommandLineFlagInfo& info : all) {
    if (shown.count(info.name) == 0 && !IsOwn(info, help.own_file)) {
      by_file[info.filename].push_back(info);
    }
  }
  for (const auto& [file, flags] : by_file) {
    absl::StrAppend(&out, "\n  Flags from ", file, ":\n");
    for (const gflags::CommandLineFlagInfo& info : flags) {
      out.append(gflags::DescribeOneFlag(info));
    }
  }
  return out;
}

void ParseFlags(const HelpText& help, int* argc, char*** argv) {
  // Before gflags sees them: "-h" is not a gflags flag, and gflags' own
  // --help would print its listing and exit 1.
  for (int i = 1; i < *argc; ++i) {
    absl::string_view arg = (*argv)[i];
    if (arg == "--") break;
    const bool full = Asks(arg, "helpfull");
    if (full || Asks(arg, "help") || arg == "-h") {
      gflags::SetUsageMessage(std::string(help.usage));
      std::fputs(RenderHelp(help, full).c_str(), stdout);
      std::exit(0);
    }
  }
  gflags::SetUsageMessage(std::string(help.usage));
  gflags::ParseCommandLineFlags(argc, argv, /*remove_flags=*/true);
}

}  // namespace cli
}  // namespace ddv
