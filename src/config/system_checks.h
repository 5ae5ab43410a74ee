// The config checks that look at the system rather than the file: `user`,
// `group` and `control_socket_group` must name accounts that exist, and
// command[0] must be an executable file (a bare name is resolved in PATH).
// They run at every load, reloads included, so a binary or account that
// disappeared is reported with its line instead of crash-looping a site.
#ifndef DDV_SRC_CONFIG_SYSTEM_CHECKS_H_
#define DDV_SRC_CONFIG_SYSTEM_CHECKS_H_

#include <string>

#include "absl/status/status.h"
#include "src/config/config.h"
#include "src/config/toml_reader.h"

namespace ddv {
namespace config {
namespace internal {

// `user` and `group` of a [[site]]: resolved now, so a typo fails the load
// instead of every worker spawn. Each is checked.
void ReadAccount(const TomlReader& reader, const toml::table& table,
                 SiteConfig* site, ErrorList* errors);

// command[0] must be an executable regular file; a bare name ("ddv_hello")
// is looked up in PATH and replaced by the absolute path found.
absl::Status CheckExecutable(const TomlReader& reader, const toml::node& node,
                             std::string* program_in_out);

// [master] control_socket_group must exist; its gid is recorded.
absl::Status ReadControlSocketGroup(const TomlReader& reader,
                                    const toml::table& table,
                                    MasterConfig* master);

}  // namespace internal
}  // namespace config
}  // namespace ddv

#endif  // DDV_SRC_CONFIG_SYSTEM_CHECKS_H_
