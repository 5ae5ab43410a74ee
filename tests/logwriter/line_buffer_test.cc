// LineBuffer: whole lines out in order, tails kept across reads, over-long
// lines cut at the capacity, a partial last line ended at EOF.
#include "src/logwriter/line_buffer.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "gtest/gtest.h"

namespace ddv {
namespace logwriter {
namespace {

// Feeds `bytes` as one read (it must fit the free space).
size_t Feed(LineBuffer& buffer, const std::string& bytes, std::string* out) {
  EXPECT_LE(bytes.size(), buffer.space_size());
  std::memcpy(buffer.space(), bytes.data(), bytes.size());
  return buffer.Commit(bytes.size(), out);
}

TEST(LineBufferTest, PassesWholeLinesAndKeepsTheTail) {
  LineBuffer buffer(64);
  std::string out;
  EXPECT_EQ(Feed(buffer, "one\ntwo\nthr", &out), 8u);
  EXPECT_EQ(out, "one\ntwo\n");
  EXPECT_EQ(buffer.pending(), 3u);
  EXPECT_EQ(Feed(buffer, "ee\nfo", &out), 6u);
  EXPECT_EQ(out, "one\ntwo\nthree\n");
  EXPECT_EQ(buffer.pending(), 2u);
}

TEST(LineBufferTest, ALineSplitOverManyReadsComesOutOnce) {
  LineBuffer buffer(64);
  std::string out;
  for (char c : std::string("hello world")) {
    EXPECT_EQ(Feed(buffer, std::string(1, c), &out), 0u);
  }
  EXPECT_EQ(out, "");
  Feed(buffer, "\n", &out);
  EXPECT_EQ(out, "hello world\n");
  EXPECT_EQ(buffer.pending(), 0u);
}

TEST(LineBufferTest, FlushEndsAPartialLastLine) {
  LineBuffer buffer(64);
  std::string out;
  Feed(buffer, "done\nno newline", &out);
  EXPECT_EQ(buffer.Flush(&out), 11u);
  EXPECT_EQ(out, "done\nno newline\n");
  EXPECT_EQ(buffer.Flush(&out), 0u);  // nothing left: nothing added
  EXPECT_EQ(out, "done\nno newline\n");
}

TEST(LineBufferTest, CutsALineLongerThanTheCapacity) {
  LineBuffer buffer(8);
  std::string out;
  Feed(buffer, "abcdefgh", &out);  // full, no newline
  EXPECT_EQ(out, "abcdefgh\n");
  EXPECT_EQ(buffer.lines_cut(), 1u);
  EXPECT_EQ(buffer.space_size(), 8u);  // room again: the pipe keeps flowing
  Feed(buffer, "ij\n", &out);
  EXPECT_EQ(out, "abcdefgh\nij\n");
}

TEST(LineBufferTest, GrowsForALongLineUpToTheCapacity) {
  LineBuffer buffer(64, 8);
  std::string out;
  EXPECT_EQ(buffer.space_size(), 8u);
  Feed(buffer, "abcdefgh", &out);  // fills the first 8: grow, keep it
  EXPECT_EQ(out, "");
  EXPECT_EQ(buffer.space_size(), 8u);  // 16 now, 8 used
  Feed(buffer, "ijklmnop", &out);
  Feed(buffer, "qr\n", &out);
  EXPECT_EQ(out, "abcdefghijklmnopqr\n");
  EXPECT_EQ(buffer.lines_cut(), 0u);
  // At the capacity it cuts.
  std::string line(64, 'x');
  for (size_t i = 0; i < line.size();) {
    const size_t n = std::min(buffer.space_size(), line.size() - i);
    Feed(buffer, line.substr(i, n), &out);
    i += n;
  }
  EXPECT_EQ(buffer.lines_cut(), 1u);
}

TEST(LineBufferTest, NeverOffersAFullBuffer) {
  LineBuffer buffer(4);
  std::string out;
  Feed(buffer, "a\nbc", &out);
  EXPECT_EQ(out, "a\n");
  EXPECT_EQ(buffer.space_size(), 2u);
  Feed(buffer, "de", &out);  // "bcde" fills it: cut
  EXPECT_EQ(out, "a\nbcde\n");
  EXPECT_GT(buffer.space_size(), 0u);
}

TEST(LineBufferTest, ManyLinesInOneReadKeepTheirOrder) {
  LineBuffer buffer(4096);
  std::string in, out;
  for (int i = 0; i < 100; ++i) in += "line " + std::to_string(i) + "\n";
  Feed(buffer, in, &out);
  EXPECT_EQ(out, in);
}

}  // namespace
}  // namespace logwriter
}  // namespace ddv
