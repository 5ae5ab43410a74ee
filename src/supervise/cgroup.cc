// CgroupTree: finding, claiming and writing ddv's cgroup v2 subtree. Only
// file reads and writes under /proc and the cgroup2 mount; the rules are in
// cgroup.h and docs/isolation.md.
#include "src/supervise/cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "src/base/errno_status.h"
#include "src/base/unique_fd.h"

namespace ddv::supervise {
namespace {

// An ancestor walk longer than this is not a process tree ddv made.
constexpr int kMaxAncestors = 64;

absl::StatusOr<std::string> ReadText(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, "open", absl::StrCat("reading ", path));
  std::string text;
  char buffer[4096];
  while (true) {
    ssize_t n = ::read(fd.get(), buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "read", absl::StrCat("reading ", path));
    }
    if (n == 0) break;
    text.append(buffer, static_cast<size_t>(n));
  }
  return text;
}

// One write(2), as cgroupfs wants each value: the kernel parses a write as
// a whole (O_TRUNC, as a shell's `echo max > memory.max`, is accepted
// there). Returns 0 or the errno, with the failed call in *call.
int WriteErrno(const std::string& path, absl::string_view text,
               const char** call) {
  *call = "open";
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
  if (!fd) return errno;
  *call = "write";
  ssize_t n;
  do {
    n = ::write(fd.get(), text.data(), text.size());
  } while (n < 0 && errno == EINTR);
  return n < 0 ? errno : 0;
}

absl::Status WriteText(const std::string& path, absl::string_view text) {
  const char* call = "";
  if (int error = WriteErrno(path, text, &call); error != 0) {
    return ErrnoStatus(error, call,
                       absl::StrCat("writing \"", text, "\" to ", path));
  }
  return absl::OkStatus();
}

std::optional<uint64_t> ReadNumber(const std::string& path) {
  absl::StatusOr<std::string> text = ReadText(path);
  uint64_t value;
  if (!text.ok() ||
      !absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &value)) {
    return std::nullopt;
  }
  return value;
}

std::vector<pid_t> ReadPids(const std::string& procs_text) {
  std::vector<pid_t> pids;
  for (absl::string_view line :
       absl::StrSplit(procs_text, '\n', absl::SkipEmpty())) {
    int pid;
    if (absl::SimpleAtoi(line, &pid) && pid > 0) pids.push_back(pid);
  }
  return pids;
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string Unescape(absl::string_view field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size() &&
        std::all_of(field.begin() + i + 1, field.begin() + i + 4,
                    [](char c) { return c >= '0' && c <= '7'; })) {
      out.push_back(static_cast<char>((field[i + 1] - '0') * 64 +
                                      (field[i + 2] - '0') * 8 +
                                      (field[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(field[i]);
    }
  }
  return out;
}

std::string Comm(const std::string& proc, pid_t pid) {
  absl::StatusOr<std::string> comm =
      ReadText(absl::StrCat(proc, "/", pid, "/comm"));
  return comm.ok() ? std::string(absl::StripTrailingAsciiWhitespace(*comm))
                   : std::string();
}

// The parent pid from <proc>/PID/stat ("pid (comm) state ppid ..."; comm
// may hold spaces and parentheses, so parse after the last ')'). 0 when the
// process is gone.
pid_t ParentOf(const std::string& proc, pid_t pid) {
  absl::StatusOr<std::string> stat =
      ReadText(absl::StrCat(proc, "/", pid, "/stat"));
  if (!stat.ok()) return 0;
  const size_t close = stat->rfind(')');
  if (close == std::string::npos) return 0;
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(*stat).substr(close + 1), ' ',
                     absl::SkipEmpty());
  int ppid = 0;
  if (fields.size() < 2 || !absl::SimpleAtoi(fields[1], &ppid)) return 0;
  return ppid;
}

// Whether `dir` is a cgroup this process may take over: not the
// hierarchy's root, writable, and holding only processes below `top`.
absl::Status CheckClaimable(const std::string& dir, const CgroupPaths& paths,
                            pid_t top) {
  // The root cgroup has no cgroup.events: its children are the machine's.
  if (::access((dir + "/cgroup.events").c_str(), F_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        dir, " is the root of the cgroup hierarchy, not a cgroup delegated "
             "to ddv"));
  }
  for (const std::string& path :
       {dir, dir + "/cgroup.procs", dir + "/cgroup.subtree_control"}) {
    if (::access(path.c_str(), W_OK) != 0) {
      return ErrnoStatus(errno, "access",
                         absl::StrCat("checking that ddv may write ", path,
                                      " (a delegated cgroup: systemd's "
                                      "Delegate=yes, with "
                                      "ProtectControlGroups=no)"));
    }
  }
  absl::StatusOr<std::string> procs = ReadText(dir + "/cgroup.procs");
  if (!procs.ok()) return procs.status();
  for (pid_t pid : ReadPids(*procs)) {
    if (ParentOf(paths.proc, pid) == 0) continue;  // exited meanwhile
    bool ours = false;
    pid_t at = pid;
    for (int step = 0; step < kMaxAncestors && at > 1 && !ours; ++step) {
      ours = at == top;
      at = ParentOf(paths.proc, at);
    }
    if (!ours) {
      return absl::FailedPreconditionError(absl::StrCat(
          dir, " also holds pid ", pid, " (", Comm(paths.proc, pid),
          "), which is not ddv's: ddv takes over only a cgroup of its own"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string SiteCgroupName(absl::string_view site_id) {
  return absl::StrCat("site-", site_id);
}

absl::StatusOr<std::string> CgroupDirFromMountinfo(
    absl::string_view mountinfo, absl::string_view cgroup_path) {
  for (absl::string_view line :
       absl::StrSplit(mountinfo, '\n', absl::SkipEmpty())) {
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - TYPE SOURCE
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    auto dash = std::find(fields.begin(), fields.end(), "-");
    if (fields.size() < 5 || dash == fields.end() || dash + 1 == fields.end() ||
        *(dash + 1) != "cgroup2") {
      continue;
    }
    const std::string root = Unescape(fields[3]);
    const std::string mount_point = Unescape(fields[4]);
    absl::string_view rest = cgroup_path;
    if (root != "/") {
      if (!absl::ConsumePrefix(&rest, root) ||
          (!rest.empty() && rest.front() != '/')) {
        continue;  // this mount does not show our cgroup
      }
    }
    if (rest == "/") rest = "";
    return absl::StrCat(mount_point == "/" ? "" : mount_point, rest);
  }
  return absl::NotFoundError(
      "no cgroup2 file system mounted where this process's cgroup is "
      "visible (cgroup v1 only?)");
}

absl::StatusOr<CgroupTree> CgroupTree::Claim(const CgroupPaths& paths) {
  absl::StatusOr<std::string> self_cgroup = ReadText(paths.self_cgroup);
  if (!self_cgroup.ok()) return self_cgroup.status();
  std::string path;
  bool found = false;
  for (absl::string_view line :
       absl::StrSplit(*self_cgroup, '\n', absl::SkipEmpty())) {
    if (absl::ConsumePrefix(&line, "0::")) {
      path = std::string(line);
      found = true;
    }
  }
  if (!found) {
    return absl::NotFoundError(
        "this process is in no cgroup v2 (no \"0::\" line in " +
        paths.self_cgroup + ")");
  }
  absl::StatusOr<std::string> mountinfo = ReadText(paths.self_mountinfo);
  if (!mountinfo.ok()) return mountinfo.status();
  absl::StatusOr<std::string> dir = CgroupDirFromMountinfo(*mountinfo, path);
  if (!dir.ok()) return dir.status();

  const pid_t self = paths.self != 0 ? paths.self : ::getpid();
  const pid_t parent = ParentOf(paths.proc, self);
  const std::string self_comm = Comm(paths.proc, self);
  // Under the watchdog, ddv's tree starts at the watchdog (same program):
  // the log writer is its child too.
  const pid_t top = parent > 1 && !self_comm.empty() &&
                            Comm(paths.proc, parent) == self_comm
                        ? parent
                        : self;

  // A master restarted by the watchdog starts in the leaf an earlier one
  // made: the subtree is the leaf's parent.
  std::string root = *dir;
  const size_t slash = dir->rfind('/');
  if (slash != std::string::npos && slash > 0 &&
      absl::string_view(*dir).substr(slash + 1) == kSelfLeaf &&
      CheckClaimable(dir->substr(0, slash), paths, top).ok()) {
    root = dir->substr(0, slash);
  } else if (absl::Status s = CheckClaimable(root, paths, top); !s.ok()) {
    return s;
  }

  const std::string leaf = absl::StrCat(root, "/", kSelfLeaf);
  if (::mkdir(leaf.c_str(), 0755) != 0 && errno != EEXIST) {
    return ErrnoStatus(errno, "mkdir", "creating ddv's own cgroup " + leaf);
  }
  absl::StatusOr<std::string> procs = ReadText(root + "/cgroup.procs");
  if (!procs.ok()) return procs.status();
  for (pid_t pid : ReadPids(*procs)) {
    const char* call = "";
    const int error =
        WriteErrno(leaf + "/cgroup.procs", absl::StrCat(pid), &call);
    if (error != 0 && error != ESRCH) {  // ESRCH: it exited meanwhile
      return ErrnoStatus(error, call,
                         absl::StrCat("moving pid ", pid, " into ", leaf));
    }
  }

  CgroupTree tree;
  tree.root_ = root;
  absl::StatusOr<std::string> available = ReadText(root + "/cgroup.controllers");
  if (!available.ok()) return available.status();
  absl::StatusOr<std::string> enabled =
      ReadText(root + "/cgroup.subtree_control");
  if (!enabled.ok()) return enabled.status();
  std::vector<std::string> have =
      absl::StrSplit(*available, absl::ByAnyChar(" \n"), absl::SkipEmpty());
  std::vector<std::string> on =
      absl::StrSplit(*enabled, absl::ByAnyChar(" \n"), absl::SkipEmpty());
  std::vector<std::string> enable;
  std::vector<std::string> missing;
  for (absl::string_view controller : {"memory", "cpu"}) {
    const bool available_here =
        std::find(have.begin(), have.end(), controller) != have.end();
    if (!available_here) {
      missing.emplace_back(controller);
      continue;
    }
    if (std::find(on.begin(), on.end(), controller) == on.end()) {
      enable.push_back(absl::StrCat("+", controller));
    }
    (controller == "memory" ? tree.has_memory_ : tree.has_cpu_) = true;
  }
  if (!enable.empty()) {
    absl::Status status = WriteText(root + "/cgroup.subtree_control",
                                    absl::StrJoin(enable, " "));
    if (!status.ok()) return status;
  }
  if (!missing.empty()) {
    tree.missing_ = absl::StrCat(
        absl::StrJoin(missing, " and "),
        missing.size() == 1 ? " controller" : " controllers",
        " not available in ", root, " (cgroup.controllers: \"",
        absl::StripAsciiWhitespace(*available), "\")");
  }
  return tree;
}

std::string CgroupTree::SiteDir(absl::string_view site_id) const {
  return absl::StrCat(root_, "/", SiteCgroupName(site_id));
}

absl::StatusOr<std::string> CgroupTree::ConfigureSite(
    absl::string_view site_id, uint64_t memory_max,
    uint32_t cpu_weight) const {
  const std::string dir = SiteDir(site_id);
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return ErrnoStatus(errno, "mkdir",
                       absl::StrCat("creating the cgroup of site \"", site_id,
                                    "\": ", dir));
  }
  if (has_memory_) {
    absl::Status status =
        WriteText(dir + "/memory.max",
                  memory_max == 0 ? "max" : absl::StrCat(memory_max));
    if (!status.ok()) return status;
  }
  if (has_cpu_) {
    absl::Status status = WriteText(
        dir + "/cpu.weight", absl::StrCat(cpu_weight == 0 ? 100 : cpu_weight));
    if (!status.ok()) return status;
  }
  return dir;
}

absl::Status CgroupTree::RemoveSite(absl::string_view site_id) const {
  const std::string dir = SiteDir(site_id);
  if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return absl::OkStatus();
  if (errno == EBUSY) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir, " still holds processes"));
  }
  return ErrnoStatus(errno, "rmdir",
                     absl::StrCat("removing the cgroup of site \"", site_id,
                                  "\""));
}

CgroupUsage CgroupTree::SiteUsage(absl::string_view site_id) const {
  const std::string dir = SiteDir(site_id);
  CgroupUsage usage;
  usage.memory_current = ReadNumber(dir + "/memory.current");
  usage.memory_max = ReadNumber(dir + "/memory.max");  // "max": unset
  usage.cpu_weight = ReadNumber(dir + "/cpu.weight");
  if (absl::StatusOr<std::string> stat = ReadText(dir + "/cpu.stat");
      stat.ok()) {
    for (absl::string_view line :
         absl::StrSplit(*stat, '\n', absl::SkipEmpty())) {
      uint64_t value;
      if (absl::ConsumePrefix(&line, "usage_usec ") &&
          absl::SimpleAtoi(line, &value)) {
        usage.cpu_usage_usec = value;
      }
    }
  }
  if (absl::StatusOr<std::string> procs = ReadText(dir + "/cgroup.procs");
      procs.ok()) {
    usage.processes = ReadPids(*procs).size();
  }
  return usage;
}

}  // namespace ddv::supervise
