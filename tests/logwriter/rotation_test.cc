// Rotation: the write plan keeps files within log_max_bytes at line
// boundaries, and the renames shift FILE, FILE.1, ... without overwriting a
// file still to be moved.
#include "src/logwriter/rotation.h"

#include <fstream>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/supervise/test_util.h"

namespace ddv {
namespace logwriter {
namespace {

using ::ddv::supervise::testing::MakeTempDir;
using ::ddv::supervise::testing::ReadFile;
using ::ddv::supervise::testing::WriteFile;
using ::testing::ElementsAre;
using ::testing::Pair;

TEST(PlanWriteTest, NoPolicyWritesEverything) {
  WritePlan plan = PlanWrite("a\nb\n", 1 << 30, RotationPolicy{});
  EXPECT_FALSE(plan.rotate_first);
  EXPECT_EQ(plan.bytes, 4u);
}

TEST(PlanWriteTest, WritesWhatFitsUpToALineEnd) {
  const RotationPolicy policy{10, 3};
  // 6 + "ab\n" (3) fits, "cd\n" would make 12.
  WritePlan plan = PlanWrite("ab\ncd\n", 6, policy);
  EXPECT_FALSE(plan.rotate_first);
  EXPECT_EQ(plan.bytes, 3u);
  // Exactly at the limit is still within it.
  plan = PlanWrite("abc\n", 6, policy);
  EXPECT_EQ(plan.bytes, 4u);
}

TEST(PlanWriteTest, RotatesWhenNotOneLineFits) {
  const RotationPolicy policy{10, 3};
  EXPECT_TRUE(PlanWrite("abcdef\n", 6, policy).rotate_first);
  EXPECT_TRUE(PlanWrite("a\n", 10, policy).rotate_first);
  EXPECT_TRUE(PlanWrite("a\n", 25, policy).rotate_first);  // over already
}

TEST(PlanWriteTest, AnOverlongLineGoesAloneIntoAnEmptyFile) {
  const RotationPolicy policy{4, 1};
  WritePlan plan = PlanWrite("abcdefgh\nij\n", 0, policy);
  EXPECT_FALSE(plan.rotate_first);
  EXPECT_EQ(plan.bytes, 9u);
}

TEST(PlanWriteTest, NothingQueuedNothingToDo) {
  WritePlan plan = PlanWrite("", 100, RotationPolicy{10, 1});
  EXPECT_FALSE(plan.rotate_first);
  EXPECT_EQ(plan.bytes, 0u);
}

TEST(RotationRenamesTest, OldestFirst) {
  EXPECT_THAT(RotationRenames("/l/a.log", 3),
              ElementsAre(Pair("/l/a.log.2", "/l/a.log.3"),
                          Pair("/l/a.log.1", "/l/a.log.2"),
                          Pair("/l/a.log", "/l/a.log.1")));
  EXPECT_THAT(RotationRenames("/l/a.log", 1),
              ElementsAre(Pair("/l/a.log", "/l/a.log.1")));
  EXPECT_TRUE(RotationRenames("/l/a.log", 0).empty());
}

TEST(RotateFilesTest, ShiftsAndDropsTheOldest) {
  const std::string dir = MakeTempDir();
  const std::string log = dir + "/a.log";
  WriteFile(log, "current\n");
  WriteFile(log + ".1", "one\n");
  WriteFile(log + ".2", "two (dropped)\n");
  ASSERT_TRUE(RotateFiles(log, 2).ok());
  EXPECT_FALSE(std::ifstream(log).good());
  EXPECT_EQ(ReadFile(log + ".1"), "current\n");
  EXPECT_EQ(ReadFile(log + ".2"), "one\n");
  EXPECT_FALSE(std::ifstream(log + ".3").good());
}

TEST(RotateFilesTest, MissingOlderFilesAreFine) {
  const std::string dir = MakeTempDir();
  const std::string log = dir + "/a.log";
  WriteFile(log, "current\n");
  ASSERT_TRUE(RotateFiles(log, 5).ok());
  EXPECT_EQ(ReadFile(log + ".1"), "current\n");
}

TEST(RotateFilesTest, KeepZeroRemovesTheFile) {
  const std::string dir = MakeTempDir();
  const std::string log = dir + "/a.log";
  WriteFile(log, "current\n");
  ASSERT_TRUE(RotateFiles(log, 0).ok());
  EXPECT_FALSE(std::ifstream(log).good());
  EXPECT_FALSE(std::ifstream(log + ".1").good());
}

TEST(RotateFilesTest, AFailedRenameNamesTheCall) {
  absl::Status status = RotateFiles("/nonexistent-dir/x/a.log", 1);
  EXPECT_TRUE(status.ok()) << "a missing file is not an error: " << status;
  const std::string dir = MakeTempDir();
  // A directory in the way of the rename target.
  const std::string log = dir + "/a.log";
  WriteFile(log, "x\n");
  ASSERT_EQ(mkdir((log + ".1").c_str(), 0755), 0);
  WriteFile(log + ".1/keep", "");
  status = RotateFiles(log, 1);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()),
              ::testing::HasSubstr("rename() failed while rotating log"));
}

}  // namespace
}  // namespace logwriter
}  // namespace ddv
