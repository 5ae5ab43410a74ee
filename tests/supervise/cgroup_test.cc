// CgroupTree against a fake tree (plain files standing in for /proc and a
// cgroup2 mount): what it claims, refuses, moves and writes. The real
// kernel is in cgroup_real_test.cc and tests/master/isolation_e2e_test.py.
#include "src/supervise/cgroup.h"

#include <sys/stat.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/supervise/test_util.h"

namespace ddv::supervise {
namespace {

using ::testing::HasSubstr;
using testing::ReadFile;
using testing::WriteFile;

TEST(CgroupDirFromMountinfoTest, FindsTheCgroup2Mount) {
  // systemd's unified layout, and this VM's hybrid one (v1 controllers,
  // cgroup2 at .../unified).
  const std::string unified =
      "22 1 0:21 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n";
  EXPECT_EQ(*CgroupDirFromMountinfo(unified, "/system.slice/ddv.service"),
            "/sys/fs/cgroup/system.slice/ddv.service");
  EXPECT_EQ(*CgroupDirFromMountinfo(unified, "/"), "/sys/fs/cgroup");
  const std::string hybrid =
      "30 25 0:26 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
      "31 25 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
  EXPECT_EQ(*CgroupDirFromMountinfo(hybrid, "/x"), "/sys/fs/cgroup/unified/x");
  // Optional fields before the separator, and an escaped space.
  const std::string escaped =
      "40 1 0:30 / /mnt/c\\040g rw shared:5 master:1 - cgroup2 none rw\n";
  EXPECT_EQ(*CgroupDirFromMountinfo(escaped, "/a"), "/mnt/c g/a");
}

TEST(CgroupDirFromMountinfoTest, MapsAMountOfASubtree) {
  // A container's view: the mount shows /docker/abc, our cgroup is below.
  const std::string sub =
      "50 1 0:40 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
  EXPECT_EQ(*CgroupDirFromMountinfo(sub, "/docker/abc/app"),
            "/sys/fs/cgroup/app");
  EXPECT_EQ(*CgroupDirFromMountinfo(sub, "/docker/abc"), "/sys/fs/cgroup");
  EXPECT_FALSE(CgroupDirFromMountinfo(sub, "/docker/abcd").ok());
  EXPECT_FALSE(CgroupDirFromMountinfo(sub, "/other").ok());
}

TEST(CgroupDirFromMountinfoTest, NoCgroup2IsNotFound) {
  absl::StatusOr<std::string> dir = CgroupDirFromMountinfo(
      "30 25 0:26 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
      "/");
  EXPECT_EQ(dir.status().code(), absl::StatusCode::kNotFound);
}

// A fake machine: <tmp>/cg is the cgroup2 mount, <tmp>/proc the process
// table, and ddv runs in /svc: watchdog 100, its log writer 101 and the
// master 102 (this "process").
class FakeCgroupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tmp_ = testing::MakeTempDir();
    mount_ = tmp_ + "/cg";
    svc_ = mount_ + "/svc";
    MakeDir(mount_);
    MakeDir(svc_);
    WriteFile(tmp_ + "/mountinfo",
              absl::StrCat("31 25 0:27 / ", mount_,
                           " rw - cgroup2 cgroup2 rw\n"));
    WriteFile(tmp_ + "/self_cgroup", "0::/svc\n");
    MakeCgroup(svc_, "100\n101\n102\n");
    WriteFile(svc_ + "/cgroup.controllers", "cpuset cpu io memory pids\n");
    MakeProcess(100, 1, "ddv_master");
    MakeProcess(101, 100, "ddv_master");
    MakeProcess(102, 100, "ddv_master");
    paths_.self_cgroup = tmp_ + "/self_cgroup";
    paths_.self_mountinfo = tmp_ + "/mountinfo";
    paths_.proc = tmp_ + "/proc";
    paths_.self = 102;
  }

  static void MakeDir(const std::string& dir) {
    ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0) << dir;
  }
  // What the kernel makes with every cgroup: its interface files.
  static void MakeCgroup(const std::string& dir, const std::string& procs) {
    ::mkdir(dir.c_str(), 0755);
    WriteFile(dir + "/cgroup.procs", procs);
    WriteFile(dir + "/cgroup.events", "populated 1\n");
    WriteFile(dir + "/cgroup.subtree_control", "");
    WriteFile(dir + "/memory.max", "max\n");
    WriteFile(dir + "/cpu.weight", "100\n");
  }
  void MakeProcess(int pid, int ppid, const std::string& comm) {
    const std::string dir = absl::StrCat(tmp_, "/proc/", pid);
    ::mkdir((tmp_ + "/proc").c_str(), 0755);
    ::mkdir(dir.c_str(), 0755);  // again: the process is replaced
    WriteFile(dir + "/stat", absl::StrCat(pid, " (", comm, ") S ", ppid,
                                          " 1 1 0 -1 4194560 100 0 0 0\n"));
    WriteFile(dir + "/comm", comm + "\n");
  }

  std::string tmp_, mount_, svc_;
  CgroupPaths paths_;
};

TEST_F(FakeCgroupTest, ClaimsMovesItsProcessesIntoTheLeafAndEnables) {
  MakeCgroup(svc_ + "/ddv", "");
  absl::StatusOr<CgroupTree> tree = CgroupTree::Claim(paths_);
  ASSERT_TRUE(tree.ok()) << tree.status();
  EXPECT_EQ(tree->root(), svc_);
  EXPECT_TRUE(tree->has_memory());
  EXPECT_TRUE(tree->has_cpu());
  EXPECT_EQ(tree->missing_controllers(), "");
  // Each pid written to the leaf, one write each (a plain file keeps the
  // last); then the controllers for the children, in one write.
  EXPECT_EQ(ReadFile(svc_ + "/ddv/cgroup.procs"), "102");
  EXPECT_EQ(ReadFile(svc_ + "/cgroup.subtree_control"), "+memory +cpu");
}

TEST_F(FakeCgroupTest, WritesEachSitesMemoryMaxAndCpuWeight) {
  MakeCgroup(svc_ + "/ddv", "");
  absl::StatusOr<CgroupTree> tree = CgroupTree::Claim(paths_);
  ASSERT_TRUE(tree.ok()) << tree.status();
  MakeCgroup(svc_ + "/site-a", "");
  absl::StatusOr<std::string> dir =
      tree->ConfigureSite("a", uint64_t{512} << 20, 200);
  ASSERT_TRUE(dir.ok()) << dir.status();
  EXPECT_EQ(*dir, svc_ + "/site-a");
  EXPECT_EQ(ReadFile(*dir + "/memory.max"), "536870912");
  EXPECT_EQ(ReadFile(*dir + "/cpu.weight"), "200");
  // A reload that drops them lifts them.
  ASSERT_TRUE(tree->ConfigureSite("a", 0, 0).ok());
  EXPECT_EQ(ReadFile(*dir + "/memory.max"), "max");
  EXPECT_EQ(ReadFile(*dir + "/cpu.weight"), "100");

  WriteFile(*dir + "/memory.current", "1234567\n");
  WriteFile(*dir + "/cpu.stat", "usage_usec 5000\nuser_usec 4000\n");
  WriteFile(*dir + "/cgroup.procs", "7\n8\n");
  const CgroupUsage usage = tree->SiteUsage("a");
  EXPECT_EQ(usage.memory_current, 1234567u);
  EXPECT_EQ(usage.memory_max, std::nullopt);  // "max"
  EXPECT_EQ(usage.cpu_usage_usec, 5000u);
  EXPECT_EQ(usage.cpu_weight, 100u);
  EXPECT_EQ(usage.processes, 2u);
}

TEST_F(FakeCgroupTest, MissingControllersAreSaidAndSkipped) {
  WriteFile(svc_ + "/cgroup.controllers", "cpu pids\n");
  MakeCgroup(svc_ + "/ddv", "");
  absl::StatusOr<CgroupTree> tree = CgroupTree::Claim(paths_);
  ASSERT_TRUE(tree.ok()) << tree.status();
  EXPECT_FALSE(tree->has_memory());
  EXPECT_TRUE(tree->has_cpu());
  EXPECT_EQ(tree->missing_controllers(),
            absl::StrCat("memory controller not available in ", svc_,
                         " (cgroup.controllers: \"cpu pids\")"));
  EXPECT_EQ(ReadFile(svc_ + "/cgroup.subtree_control"), "+cpu");
  MakeCgroup(svc_ + "/site-a", "");
  ASSERT_TRUE(tree->ConfigureSite("a", uint64_t{64} << 20, 50).ok());
  EXPECT_EQ(ReadFile(svc_ + "/site-a/memory.max"), "max\n");  // untouched
  EXPECT_EQ(ReadFile(svc_ + "/site-a/cpu.weight"), "50");
}

TEST_F(FakeCgroupTest, AMasterRestartedInTheLeafClaimsItsParent) {
  WriteFile(tmp_ + "/self_cgroup", "0::/svc/ddv\n");
  MakeCgroup(svc_ + "/ddv", "100\n101\n102\n");
  WriteFile(svc_ + "/cgroup.procs", "");
  WriteFile(svc_ + "/cgroup.subtree_control", "memory cpu\n");
  absl::StatusOr<CgroupTree> tree = CgroupTree::Claim(paths_);
  ASSERT_TRUE(tree.ok()) << tree.status();
  EXPECT_EQ(tree->root(), svc_);
  // Already enabled: nothing written.
  EXPECT_EQ(ReadFile(svc_ + "/cgroup.subtree_control"), "memory cpu\n");
}

TEST_F(FakeCgroupTest, RefusesACgroupSharedWithAnotherProgram) {
  WriteFile(svc_ + "/cgroup.procs", "100\n101\n102\n200\n");
  MakeProcess(200, 1, "bash");
  absl::StatusOr<CgroupTree> tree = CgroupTree::Claim(paths_);
  ASSERT_FALSE(tree.ok());
  EXPECT_EQ(tree.status().message(),
            absl::StrCat(svc_,
                         " also holds pid 200 (bash), which is not ddv's: "
                         "ddv takes over only a cgroup of its own"));
  // Nothing moved, nothing enabled.
  EXPECT_EQ(ReadFile(svc_ + "/cgroup.subtree_control"), "");
}

TEST_F(FakeCgroupTest, AMasterAloneIsItsOwnTop) {
  // Started by a shell (another program): only the master itself counts,
  // and the shell sharing its cgroup keeps it from being claimed.
  MakeProcess(100, 1, "bash");
  MakeProcess(102, 100, "ddv_master");
  WriteFile(svc_ + "/cgroup.procs", "102\n");
  MakeCgroup(svc_ + "/ddv", "");
  ASSERT_TRUE(CgroupTree::Claim(paths_).ok());
  WriteFile(svc_ + "/cgroup.procs", "100\n102\n");
  EXPECT_THAT(CgroupTree::Claim(paths_).status().message(),
              HasSubstr("also holds pid 100 (bash)"));
}

TEST_F(FakeCgroupTest, RefusesTheHierarchysRoot) {
  WriteFile(tmp_ + "/self_cgroup", "0::/\n");
  absl::StatusOr<CgroupTree> tree = CgroupTree::Claim(paths_);
  ASSERT_FALSE(tree.ok());
  EXPECT_EQ(tree.status().message(),
            absl::StrCat(mount_,
                         " is the root of the cgroup hierarchy, not a cgroup "
                         "delegated to ddv"));
}

TEST_F(FakeCgroupTest, CgroupV1OnlyIsNotFound) {
  WriteFile(tmp_ + "/self_cgroup", "4:memory:/x\n1:cpu:/\n");
  EXPECT_EQ(CgroupTree::Claim(paths_).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace ddv::supervise
