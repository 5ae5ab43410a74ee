// Config checks against the system: accounts, executables, PATH.
#include "src/config/system_checks.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "src/base/errno_status.h"
#include "src/base/status_macros.h"

namespace ddv {
namespace config {
namespace internal {
namespace {

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

}  // namespace

namespace {

// `user` and `group` are resolved now, so a typo fails the load instead of
// every worker spawn.
absl::Status ReadUser(const TomlReader& reader, const toml::table& table,
                      SiteConfig* site) {
  const toml::node* node = nullptr;
  DDV_RETURN_IF_ERROR(reader.ReadString(table, "user", &site->user, &node));
  if (node == nullptr) return absl::OkStatus();
  bool found = false;
  absl::Status status =
      LookUpName<passwd>(site->user, getpwnam_r, _SC_GETPW_R_SIZE_MAX,
                         "getpwnam_r", "user", &found);
  if (!status.ok()) return reader.ErrorAt(*node, status.message());
  if (!found) {
    return reader.ErrorAt(
        *node, absl::StrCat("user \"", site->user, "\" does not exist"));
  }
  return absl::OkStatus();
}

absl::Status ReadGroup(const TomlReader& reader, const toml::table& table,
                       SiteConfig* site) {
  const toml::node* node = nullptr;
  DDV_RETURN_IF_ERROR(reader.ReadString(table, "group", &site->group, &node));
  if (node == nullptr) return absl::OkStatus();
  bool found = false;
  absl::Status status =
      LookUpName<group>(site->group, getgrnam_r, _SC_GETGR_R_SIZE_MAX,
                        "getgrnam_r", "group", &found);
  if (!status.ok()) return reader.ErrorAt(*node, status.message());
  if (!found) {
    return reader.ErrorAt(
        *node, absl::StrCat("group \"", site->group, "\" does not exist"));
  }
  return absl::OkStatus();
}

}  // namespace

void ReadAccount(const TomlReader& reader, const toml::table& table,
                 SiteConfig* site, ErrorList* errors) {
  errors->Add(ReadUser(reader, table, site));
  errors->Add(ReadGroup(reader, table, site));
}

namespace {

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

}  // namespace

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

}  // namespace internal
}  // namespace config
}  // namespace ddv
