// ddv_hello under a master: the test plays the master on a real handoff
// channel (DDV_CHANNEL_FD), hands over sockets whose request bytes are still
// unread, and checks what the worker answers; that TLS is terminated with the
// certificates the master names in DDV_TLS_CERT/DDV_TLS_KEY (and refused
// without them); and that Shutdown or the master's disappearance stops it
// with exit 0.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <utility>
#include <cstdlib>
#include <variant>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "src/base/unique_fd.h"
#include "src/handoff/channel.h"
#include "src/handoff/wire.h"
#include "src/tls/self_signed.h"
#include "tests/handoff/test_sockets.h"
#include "tests/hello/child_process.h"
#include "tests/hello/http_client.h"

namespace ddv {
namespace hello {
namespace {

using ::ddv::hello::testing::Child;
using ::ddv::hello::testing::HelloPath;
using ::ddv::hello::testing::HttpClient;
using ::ddv::hello::testing::HttpResponse;
using ::ddv::hello::testing::Spawn;
using ::ddv::hello::testing::SpawnOptions;
using ::ddv::hello::testing::WaitExit;

class FakeMasterTest : public ::testing::Test {
 protected:
  // The worker's environment, as the master sets it.
  virtual std::vector<std::string> Environment() {
    return {"DDV_CHANNEL_FD=3", "DDV_SITE=a", "DDV_WORKER_INDEX=1",
            "DDV_HANDOFF=scm_rights"};
  }

  void SetUp() override {
    absl::StatusOr<std::pair<UniqueFd, UniqueFd>> pair =
        handoff::MakeChannelPair();
    ASSERT_TRUE(pair.ok()) << pair.status();
    master_ = std::move(pair->first);
    SpawnOptions options;
    options.pass_fd = pair->second.get();
    options.pass_fd_as = 3;
    options.extra_env = Environment();
    child_ = Spawn({HelloPath(), "--site=ignored-under-a-master"}, options);
    ASSERT_GT(child_.pid, 0);
    // Our copy of the worker's end must go, or EOF never reaches either side.
    pair->second.Reset();

    absl::StatusOr<handoff::ReceivedFrame> hello =
        handoff::ReceiveFrame(master_.get(), absl::Seconds(10));
    ASSERT_TRUE(hello.ok()) << hello.status();
    ASSERT_TRUE(std::holds_alternative<handoff::Hello>(hello->frame));
    const auto& h = std::get<handoff::Hello>(hello->frame);
    EXPECT_EQ(h.site, "a");
    EXPECT_EQ(h.worker_index, 1u);
    EXPECT_EQ(h.pid, static_cast<uint32_t>(child_.pid));
  }

  void TearDown() override {
    if (child_.pid > 0) {
      kill(child_.pid, SIGKILL);
      WaitExit(child_.pid, absl::Seconds(5));
    }
  }

  // Hands `socket` over as the master does in scm_rights mode: send the
  // batch and close our copy (no acknowledgement comes back).
  void HandOver(UniqueFd socket, handoff::HandoffEntry entry) {
    std::string frame;
    ASSERT_TRUE(handoff::EncodeHandoffBatch(handoff::HandoffMode::kScmRights,
                                            {entry}, &frame)
                    .ok());
    int fd = socket.get();
    ASSERT_TRUE(handoff::SendFrame(master_.get(), frame, {&fd, 1}).ok());
  }

  std::optional<int> ExitCode() {
    std::optional<int> code = WaitExit(child_.pid, absl::Seconds(5));
    child_.pid = -1;
    return code;
  }

  UniqueFd master_;
  Child child_;
};

TEST_F(FakeMasterTest, ServesAHandedOverSocketWithUnreadBytes) {
  auto [client_fd, server_fd] = ::ddv::testing::ConnectedTcpPair();
  ASSERT_TRUE(client_fd.valid() && server_fd.valid());
  HttpClient client(std::move(client_fd));
  // The request is queued before the handoff, as after the master's peek.
  ASSERT_TRUE(client.Send("GET / HTTP/1.1\r\nHost: A.localhost\r\n\r\n").ok());
  handoff::HandoffEntry entry;
  entry.connection_id = 1;
  entry.protocol = handoff::Protocol::kHttp;
  entry.host = "a.localhost";
  ASSERT_NO_FATAL_FAILURE(HandOver(std::move(server_fd), entry));
  absl::StatusOr<HttpResponse> response = client.Read();
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->body,
            absl::StrCat("site=a worker=1 pid=", child_.pid,
                         " host=A.localhost sni=- alpn=- tls=0 peer=",
                         client.LocalAddress(), "\n"));
  // Keep-alive: the worker serves the client directly from now on.
  ASSERT_TRUE(client.Send("GET /2 HTTP/1.1\r\nHost: x\r\n\r\n").ok());
  response = client.Read();
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_NE(response->body.find(" host=x "), std::string::npos);
}

TEST_F(FakeMasterTest, ProxySourceAndSkippedHeader) {
  auto [client_fd, server_fd] = ::ddv::testing::ConnectedTcpPair();
  ASSERT_TRUE(client_fd.valid() && server_fd.valid());
  HttpClient client(std::move(client_fd));
  const std::string proxy = "PROXY TCP4 198.51.100.9 10.0.0.1 5555 80\r\n";
  ASSERT_TRUE(
      client.Send(proxy + "GET / HTTP/1.1\r\nHost: a.localhost\r\n\r\n").ok());
  handoff::HandoffEntry entry;
  entry.connection_id = 2;
  entry.protocol = handoff::Protocol::kHttp;
  entry.host = "a.localhost";
  entry.proxy.has_addresses = true;
  auto& sin = reinterpret_cast<sockaddr_in&>(entry.proxy.source);
  sin.sin_family = AF_INET;
  sin.sin_port = htons(5555);
  inet_pton(AF_INET, "198.51.100.9", &sin.sin_addr);
  auto& to = reinterpret_cast<sockaddr_in&>(entry.proxy.destination);
  to.sin_family = AF_INET;
  to.sin_port = htons(80);
  inet_pton(AF_INET, "10.0.0.1", &to.sin_addr);
  entry.skip_bytes = static_cast<uint32_t>(proxy.size());
  ASSERT_NO_FATAL_FAILURE(HandOver(std::move(server_fd), entry));
  absl::StatusOr<HttpResponse> response = client.Read();
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->body, absl::StrCat("site=a worker=1 pid=", child_.pid,
                                         " host=a.localhost sni=- alpn=- tls=0 "
                                         "peer=198.51.100.9:5555\n"));
}

// GET /proxy shows the rest of the header: destination and TLVs, text
// escaped, the unique id and unknown TLVs in hex.
TEST_F(FakeMasterTest, ProxyEndpointShowsTheHeader) {
  auto [client_fd, server_fd] = ::ddv::testing::ConnectedTcpPair();
  ASSERT_TRUE(client_fd.valid() && server_fd.valid());
  HttpClient client(std::move(client_fd));
  ASSERT_TRUE(client.Send("GET /proxy HTTP/1.1\r\nHost: a.localhost\r\n\r\n"
                          "GET /proxy HTTP/1.1\r\nHost: a.localhost\r\n\r\n")
                  .ok());
  handoff::HandoffEntry entry;
  entry.connection_id = 4;
  entry.protocol = handoff::Protocol::kHttp;
  entry.host = "a.localhost";
  entry.proxy.has_addresses = true;
  auto& from = reinterpret_cast<sockaddr_in6&>(entry.proxy.source);
  from.sin6_family = AF_INET6;
  from.sin6_port = htons(5555);
  inet_pton(AF_INET6, "::ffff:198.51.100.9", &from.sin6_addr);
  auto& to = reinterpret_cast<sockaddr_in6&>(entry.proxy.destination);
  to.sin6_family = AF_INET6;
  to.sin6_port = htons(443);
  inet_pton(AF_INET6, "2001:db8::2", &to.sin6_addr);
  entry.proxy.tlvs = std::string(
      "\x01\x00\x02" "h2"
      "\x02\x00\x0b" "a b.example"
      "\x05\x00\x02" "\xab\xcd"
      "\x20\x00\x14" "\x07\x00\x00\x00\x00" "\x21\x00\x07" "TLSv1.3"
      "\x22\x00\x02" "cn"
      "\xea\x00\x01" "\x01",
      51);
  entry.proxy.tlvs_truncated = true;
  ASSERT_NO_FATAL_FAILURE(HandOver(std::move(server_fd), entry));
  absl::StatusOr<HttpResponse> response = client.Read();
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->body,
            "proxy=1\n"
            "source=198.51.100.9:5555\n"
            "destination=[2001:db8::2]:443\n"
            "alpn=h2\n"
            "authority=a\\x20b.example\n"
            "unique_id=abcd\n"
            "ssl_client=7\n"
            "ssl_verify=0\n"
            "ssl_version=TLSv1.3\n"
            "ssl_cn=cn\n"
            "tlv_0xea=01\n"
            "tlvs_truncated=1\n");
}

TEST_F(FakeMasterTest, ProxyEndpointWithoutAHeader) {
  auto [client_fd, server_fd] = ::ddv::testing::ConnectedTcpPair();
  ASSERT_TRUE(client_fd.valid() && server_fd.valid());
  HttpClient client(std::move(client_fd));
  ASSERT_TRUE(
      client.Send("GET /proxy HTTP/1.1\r\nHost: a.localhost\r\n\r\n").ok());
  handoff::HandoffEntry entry;
  entry.connection_id = 6;
  entry.protocol = handoff::Protocol::kHttp;
  entry.host = "a.localhost";
  ASSERT_NO_FATAL_FAILURE(HandOver(std::move(server_fd), entry));
  absl::StatusOr<HttpResponse> response = client.Read();
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->body, "proxy=0\n");
}

TEST_F(FakeMasterTest, TlsIsRefusedWithoutCertificates) {
  auto [client_fd, server_fd] = ::ddv::testing::ConnectedTcpPair();
  ASSERT_TRUE(client_fd.valid() && server_fd.valid());
  HttpClient client(std::move(client_fd));
  handoff::HandoffEntry entry;
  entry.connection_id = 3;
  entry.protocol = handoff::Protocol::kTls;
  entry.host = "a.localhost";
  entry.alpn = "h2,http/1.1";
  ASSERT_NO_FATAL_FAILURE(HandOver(std::move(server_fd), entry));
  EXPECT_TRUE(client.WaitForClose());
}

// The master's TLS contract: certificate and key paths joined by ':' and a
// ticket secret in the environment; the handed-over socket still holds the
// whole ClientHello (the master only peeked).
class FakeMasterTlsTest : public FakeMasterTest {
 protected:
  std::vector<std::string> Environment() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    std::string dir = tmp != nullptr ? tmp : "/tmp";
    std::string a_cert = dir + "/worker_a.crt", a_key = dir + "/worker_a.key";
    std::string b_cert = dir + "/worker_b.crt", b_key = dir + "/worker_b.key";
    EXPECT_TRUE(tls::WriteSelfSignedCertificate(
                    {"a.localhost", "*.a.localhost"}, a_cert, a_key,
                    absl::Hours(1))
                    .ok());
    EXPECT_TRUE(tls::WriteSelfSignedCertificate({"b.localhost"}, b_cert, b_key,
                                                absl::Hours(1))
                    .ok());
    std::vector<std::string> env = FakeMasterTest::Environment();
    env.push_back("DDV_TLS_CERT=" + a_cert + ":" + b_cert);
    env.push_back("DDV_TLS_KEY=" + a_key + ":" + b_key);
    env.push_back("DDV_TLS_TICKET_SECRET=" + std::string(64, '7'));
    return env;
  }

  // A blocking TLS client on `fd` whose ClientHello is written before the
  // handoff, like a client whose first flight the master peeked at.
  struct Client {
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    SSL* ssl = nullptr;
    ~Client() {
      SSL_free(ssl);
      SSL_CTX_free(ctx);
    }
  };

  void SendClientHello(Client& client, int fd, const char* sni) {
    client.ssl = SSL_new(client.ctx);
    SSL_set_tlsext_host_name(client.ssl, sni);
    static const unsigned char kAlpn[] = "\x02h2\x08http/1.1";
    SSL_set_alpn_protos(client.ssl, kAlpn, sizeof(kAlpn) - 1);
    SSL_set_fd(client.ssl, fd);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    int r = SSL_connect(client.ssl);  // writes the ClientHello, then waits
    ASSERT_EQ(SSL_get_error(client.ssl, r), SSL_ERROR_WANT_READ);
  }

  // Finishes the handshake after the handoff and GETs "/"; the body.
  std::string FinishAndGet(Client& client, int fd) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    timeval tv{10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (SSL_connect(client.ssl) != 1) return "handshake failed";
    const char request[] =
        "GET / HTTP/1.1\r\nHost: b.localhost\r\nConnection: close\r\n\r\n";
    SSL_write(client.ssl, request, sizeof(request) - 1);
    std::string response;
    char buf[4096];
    int n;
    while ((n = SSL_read(client.ssl, buf, sizeof(buf))) > 0) {
      response.append(buf, static_cast<size_t>(n));
    }
    size_t body = response.find("\r\n\r\n");
    return body == std::string::npos ? response : response.substr(body + 4);
  }

  std::string PeerSan(const Client& client) {
    X509* cert = SSL_get0_peer_certificate(client.ssl);
    if (cert == nullptr) return "";
    auto* sans = static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
    std::string out;
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const ASN1_STRING* s = sk_GENERAL_NAME_value(sans, i)->d.dNSName;
      out += std::string(
          reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
          static_cast<size_t>(ASN1_STRING_length(s)));
      out += ";";
    }
    GENERAL_NAMES_free(sans);
    return out;
  }
};

TEST_F(FakeMasterTlsTest, TerminatesTlsOnAHandedOverSocket) {
  auto [client_fd, server_fd] = ::ddv::testing::ConnectedTcpPair();
  ASSERT_TRUE(client_fd.valid() && server_fd.valid());
  Client client;
  ASSERT_NO_FATAL_FAILURE(SendClientHello(client, client_fd.get(),
                                          "b.localhost"));
  handoff::HandoffEntry entry;
  entry.connection_id = 4;
  entry.protocol = handoff::Protocol::kTls;
  entry.host = "b.localhost";
  entry.alpn = "h2,http/1.1";  // what the master saw offered
  ASSERT_NO_FATAL_FAILURE(HandOver(std::move(server_fd), entry));
  std::string body = FinishAndGet(client, client_fd.get());
  // The second pair of the environment, chosen by SNI; the ALPN actually
  // negotiated (never h2: ddv_hello does not serve it).
  EXPECT_EQ(PeerSan(client), "b.localhost;");
  EXPECT_EQ(body, absl::StrCat("site=a worker=1 pid=", child_.pid,
                               " host=b.localhost sni=b.localhost "
                               "alpn=http/1.1 tls=1 peer=127.0.0.1:",
                               ntohs([&] {
                                 sockaddr_in sin{};
                                 socklen_t len = sizeof(sin);
                                 getsockname(client_fd.get(),
                                             reinterpret_cast<sockaddr*>(&sin),
                                             &len);
                                 return sin.sin_port;
                               }()),
                               "\n"));
}

TEST_F(FakeMasterTlsTest, ProxyHeaderBeforeTheClientHello) {
  auto [client_fd, server_fd] = ::ddv::testing::ConnectedTcpPair();
  ASSERT_TRUE(client_fd.valid() && server_fd.valid());
  const std::string proxy = "PROXY TCP4 198.51.100.9 10.0.0.1 5555 443\r\n";
  ASSERT_EQ(write(client_fd.get(), proxy.data(), proxy.size()),
            static_cast<ssize_t>(proxy.size()));
  Client client;
  ASSERT_NO_FATAL_FAILURE(SendClientHello(client, client_fd.get(),
                                          "x.a.localhost"));
  handoff::HandoffEntry entry;
  entry.connection_id = 5;
  entry.protocol = handoff::Protocol::kTls;
  entry.host = "x.a.localhost";
  entry.proxy.has_addresses = true;
  auto& sin = reinterpret_cast<sockaddr_in&>(entry.proxy.source);
  sin.sin_family = AF_INET;
  sin.sin_port = htons(5555);
  inet_pton(AF_INET, "198.51.100.9", &sin.sin_addr);
  auto& to = reinterpret_cast<sockaddr_in&>(entry.proxy.destination);
  to.sin_family = AF_INET;
  to.sin_port = htons(443);
  inet_pton(AF_INET, "10.0.0.1", &to.sin_addr);
  entry.skip_bytes = static_cast<uint32_t>(proxy.size());
  ASSERT_NO_FATAL_FAILURE(HandOver(std::move(server_fd), entry));
  std::string body = FinishAndGet(client, client_fd.get());
  EXPECT_EQ(PeerSan(client), "a.localhost;*.a.localhost;");
  EXPECT_NE(body.find(" sni=x.a.localhost alpn=http/1.1 tls=1 "
                      "peer=198.51.100.9:5555\n"),
            std::string::npos)
      << body;
}

TEST_F(FakeMasterTest, ShutdownFrameStopsWithExitZero) {
  std::string frame;
  ASSERT_TRUE(handoff::EncodeFrame(handoff::Shutdown{1000}, &frame).ok());
  ASSERT_TRUE(handoff::SendFrame(master_.get(), frame, {}).ok());
  EXPECT_EQ(ExitCode(), 0);
}

TEST_F(FakeMasterTest, MasterGoneStopsWithExitZero) {
  master_.Reset();
  EXPECT_EQ(ExitCode(), 0);
}

// A download handed over and in progress (20 MB against a 256 KiB receive
// buffer: most of it is still to be sent).
class DownloadTest : public FakeMasterTest {
 protected:
  static constexpr size_t kSize = 20 * 1000 * 1000;

  void StartDownload() {
    auto [client_fd, server_fd] = ::ddv::testing::ConnectedTcpPair();
    ASSERT_TRUE(client_fd.valid() && server_fd.valid());
    const int rcvbuf = 128 * 1024;
    ASSERT_EQ(setsockopt(client_fd.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf,
                         sizeof(rcvbuf)),
              0);
    client_.emplace(std::move(client_fd));
    ASSERT_TRUE(client_->Send(absl::StrCat("GET /bytes/", kSize,
                                           " HTTP/1.1\r\nHost: a\r\n\r\n"))
                    .ok());
    handoff::HandoffEntry entry;
    entry.connection_id = 6;
    entry.protocol = handoff::Protocol::kHttp;
    entry.host = "a";
    ASSERT_NO_FATAL_FAILURE(HandOver(std::move(server_fd), entry));
    // The worker is sending: the first bytes are here.
    char byte;
    ASSERT_EQ(recv(client_->fd(), &byte, 1, MSG_PEEK), 1);
  }

  // What a dying master does to its workers: SIGTERM (PDEATHSIG) and the
  // channel's close, in either order.
  void MasterDies(bool signal_first) {
    if (signal_first) kill(child_.pid, SIGTERM);
    master_.Reset();
    if (!signal_first) kill(child_.pid, SIGTERM);
  }

  std::optional<HttpClient> client_;
};

TEST_F(DownloadTest, MasterDeathLetsTheDownloadFinishSignalFirst) {
  ASSERT_NO_FATAL_FAILURE(StartDownload());
  MasterDies(/*signal_first=*/true);
  absl::StatusOr<HttpResponse> response = client_->Read();
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->body.size(), kSize);
  EXPECT_EQ(ExitCode(), 0);
}

TEST_F(DownloadTest, MasterDeathLetsTheDownloadFinishChannelFirst) {
  ASSERT_NO_FATAL_FAILURE(StartDownload());
  MasterDies(/*signal_first=*/false);
  absl::StatusOr<HttpResponse> response = client_->Read();
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->body.size(), kSize);
  EXPECT_EQ(ExitCode(), 0);
}

TEST_F(DownloadTest, SecondSignalStopsAtOnce) {
  ASSERT_NO_FATAL_FAILURE(StartDownload());
  kill(child_.pid, SIGTERM);
  absl::SleepFor(absl::Milliseconds(100));  // the first one is taken
  kill(child_.pid, SIGTERM);
  EXPECT_EQ(ExitCode(), 0);
  // Cut: the client gets less than the whole body.
  EXPECT_FALSE(client_->Read().ok());
}

}  // namespace
}  // namespace hello
}  // namespace ddv
