// TlsPump alone, against a real OpenSSL client over memory BIOs (no
// sockets): the handshake hands the negotiated names to the responder,
// requests and answers both ways, back-pressure stops decryption, /bytes/N
// is encrypted a chunk at a time, and close_notify and bad input both ways.
#include "src/hello/tls_pump.h"

#include <openssl/bio.h>
#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "src/tls/tls_context.h"
#include "tests/hello/test_tls_context.h"

namespace ddv {
namespace hello {
namespace {

using HandshakeStatus = tls::TlsSession::HandshakeStatus;

// A TLS client whose transport is two strings.
class MemoryClient {
 public:
  MemoryClient() {
    ctx_ = SSL_CTX_new(TLS_client_method());
    ssl_ = SSL_new(ctx_);
    BIO* in = BIO_new(BIO_s_mem());
    out_ = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(in, -1);  // empty means "more later", not EOF
    SSL_set_bio(ssl_, in, out_);
    in_ = in;
    SSL_set_connect_state(ssl_);
    SSL_set_tlsext_host_name(ssl_, "t.localhost");
    static const unsigned char kAlpn[] = "\x02h2\x08http/1.1";
    SSL_set_alpn_protos(ssl_, kAlpn, sizeof(kAlpn) - 1);
  }
  ~MemoryClient() {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
  }

  std::string TakeOutput() {
    std::string out;
    char buf[16384];
    int n;
    while ((n = BIO_read(out_, buf, sizeof(buf))) > 0) out.append(buf, n);
    return out;
  }
  void Feed(absl::string_view bytes) {
    if (!bytes.empty()) BIO_write(in_, bytes.data(), bytes.size());
  }
  bool Handshake() { return SSL_do_handshake(ssl_) == 1; }
  void Write(absl::string_view plaintext) {
    size_t written = 0;
    ASSERT_EQ(SSL_write_ex(ssl_, plaintext.data(), plaintext.size(), &written),
              1);
  }
  // Every plaintext byte decryptable now; `*closed` on close_notify.
  std::string Read(bool* closed = nullptr) {
    std::string out;
    char buf[16384];
    size_t n = 0;
    while (SSL_read_ex(ssl_, buf, sizeof(buf), &n) == 1) out.append(buf, n);
    if (closed != nullptr) {
      *closed = SSL_get_error(ssl_, 0) == SSL_ERROR_ZERO_RETURN;
    }
    return out;
  }
  void Shutdown() { SSL_shutdown(ssl_); }

 private:
  SSL_CTX* ctx_;
  SSL* ssl_;
  BIO* in_;
  BIO* out_;
};

class TlsPumpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<tls::TlsServerContext>> context =
        testing::MakeTestTlsContext("pump");
    ASSERT_TRUE(context.ok()) << context.status();
    context_ = std::move(*context);
    context_options_.pid = 99;
    context_options_.stats = &stats_;
    ConnectionInfo info;
    info.site_id = "s";
    info.tls = true;
    info.peer = "192.0.2.1:1";
    http_.Reset(info, -1);
    ASSERT_TRUE(pump_.Start(*context_).ok());
  }

  // What the pump would send now.
  std::string Wire() {
    std::string wire;
    EXPECT_TRUE(pump_.Encrypt(&http_, &wire).ok());
    return wire;
  }

  // Runs the handshake to the end, moving bytes both ways.
  void Handshake() {
    for (int round = 0; round < 10; ++round) {
      bool client_done = client_.Handshake();
      pump_.FeedCiphertext(client_.TakeOutput());
      if (!pump_.session().handshake_done()) {
        ASSERT_NE(pump_.Handshake(&http_), HandshakeStatus::kError)
            << pump_.session().error();
      }
      client_.Feed(Wire());
      if (client_done && pump_.session().handshake_done()) {
        client_.Read();  // TLS 1.3 tickets
        return;
      }
    }
    FAIL() << "handshake did not finish";
  }

  std::string Decrypted() {
    EXPECT_EQ(pump_.Decrypt(&http_, scratch_, sizeof(scratch_)),
              TlsPump::DecryptStatus::kIdle);
    return http_.output();
  }

  std::unique_ptr<tls::TlsServerContext> context_;
  HttpServerStats stats_;
  ResponderContext context_options_;
  HttpResponder http_{&context_options_};
  TlsPump pump_;
  MemoryClient client_;
  char scratch_[kTlsPlaintextBytes];
};

TEST_F(TlsPumpTest, RequestsInAnswersOutWithTheNegotiatedNames) {
  Handshake();
  EXPECT_EQ(pump_.session().sni(), "t.localhost");
  EXPECT_EQ(pump_.session().alpn(), "http/1.1");
  client_.Write(
      "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: b\r\n\r\n");
  pump_.FeedCiphertext(client_.TakeOutput());
  std::string answers = Decrypted();
  EXPECT_EQ(http_.requests(), 2u);
  EXPECT_NE(answers.find("host=a sni=t.localhost alpn=http/1.1 tls=1 "),
            std::string::npos);
  client_.Feed(Wire());
  EXPECT_TRUE(http_.output().empty());
  EXPECT_EQ(client_.Read(), answers);
}

TEST_F(TlsPumpTest, RecordsSplitIntoSingleBytes) {
  Handshake();
  client_.Write("GET / HTTP/1.1\r\nHost: slow\r\n\r\n");
  std::string record = client_.TakeOutput();
  for (char c : record) {
    EXPECT_TRUE(http_.output().empty());
    pump_.FeedCiphertext(absl::string_view(&c, 1));
    Decrypted();
  }
  EXPECT_NE(http_.output().find("host=slow "), std::string::npos);
}

TEST_F(TlsPumpTest, BacklogStopsDecryptionAndKeepsTheRestEncrypted) {
  Handshake();
  std::string burst;
  for (int i = 0; i < 3000; ++i) {
    absl::StrAppend(&burst, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  }
  client_.Write(burst);
  pump_.FeedCiphertext(client_.TakeOutput());
  Decrypted();
  EXPECT_TRUE(http_.Backlogged());
  EXPECT_LT(http_.requests(), 3000u);
  EXPECT_TRUE(pump_.HasBufferedInput() || http_.HasUnparsedInput());
  std::string received;
  while (http_.requests() < 3000u) {
    client_.Feed(Wire());
    received += client_.Read();
    Decrypted();
  }
  client_.Feed(Wire());
  received += client_.Read();
  EXPECT_FALSE(pump_.HasBufferedInput());
  size_t answers = 0;
  for (size_t at = received.find("HTTP/1.1 200"); at != std::string::npos;
       at = received.find("HTTP/1.1 200", at + 1)) {
    ++answers;
  }
  EXPECT_EQ(answers, 3000u);
}

TEST_F(TlsPumpTest, BytesBodyIsEncryptedAChunkAtATime) {
  Handshake();
  client_.Write("GET /bytes/200000 HTTP/1.1\r\nHost: a\r\n\r\n");
  pump_.FeedCiphertext(client_.TakeOutput());
  Decrypted();
  client_.Feed(Wire());  // the head
  std::string received = client_.Read();
  EXPECT_EQ(http_.stream_remaining(), 200000u);
  uint64_t expected_left = 200000;
  while (http_.stream_remaining() > 0) {
    std::string wire = Wire();
    expected_left -= std::min<uint64_t>(expected_left, kTlsStreamChunk);
    EXPECT_EQ(http_.stream_remaining(), expected_left);
    // One chunk of plaintext, plus record overhead.
    EXPECT_LT(wire.size(), kTlsStreamChunk + 1024);
    client_.Feed(wire);
    received += client_.Read();
  }
  size_t head_end = received.find("\r\n\r\n") + 4;
  EXPECT_EQ(received.size() - head_end, 200000u);
  EXPECT_EQ(received.substr(head_end, 200000),
            std::string(HttpResponder::StreamBlock().substr(0, 200000)));
}

TEST_F(TlsPumpTest, ClientCloseNotifyEndsTheInput) {
  Handshake();
  client_.Write("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  client_.Shutdown();
  pump_.FeedCiphertext(client_.TakeOutput());
  EXPECT_EQ(pump_.Decrypt(&http_, scratch_, sizeof(scratch_)),
            TlsPump::DecryptStatus::kPeerClosed);
  // What came before the close_notify is answered.
  EXPECT_EQ(http_.requests(), 1u);
}

TEST_F(TlsPumpTest, QueueCloseSendsCloseNotifyOnce) {
  Handshake();
  EXPECT_TRUE(pump_.QueueClose());
  EXPECT_FALSE(pump_.QueueClose());
  client_.Feed(Wire());
  bool closed = false;
  client_.Read(&closed);
  EXPECT_TRUE(closed);
}

TEST_F(TlsPumpTest, GarbageFailsTheHandshakeAndOnlyTheAlertGoesOut) {
  pump_.FeedCiphertext("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(pump_.Handshake(&http_), HandshakeStatus::kError);
  EXPECT_TRUE(pump_.session().failed());
  EXPECT_FALSE(pump_.session().error().empty());
  // Nothing was decrypted, so nothing is answered; an alert may go out.
  std::string wire = Wire();
  EXPECT_EQ(wire.find("HTTP/1.1"), std::string::npos);
  EXPECT_EQ(http_.requests(), 0u);
}

TEST_F(TlsPumpTest, CorruptRecordAfterTheHandshakeIsAnError) {
  Handshake();
  client_.Write("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  std::string record = client_.TakeOutput();
  record[record.size() - 1] ^= 0x55;  // breaks the record's AEAD tag
  pump_.FeedCiphertext(record);
  EXPECT_EQ(pump_.Decrypt(&http_, scratch_, sizeof(scratch_)),
            TlsPump::DecryptStatus::kError);
  EXPECT_EQ(http_.requests(), 0u);
  // The alert goes out; no answer is encrypted after a fatal error.
  EXPECT_EQ(Wire().find("HTTP"), std::string::npos);
}

TEST_F(TlsPumpTest, ResetMakesThePumpInactive) {
  EXPECT_TRUE(pump_.active());
  pump_.Reset();
  EXPECT_FALSE(pump_.active());
  EXPECT_FALSE(pump_.HasBufferedInput());
  EXPECT_FALSE(pump_.QueueClose());
  ASSERT_TRUE(pump_.Start(*context_).ok());
  EXPECT_TRUE(pump_.active());
  EXPECT_FALSE(pump_.session().handshake_done());
}

}  // namespace
}  // namespace hello
}  // namespace ddv
