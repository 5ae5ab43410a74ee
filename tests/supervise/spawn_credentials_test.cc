// Spawn switching to `nobody`: uid, gid and groups change, the parent-death
// signal survives the switch. Needs real root, so this target runs outside
// Bazel's sandbox (whose user namespace forbids setgroups).
#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "gtest/gtest.h"
#include "src/supervise/spawn.h"
#include "tests/supervise/test_util.h"

namespace ddv::supervise {
namespace {

using testing::ReadFile;
using testing::RunToExit;
using testing::Shell;

// Whether this process may drop to nobody: root, and not in a user
// namespace that denies setgroups. Tried in a throwaway child.
bool CanSwitchUsers() {
  if (::geteuid() != 0) return false;
  const pid_t pid = ::fork();
  if (pid == 0) {
    const gid_t group = 65534;
    ::_exit(::setgroups(1, &group) == 0 && ::setgid(65534) == 0 &&
                    ::setuid(65534) == 0
                ? 0
                : 1);
  }
  int status = 0;
  return pid > 0 && ::waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
         WEXITSTATUS(status) == 0;
}

class AsNobodyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!CanSwitchUsers()) {
      GTEST_SKIP() << "cannot switch users here (needs root outside a user "
                      "namespace)";
    }
    probe_ = testing::WorldProbePath();
    dir_ = testing::MakeTempDir();
  }
  void TearDown() override {
    if (probe_.empty()) return;
    ::unlink(probe_.c_str());
    ::rmdir(probe_.substr(0, probe_.rfind('/')).c_str());
  }
  std::string probe_, dir_;
};

TEST_F(AsNobodyTest, UserSwitchesUidGidGroupsAndKeepsPdeathsig) {
  ProcessSpec spec;
  spec.name = "t#3";
  spec.argv = {probe_, "ids", "pdeathsig"};
  spec.user = "nobody";
  spec.stdout_path = dir_ + "/out";
  EXPECT_EQ(RunToExit(spec).code, 0);
  // Debian: nobody is 65534 in group nogroup 65534. PDEATHSIG was set after
  // setuid, which would have cleared it.
  EXPECT_EQ(ReadFile(spec.stdout_path),
            "uid 65534 gid 65534 groups 65534\npdeathsig 15\n");
}

TEST_F(AsNobodyTest, ShellIdAndEnvironmentNameTheUser) {
  ProcessSpec spec = Shell("id -u; id -g; echo \"$USER $HOME\"");
  spec.user = "nobody";
  spec.stdout_path = dir_ + "/out";
  EXPECT_EQ(RunToExit(spec).code, 0);
  EXPECT_EQ(ReadFile(spec.stdout_path), "65534\n65534\nnobody /nonexistent\n");
}

TEST_F(AsNobodyTest, GroupAloneChangesOnlyTheGroup) {
  ProcessSpec spec;
  spec.name = "t#4";
  spec.argv = {probe_, "ids"};
  spec.group = "nogroup";
  spec.stdout_path = dir_ + "/out";
  EXPECT_EQ(RunToExit(spec).code, 0);
  EXPECT_EQ(ReadFile(spec.stdout_path), "uid 0 gid 65534 groups 65534\n");
}

// The kernel's view of a worker run as nobody by a root parent that has
// supplementary groups of its own: setgroups, setgid, setuid in that order
// leave none of the parent's groups (Groups: nobody's only), every uid and
// gid the same (no saved root id to go back to), and no_new_privs set.
TEST_F(AsNobodyTest, ParentsGroupsDoNotLeakAndNoNewPrivsHolds) {
  gid_t saved[64];
  const int saved_count = ::getgroups(64, saved);
  ASSERT_GE(saved_count, 0);
  const gid_t parent_groups[] = {0, 4, 27};  // root, adm, sudo
  ASSERT_EQ(::setgroups(3, parent_groups), 0);

  ProcessSpec spec;
  spec.name = "t#7";
  spec.argv = {probe_, "status"};
  spec.user = "nobody";
  spec.no_new_privs = true;
  spec.stdout_path = dir_ + "/out";
  const ExitStatus status = RunToExit(spec);
  ::setgroups(saved_count, saved);
  EXPECT_EQ(status.code, 0);
  EXPECT_EQ(ReadFile(spec.stdout_path),
            "Uid:\t65534\t65534\t65534\t65534\n"
            "Gid:\t65534\t65534\t65534\t65534\n"
            "Groups:\t65534 \n"
            "NoNewPrivs:\t1\n");
}

}  // namespace
}  // namespace ddv::supervise
