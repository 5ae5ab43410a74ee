// The last good config snapshot: where it lives, and that writing it is
// all or nothing, private, and leaves no temporary file behind.
#include "src/config/config_snapshot.h"

#include <dirent.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace ddv {
namespace config {
namespace {

std::string TempDir() {
  std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/snapXXXXXX";
  std::vector<char> name(dir.begin(), dir.end());
  name.push_back('\0');
  return mkdtemp(name.data());
}

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

std::vector<std::string> Entries(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = opendir(dir.c_str());
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  closedir(d);
  return names;
}

TEST(ConfigSnapshotTest, LivesNextToTheControlSocketNamedAfterIt) {
  EXPECT_EQ(SnapshotPathFor("/run/ddv/control.sock"),
            "/run/ddv/control.last-good.toml");
  EXPECT_EQ(SnapshotPathFor("/run/ddv/site-b.sock"),
            "/run/ddv/site-b.last-good.toml");
  EXPECT_EQ(SnapshotPathFor("/run/ddv.d/control"),
            "/run/ddv.d/control.last-good.toml");
  EXPECT_EQ(SnapshotPathFor("/run/ddv/.hidden"),
            "/run/ddv/.hidden.last-good.toml");
  EXPECT_EQ(SnapshotPathFor("control.sock"), "control.last-good.toml");
  EXPECT_EQ(SnapshotPathFor(""), "");
}

TEST(ConfigSnapshotTest, WritesTheExactTextPrivatelyAndReplacesTheOldOne) {
  const std::string dir = TempDir();
  const std::string path = dir + "/control.last-good.toml";
  ASSERT_TRUE(WriteConfigSnapshot(path, "[master]\n# one\n").ok());
  EXPECT_EQ(Read(path), "[master]\n# one\n");
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  const std::string bigger(100000, 'x');
  ASSERT_TRUE(WriteConfigSnapshot(path, bigger).ok());
  EXPECT_EQ(Read(path), bigger);
  ASSERT_TRUE(WriteConfigSnapshot(path, "").ok());
  EXPECT_EQ(Read(path), "");
  EXPECT_EQ(Entries(dir), std::vector<std::string>{"control.last-good.toml"})
      << "no temporary file left";
}

TEST(ConfigSnapshotTest, AMissingDirectoryIsAnErrorNamingTheCall) {
  const std::string path = TempDir() + "/gone/control.last-good.toml";
  absl::Status status = WriteConfigSnapshot(path, "x");
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("mkostemp() failed while saving the last "
                                  "good config \"" + path + "\""),
            absl::string_view::npos)
      << status;
}

}  // namespace
}  // namespace config
}  // namespace ddv
