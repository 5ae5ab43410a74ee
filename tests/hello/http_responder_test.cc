// HttpResponder alone, with strings for sockets: what each request is
// answered with, keep-alive and close decisions, bodies skipped, pipelining
// and back-pressure, /bytes/N streaming, the counters, and slot reuse.
#include "src/hello/http_responder.h"

#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/handoff/test_sockets.h"

namespace ddv {
namespace hello {
namespace {

constexpr char kPeer[] = "192.0.2.1:5555";

class HttpResponderTest : public ::testing::Test {
 protected:
  HttpResponderTest() {
    context_.pid = 1234;
    context_.stats = &stats_;
    Reset();
  }

  void Reset(ConnectionInfo info = Info()) {
    responder_.Reset(std::move(info), /*peer_fd=*/-1);
  }

  static ConnectionInfo Info() {
    ConnectionInfo info;
    info.site_id = "s";
    info.worker_index = 7;
    info.peer = kPeer;
    return info;
  }

  // Everything queued so far, as the connection would send it.
  std::string Take() {
    std::string out;
    responder_.TakeOutput(&out);
    return out;
  }

  static std::string Body(absl::string_view host, absl::string_view sni = "-",
                          absl::string_view alpn = "-", int tls = 0) {
    return absl::StrCat("site=s worker=7 pid=1234 host=", host, " sni=", sni,
                        " alpn=", alpn, " tls=", tls, " peer=", kPeer, "\n");
  }
  static std::string Hello(absl::string_view host,
                           absl::string_view connection = "",
                           bool head_only = false) {
    std::string body = Body(host);
    return absl::StrCat(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ",
        body.size(), "\r\n", connection, "\r\n", head_only ? "" : body);
  }

  HttpServerStats stats_;
  ResponderContext context_;
  HttpResponder responder_{&context_};
};

TEST_F(HttpResponderTest, AnswersWithTheIdentityLine) {
  responder_.Feed("GET / HTTP/1.1\r\nHost: a.example\r\n\r\n");
  EXPECT_EQ(Take(), Hello("a.example"));
  EXPECT_EQ(responder_.requests(), 1u);
  EXPECT_EQ(stats_.requests, 1u);
  EXPECT_FALSE(responder_.close_after_flush());
  EXPECT_FALSE(responder_.HasUnparsedInput());
}

TEST_F(HttpResponderTest, NoHostHeaderIsADash) {
  responder_.Feed("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  EXPECT_EQ(Take(), Hello("-", "Connection: keep-alive\r\n"));
}

TEST_F(HttpResponderTest, PipelinedRequestsShareOneOutputInOrder) {
  responder_.Feed(
      "GET / HTTP/1.1\r\nHost: one\r\n\r\n"
      "GET / HTTP/1.1\r\nHost: one\r\n\r\n"
      "GET / HTTP/1.1\r\nHost: two\r\n\r\n");
  EXPECT_EQ(Take(), Hello("one") + Hello("one") + Hello("two"));
  EXPECT_EQ(responder_.requests(), 3u);
}

TEST_F(HttpResponderTest, InputSplitIntoSingleBytes) {
  const std::string request = "GET / HTTP/1.1\r\nHost: slow\r\n\r\n";
  for (size_t i = 0; i + 1 < request.size(); ++i) {
    responder_.Feed(request.substr(i, 1));
    EXPECT_TRUE(responder_.output().empty());
  }
  EXPECT_TRUE(responder_.HasUnparsedInput());
  // The last byte arrives while earlier ones are kept: it is appended, and
  // the kept bytes are parsed by Resume().
  responder_.Feed(request.substr(request.size() - 1));
  responder_.Resume();
  EXPECT_EQ(Take(), Hello("slow"));
  EXPECT_FALSE(responder_.HasUnparsedInput());
}

TEST_F(HttpResponderTest, ConnectionHeaderRules) {
  responder_.Feed("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(Take(), Hello("a", "Connection: close\r\n"));
  EXPECT_TRUE(responder_.close_after_flush());
  EXPECT_FALSE(responder_.must_linger());

  Reset();
  responder_.Feed("GET / HTTP/1.0\r\nHost: a\r\n\r\n");
  EXPECT_EQ(Take(), Hello("a", "Connection: close\r\n"));
  EXPECT_TRUE(responder_.close_after_flush());

  Reset();
  responder_.Feed("GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n");
  EXPECT_EQ(Take(), Hello("a", "Connection: keep-alive\r\n"));
  EXPECT_FALSE(responder_.close_after_flush());
}

TEST_F(HttpResponderTest, NothingIsParsedAfterTheClose) {
  responder_.Feed(
      "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
      "GET / HTTP/1.1\r\nHost: b\r\n\r\n");
  EXPECT_EQ(Take(), Hello("a", "Connection: close\r\n"));
  EXPECT_FALSE(responder_.HasUnparsedInput());
  responder_.Feed("GET / HTTP/1.1\r\nHost: c\r\n\r\n");
  responder_.Resume();
  EXPECT_TRUE(responder_.output().empty());
  EXPECT_EQ(responder_.requests(), 1u);
}

TEST_F(HttpResponderTest, DrainingAnswersWithConnectionClose) {
  context_.draining = true;
  responder_.Feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(Take(), Hello("a", "Connection: close\r\n"));
  EXPECT_TRUE(responder_.close_after_flush());
}

TEST_F(HttpResponderTest, HeadGetsTheHeadersOnly) {
  responder_.Feed("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(Take(), Hello("a", "", /*head_only=*/true));
  // The cached GET answer must not be reused for HEAD, or the reverse.
  responder_.Feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(Take(), Hello("a"));
}

TEST_F(HttpResponderTest, BodiesAreSkippedAndExpectContinueAnswered) {
  responder_.Feed(
      "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
      "Expect: 100-continue\r\n\r\n");
  EXPECT_TRUE(responder_.InBody());
  EXPECT_EQ(Take(), "HTTP/1.1 100 Continue\r\n\r\n" + Hello("x"));
  responder_.Feed("hel");
  EXPECT_TRUE(responder_.InBody());
  responder_.Feed("loGET / HTTP/1.1\r\nHost: y\r\n\r\n");
  EXPECT_FALSE(responder_.InBody());
  EXPECT_EQ(Take(), Hello("y"));

  responder_.Feed(
      "POST / HTTP/1.1\r\nHost: c\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: d\r\n\r\n");
  EXPECT_EQ(Take(), Hello("c") + Hello("d"));
}

TEST_F(HttpResponderTest, BrokenChunkedFramingClosesAndLingers) {
  responder_.Feed(
      "POST / HTTP/1.1\r\nHost: c\r\nTransfer-Encoding: chunked\r\n\r\n"
      "zz\r\n");
  EXPECT_EQ(Take(), Hello("c"));
  EXPECT_TRUE(responder_.close_after_flush());
  EXPECT_TRUE(responder_.must_linger());
}

TEST_F(HttpResponderTest, MalformedHeadGets400AndCloses) {
  responder_.Feed("\x16\x03\x01 not http\r\n\r\nGET / HTTP/1.1\r\n\r\n");
  EXPECT_EQ(Take(),
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
            "Content-Length: 12\r\nConnection: close\r\n\r\nbad request\n");
  EXPECT_TRUE(responder_.close_after_flush());
  EXPECT_TRUE(responder_.must_linger());
  EXPECT_EQ(stats_.bad_requests, 1u);
  EXPECT_EQ(responder_.requests(), 0u);
}

TEST_F(HttpResponderTest, HugeHeadGets431) {
  context_.max_head_bytes = 64;
  responder_.Feed(absl::StrCat("GET / HTTP/1.1\r\nHost: a\r\nX: ",
                               std::string(100, 'x'), "\r\n\r\n"));
  EXPECT_EQ(Take(),
            "HTTP/1.1 431 Request Header Fields Too Large\r\n"
            "Content-Type: text/plain\r\nContent-Length: 23\r\n"
            "Connection: close\r\n\r\nrequest head too large\n");
  EXPECT_EQ(stats_.heads_too_large, 1u);
  EXPECT_TRUE(responder_.must_linger());
}

TEST_F(HttpResponderTest, BytesStreamsFromTheSharedBlock) {
  responder_.Feed(
      "GET /bytes/300000?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"
      "GET / HTTP/1.1\r\nHost: after\r\n\r\n");
  EXPECT_EQ(Take(),
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            "Content-Length: 300000\r\n\r\n");
  EXPECT_EQ(responder_.stream_remaining(), 300000u);
  // Nothing may be queued behind a streaming body.
  EXPECT_TRUE(responder_.Backlogged());
  EXPECT_TRUE(responder_.HasUnparsedInput());
  responder_.Resume();
  EXPECT_TRUE(responder_.output().empty());
  responder_.StreamSent(300000);
  responder_.Resume();
  EXPECT_EQ(Take(), Hello("after"));

  absl::string_view block = HttpResponder::StreamBlock();
  EXPECT_EQ(block.size(), 256u * 1024);
  EXPECT_EQ(block.substr(0, 3), "abc");
  EXPECT_EQ(block[63], '\n');
}

// Byte i of a /bytes/N body, as docs/hello.md gives it.
char PatternByte(uint64_t i) {
  return i % 64 == 63 ? '\n' : static_cast<char>('a' + i % 64 % 26);
}

TEST_F(HttpResponderTest, BytesShortSendsKeepThePattern) {
  // Sends that take odd amounts (as a full socket buffer makes them) must
  // go on from where they stopped, not from the block's start.
  constexpr uint64_t kSize = 700000;
  for (int round = 0; round < 2; ++round) {
    responder_.Feed(absl::StrCat("GET /bytes/", kSize,
                                 " HTTP/1.1\r\nHost: a\r\n\r\n"));
    Take();
    std::string body;
    size_t take = 1;
    while (responder_.stream_remaining() > 0) {
      absl::string_view chunk = responder_.NextStreamChunk(100000);
      ASSERT_FALSE(chunk.empty());
      ASSERT_LE(chunk.size(), 100000u);
      take = take * 7 % 99991 + 1;  // odd sizes, some larger than chunk
      const size_t sent = std::min(take, chunk.size());
      body.append(chunk.data(), sent);
      responder_.StreamSent(sent);
    }
    ASSERT_EQ(body.size(), kSize);
    for (uint64_t i = 0; i < kSize; ++i) {
      ASSERT_EQ(body[i], PatternByte(i)) << "round " << round << " byte " << i;
    }
    responder_.Resume();
  }
}

TEST_F(HttpResponderTest, BytesEdgeCases) {
  responder_.Feed("HEAD /bytes/7 HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(responder_.stream_remaining(), 0u);
  EXPECT_NE(Take().find("Content-Length: 7\r\n"), std::string::npos);
  responder_.Feed("GET /bytes/0 HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_NE(Take().find("Content-Length: 0\r\n"), std::string::npos);
  for (const char* bad : {"/bytes/x", "/bytes/", "/bytes/1073741825",
                          "/bytes/-1", "/bytes/12345678901"}) {
    responder_.Feed(absl::StrCat("GET ", bad, " HTTP/1.1\r\nHost: a\r\n\r\n"));
    std::string out = Take();
    EXPECT_EQ(out.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u) << bad;
    // A bad count is the client's mistake, not a broken stream: stay open.
    EXPECT_FALSE(responder_.close_after_flush()) << bad;
  }
  responder_.Feed("GET /bytes/1073741824 HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(responder_.stream_remaining(), uint64_t{1} << 30);
}

TEST_F(HttpResponderTest, OutputHighWaterStopsParsingUntilTaken) {
  std::string burst;
  const std::string request = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
  const size_t answer = Hello("h").size();
  const size_t count = kOutputHighWater / answer + 100;
  for (size_t i = 0; i < count; ++i) burst += request;
  responder_.Feed(burst);
  EXPECT_TRUE(responder_.Backlogged());
  EXPECT_TRUE(responder_.HasUnparsedInput());
  size_t answered = 0;
  while (answered < count) {
    std::string out = Take();
    ASSERT_FALSE(out.empty()) << "stuck after " << answered;
    ASSERT_EQ(out.size() % answer, 0u);
    answered += out.size() / answer;
    responder_.Resume();
  }
  EXPECT_EQ(answered, count);
  EXPECT_FALSE(responder_.HasUnparsedInput());
}

TEST_F(HttpResponderTest, NegotiatedNamesReplaceTheOfferedOnes) {
  ConnectionInfo info = Info();
  info.tls = true;
  info.sni = "offered.example";
  info.alpn = "h2,http/1.1";
  Reset(info);
  responder_.Feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_NE(Take().find("sni=offered.example alpn=h2,http/1.1 tls=1"),
            std::string::npos);
  responder_.SetNegotiated("t.example", "http/1.1");
  responder_.Feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_NE(Take().find("sni=t.example alpn=http/1.1 tls=1"),
            std::string::npos);
  responder_.SetNegotiated("", "");
  responder_.Feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_NE(Take().find("sni=- alpn=- tls=1"), std::string::npos);
}

TEST_F(HttpResponderTest, PeerComesFromTheSocketWhenNotGiven) {
  ::ddv::testing::TcpPair pair = ::ddv::testing::ConnectedTcpPair();
  ASSERT_TRUE(pair.client.valid() && pair.server.valid());
  ConnectionInfo info = Info();
  info.peer.clear();
  responder_.Reset(info, pair.server.get());
  responder_.Feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_NE(Take().find(absl::StrCat(
                " peer=", ::ddv::testing::LocalAddress(pair.client.get()),
                "\n")),
            std::string::npos);

  responder_.Reset(info, /*peer_fd=*/-1);
  responder_.Feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_NE(Take().find(" peer=-\n"), std::string::npos);
}

// A gate that allows "a.test" (any port, any case) and counts its calls;
// every other host is misdirected, "bad host" invalid. generation() moves
// when the test says the site view changed.
class FakeGate : public HostGate {
 public:
  uint64_t generation() const override { return view; }
  route::HostVerdict Check(uint32_t listener_key, absl::string_view target,
                           absl::string_view host) override {
    ++calls;
    last_key = listener_key;
    bool invalid = false;
    absl::string_view authority =
        route::RequestAuthority(target, host, &invalid);
    if (invalid || authority == "bad host") return route::HostVerdict::kInvalid;
    if (authority.empty() || authority == "a.test" ||
        authority == "a.test:80" || authority == "A.TEST") {
      return allow_a ? route::HostVerdict::kAllowed
                     : route::HostVerdict::kMisdirected;
    }
    return route::HostVerdict::kMisdirected;
  }
  uint64_t view = 1;
  bool allow_a = true;
  int calls = 0;
  uint32_t last_key = 0;
};

constexpr char kMisdirected[] =
    "HTTP/1.1 421 Misdirected Request\r\nContent-Type: text/plain\r\n"
    "Content-Length: 69\r\nConnection: close\r\n\r\n"
    "misdirected request: this connection's site does not serve that host\n";

TEST_F(HttpResponderTest, PipelinedRequestForAnotherSiteGets421AndClose) {
  FakeGate gate;
  context_.host_gate = &gate;
  ConnectionInfo info = Info();
  info.listener_key = 3;
  Reset(info);
  responder_.Feed(
      "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"
      "GET / HTTP/1.1\r\nHost: b.test\r\n\r\n"
      "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
  EXPECT_EQ(Take(), absl::StrCat(Hello("a.test"), kMisdirected));
  EXPECT_TRUE(responder_.close_after_flush());
  EXPECT_TRUE(responder_.must_linger());
  EXPECT_EQ(stats_.misdirected_requests, 1u);
  EXPECT_EQ(stats_.requests, 2u);  // the third is never read
  EXPECT_EQ(gate.last_key, 3u);
}

TEST_F(HttpResponderTest, AbsoluteFormTargetIsCheckedNotTheHostField) {
  FakeGate gate;
  context_.host_gate = &gate;
  ConnectionInfo info = Info();
  info.listener_key = 0;
  Reset(info);
  responder_.Feed("GET http://b.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n");
  EXPECT_EQ(Take(), kMisdirected);
  Reset(info);
  responder_.Feed("GET http://user@a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n");
  EXPECT_EQ(Take(),
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
            "Content-Length: 26\r\nConnection: close\r\n\r\n"
            "bad request: invalid host\n");
  EXPECT_EQ(stats_.bad_requests, 1u);
}

TEST_F(HttpResponderTest, TheGateIsAskedOncePerHostAndSiteView) {
  FakeGate gate;
  context_.host_gate = &gate;
  ConnectionInfo info = Info();
  info.listener_key = 0;
  Reset(info);
  for (int i = 0; i < 3; ++i) {
    responder_.Feed("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
  }
  EXPECT_EQ(gate.calls, 1);
  // HTTP/1.0 without Host: nothing names another site.
  responder_.Feed("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  EXPECT_EQ(gate.calls, 2);
  Take();
  // A new site view (a claim dropped, a reload): asked again, and a host
  // allowed before may now be another site's.
  gate.view = 2;
  gate.allow_a = false;
  responder_.Feed("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
  EXPECT_EQ(gate.calls, 3);
  EXPECT_EQ(Take(), kMisdirected);
}

// The first request names what the master routed the connection by: it is
// the site's whatever view came since (a reload moved the name while the
// request was unread). Later ones are checked against the view.
TEST_F(HttpResponderTest, TheFirstRequestNamingTheRoutedHostIsAllowed) {
  FakeGate gate;  // says b.test is another site's now
  context_.host_gate = &gate;
  ConnectionInfo info = Info();
  info.listener_key = 0;
  info.host = "b.test";
  Reset(info);
  responder_.Feed("GET / HTTP/1.1\r\nHost: B.test:80\r\n\r\n");
  EXPECT_EQ(Take(), Hello("B.test:80"));
  EXPECT_EQ(gate.calls, 0);
  responder_.Feed("GET / HTTP/1.1\r\nHost: b.test\r\n\r\n");
  EXPECT_EQ(Take(), kMisdirected);
  EXPECT_EQ(gate.calls, 1);
  // A first request for another name is checked as always.
  Reset(info);
  responder_.Feed("GET / HTTP/1.1\r\nHost: c.test\r\n\r\n");
  EXPECT_EQ(Take(), kMisdirected);
}

TEST_F(HttpResponderTest, UncheckedConnectionsNeverAskTheGate) {
  FakeGate gate;
  context_.host_gate = &gate;
  Reset();  // listener_key kUncheckedListener: standalone, no site view
  responder_.Feed("GET / HTTP/1.1\r\nHost: b.test\r\n\r\n");
  EXPECT_EQ(Take(), Hello("b.test"));
  EXPECT_EQ(gate.calls, 0);
}

TEST_F(HttpResponderTest, ResetForgetsThePreviousConnection) {
  responder_.Feed(
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n"
      "GET /bytes/9 HTTP/1.1\r\n");
  responder_.CloseAfterFlush(/*must_linger=*/true);
  ConnectionInfo info = Info();
  info.site_id = "other";
  Reset(info);
  EXPECT_TRUE(responder_.output().empty());
  EXPECT_FALSE(responder_.InBody());
  EXPECT_FALSE(responder_.HasUnparsedInput());
  EXPECT_FALSE(responder_.close_after_flush());
  EXPECT_FALSE(responder_.must_linger());
  EXPECT_EQ(responder_.requests(), 0u);
  responder_.Feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_NE(Take().find("site=other "), std::string::npos);
}

}  // namespace
}  // namespace hello
}  // namespace ddv
