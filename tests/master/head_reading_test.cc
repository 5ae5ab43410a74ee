// ReadHead: the one reading of a peeked head the primary loop and the
// shards share. What each protocol yields, what it sets on the connection,
// and that the sniff flags describe only the read that decided.
#include "src/master/head_reading.h"

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "tests/testing/client_hello_builder.h"

namespace ddv {
namespace master {
namespace {

constexpr uint32_t kMaxPeekBytes = 16384;

config::ListenerConfig Listener(config::Protocol protocol,
                                bool proxy_protocol = false) {
  config::ListenerConfig listener;
  listener.protocol = protocol;
  listener.proxy_protocol = proxy_protocol;
  return listener;
}

// HeadReading holds a ClientHelloInfo (~4.5 KiB): off the test's stack.
struct Read {
  Connection connection;
  std::unique_ptr<HeadReading> head = std::make_unique<HeadReading>();
};

std::unique_ptr<Read> ReadOn(const config::ListenerConfig& listener,
                             const std::string& bytes,
                             uint32_t max_peek_bytes = kMaxPeekBytes) {
  auto read = std::make_unique<Read>();
  ReadHead(listener, bytes, max_peek_bytes, &read->connection,
           read->head.get());
  return read;
}

TEST(ReadHeadTest, HttpRoutesByTheNormalizedHost) {
  auto r = ReadOn(Listener(config::Protocol::kHttp),
                  "GET / HTTP/1.1\r\nHost: Example.TEST:80\r\n\r\n");
  ASSERT_EQ(r->head->result, HeadReading::Result::kRoute);
  EXPECT_EQ(r->head->name, "example.test");
  EXPECT_EQ(r->connection.host.view(), "example.test");
  EXPECT_TRUE(r->head->flags.host_found);
  EXPECT_FALSE(r->head->flags.host_absent);
  EXPECT_EQ(r->connection.skip_bytes, 0u);
}

TEST(ReadHeadTest, HttpWithoutAHostRoutesByNoName) {
  auto r = ReadOn(Listener(config::Protocol::kHttp), "GET / HTTP/1.0\r\n\r\n");
  ASSERT_EQ(r->head->result, HeadReading::Result::kRoute);
  EXPECT_EQ(r->head->name, "");
  EXPECT_TRUE(r->head->flags.host_absent);
  EXPECT_FALSE(r->head->flags.host_found);
}

TEST(ReadHeadTest, AnIncompleteHeadNeedsMore) {
  auto r = ReadOn(Listener(config::Protocol::kHttp),
                  "GET / HTTP/1.1\r\nHost: a.test\r\n");
  EXPECT_EQ(r->head->result, HeadReading::Result::kNeedMore);
}

TEST(ReadHeadTest, ForeignBytesAreRefusedWithTheSniffersAnswer) {
  auto r = ReadOn(Listener(config::Protocol::kHttp),
                  std::string("\x16\x03\x01\x00\x05hello", 10));
  ASSERT_EQ(r->head->result, HeadReading::Result::kRefuse);
  EXPECT_FALSE(r->head->bad_proxy_header);
  EXPECT_EQ(r->head->refusal, sniff::SniffStatus::kNotThisProtocol);
}

TEST(ReadHeadTest, AHeadOverTheCapIsTooLarge) {
  const std::string head = "GET / HTTP/1.1\r\nX-Pad: " +
                           std::string(200, 'x') + "\r\nHost: a.test\r\n\r\n";
  auto r = ReadOn(Listener(config::Protocol::kHttp), head, 64);
  ASSERT_EQ(r->head->result, HeadReading::Result::kRefuse);
  EXPECT_EQ(r->head->refusal, sniff::SniffStatus::kTooLarge);
}

TEST(ReadHeadTest, TlsRoutesBySniAndOfferedAlpn) {
  const std::string hello = test::ClientHelloBuilder()
                                .Sni("Secure.Test")
                                .Alpn({"h2", "http/1.1"})
                                .Build();
  auto r = ReadOn(Listener(config::Protocol::kTls), hello);
  ASSERT_EQ(r->head->result, HeadReading::Result::kRoute);
  EXPECT_EQ(r->head->name, "secure.test");
  ASSERT_EQ(r->head->alpn().size(), 2u);
  EXPECT_EQ(r->head->alpn()[0], "h2");
  EXPECT_EQ(r->head->alpn()[1], "http/1.1");
  EXPECT_EQ(r->connection.alpn, "h2,http/1.1");
  EXPECT_TRUE(r->head->flags.sni_found);
  EXPECT_TRUE(r->head->flags.alpn_found);
  EXPECT_FALSE(r->head->flags.sni_absent || r->head->flags.alpn_absent ||
               r->head->flags.host_found);
}

TEST(ReadHeadTest, TlsWithoutSniOrAlpn) {
  const std::string hello = test::ClientHelloBuilder().Build();
  auto r = ReadOn(Listener(config::Protocol::kTls), hello);
  ASSERT_EQ(r->head->result, HeadReading::Result::kRoute);
  EXPECT_EQ(r->head->name, "");
  EXPECT_TRUE(r->head->alpn().empty());
  EXPECT_EQ(r->connection.alpn, "");
  EXPECT_TRUE(r->head->flags.sni_absent);
  EXPECT_TRUE(r->head->flags.alpn_absent);
}

TEST(ReadHeadTest, AProxyHeaderIsSkippedAndItsAddressesKept) {
  const std::string proxy = "PROXY TCP4 192.0.2.7 198.51.100.1 4000 443\r\n";
  auto r = ReadOn(Listener(config::Protocol::kHttp, /*proxy_protocol=*/true),
                  proxy + "GET / HTTP/1.1\r\nHost: b.test\r\n\r\n");
  ASSERT_EQ(r->head->result, HeadReading::Result::kRoute);
  EXPECT_EQ(r->head->name, "b.test");
  EXPECT_EQ(r->connection.skip_bytes, proxy.size());
  EXPECT_TRUE(r->connection.proxy.has_addresses);
  EXPECT_TRUE(r->head->flags.proxy_header);
  EXPECT_EQ(r->head->proxy_tlvs_dropped, 0u);
}

TEST(ReadHeadTest, AListenerExpectingProxyRefusesAClientsOwnBytes) {
  auto r = ReadOn(Listener(config::Protocol::kHttp, /*proxy_protocol=*/true),
                  "GET / HTTP/1.1\r\nHost: b.test\r\n\r\n");
  ASSERT_EQ(r->head->result, HeadReading::Result::kRefuse);
  EXPECT_TRUE(r->head->bad_proxy_header);
  EXPECT_FALSE(r->head->flags.proxy_header);
}

TEST(ReadHeadTest, AProxyHeaderAloneStillNeedsTheRequest) {
  auto r = ReadOn(Listener(config::Protocol::kHttp, /*proxy_protocol=*/true),
                  "PROXY TCP4 192.0.2.7 198.51.100.1 4000 443\r\nGET / HT");
  EXPECT_EQ(r->head->result, HeadReading::Result::kNeedMore);
}

TEST(ReadHeadTest, TcpRoutesByNoNameOnceTheProxyHeaderIsRead) {
  const std::string proxy = "PROXY TCP6 2001:db8::1 2001:db8::2 4000 22\r\n";
  auto r = ReadOn(Listener(config::Protocol::kTcp, /*proxy_protocol=*/true),
                  proxy + "SSH-2.0-client\r\n");
  ASSERT_EQ(r->head->result, HeadReading::Result::kRoute);
  EXPECT_EQ(r->head->name, "");
  EXPECT_EQ(r->connection.skip_bytes, proxy.size());
  auto half = ReadOn(Listener(config::Protocol::kTcp, true), "PROXY TCP6 2001");
  EXPECT_EQ(half->head->result, HeadReading::Result::kNeedMore);
}

TEST(ReadHeadTest, FlagsAddToTheCountersOnce) {
  Counters counters;
  SniffFlags flags;
  flags.proxy_header = true;
  flags.sni_found = true;
  flags.alpn_absent = true;
  flags.AddTo(counters);
  EXPECT_EQ(counters.proxy_header_found, 1u);
  EXPECT_EQ(counters.tls_sni_found, 1u);
  EXPECT_EQ(counters.tls_alpn_absent, 1u);
  EXPECT_EQ(counters.http_host_found, 0u);
  EXPECT_EQ(counters.tls_alpn_found, 0u);
}

}  // namespace
}  // namespace master
}  // namespace ddv
