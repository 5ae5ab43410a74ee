// The metrics address's HTTP: every request shape gets its exact status.
#include "src/master/scrape_request.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ddv {
namespace master {
namespace {

using ::testing::HasSubstr;

struct Case {
  std::string name;
  std::string request;
  int status;  // 0: served
  ScrapeTarget target = ScrapeTarget::kMetrics;
  bool head = false;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class ScrapeRequestTest : public ::testing::TestWithParam<Case> {};

TEST_P(ScrapeRequestTest, Answers) {
  const Case& c = GetParam();
  ScrapeRequest request;
  ASSERT_EQ(ParseScrapeRequest(c.request, &request), ScrapeParse::kDone);
  EXPECT_EQ(request.status, c.status) << request.why;
  if (c.status == 0) {
    EXPECT_EQ(request.target, c.target);
    EXPECT_EQ(request.head, c.head);
  } else {
    EXPECT_FALSE(request.why.empty());
  }
}

INSTANTIATE_TEST_SUITE_P(
    Requests, ScrapeRequestTest,
    ::testing::Values(
        Case{"Metrics", "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 0},
        Case{"Healthz", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 0,
             ScrapeTarget::kHealthz},
        Case{"Head", "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 0,
             ScrapeTarget::kMetrics, true},
        Case{"Http10WithoutHost", "GET /healthz HTTP/1.0\r\n\r\n", 0,
             ScrapeTarget::kHealthz},
        Case{"QueryIgnored", "GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n", 0},
        Case{"AbsoluteForm",
             "GET http://127.0.0.1:9150/healthz HTTP/1.1\r\nHost: x\r\n\r\n",
             0, ScrapeTarget::kHealthz},
        Case{"BareLineFeeds", "GET /metrics HTTP/1.1\nHost: x\n\n", 0},
        Case{"LeadingEmptyLines", "\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
             0},
        Case{"Prometheus",
             "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9150\r\nUser-Agent: "
             "Prometheus/2.45.0\r\nAccept: application/openmetrics-text;"
             "version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n"
             "Accept-Encoding: gzip\r\nX-Prometheus-Scrape-Timeout-Seconds: "
             "10\r\nContent-Length: 0\r\n\r\n",
             0},
        Case{"UnknownPath", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 404},
        Case{"PathPrefixIsNotEnough", "GET /metricsx HTTP/1.1\r\nHost: x\r\n\r\n",
             404},
        Case{"Post", "POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 405},
        Case{"Delete", "DELETE /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 405},
        Case{"NoHost", "GET /metrics HTTP/1.1\r\n\r\n", 400},
        Case{"TwoHosts", "GET /metrics HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
             400},
        Case{"Body", "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n",
             400},
        Case{"Chunked",
             "GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
             "\r\n\r\n",
             400},
        Case{"TwoSpaces", "GET  /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        Case{"NoVersion", "GET /metrics\r\nHost: x\r\n\r\n", 400},
        Case{"BadVersion", "GET /metrics HTTP/1.x\r\nHost: x\r\n\r\n", 400},
        Case{"Http2", "GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n", 505},
        Case{"Http2Preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505},
        Case{"SpaceBeforeColon", "GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n",
             400},
        Case{"Folding", "GET /metrics HTTP/1.1\r\nHost: x\r\n y\r\n\r\n", 400},
        Case{"ControlInValue", "GET /metrics HTTP/1.1\r\nHost: x\x01\r\n\r\n",
             400},
        Case{"TlsHello", std::string("\x16\x03\x01\x02\x00\x01", 6), 400},
        Case{"BinaryMethodBeforeAnyLineEnd", std::string("GE\x00T", 4), 400},
        Case{"TooLarge",
             "GET /metrics HTTP/1.1\r\nHost: x\r\nX: " +
                 std::string(kMaxScrapeRequestBytes, 'a'),
             431},
        Case{"TooLargeEvenIfComplete",
             "GET /metrics HTTP/1.1\r\nHost: x\r\nX: " +
                 std::string(kMaxScrapeRequestBytes, 'a') + "\r\n\r\n",
             431}),
    [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

TEST(ScrapeRequestPartsTest, NeedsMoreUntilTheEmptyLine) {
  const std::string whole = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
  ScrapeRequest request;
  for (size_t n = 0; n < whole.size(); ++n) {
    EXPECT_EQ(ParseScrapeRequest(whole.substr(0, n), &request),
              ScrapeParse::kNeedMore)
        << n;
  }
  EXPECT_EQ(ParseScrapeRequest(whole, &request), ScrapeParse::kDone);
  EXPECT_EQ(request.status, 0);
}

TEST(ScrapeResponseTest, HasLengthCloseAndAllowFor405) {
  EXPECT_EQ(FormatScrapeResponse(200, "text/plain", "ok\n", false),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
            "Content-Length: 3\r\nCache-Control: no-store\r\n"
            "Connection: close\r\n\r\nok\n");
  // HEAD: the same head, Content-Length of the body it would get, no body.
  EXPECT_EQ(FormatScrapeResponse(200, "text/plain", "ok\n", true),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
            "Content-Length: 3\r\nCache-Control: no-store\r\n"
            "Connection: close\r\n\r\n");
  const std::string not_allowed = FormatScrapeError(405, "no", false);
  EXPECT_THAT(not_allowed, HasSubstr("HTTP/1.1 405 Method Not Allowed\r\n"));
  EXPECT_THAT(not_allowed, HasSubstr("\r\nAllow: GET, HEAD\r\n"));
  EXPECT_THAT(FormatScrapeError(431, "big", false),
              HasSubstr("431 Request Header Fields Too Large"));
  EXPECT_THAT(FormatScrapeError(408, "slow", false),
              HasSubstr("408 Request Timeout"));
}

}  // namespace
}  // namespace master
}  // namespace ddv
