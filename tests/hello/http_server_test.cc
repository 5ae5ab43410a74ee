// HttpServer in-process, over real loopback sockets: sockets handed over with
// their first bytes unread (as after the master's peek), PROXY bytes to skip,
// external fds, pipelining, back-pressure, /bytes streaming and graceful stop,
// and the same through TLS (a real OpenSSL client on the socket). Every test
// runs with multishot and with single-shot recv.
#include "src/hello/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <cstdlib>
#include <functional>
#include <memory>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "src/tls/self_signed.h"
#include "src/tls/tls_context.h"
#include "tests/handoff/test_sockets.h"
#include "tests/hello/http_client.h"

namespace ddv {
namespace hello {
namespace {

using ::ddv::hello::testing::Get;
using ::ddv::hello::testing::HttpClient;
using ::ddv::hello::testing::HttpResponse;

// Runs an HttpServer on its own thread (the ring's single issuer). `setup`
// runs on that thread before Run(); handed-over sockets queued with Hand()
// reach AddConnection through an eventfd registered as an external fd, the
// way the worker channel does in ddv_hello.
class ServerThread {
 public:
  explicit ServerThread(HttpServer::Options options,
                        std::function<void(HttpServer&)> setup = nullptr) {
    std::promise<void> ready;
    std::future<void> ready_future = ready.get_future();
    thread_ = std::thread([this, options, setup, &ready] {
      absl::StatusOr<std::unique_ptr<HttpServer>> server =
          HttpServer::Create(options);
      if (!server.ok()) {
        ADD_FAILURE() << server.status();
        done_.store(true);
        ready.set_value();
        return;
      }
      server_ = std::move(*server);
      absl::Status listen = server_->Listen("127.0.0.1:0");
      EXPECT_TRUE(listen.ok()) << listen;
      port_ = server_->port();
      handoff_fd_.Reset(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
      server_->RegisterExternalFd(handoff_fd_.get(),
                                  [this] { TakeHandoffs(); });
      if (setup) setup(*server_);
      ready.set_value();
      run_status_ = server_->Run();
      done_.store(true);
    });
    ready_future.wait();
  }

  ~ServerThread() { StopAndJoin(); }

  int port() const { return port_; }

  void Hand(UniqueFd fd, ConnectionInfo info) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      handoffs_.emplace_back(std::move(fd), std::move(info));
    }
    uint64_t one = 1;
    ASSERT_EQ(write(handoff_fd_.get(), &one, sizeof(one)), 8);
  }

  // Stops and joins; true when Run() returned OK within `limit`.
  bool StopAndJoin(absl::Duration limit = absl::Seconds(5)) {
    if (!thread_.joinable()) return run_status_.ok();
    if (server_) server_->Stop();
    absl::Time deadline = absl::Now() + limit;
    // std::thread has no timed join: poll a flag the thread sets last.
    while (!done_.load() && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    bool in_time = done_.load();
    if (!in_time) ADD_FAILURE() << "Run() did not return after Stop()";
    thread_.join();
    return in_time && run_status_.ok();
  }

  const HttpServerStats& stats() const { return server_->stats(); }

 private:
  void TakeHandoffs() {
    uint64_t count;
    while (read(handoff_fd_.get(), &count, sizeof(count)) > 0) {
    }
    std::deque<std::pair<UniqueFd, ConnectionInfo>> batch;
    {
      std::lock_guard<std::mutex> lock(mu_);
      batch.swap(handoffs_);
    }
    for (auto& [fd, info] : batch) {
      server_->AddConnection(std::move(fd), std::move(info));
    }
  }

  std::thread thread_;
  std::unique_ptr<HttpServer> server_;
  int port_ = 0;
  UniqueFd handoff_fd_;
  std::mutex mu_;
  std::deque<std::pair<UniqueFd, ConnectionInfo>> handoffs_;
  absl::Status run_status_;
  std::atomic<bool> done_{false};
};

class HttpServerTest : public ::testing::TestWithParam<bool> {
 protected:
  HttpServer::Options Options() {
    HttpServer::Options options;
    options.site_id = "s";
    options.worker_index = 7;
    options.recv_multishot = GetParam();
    return options;
  }
};

std::string Body(absl::string_view host, absl::string_view peer,
                 absl::string_view site = "s", int worker = 7,
                 absl::string_view sni = "-", absl::string_view alpn = "-") {
  return absl::StrCat("site=", site, " worker=", worker, " pid=", getpid(),
                      " host=", host, " sni=", sni, " alpn=", alpn,
                      " tls=0 peer=", peer, "\n");
}

TEST_P(HttpServerTest, ListensAndAnswers) {
  ServerThread server(Options());
  absl::StatusOr<HttpClient> client = HttpClient::Connect(server.port());
  ASSERT_TRUE(client.ok()) << client.status();
  absl::StatusOr<HttpResponse> response = Get(*client, "/", "a.example:80");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->headers["content-type"], "text/plain");
  EXPECT_EQ(response->body, Body("a.example:80", client->LocalAddress()));
  EXPECT_TRUE(server.StopAndJoin());
}

TEST_P(HttpServerTest, AddConnectionReadsBytesWrittenBeforeTheHandoff) {
  auto [client_fd, server_fd] = ::ddv::testing::ConnectedTcpPair();
  ASSERT_TRUE(client_fd.valid() && server_fd.valid());
  HttpClient client(std::move(client_fd));
  // Written before the server ever sees the socket: the bytes wait unread
  // in the kernel, exactly as after the master's MSG_PEEK.
  ASSERT_TRUE(client.Send("GET / HTTP/1.1\r\nHost: B.example\r\n\r\n").ok());
  ConnectionInfo info;
  info.site_id = "b";
  info.worker_index = 1;
  info.host = "b.example";
  info.alpn = "http/1.1";
  std::shared_ptr<UniqueFd> handed =
      std::make_shared<UniqueFd>(std::move(server_fd));
  ServerThread server(Options(), [&](HttpServer& s) {
    s.AddConnection(std::move(*handed), info);
  });
  absl::StatusOr<HttpResponse> response = client.Read();
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->body,
            Body("B.example", client.LocalAddress(), "b", 1, "-", "http/1.1"));
  // Keep-alive on a handed-over socket too.
  response = Get(client, "/again", "b.example");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 200);
  EXPECT_TRUE(server.StopAndJoin());
  EXPECT_EQ(server.stats().connections_added, 1u);
}

TEST_P(HttpServerTest, HandoffWhileRunningSkipsProxyHeader) {
  ServerThread server(Options());
  auto [client_fd, server_fd] = ::ddv::testing::ConnectedTcpPair();
  ASSERT_TRUE(client_fd.valid() && server_fd.valid());
  HttpClient client(std::move(client_fd));
  const std::string proxy = "PROXY TCP4 203.0.113.7 10.0.0.1 4242 80\r\n";
  ASSERT_TRUE(
      client.Send(proxy + "GET / HTTP/1.1\r\nHost: c.example\r\n\r\n").ok());
  ConnectionInfo info;
  info.site_id = "c";
  info.worker_index = 0;
  info.sni = "c.example";
  info.peer = "203.0.113.7:4242";
  info.skip_bytes = proxy.size();
  server.Hand(std::move(server_fd), info);
  absl::StatusOr<HttpResponse> response = client.Read();
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->body,
            Body("c.example", "203.0.113.7:4242", "c", 0, "c.example"));
}

TEST_P(HttpServerTest, TlsHandoffWithoutContextIsRefused) {
  ServerThread server(Options());
  auto [client_fd, server_fd] = ::ddv::testing::ConnectedTcpPair();
  ASSERT_TRUE(client_fd.valid() && server_fd.valid());
  HttpClient client(std::move(client_fd));
  ConnectionInfo info;
  info.site_id = "t";
  info.tls = true;
  server.Hand(std::move(server_fd), info);
  EXPECT_TRUE(client.WaitForClose());
  EXPECT_TRUE(server.StopAndJoin());
  EXPECT_EQ(server.stats().tls_connections_refused, 1u);
}

TEST_P(HttpServerTest, PipelinedRequestsAnsweredInOrder) {
  ServerThread server(Options());
  absl::StatusOr<HttpClient> client = HttpClient::Connect(server.port());
  ASSERT_TRUE(client.ok());
  std::string burst;
  for (int i = 0; i < 5; ++i) {
    absl::StrAppend(&burst, "GET / HTTP/1.1\r\nHost: h", i, "\r\n\r\n");
  }
  ASSERT_TRUE(client->Send(burst).ok());
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<HttpResponse> response = client->Read();
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(response->body,
              Body(absl::StrCat("h", i), client->LocalAddress()));
  }
}

TEST_P(HttpServerTest, RequestsSplitIntoSingleBytes) {
  ServerThread server(Options());
  absl::StatusOr<HttpClient> client = HttpClient::Connect(server.port());
  ASSERT_TRUE(client.ok());
  const std::string requests =
      "POST /p HTTP/1.1\r\nHost: one\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n0\r\n\r\n"
      "GET / HTTP/1.1\r\nHost: two\r\n\r\n";
  for (char c : requests) {
    ASSERT_TRUE(client->Send(absl::string_view(&c, 1)).ok());
  }
  absl::StatusOr<HttpResponse> first = client->Read();
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->body, Body("one", client->LocalAddress()));
  absl::StatusOr<HttpResponse> second = client->Read();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->body, Body("two", client->LocalAddress()));
}

TEST_P(HttpServerTest, BodiesAreSkippedAndExpectContinueAnswered) {
  ServerThread server(Options());
  absl::StatusOr<HttpClient> client = HttpClient::Connect(server.port());
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE(client
                  ->Send("PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                         "Expect: 100-continue\r\n\r\n")
                  .ok());
  absl::StatusOr<HttpResponse> interim = client->Read();
  ASSERT_TRUE(interim.ok()) << interim.status();
  EXPECT_EQ(interim->status, 100);
  ASSERT_TRUE(client->Send("helloGET / HTTP/1.1\r\nHost: y\r\n\r\n").ok());
  absl::StatusOr<HttpResponse> first = client->Read();
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->body, Body("x", client->LocalAddress()));
  absl::StatusOr<HttpResponse> second = client->Read();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->body, Body("y", client->LocalAddress()));
}

TEST_P(HttpServerTest, BackPressureKeepsEveryAnswer) {
  ServerThread server(Options());
  absl::StatusOr<HttpClient> client = HttpClient::Connect(server.port());
  ASSERT_TRUE(client.ok());
  // ~300 KiB of requests, written before reading anything: the answers
  // (~400 KiB) pass the output high-water mark, so the server must pause
  // reading and resume once the client drains.
  constexpr int kCount = 6000;
  std::string burst;
  for (int i = 0; i < kCount; ++i) {
    absl::StrAppend(&burst, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  }
  std::thread writer([&] { EXPECT_TRUE(client->Send(burst).ok()); });
  int answered = 0;
  for (; answered < kCount; ++answered) {
    absl::StatusOr<HttpResponse> response = client->Read();
    if (!response.ok()) {
      ADD_FAILURE() << response.status() << " after " << answered;
      break;
    }
  }
  writer.join();
  EXPECT_EQ(answered, kCount);
}

TEST_P(HttpServerTest, BytesStreamThenPipelinedRequest) {
  ServerThread server(Options());
  absl::StatusOr<HttpClient> client = HttpClient::Connect(server.port());
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE(client
                  ->Send("GET /bytes/3000000 HTTP/1.1\r\nHost: a\r\n\r\n"
                         "HEAD /bytes/7 HTTP/1.1\r\nHost: a\r\n\r\n"
                         "GET /bytes/0 HTTP/1.1\r\nHost: a\r\n\r\n"
                         "GET /bytes/x HTTP/1.1\r\nHost: a\r\n\r\n"
                         "GET / HTTP/1.1\r\nHost: after\r\n\r\n")
                  .ok());
  absl::StatusOr<HttpResponse> big = client->Read();
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_EQ(big->body.size(), 3000000u);
  absl::StatusOr<HttpResponse> head = client->Read(/*head_only=*/true);
  ASSERT_TRUE(head.ok()) << head.status();
  EXPECT_EQ(head->headers["content-length"], "7");
  absl::StatusOr<HttpResponse> empty = client->Read();
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->body, "");
  absl::StatusOr<HttpResponse> bad = client->Read();
  ASSERT_TRUE(bad.ok()) << bad.status();
  EXPECT_EQ(bad->status, 400);
  absl::StatusOr<HttpResponse> last = client->Read();
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ(last->body, Body("after", client->LocalAddress()));
}

TEST_P(HttpServerTest, IdleTimeoutCloses) {
  HttpServer::Options options = Options();
  options.idle_timeout = absl::Milliseconds(200);
  ServerThread server(options);
  absl::StatusOr<HttpClient> client = HttpClient::Connect(server.port());
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE(Get(*client, "/").ok());
  absl::Time start = absl::Now();
  EXPECT_TRUE(client->WaitForClose());
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_TRUE(server.StopAndJoin());
  EXPECT_EQ(server.stats().idle_timeouts, 1u);
}

TEST_P(HttpServerTest, StopClosesIdleAndFinishesBusy) {
  ServerThread server(Options());
  absl::StatusOr<HttpClient> idle = HttpClient::Connect(server.port());
  absl::StatusOr<HttpClient> busy = HttpClient::Connect(server.port());
  ASSERT_TRUE(idle.ok() && busy.ok());
  ASSERT_TRUE(Get(*idle, "/").ok());
  // Half a request: the stop waits for it, answers with Connection: close.
  ASSERT_TRUE(busy->Send("GET / HTTP/1.1\r\nHost: late\r\n").ok());
  absl::SleepFor(absl::Milliseconds(50));
  std::thread stopper([&] { EXPECT_TRUE(server.StopAndJoin()); });
  EXPECT_TRUE(idle->WaitForClose());

  // A socket handed over while stopping is still served, then closed.
  auto [client_fd, server_fd] = ::ddv::testing::ConnectedTcpPair();
  ASSERT_TRUE(client_fd.valid() && server_fd.valid());
  HttpClient handed(std::move(client_fd));
  ASSERT_TRUE(handed.Send("GET / HTTP/1.1\r\nHost: h\r\n\r\n").ok());
  ConnectionInfo info;
  info.site_id = "s";
  server.Hand(std::move(server_fd), info);
  absl::StatusOr<HttpResponse> response = handed.Read();
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->headers["connection"], "close");
  EXPECT_TRUE(handed.WaitForClose());

  ASSERT_TRUE(busy->Send("\r\n").ok());
  response = busy->Read();
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->headers["connection"], "close");
  EXPECT_TRUE(busy->WaitForClose());
  stopper.join();
}

TEST_P(HttpServerTest, GarbageAndHugeHeadsCloseTheConnection) {
  ServerThread server(Options());
  absl::StatusOr<HttpClient> garbage = HttpClient::Connect(server.port());
  ASSERT_TRUE(garbage.ok());
  ASSERT_TRUE(garbage->Send("\x16\x03\x01 not http\r\n\r\n").ok());
  absl::StatusOr<HttpResponse> response = garbage->Read();
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 400);
  EXPECT_TRUE(garbage->WaitForClose());

  absl::StatusOr<HttpClient> huge = HttpClient::Connect(server.port());
  ASSERT_TRUE(huge.ok());
  ASSERT_TRUE(huge->Send(absl::StrCat("GET / HTTP/1.1\r\nHost: a\r\nX: ",
                                      std::string(20 * 1024, 'x'), "\r\n\r\n"))
                  .ok());
  response = huge->Read();
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 431);
  EXPECT_TRUE(huge->WaitForClose());
  EXPECT_TRUE(server.StopAndJoin());
  EXPECT_EQ(server.stats().bad_requests, 1u);
  EXPECT_EQ(server.stats().heads_too_large, 1u);
}

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

class HttpServerTlsTest : public HttpServerTest {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    std::string dir = tmp != nullptr ? tmp : "/tmp";
    tls::CertificateFiles files{dir + "/server.crt", dir + "/server.key"};
    ASSERT_TRUE(tls::WriteSelfSignedCertificate({"t.localhost"},
                                                files.cert_path,
                                                files.key_path, absl::Hours(1))
                    .ok());
    tls::TlsOptions options;
    options.certificates = {files};
    absl::StatusOr<std::unique_ptr<tls::TlsServerContext>> context =
        tls::TlsServerContext::Create(options);
    ASSERT_TRUE(context.ok()) << context.status();
    context_ = std::move(*context);
  }
  HttpServer::Options TlsOptions() {
    HttpServer::Options options = Options();
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

INSTANTIATE_TEST_SUITE_P(RecvModes, HttpServerTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Multishot" : "SingleShot";
                         });

}  // namespace
}  // namespace hello
}  // namespace ddv
