// Who may use the control socket: the rule (MayControl), what the kernel
// reports about a peer (ReadPeerCredentials) and the socket file's mode
// and group (SetControlSocketAccess).
#include "src/control/control_access.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "src/base/unique_fd.h"

namespace ddv {
namespace control {
namespace {

using ::testing::HasSubstr;
using ::testing::UnorderedElementsAreArray;

PeerCredentials Peer(uid_t uid, gid_t gid, std::vector<gid_t> groups = {}) {
  PeerCredentials peer;
  peer.pid = 1234;
  peer.uid = uid;
  peer.gid = gid;
  peer.groups = std::move(groups);
  return peer;
}

TEST(MayControlTest, RootAndTheOwnerAlways) {
  const ControlAccess access{/*owner_uid=*/1000, /*group=*/std::nullopt};
  EXPECT_TRUE(MayControl(Peer(0, 0), access));
  EXPECT_TRUE(MayControl(Peer(1000, 1000), access));
  EXPECT_FALSE(MayControl(Peer(1001, 1000), access)) << "same gid is not enough";
  EXPECT_FALSE(MayControl(Peer(65534, 65534), access));
}

TEST(MayControlTest, MembersOfTheControlGroupPrimaryOrSupplementary) {
  const ControlAccess access{/*owner_uid=*/0, /*group=*/gid_t{50}};
  EXPECT_TRUE(MayControl(Peer(1001, 50), access));
  EXPECT_TRUE(MayControl(Peer(1001, 100, {4, 50, 27}), access));
  EXPECT_FALSE(MayControl(Peer(1001, 100, {4, 27}), access));
  EXPECT_FALSE(MayControl(Peer(65534, 65534), access));
  // Without a control group, group 50 means nothing.
  EXPECT_FALSE(
      MayControl(Peer(1001, 50, {50}), ControlAccess{0, std::nullopt}));
}

TEST(ReadPeerCredentialsTest, ReportsThePeerAsTheKernelRecordedIt) {
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  UniqueFd a(fds[0]), b(fds[1]);
  absl::StatusOr<PeerCredentials> peer = ReadPeerCredentials(a.get());
  ASSERT_TRUE(peer.ok()) << peer.status();
  EXPECT_EQ(peer->pid, getpid());
  EXPECT_EQ(peer->uid, geteuid());
  EXPECT_EQ(peer->gid, getegid());
  std::vector<gid_t> groups(getgroups(0, nullptr));
  ASSERT_EQ(getgroups(groups.size(), groups.data()),
            static_cast<int>(groups.size()));
  EXPECT_THAT(peer->groups, UnorderedElementsAreArray(groups));
}

TEST(ReadPeerCredentialsTest, NotASocketIsAnError) {
  UniqueFd file(open("/dev/null", O_RDONLY | O_CLOEXEC));
  absl::StatusOr<PeerCredentials> peer = ReadPeerCredentials(file.get());
  EXPECT_FALSE(peer.ok());
  EXPECT_THAT(peer.status().message(), HasSubstr("SO_PEERCRED"));
}

TEST(SetControlSocketAccessTest, SetsModeAndGroup) {
  char dir[] = "/tmp/ddv-access-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/control.sock";
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, path.c_str());
  ASSERT_EQ(bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)),
            0);
  for (mode_t mode : {mode_t{0600}, mode_t{0660}, mode_t{0666}}) {
    ASSERT_TRUE(SetControlSocketAccess(path, mode, getegid()).ok());
    struct stat st;
    ASSERT_EQ(stat(path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, mode);
    EXPECT_EQ(st.st_gid, getegid());
  }
  absl::Status missing =
      SetControlSocketAccess(std::string(dir) + "/absent.sock", 0600, getegid());
  EXPECT_FALSE(missing.ok());
  EXPECT_THAT(missing.message(), HasSubstr("chown() failed while giving"));
  unlink(path.c_str());
  rmdir(dir);
}

}  // namespace
}  // namespace control
}  // namespace ddv
