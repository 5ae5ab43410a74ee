// CgroupTree: the cgroup v2 subtree ddv manages when it was given one
// (systemd's Delegate=yes), with one cgroup per site for its memory.max and
// cpu.weight. docs/isolation.md has the design; in short:
//
//   <root>              the cgroup ddv started in: delegated, ddv's alone
//   ├── ddv             the watchdog, the log writer and the master
//   ├── site-a          site a's workers (memory.max, cpu.weight)
//   └── site-b
//
// cgroup v2 lets a cgroup hand controllers to its children only while it
// holds no process itself ("no internal processes"), so ddv's own
// processes move into the leaf `ddv` before the controllers are enabled.
// Workers join their site's cgroup between fork and exec (ProcessSpec::
// cgroup), so nothing they do is charged elsewhere.
//
// The subtree is used only when ddv can write it and nothing but ddv runs
// in it: the root of the hierarchy, a cgroup shared with a shell or a test
// runner, or a read-only /sys/fs/cgroup (systemd's ProtectControlGroups=)
// are left alone, and the master says once why it runs without.
#ifndef DDV_SRC_SUPERVISE_CGROUP_H_
#define DDV_SRC_SUPERVISE_CGROUP_H_

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ddv::supervise {

// Where the kernel's views are; tests point these at a fake tree.
struct CgroupPaths {
  std::string self_cgroup = "/proc/self/cgroup";
  std::string self_mountinfo = "/proc/self/mountinfo";
  std::string proc = "/proc";  // for <proc>/PID/stat of the cgroup's processes
  pid_t self = 0;              // 0: getpid()
};

// The name of ddv's own leaf, and of a site's cgroup.
inline constexpr absl::string_view kSelfLeaf = "ddv";
std::string SiteCgroupName(absl::string_view site_id);  // "site-<id>"

// What `ddvctl status` shows of a site's cgroup; unset when unreadable
// (a controller that is not enabled has no files).
struct CgroupUsage {
  std::optional<uint64_t> memory_current;  // bytes, memory.current
  std::optional<uint64_t> memory_max;      // bytes; unset for "max"
  std::optional<uint64_t> cpu_usage_usec;  // cpu.stat usage_usec
  std::optional<uint64_t> cpu_weight;      // cpu.weight
  uint64_t processes = 0;                  // lines of cgroup.procs
};

class CgroupTree {
 public:
  // Finds the cgroup this process is in (/proc/self/cgroup's "0::" line,
  // through the cgroup2 mount in mountinfo) and claims it when it may:
  //   - it is not the hierarchy's root (which has no cgroup.events);
  //   - this process can write the directory, cgroup.procs and
  //     cgroup.subtree_control;
  //   - every process in it descends from ddv's top process: the parent
  //     when it runs the same program (the watchdog), else this process.
  // A master restarted inside the leaf `ddv` claims the leaf's parent.
  // Claiming moves every process of the root into the leaf and enables
  // the memory and cpu controllers it has for the children. Any failure is
  // a Status saying why the subtree cannot be used; nothing is undone (a
  // process moved into the leaf stays there, which is harmless).
  static absl::StatusOr<CgroupTree> Claim(const CgroupPaths& paths = {});

  // The claimed cgroup's directory, e.g.
  // "/sys/fs/cgroup/system.slice/ddv.service".
  const std::string& root() const { return root_; }
  // Controllers enabled for the children: a site's memory_max needs
  // memory, cpu_weight needs cpu. Missing ones are listed by WhyNot.
  bool has_memory() const { return has_memory_; }
  bool has_cpu() const { return has_cpu_; }
  // "memory controller not available in <root> (cgroup.controllers: ...)",
  // or "" when both are there.
  const std::string& missing_controllers() const { return missing_; }

  // <root>/site-<id>.
  std::string SiteDir(absl::string_view site_id) const;
  // Creates the site's cgroup if it is not there, and writes memory.max
  // and cpu.weight: the given values, or "max" and 100 for 0 (so a reload
  // that drops a limit lifts it). A value whose controller is missing is
  // skipped. Returns the directory.
  absl::StatusOr<std::string> ConfigureSite(absl::string_view site_id,
                                            uint64_t memory_max,
                                            uint32_t cpu_weight) const;
  // rmdir of the site's cgroup; FailedPrecondition while processes remain
  // in it (EBUSY), OK when it is already gone.
  absl::Status RemoveSite(absl::string_view site_id) const;
  CgroupUsage SiteUsage(absl::string_view site_id) const;

 private:
  CgroupTree() = default;

  std::string root_;
  bool has_memory_ = false;
  bool has_cpu_ = false;
  std::string missing_;
};

// Exposed for tests: "/sys/fs/cgroup" of the first cgroup2 mount in a
// mountinfo text whose root covers `cgroup_path`, joined with the rest of
// the path ("/system.slice/ddv.service"). NotFound without one.
absl::StatusOr<std::string> CgroupDirFromMountinfo(
    absl::string_view mountinfo, absl::string_view cgroup_path);

}  // namespace ddv::supervise

#endif  // DDV_SRC_SUPERVISE_CGROUP_H_
