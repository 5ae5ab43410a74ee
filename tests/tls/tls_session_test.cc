// TlsSession against a real OpenSSL client over memory BIOs: data both ways,
// input cut into single bytes, close_notify in both directions, fatal
// alerts flushed on bad input, the kTLS fallback counted, and a session that
// outlives its context.
#include "src/tls/tls_session.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "src/tls/tls_context.h"
#include "tests/tls/tls_test_client.h"

namespace ddv {
namespace tls {
namespace {

using ::ddv::tls::testing::ClientOptions;
using ::ddv::tls::testing::Handshake;
using ::ddv::tls::testing::MakeCertificate;
using ::ddv::tls::testing::TestClient;

// TLS record content type 21 (RFC 8446 §5.1); alerts are 2 bytes: level,
// description.
constexpr char kAlertRecord = 21;

std::unique_ptr<TlsServerContext> MakeContext(bool ktls = true) {
  TlsOptions options;
  options.certificates = {MakeCertificate("s", {"s.localhost"})};
  options.enable_ktls = ktls;
  absl::StatusOr<std::unique_ptr<TlsServerContext>> context =
      TlsServerContext::Create(options);
  EXPECT_TRUE(context.ok()) << context.status();
  return std::move(*context);
}

std::unique_ptr<TlsSession> NewSession(const TlsServerContext& context) {
  absl::StatusOr<std::unique_ptr<TlsSession>> session =
      TlsSession::Create(context);
  EXPECT_TRUE(session.ok()) << session.status();
  return std::move(*session);
}

// Everything the server can decrypt right now.
std::string ReadAll(TlsSession& server, TlsSession::ReadStatus* last) {
  std::string out;
  char buffer[4096];
  for (;;) {
    TlsSession::ReadResult r = server.ReadPlaintext(buffer, sizeof(buffer));
    *last = r.status;
    if (r.status != TlsSession::ReadStatus::kData) return out;
    out.append(buffer, r.bytes);
  }
}

class TlsSessionTest : public ::testing::TestWithParam<int> {
 protected:
  ClientOptions Client() {
    ClientOptions options;
    options.sni = "s.localhost";
    options.alpn = {"http/1.1"};
    options.min_version = options.max_version = GetParam();
    return options;
  }
};

TEST_P(TlsSessionTest, DataBothWays) {
  std::unique_ptr<TlsServerContext> context = MakeContext();
  std::unique_ptr<TlsSession> server = NewSession(*context);
  TestClient client(Client());
  ASSERT_TRUE(Handshake(client, *server).ok());
  EXPECT_EQ(server->sni(), "s.localhost");
  EXPECT_EQ(server->alpn(), "http/1.1");
  EXPECT_EQ(server->version(),
            GetParam() == TLS1_3_VERSION ? "TLSv1.3" : "TLSv1.2");

  client.Write("GET / HTTP/1.1\r\nHost: s\r\n\r\n");
  server->FeedCiphertext(client.TakeOutput());
  TlsSession::ReadStatus last;
  EXPECT_EQ(ReadAll(*server, &last), "GET / HTTP/1.1\r\nHost: s\r\n\r\n");
  EXPECT_EQ(last, TlsSession::ReadStatus::kWantMore);

  // 1 MiB back, written in pieces, arrives whole and in order.
  std::string big;
  for (int i = 0; big.size() < (1 << 20); ++i) absl::StrAppend(&big, i, ",");
  for (size_t i = 0; i < big.size(); i += 100000) {
    ASSERT_TRUE(server->WritePlaintext(big.substr(i, 100000)).ok());
  }
  std::string wire;
  EXPECT_GT(server->TakeCiphertext(&wire), big.size());
  EXPECT_EQ(server->pending_ciphertext(), 0u);
  client.Feed(wire);
  EXPECT_EQ(client.ReadAvailable(), big);
}

TEST_P(TlsSessionTest, InputOneByteAtATime) {
  std::unique_ptr<TlsServerContext> context = MakeContext();
  std::unique_ptr<TlsSession> server = NewSession(*context);
  TestClient client(Client());
  ASSERT_TRUE(Handshake(client, *server, /*chunk=*/1).ok());
  client.Write("ping");
  std::string wire = client.TakeOutput();
  TlsSession::ReadStatus last;
  std::string got;
  for (char c : wire) {
    server->FeedCiphertext(absl::string_view(&c, 1));
    got += ReadAll(*server, &last);
  }
  EXPECT_EQ(got, "ping");
}

TEST_P(TlsSessionTest, CloseNotifyBothWays) {
  std::unique_ptr<TlsServerContext> context = MakeContext();
  // The client closes: the server reads kClosed after the data before it.
  {
    std::unique_ptr<TlsSession> server = NewSession(*context);
    TestClient client(Client());
    ASSERT_TRUE(Handshake(client, *server).ok());
    client.Write("last words");
    SSL_shutdown(client.ssl());
    server->FeedCiphertext(client.TakeOutput());
    TlsSession::ReadStatus last;
    EXPECT_EQ(ReadAll(*server, &last), "last words");
    EXPECT_EQ(last, TlsSession::ReadStatus::kClosed);
    EXPECT_TRUE(server->peer_closed());
  }
  // The server closes: the client sees a clean end of stream.
  {
    std::unique_ptr<TlsSession> server = NewSession(*context);
    TestClient client(Client());
    ASSERT_TRUE(Handshake(client, *server).ok());
    ASSERT_TRUE(server->WritePlaintext("bye").ok());
    server->Shutdown();
    server->Shutdown();  // once only
    std::string wire;
    server->TakeCiphertext(&wire);
    client.Feed(wire);
    bool closed = false;
    EXPECT_EQ(client.ReadAvailable(&closed), "bye");
    EXPECT_TRUE(closed);
  }
}

TEST_P(TlsSessionTest, MalformedHelloGetsAFatalAlertAndIsCounted) {
  std::unique_ptr<TlsServerContext> context = MakeContext();
  std::unique_ptr<TlsSession> server = NewSession(*context);
  // A handshake record holding a ClientHello one byte long.
  server->FeedCiphertext(absl::string_view("\x16\x03\x01\x00\x05"
                                           "\x01\x00\x00\x01\x00",
                                           10));
  EXPECT_EQ(server->Handshake(), TlsSession::HandshakeStatus::kError);
  EXPECT_TRUE(server->failed());
  EXPECT_FALSE(server->error().empty());
  std::string alert;
  server->TakeCiphertext(&alert);
  ASSERT_GE(alert.size(), 7u) << "no alert was flushed";
  EXPECT_EQ(alert[0], kAlertRecord);
  EXPECT_EQ(alert[5], 2);  // fatal
  EXPECT_EQ(server->Handshake(), TlsSession::HandshakeStatus::kError);
  EXPECT_EQ(context->counters().handshake_failures.load(), 1u);
  EXPECT_EQ(context->counters().handshakes.load(), 0u);
}

TEST_P(TlsSessionTest, PlainHttpOnTheTlsPortFails) {
  std::unique_ptr<TlsServerContext> context = MakeContext();
  std::unique_ptr<TlsSession> server = NewSession(*context);
  server->FeedCiphertext("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(server->Handshake(), TlsSession::HandshakeStatus::kError);
  EXPECT_THAT(server->error(), ::testing::HasSubstr("http request"));
  // OpenSSL sends no alert to a client that does not speak TLS.
  EXPECT_EQ(context->counters().handshake_failures.load(), 1u);
}

TEST_P(TlsSessionTest, CorruptRecordAfterTheHandshakeIsFatal) {
  std::unique_ptr<TlsServerContext> context = MakeContext();
  std::unique_ptr<TlsSession> server = NewSession(*context);
  TestClient client(Client());
  ASSERT_TRUE(Handshake(client, *server).ok());
  client.Write("hello");
  std::string wire = client.TakeOutput();
  wire[wire.size() - 3] ^= 0x55;  // inside the AEAD tag
  server->FeedCiphertext(wire);
  char buffer[64];
  TlsSession::ReadResult r = server->ReadPlaintext(buffer, sizeof(buffer));
  EXPECT_EQ(r.status, TlsSession::ReadStatus::kError);
  EXPECT_THAT(server->error(), ::testing::HasSubstr("bad record mac"));
  std::string alert;
  server->TakeCiphertext(&alert);
  EXPECT_FALSE(alert.empty()) << "the bad_record_mac alert was not flushed";
  EXPECT_FALSE(server->WritePlaintext("more").ok());
}

TEST_P(TlsSessionTest, KtlsFallbackIsCountedWhenAskedFor) {
  for (bool ktls : {true, false}) {
    std::unique_ptr<TlsServerContext> context = MakeContext(ktls);
    std::unique_ptr<TlsSession> server = NewSession(*context);
    TestClient client(Client());
    ASSERT_TRUE(Handshake(client, *server).ok());
    // Memory buffers carry the records here, so OpenSSL keeps the record
    // layer in user space: the fallback, and it still works.
    EXPECT_FALSE(server->ktls_send());
    EXPECT_FALSE(server->ktls_recv());
    EXPECT_EQ(context->counters().ktls_active.load(), 0u);
    EXPECT_EQ(context->counters().ktls_fallback.load(), ktls ? 1u : 0u);
    EXPECT_FALSE(context->ktls_probe().empty());
    ASSERT_TRUE(server->WritePlaintext("still works").ok());
    std::string wire;
    server->TakeCiphertext(&wire);
    client.Feed(wire);
    EXPECT_EQ(client.ReadAvailable(), "still works");
  }
}

TEST_P(TlsSessionTest, SessionOutlivesItsContext) {
  std::unique_ptr<TlsServerContext> context = MakeContext();
  std::shared_ptr<TlsCounters> counters = context->shared_counters();
  std::unique_ptr<TlsSession> server = NewSession(*context);
  context.reset();  // e.g. the server shut down with connections in flight
  TestClient client(Client());
  ASSERT_TRUE(Handshake(client, *server).ok());
  EXPECT_EQ(counters->handshakes.load(), 1u);
}

INSTANTIATE_TEST_SUITE_P(Versions, TlsSessionTest,
                         ::testing::Values(TLS1_2_VERSION, TLS1_3_VERSION),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return info.param == TLS1_2_VERSION ? "Tls12"
                                                               : "Tls13";
                         });

}  // namespace
}  // namespace tls
}  // namespace ddv
