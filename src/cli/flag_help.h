// --help for a binary with gflags: its own flags first, grouped by purpose,
// each with its help text and default as gflags knows them; the flags of
// the libraries it links (glog's two dozen, gflags' own) only under
// --helpfull. gflags' --help lists every linked flag by source file, the
// binary's own last among them, which buries what an operator is after.
#ifndef DDV_SRC_CLI_FLAG_HELP_H_
#define DDV_SRC_CLI_FLAG_HELP_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace ddv {
namespace cli {

struct FlagGroup {
  absl::string_view title;  // "Listeners and accepting"
  absl::string_view note;   // a line under the title, or empty
  // "config=FILE", "check_config": the flag's name, then what its value
  // looks like (nothing for a boolean). Any linked flag may be listed, e.g.
  // glog's "log_dir=DIR".
  std::vector<absl::string_view> flags;
  // Listed by --helpfull only (flags one process sets for another).
  bool full_only = false;
};

struct HelpText {
  absl::string_view usage;     // first lines: "usage: ddvctl ... COMMAND\n"
  absl::string_view before;    // between usage and flags (commands), or empty
  std::vector<FlagGroup> groups;
  absl::string_view after;     // after the flags (exit codes), or empty
  // The binary's source file as gflags records it, e.g.
  // "src/ddv_master_main.cc": its flags that no group lists still appear,
  // under "Other", so a new flag is never hidden.
  absl::string_view own_file;
};

// The help text: usage, `before`, every group's flags ("  --name=VALUE
// help (default: D)"), then `after`. With `full`, also the groups marked
// full_only and then every other linked flag, by source file, as gflags
// describes them.
std::string RenderHelp(const HelpText& help, bool full);

// Flags defined in `help.own_file` that no group lists.
std::vector<std::string> UngroupedFlags(const HelpText& help);

// gflags::ParseCommandLineFlags, except that --help (-help, -h) prints
// RenderHelp(help, false) and --helpfull RenderHelp(help, true) to stdout
// and exit 0. gflags' other help flags (--helpshort, --helpxml,
// --helpmatch, --version, ...) keep their behaviour. Removes the flags it
// parsed from argv.
void ParseFlags(const HelpText& help, int* argc, char*** argv);

}  // namespace cli
}  // namespace ddv

#endif  // DDV_SRC_CLI_FLAG_HELP_H_
