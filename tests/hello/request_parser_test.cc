// ParseRequestHead and ChunkedBodySkipper: grammar, limits, keep-alive rules,
// and resumability (every input is also fed one byte at a time).
#include "src/hello/request_parser.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace ddv {
namespace hello {
namespace {

constexpr size_t kCap = 16384;

ParseStatus Parse(absl::string_view data, RequestHead* head) {
  size_t scan_from = 0;
  return ParseRequestHead(data, kCap, &scan_from, head);
}

// Feeds growing prefixes, as a connection receiving one byte per read would,
// and checks every proper prefix asks for more.
ParseStatus ParseByteByByte(absl::string_view data, RequestHead* head) {
  size_t scan_from = 0;
  for (size_t n = 1; n <= data.size(); ++n) {
    ParseStatus status =
        ParseRequestHead(data.substr(0, n), kCap, &scan_from, head);
    if (status != ParseStatus::kNeedMore) return status;
  }
  return ParseStatus::kNeedMore;
}

TEST(ParseRequestHeadTest, SimpleGet) {
  const std::string request = "GET /x?y=1 HTTP/1.1\r\nHost: a.example\r\n\r\n";
  for (bool bytewise : {false, true}) {
    RequestHead head;
    ASSERT_EQ(
        bytewise ? ParseByteByByte(request, &head) : Parse(request, &head),
        ParseStatus::kComplete);
    EXPECT_EQ(head.method, "GET");
    EXPECT_EQ(head.target, "/x?y=1");
    EXPECT_EQ(head.minor_version, 1);
    EXPECT_TRUE(head.has_host);
    EXPECT_EQ(head.host, "a.example");
    EXPECT_TRUE(head.keep_alive);
    EXPECT_EQ(head.framing, BodyFraming::kNone);
    EXPECT_EQ(head.size, request.size());
  }
}

TEST(ParseRequestHeadTest, StopsAtTheEndOfTheHead) {
  std::string two = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\n";
  RequestHead head;
  ASSERT_EQ(Parse(two, &head), ParseStatus::kComplete);
  EXPECT_EQ(head.target, "/1");
  EXPECT_EQ(head.size, two.find("GET /2"));
}

TEST(ParseRequestHeadTest, BareLineFeedsAndLeadingEmptyLines) {
  // RFC 9112 §2.2 and §2.2's note on LF: both are tolerated.
  const std::string request = "\r\n\nGET / HTTP/1.1\nHost:  b \n\n";
  for (bool bytewise : {false, true}) {
    RequestHead head;
    ASSERT_EQ(
        bytewise ? ParseByteByByte(request, &head) : Parse(request, &head),
        ParseStatus::kComplete);
    EXPECT_EQ(head.host, "b");
    EXPECT_EQ(head.size, request.size());
  }
}

TEST(ParseRequestHeadTest, KeepAliveRules) {
  struct Case {
    const char* request;
    bool keep_alive;
  } cases[] = {
      {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, CLOSE\r\n\r\n",
       false},
      {"GET / HTTP/1.0\r\n\r\n", false},
      {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
      {"GET / HTTP/1.0\r\nConnection: Keep-Alive, close\r\n\r\n", false},
  };
  for (const Case& c : cases) {
    RequestHead head;
    ASSERT_EQ(Parse(c.request, &head), ParseStatus::kComplete) << c.request;
    EXPECT_EQ(head.keep_alive, c.keep_alive) << c.request;
  }
}

TEST(ParseRequestHeadTest, Http10WithoutHostIsFine) {
  RequestHead head;
  ASSERT_EQ(Parse("GET / HTTP/1.0\r\n\r\n", &head), ParseStatus::kComplete);
  EXPECT_FALSE(head.has_host);
  EXPECT_EQ(head.minor_version, 0);
}

TEST(ParseRequestHeadTest, BodyFraming) {
  RequestHead head;
  ASSERT_EQ(
      Parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n", &head),
      ParseStatus::kComplete);
  EXPECT_EQ(head.framing, BodyFraming::kContentLength);
  EXPECT_EQ(head.content_length, 12u);

  ASSERT_EQ(
      Parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", &head),
      ParseStatus::kComplete);
  EXPECT_EQ(head.framing, BodyFraming::kNone);

  ASSERT_EQ(Parse("POST / HTTP/1.1\r\nHost: a\r\n"
                  "Transfer-Encoding: gzip, Chunked\r\n"
                  "Expect: 100-continue\r\n\r\n",
                  &head),
            ParseStatus::kComplete);
  EXPECT_EQ(head.framing, BodyFraming::kChunked);
  EXPECT_TRUE(head.expect_continue);
}

TEST(ParseRequestHeadTest, RejectsWhatCouldBeReadTwoWays) {
  const char* bad[] = {
      "garbage\r\n\r\n",
      "GET /\r\n\r\n",                       // HTTP/0.9
      "GET / HTTP/2.0\r\nHost: a\r\n\r\n",   // not HTTP/1.x
      "GET / HTTP/1.1\r\n\r\n",              // 1.1 without Host
      "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",  // empty target
      "G(T / HTTP/1.1\r\nHost: a\r\n\r\n",   // method not a token
      "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
      "GET / HTTP/1.1\r\nHost : a\r\n\r\n",  // space before colon
      "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",  // bare CR in a value
      "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
      "Content-Length: 2\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
      "Transfer-Encoding: chunked\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
      "GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
      "\r\rGET / HTTP/1.1\r\nHost: a\r\n\r\n",
  };
  for (const char* request : bad) {
    RequestHead head;
    EXPECT_EQ(Parse(request, &head), ParseStatus::kBadRequest) << request;
  }
  RequestHead head;
  std::string nul("GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n", 30);
  EXPECT_EQ(Parse(nul, &head), ParseStatus::kBadRequest);
}

TEST(ParseRequestHeadTest, HeadCap) {
  std::string filler(kCap, 'x');
  std::string big =
      absl::StrCat("GET / HTTP/1.1\r\nHost: a\r\nX-Big: ", filler, "\r\n\r\n");
  RequestHead head;
  EXPECT_EQ(Parse(big, &head), ParseStatus::kHeadTooLarge);
  // An incomplete head that already passed the cap is too large, not
  // "need more".
  EXPECT_EQ(Parse(big.substr(0, kCap + 10), &head), ParseStatus::kHeadTooLarge);
  EXPECT_EQ(Parse(big.substr(0, kCap - 10), &head), ParseStatus::kNeedMore);
  // Exactly at the cap is still fine.
  std::string fits = "GET / HTTP/1.1\r\nHost: a\r\nX-Fill: ";
  fits += std::string(kCap - fits.size() - 4, 'y') + "\r\n\r\n";
  ASSERT_EQ(fits.size(), kCap);
  EXPECT_EQ(Parse(fits, &head), ParseStatus::kComplete);
}

std::string FeedChunked(ChunkedBodySkipper& skipper, absl::string_view data,
                        bool bytewise, ChunkedBodySkipper::Status* status) {
  size_t pos = 0;
  *status = ChunkedBodySkipper::Status::kNeedMore;
  while (pos < data.size() &&
         *status == ChunkedBodySkipper::Status::kNeedMore) {
    size_t step = bytewise ? 1 : data.size() - pos;
    size_t used = 0;
    *status = skipper.Feed(data.substr(pos, step), &used);
    pos += used;
  }
  return std::string(data.substr(pos));
}

TEST(ParseDecimalTest, DigitsOnlyUpToTheCap) {
  uint64_t value = 7;
  EXPECT_TRUE(ParseDecimal("0", 3, &value));
  EXPECT_EQ(value, 0u);
  EXPECT_TRUE(ParseDecimal("1073741824", 10, &value));
  EXPECT_EQ(value, 1073741824u);
  EXPECT_TRUE(ParseDecimal("999999999999999999", 18, &value));
  EXPECT_EQ(value, 999999999999999999u);
  value = 7;
  for (const char* bad : {"", "1234", "+1", "-1", " 1", "1 ", "1a", "0x1"}) {
    EXPECT_FALSE(ParseDecimal(bad, 3, &value)) << bad;
  }
  EXPECT_EQ(value, 7u) << "untouched on failure";
}

TEST(ChunkedBodySkipperTest, SkipsToTheNextRequest) {
  const std::string body =
      "5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n"
      "Trailer: x\r\n\r\nGET / HTTP/1.1\r\n";
  for (bool bytewise : {false, true}) {
    ChunkedBodySkipper skipper;
    ChunkedBodySkipper::Status status;
    std::string rest = FeedChunked(skipper, body, bytewise, &status);
    EXPECT_EQ(status, ChunkedBodySkipper::Status::kDone);
    EXPECT_EQ(rest, "GET / HTTP/1.1\r\n");
  }
}

TEST(ChunkedBodySkipperTest, RejectsBrokenFraming) {
  const char* bad[] = {"x\r\n", "\r\n", "5\r\nhelloXX", "5\r\nhello\r\r",
                       "fffffffffffffffff\r\n"};
  for (const char* body : bad) {
    ChunkedBodySkipper skipper;
    ChunkedBodySkipper::Status status;
    FeedChunked(skipper, body, false, &status);
    EXPECT_EQ(status, ChunkedBodySkipper::Status::kBad) << body;
  }
}

}  // namespace
}  // namespace hello
}  // namespace ddv
