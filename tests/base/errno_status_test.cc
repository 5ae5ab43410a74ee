// ErrnoStatus names the call, the activity and the errno, with a matching code.
#include "src/base/errno_status.h"

#include <cerrno>

#include "gtest/gtest.h"

namespace ddv {
namespace {

TEST(ErrnoStatusTest, NamesCallActivityAndErrno) {
  absl::Status s = ErrnoStatus(EADDRINUSE, "bind", "binding \"http\"");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("bind() failed while binding \"http\""),
            absl::string_view::npos);
  EXPECT_NE(s.message().find("errno 98"), absl::string_view::npos);
}

TEST(ErrnoStatusTest, NotFoundForEnoent) {
  EXPECT_EQ(ErrnoStatus(ENOENT, "open", "x").code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace ddv
