// The log writer's messages: every type round-trips, and every malformed
// input is refused with a reason (never a crash).
#include "src/logwriter/wire.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ddv {
namespace logwriter {
namespace {

using ::testing::HasSubstr;

PipeRoute Route(Stream stream, const std::string& path) {
  PipeRoute r;
  r.worker = "a#1";
  r.stream = stream;
  r.path = path;
  r.max_bytes = 1 << 20;
  r.keep = 4;
  return r;
}

TEST(WireTest, RegisterRoundTrips) {
  Message m;
  m.type = MessageType::kRegister;
  m.routes = {Route(Stream::kStdout, "/var/log/a.log"),
              Route(Stream::kStderr, "/var/log/a.log")};
  absl::StatusOr<std::string> bytes = EncodeMessage(m);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  absl::StatusOr<Message> back = DecodeMessage(*bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->type, MessageType::kRegister);
  ASSERT_EQ(back->routes.size(), 2u);
  EXPECT_EQ(back->routes[1].worker, "a#1");
  EXPECT_EQ(back->routes[1].stream, Stream::kStderr);
  EXPECT_EQ(back->routes[1].path, "/var/log/a.log");
  EXPECT_EQ(back->routes[1].max_bytes, 1u << 20);
  EXPECT_EQ(back->routes[1].keep, 4u);
  EXPECT_EQ(FdCount(*back), 2u);
}

TEST(WireTest, ReopenParkUnparkRoundTrip) {
  Message reopen;
  reopen.type = MessageType::kReopen;
  reopen.has_reply = true;
  absl::StatusOr<Message> back = DecodeMessage(*EncodeMessage(reopen));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(back->has_reply);
  EXPECT_EQ(FdCount(*back), 1u);
  reopen.has_reply = false;
  EXPECT_EQ(FdCount(*DecodeMessage(*EncodeMessage(reopen))), 0u);

  Message park;
  park.type = MessageType::kPark;
  park.park_id = 0x123456789abcull;
  park.routes = {Route(Stream::kStdout, "/l")};
  back = DecodeMessage(*EncodeMessage(park));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->park_id, 0x123456789abcull);
  EXPECT_EQ(FdCount(*back), 1u);

  Message unpark;
  unpark.type = MessageType::kUnpark;
  unpark.park_id = 7;
  back = DecodeMessage(*EncodeMessage(unpark));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->park_id, 7u);
  EXPECT_EQ(FdCount(*back), 0u);
}

TEST(WireTest, EncodeRefusesWhatBreaksALimit) {
  Message m;
  m.type = MessageType::kRegister;
  EXPECT_FALSE(EncodeMessage(m).ok());  // no pipe
  for (size_t i = 0; i <= kMaxRoutesPerMessage; ++i) {
    m.routes.push_back(Route(Stream::kStdout, "/l"));
  }
  EXPECT_FALSE(EncodeMessage(m).ok());  // too many
  m.routes = {Route(Stream::kStdout, "relative.log")};
  EXPECT_THAT(std::string(EncodeMessage(m).status().message()),
              HasSubstr("must be absolute"));
  m.routes = {Route(Stream::kStdout, "/" + std::string(kMaxPathLength, 'x'))};
  EXPECT_FALSE(EncodeMessage(m).ok());
  Message park;
  park.type = MessageType::kPark;
  EXPECT_FALSE(EncodeMessage(park).ok());  // a park record holds one pipe
}

TEST(WireTest, DecodeRefusesMalformedInput) {
  Message m;
  m.type = MessageType::kRegister;
  m.routes = {Route(Stream::kStdout, "/var/log/a.log")};
  const std::string good = *EncodeMessage(m);

  EXPECT_THAT(std::string(DecodeMessage("").status().message()),
              HasSubstr("truncated"));
  std::string bad = good;
  bad[0] = 'X';
  EXPECT_THAT(std::string(DecodeMessage(bad).status().message()),
              HasSubstr("bad magic"));
  bad = good;
  bad[4] = 9;  // version
  EXPECT_THAT(std::string(DecodeMessage(bad).status().message()),
              HasSubstr("version 9"));
  bad = good;
  bad[5] = 42;  // type
  EXPECT_THAT(std::string(DecodeMessage(bad).status().message()),
              HasSubstr("unknown log writer message type 42"));
  // Every cut of the message is refused.
  for (size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(DecodeMessage(good.substr(0, n)).ok()) << n;
  }
  EXPECT_THAT(std::string(DecodeMessage(good + "x").status().message()),
              HasSubstr("trailing"));
  bad = good;
  bad[17] = 4;  // stream
  EXPECT_FALSE(DecodeMessage(bad).ok());
  bad = good;
  bad[16] = 1;  // has_reply on a register
  EXPECT_FALSE(DecodeMessage(bad).ok());
}

}  // namespace
}  // namespace logwriter
}  // namespace ddv
