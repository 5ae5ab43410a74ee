// The real ddv_hello binary in standalone mode, driven by curl and raw
// sockets: body format, keep-alive, pipelining, /bytes/N, 400/431, HTTP/1.0,
// idle timeout, SIGTERM and the exit code for bad flags. Every wait is
// bounded.
#include <signal.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "src/base/unique_fd.h"
#include "tests/hello/child_process.h"
#include "tests/hello/http_client.h"

namespace ddv {
namespace hello {
namespace {

using ::ddv::hello::testing::Child;
using ::ddv::hello::testing::Get;
using ::ddv::hello::testing::HelloPath;
using ::ddv::hello::testing::HttpClient;
using ::ddv::hello::testing::HttpResponse;
using ::ddv::hello::testing::ReadAll;
using ::ddv::hello::testing::ReadLine;
using ::ddv::hello::testing::Spawn;
using ::ddv::hello::testing::WaitExit;

// Runs curl with a hard time limit; returns its stdout.
std::string Curl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"curl", "-s", "--max-time", "10"};
  argv.insert(argv.end(), args.begin(), args.end());
  Child child = Spawn(argv);
  std::string out = ReadAll(child.out.get(), absl::Seconds(15));
  std::optional<int> code = WaitExit(child.pid, absl::Seconds(5));
  EXPECT_EQ(code, 0) << "curl " << absl::StrJoin(args, " ");
  return out;
}

class DdvHelloTest : public ::testing::Test {
 protected:
  void Start(std::vector<std::string> flags = {}) {
    std::vector<std::string> argv = {HelloPath(), "--port=0"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    child_ = Spawn(argv);
    // "ddv_hello listening on 127.0.0.1:PORT (site ..., pid ...)"
    std::string line = ReadLine(child_.out.get(), absl::Seconds(10));
    size_t end = line.find(" (site");
    size_t colon = line.rfind(':', end);
    ASSERT_TRUE(
        end != std::string::npos && colon != std::string::npos &&
        absl::SimpleAtoi(line.substr(colon + 1, end - colon - 1), &port_))
        << "no port in \"" << line << "\"";
    url_ = absl::StrCat("http://127.0.0.1:", port_);
  }

  void TearDown() override {
    if (child_.pid > 0) {
      kill(child_.pid, SIGKILL);
      WaitExit(child_.pid, absl::Seconds(5));
    }
  }

  // Sends SIGTERM; the exit code, if the child exited within `limit`.
  std::optional<int> Terminate(absl::Duration limit) {
    kill(child_.pid, SIGTERM);
    std::optional<int> code = WaitExit(child_.pid, limit);
    child_.pid = -1;
    return code;
  }

  // The exact body, up to the client's port number.
  ::testing::AssertionResult IsBody(const std::string& body,
                                    absl::string_view site,
                                    absl::string_view host) {
    std::string prefix =
        absl::StrCat("site=", site, " worker=0 pid=", child_.pid,
                     " host=", host, " sni=- alpn=- tls=0 peer=127.0.0.1:");
    int port = 0;
    if (absl::StartsWith(body, prefix) && absl::EndsWith(body, "\n") &&
        absl::SimpleAtoi(absl::string_view(body).substr(
                             prefix.size(), body.size() - prefix.size() - 1),
                         &port)) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure()
           << "\"" << body << "\" is not \"" << prefix << "<port>\\n\"";
  }

  Child child_;
  int port_ = 0;
  std::string url_;
};

TEST_F(DdvHelloTest, CurlSeesTheExactBody) {
  ASSERT_NO_FATAL_FAILURE(Start({"--site=demo"}));
  std::string out = Curl({"-D", "-", url_ + "/anything?q=1"});
  std::vector<std::string> parts = absl::StrSplit(out, "\r\n\r\n");
  ASSERT_EQ(parts.size(), 2u) << out;
  EXPECT_TRUE(absl::StartsWith(parts[0], "HTTP/1.1 200 OK\r\n")) << parts[0];
  EXPECT_NE(parts[0].find("Content-Type: text/plain"), std::string::npos);
  EXPECT_NE(parts[0].find(absl::StrCat("Content-Length: ", parts[1].size())),
            std::string::npos);
  EXPECT_TRUE(IsBody(parts[1], "demo", absl::StrCat("127.0.0.1:", port_)));
}

TEST_F(DdvHelloTest, CurlReusesTheConnection) {
  ASSERT_NO_FATAL_FAILURE(Start());
  // num_connects is 1 for the first URL and 0 for the reused second one.
  std::string out =
      Curl({"-o", "/dev/null", "-o", "/dev/null", "-w",
            "%{http_code}:%{num_connects} ", url_ + "/a", url_ + "/b"});
  EXPECT_EQ(out, "200:1 200:0 ");
}

TEST_F(DdvHelloTest, KeepAliveSamePidAndPeer) {
  ASSERT_NO_FATAL_FAILURE(Start());
  absl::StatusOr<HttpClient> client = HttpClient::Connect(port_);
  ASSERT_TRUE(client.ok()) << client.status();
  absl::StatusOr<HttpResponse> first = Get(*client, "/1", "k.example");
  absl::StatusOr<HttpResponse> second = Get(*client, "/2", "k.example");
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->body, second->body);  // same pid, same peer port
  EXPECT_TRUE(IsBody(first->body, "standalone", "k.example"));
  EXPECT_NE(first->body.find("peer=" + client->LocalAddress() + "\n"),
            std::string::npos);
}

TEST_F(DdvHelloTest, PipelinedInOrder) {
  ASSERT_NO_FATAL_FAILURE(Start());
  absl::StatusOr<HttpClient> client = HttpClient::Connect(port_);
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE(client
                  ->Send("GET / HTTP/1.1\r\nHost: first\r\n\r\n"
                         "GET / HTTP/1.1\r\nHost: second\r\n\r\n"
                         "GET / HTTP/1.1\r\nHost: third\r\n\r\n")
                  .ok());
  for (const char* host : {"first", "second", "third"}) {
    absl::StatusOr<HttpResponse> response = client->Read();
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_NE(response->body.find(absl::StrCat(" host=", host, " ")),
              std::string::npos)
        << response->body;
  }
}

TEST_F(DdvHelloTest, BytesReturnsExactlyN) {
  ASSERT_NO_FATAL_FAILURE(Start());
  EXPECT_EQ(Curl({"-o", "/dev/null", "-w", "%{http_code} %{size_download}",
                  url_ + "/bytes/1048576"}),
            "200 1048576");
  EXPECT_EQ(
      Curl({"-o", "/dev/null", "-w", "%{http_code}", url_ + "/bytes/abc"}),
      "400");
  EXPECT_EQ(Curl({"-o", "/dev/null", "-w", "%{http_code}",
                  url_ + "/bytes/1073741825"}),
            "400");
  EXPECT_EQ(Curl({"-I", "-o", "/dev/null", "-w", "%{http_code}", url_ + "/"}),
            "200");
}

TEST_F(DdvHelloTest, GarbageGets400AndClose) {
  ASSERT_NO_FATAL_FAILURE(Start());
  absl::StatusOr<HttpClient> client = HttpClient::Connect(port_);
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE(client->Send("HELLO THERE\r\n\r\n").ok());
  absl::StatusOr<HttpResponse> response = client->Read();
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 400);
  EXPECT_EQ(response->headers["connection"], "close");
  EXPECT_TRUE(client->WaitForClose());
}

TEST_F(DdvHelloTest, HugeHeadGets431) {
  ASSERT_NO_FATAL_FAILURE(Start());
  absl::StatusOr<HttpClient> client = HttpClient::Connect(port_);
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE(client
                  ->Send(absl::StrCat("GET / HTTP/1.1\r\nHost: a\r\nX-Pad: ",
                                      std::string(20 * 1024, 'p'), "\r\n\r\n"))
                  .ok());
  absl::StatusOr<HttpResponse> response = client->Read();
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 431);
  EXPECT_TRUE(client->WaitForClose());
}

TEST_F(DdvHelloTest, Http10ClosesUnlessKeepAlive) {
  ASSERT_NO_FATAL_FAILURE(Start());
  absl::StatusOr<HttpClient> plain = HttpClient::Connect(port_);
  ASSERT_TRUE(plain.ok());
  ASSERT_TRUE(plain->Send("GET / HTTP/1.0\r\n\r\n").ok());
  absl::StatusOr<HttpResponse> response = plain->Read();
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_NE(response->body.find(" host=- "), std::string::npos);
  EXPECT_EQ(response->headers["connection"], "close");
  EXPECT_TRUE(plain->WaitForClose());

  absl::StatusOr<HttpClient> kept =
      HttpClient::Connect(port_, absl::Milliseconds(300));
  ASSERT_TRUE(kept.ok());
  ASSERT_TRUE(
      kept->Send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").ok());
  response = kept->Read();
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->headers["connection"], "keep-alive");
  EXPECT_FALSE(kept->WaitForClose());  // still open after the 300 ms timeout
}

TEST_F(DdvHelloTest, IdleTimeoutFlag) {
  ASSERT_NO_FATAL_FAILURE(Start({"--idle_timeout_ms=200"}));
  absl::StatusOr<HttpClient> client = HttpClient::Connect(port_);
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE(Get(*client, "/").ok());
  absl::Time start = absl::Now();
  EXPECT_TRUE(client->WaitForClose());
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
}

TEST_F(DdvHelloTest, SigtermExitsZeroPromptly) {
  ASSERT_NO_FATAL_FAILURE(Start());
  // An idle keep-alive connection must not hold the stop up.
  absl::StatusOr<HttpClient> client = HttpClient::Connect(port_);
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE(Get(*client, "/").ok());
  absl::Time start = absl::Now();
  EXPECT_EQ(Terminate(absl::Seconds(5)), 0);
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_TRUE(client->WaitForClose());
}

TEST_F(DdvHelloTest, SingleShotRecvModeServesToo) {
  ASSERT_NO_FATAL_FAILURE(Start({"--norecv_multishot"}));
  EXPECT_EQ(Curl({"-o", "/dev/null", "-w", "%{http_code} %{size_download}",
                  url_ + "/bytes/100000"}),
            "200 100000");
}

TEST(DdvHelloFlagsTest, BadFlagsExitTwo) {
  const std::vector<std::vector<std::string>> cases = {
      {"--bogus=1"},
      {"--port=70000"},
      {"--port=abc"},
      {"--idle_timeout_ms=0"},
      {"--port"},
      {"stray"},
      {},  // neither a master nor --port
  };
  for (const auto& flags : cases) {
    std::vector<std::string> argv = {HelloPath()};
    argv.insert(argv.end(), flags.begin(), flags.end());
    Child child = Spawn(argv);
    EXPECT_EQ(WaitExit(child.pid, absl::Seconds(5)), 2)
        << absl::StrJoin(flags, " ");
  }
}

}  // namespace
}  // namespace hello
}  // namespace ddv
