// HttpServer terminating TLS, in-process over real loopback sockets with a
// real OpenSSL client on the socket: TLS listeners and handed-over sockets
// with the ClientHello unread, pipelining and /bytes streaming through TLS,
// close_notify both ways, handshake failures counted, and the stop. Every
// test runs with multishot and with single-shot recv.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "src/hello/http_server.h"
#include "src/tls/tls_context.h"
#include "tests/handoff/test_sockets.h"
#include "tests/hello/http_client.h"
#include "tests/hello/server_thread.h"
#include "tests/hello/test_tls_context.h"

namespace ddv {
namespace hello {
namespace {

using ::ddv::hello::testing::HttpClient;
using ::ddv::hello::testing::ServerThread;

// A blocking TLS client (OpenSSL) on a loopback socket; reads time out.
class TlsClient {
 public:
  explicit TlsClient(UniqueFd fd) : fd_(std::move(fd)) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_.get());
    timeval tv{5, 0};
    setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  ~TlsClient() {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
  }
  static std::unique_ptr<TlsClient> Connect(int port) {
    UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons(static_cast<uint16_t>(port));
    EXPECT_EQ(connect(fd.get(), reinterpret_cast<sockaddr*>(&sin), sizeof(sin)),
              0);
    return std::make_unique<TlsClient>(std::move(fd));
  }

  void Offer(const char* sni, absl::string_view alpn_wire) {
    SSL_set_tlsext_host_name(ssl_, sni);
    SSL_set_alpn_protos(ssl_,
                        reinterpret_cast<const unsigned char*>(alpn_wire.data()),
                        static_cast<unsigned int>(alpn_wire.size()));
  }
  // Writes the ClientHello and returns without waiting for the answer, as
  // a client does before the master's peek and handoff.
  void SendClientHello() {
    fcntl(fd_.get(), F_SETFL, fcntl(fd_.get(), F_GETFL) | O_NONBLOCK);
    int r = SSL_connect(ssl_);
    EXPECT_EQ(SSL_get_error(ssl_, r), SSL_ERROR_WANT_READ);
    fcntl(fd_.get(), F_SETFL, fcntl(fd_.get(), F_GETFL) & ~O_NONBLOCK);
  }
  bool Handshake() { return SSL_connect(ssl_) == 1; }
  void Send(absl::string_view bytes) {
    size_t written = 0;
    EXPECT_EQ(SSL_write_ex(ssl_, bytes.data(), bytes.size(), &written), 1);
  }
  // One response: head and Content-Length body. Empty on EOF or timeout.
  std::string ReadResponse(std::string* body = nullptr) {
    while (buffer_.find("\r\n\r\n") == std::string::npos) {
      if (!Fill()) return "";
    }
    size_t head_end = buffer_.find("\r\n\r\n") + 4;
    std::string head = buffer_.substr(0, head_end);
    size_t length = 0;
    size_t at = head.find("Content-Length: ");
    if (at != std::string::npos) length = std::stoul(head.substr(at + 16));
    if (head.rfind("HTTP/1.1 100", 0) == 0) length = 0;
    while (buffer_.size() < head_end + length) {
      if (!Fill()) return "";
    }
    if (body != nullptr) *body = buffer_.substr(head_end, length);
    buffer_.erase(0, head_end + length);
    return head;
  }
  // True when the server's close_notify (not a timeout) ends the stream.
  bool ReadsCloseNotify() {
    while (Fill()) {
    }
    return SSL_get_error(ssl_, 0) == SSL_ERROR_ZERO_RETURN ||
           (SSL_get_shutdown(ssl_) & SSL_RECEIVED_SHUTDOWN) != 0;
  }
  SSL* ssl() const { return ssl_; }
  int fd() const { return fd_.get(); }

 private:
  bool Fill() {
    char buf[65536];
    size_t n = 0;
    if (SSL_read_ex(ssl_, buf, sizeof(buf), &n) != 1) return false;
    buffer_.append(buf, n);
    return true;
  }
  UniqueFd fd_;
  SSL_CTX* ctx_;
  SSL* ssl_;
  std::string buffer_;
};

constexpr char kAlpnH2Http11[] = "\x02h2\x08http/1.1";

class HttpServerTlsTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<tls::TlsServerContext>> context =
        testing::MakeTestTlsContext("server");
    ASSERT_TRUE(context.ok()) << context.status();
    context_ = std::move(*context);
  }
  HttpServer::Options TlsOptions() {
    HttpServer::Options options;
    options.site_id = "s";
    options.worker_index = 7;
    options.recv_multishot = GetParam();
    // Stops with idle keep-alive clients would each wait the 1 s default.
    options.drain_idle_grace = absl::Milliseconds(50);
    options.tls_context = context_.get();
    return options;
  }
  // Starts a server with a TLS listener; its port.
  std::unique_ptr<ServerThread> StartTlsServer(int* port,
                                               HttpServer::Options options) {
    return std::make_unique<ServerThread>(options, [port](HttpServer& s) {
      absl::Status status = s.Listen("127.0.0.1:0", /*tls=*/true);
      EXPECT_TRUE(status.ok()) << status;
      *port = s.port();
    });
  }
  std::string TlsBody(absl::string_view host, absl::string_view peer,
                      absl::string_view sni, absl::string_view alpn,
                      absl::string_view site = "s", int worker = 7) {
    return absl::StrCat("site=", site, " worker=", worker, " pid=", getpid(),
                        " host=", host, " sni=", sni, " alpn=", alpn,
                        " tls=1 peer=", peer, "\n");
  }
  std::unique_ptr<tls::TlsServerContext> context_;
};

std::string LocalAddressOf(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  return FormatSockaddr(ss);
}

TEST_P(HttpServerTlsTest, TlsListenerReportsWhatWasNegotiated) {
  int port = 0;
  std::unique_ptr<ServerThread> server = StartTlsServer(&port, TlsOptions());
  std::unique_ptr<TlsClient> client = TlsClient::Connect(port);
  client->Offer("T.localhost", absl::string_view(kAlpnH2Http11, 12));
  ASSERT_TRUE(client->Handshake());
  client->Send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string body;
  ASSERT_NE(client->ReadResponse(&body), "");
  EXPECT_EQ(body, TlsBody("t", LocalAddressOf(client->fd()), "T.localhost",
                          "http/1.1"));
  // Keep-alive.
  client->Send("GET /again HTTP/1.1\r\nHost: t2\r\n\r\n");
  ASSERT_NE(client->ReadResponse(&body), "");
  EXPECT_NE(body.find(" host=t2 "), std::string::npos);
  EXPECT_TRUE(server->StopAndJoin());
  EXPECT_EQ(server->stats().tls_handshakes, 1u);
  EXPECT_EQ(server->stats().requests, 2u);
}

TEST_P(HttpServerTlsTest, HandedOverSocketWithTheClientHelloUnread) {
  ServerThread server(TlsOptions());
  auto [client_fd, server_fd] = ::ddv::testing::ConnectedTcpPair();
  ASSERT_TRUE(client_fd.valid() && server_fd.valid());
  TlsClient client(std::move(client_fd));
  client.Offer("t.localhost", absl::string_view(kAlpnH2Http11, 12));
  client.SendClientHello();
  ConnectionInfo info;
  info.site_id = "t";
  info.worker_index = 2;
  info.tls = true;
  info.sni = "t.localhost";
  info.alpn = "h2,http/1.1";  // the master's view: what was offered
  server.Hand(std::move(server_fd), info);
  ASSERT_TRUE(client.Handshake());
  client.Send("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  std::string body;
  std::string head = client.ReadResponse(&body);
  EXPECT_NE(head.find("Connection: close"), std::string::npos);
  EXPECT_EQ(body, TlsBody("t", LocalAddressOf(client.fd()), "t.localhost",
                          "http/1.1", "t", 2));
  // A graceful close sends close_notify before the FIN.
  EXPECT_TRUE(client.ReadsCloseNotify());
  EXPECT_TRUE(server.StopAndJoin());
  EXPECT_EQ(server.stats().connections_added, 1u);
}

TEST_P(HttpServerTlsTest, PipelinedRequestsAndBytesStreamThroughTls) {
  int port = 0;
  std::unique_ptr<ServerThread> server = StartTlsServer(&port, TlsOptions());
  std::unique_ptr<TlsClient> client = TlsClient::Connect(port);
  ASSERT_TRUE(client->Handshake());
  std::string burst =
      "GET /bytes/3000000 HTTP/1.1\r\nHost: a\r\n\r\n"
      "HEAD /bytes/7 HTTP/1.1\r\nHost: a\r\n\r\n"
      "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n0\r\n\r\n";
  for (int i = 0; i < 50; ++i) {
    absl::StrAppend(&burst, "GET /", i, " HTTP/1.1\r\nHost: h", i, "\r\n\r\n");
  }
  client->Send(burst);
  std::string body;
  ASSERT_NE(client->ReadResponse(&body), "");
  EXPECT_EQ(body.size(), 3000000u);
  std::string head = client->ReadResponse();
  EXPECT_NE(head.find("Content-Length: 7"), std::string::npos);
  // A HEAD answer has no body: the next response starts right away.
  ASSERT_NE(client->ReadResponse(&body), "");
  for (int i = 0; i < 50; ++i) {
    ASSERT_NE(client->ReadResponse(&body), "") << i;
    EXPECT_NE(body.find(absl::StrCat(" host=h", i, " ")), std::string::npos);
  }
  EXPECT_TRUE(server->StopAndJoin());
  EXPECT_EQ(server->stats().requests, 53u);
}

TEST_P(HttpServerTlsTest, ClientCloseNotifyEndsTheConnection) {
  int port = 0;
  std::unique_ptr<ServerThread> server = StartTlsServer(&port, TlsOptions());
  std::unique_ptr<TlsClient> client = TlsClient::Connect(port);
  ASSERT_TRUE(client->Handshake());
  client->Send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  SSL_shutdown(client->ssl());  // close_notify right behind the request
  std::string body;
  ASSERT_NE(client->ReadResponse(&body), "");
  EXPECT_NE(body.find("tls=1"), std::string::npos);
  EXPECT_TRUE(client->ReadsCloseNotify());
  EXPECT_TRUE(server->StopAndJoin());
}

TEST_P(HttpServerTlsTest, HandshakeFailuresAreCountedAndClosed) {
  int port = 0;
  std::unique_ptr<ServerThread> server = StartTlsServer(&port, TlsOptions());
  {
    absl::StatusOr<HttpClient> plain = HttpClient::Connect(port);
    ASSERT_TRUE(plain.ok());
    ASSERT_TRUE(plain->Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n").ok());
    EXPECT_TRUE(plain->WaitForClose());
  }
  {
    // TLS 1.1 only: refused with a protocol_version alert.
    std::unique_ptr<TlsClient> old = TlsClient::Connect(port);
    SSL_set_min_proto_version(old->ssl(), TLS1_VERSION);
    SSL_set_max_proto_version(old->ssl(), TLS1_1_VERSION);
    SSL_set_security_level(old->ssl(), 0);
    EXPECT_FALSE(old->Handshake());
    ERR_clear_error();
  }
  // The server goes on.
  std::unique_ptr<TlsClient> good = TlsClient::Connect(port);
  ASSERT_TRUE(good->Handshake());
  good->Send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_NE(good->ReadResponse(), "");
  EXPECT_TRUE(server->StopAndJoin());
  EXPECT_EQ(server->stats().tls_handshake_failures, 2u);
  EXPECT_EQ(context_->counters().handshake_failures.load(), 2u);
  EXPECT_EQ(context_->counters().ktls_fallback.load(), 1u);
}

TEST_P(HttpServerTlsTest, StopClosesIdleTlsConnectionsWithCloseNotify) {
  int port = 0;
  std::unique_ptr<ServerThread> server = StartTlsServer(&port, TlsOptions());
  std::unique_ptr<TlsClient> client = TlsClient::Connect(port);
  ASSERT_TRUE(client->Handshake());
  client->Send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_NE(client->ReadResponse(), "");
  EXPECT_TRUE(server->StopAndJoin());
  EXPECT_TRUE(client->ReadsCloseNotify());
}

INSTANTIATE_TEST_SUITE_P(RecvModes, HttpServerTlsTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Multishot" : "SingleShot";
                         });

}  // namespace
}  // namespace hello
}  // namespace ddv
