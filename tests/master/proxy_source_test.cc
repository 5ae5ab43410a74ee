// What the master keeps of a PROXY header for the worker (TLVs filtered and
// capped, whole), what a Node worker gets of it, who may send one, and
// dropping its bytes from a real socket.
#include "src/master/proxy_source.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "src/base/ip_network.h"

namespace ddv {
namespace master {
namespace {

std::string Tlv(int type, const std::string& value) {
  return std::string(1, static_cast<char>(type)) +
         static_cast<char>(value.size() >> 8) +
         static_cast<char>(value.size() & 0xff) + value;
}

std::string V2Tcp4(const std::string& tlvs) {
  std::string block("\x0a\x00\x00\x01\x0a\x00\x00\x02\x04\xd2\x01\xbb", 12);
  block += tlvs;
  return std::string("\r\n\r\n\0\r\nQUIT\n", 12) + "\x21\x11" +
         static_cast<char>(block.size() >> 8) +
         static_cast<char>(block.size() & 0xff) + block;
}

sniff::ProxyHeader Parse(const std::string& bytes) {
  sniff::ProxyHeader header;
  EXPECT_EQ(sniff::SniffProxyHeader(bytes, &header), sniff::SniffStatus::kFound)
      << header.reason;
  return header;
}

TEST(ProxyMetadataFromTest, AddressesAndTlvsWithoutPaddingOrChecksum) {
  const std::string input = V2Tcp4(Tlv(0x04, std::string(20, '\0')) +
                                   Tlv(0x01, "h2") + Tlv(0x02, "a.example"));
  handoff::ProxyMetadata proxy;
  EXPECT_EQ(ProxyMetadataFrom(Parse(input), &proxy), 0u);
  EXPECT_TRUE(proxy.has_addresses);
  EXPECT_EQ(proxy.source.ss_family, AF_INET);
  EXPECT_EQ(ntohs(reinterpret_cast<sockaddr_in&>(proxy.source).sin_port),
            1234);
  EXPECT_EQ(
      ntohs(reinterpret_cast<sockaddr_in&>(proxy.destination).sin_port), 443);
  EXPECT_EQ(proxy.tlvs, Tlv(0x01, "h2") + Tlv(0x02, "a.example"));
  EXPECT_FALSE(proxy.tlvs_truncated);
}

TEST(ProxyMetadataFromTest, WholeTlvsUpToTheLimitTheRestCounted) {
  const std::string big = Tlv(0xe0, std::string(400, 'x'));
  const std::string authority = Tlv(0x02, std::string(250, 'a'));
  const std::string id = Tlv(0x05, std::string(100, 'u'));
  handoff::ProxyMetadata proxy;
  // 253 + 403 > 640: the vendor TLV goes, the unique id after it fits.
  EXPECT_EQ(ProxyMetadataFrom(Parse(V2Tcp4(authority + big + id)), &proxy),
            1u);
  EXPECT_EQ(proxy.tlvs, authority + id);
  EXPECT_TRUE(proxy.tlvs_truncated);
  EXPECT_LE(proxy.tlvs.size(), handoff::kMaxProxyTlvLength);
}

TEST(ProxyMetadataFromTest, NoAddressesForV1UnknownOrLocal) {
  handoff::ProxyMetadata proxy;
  proxy.tlvs = "stale";
  EXPECT_EQ(ProxyMetadataFrom(Parse("PROXY UNKNOWN\r\n"), &proxy), 0u);
  EXPECT_FALSE(proxy.has_addresses);
  EXPECT_TRUE(proxy.tlvs.empty());
  EXPECT_EQ(ProxyMetadataFrom(
                Parse(std::string("\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00", 16)),
                &proxy),
            0u);
  EXPECT_FALSE(proxy.has_addresses);
}

TEST(NodeProxyJsonTest, NothingWithoutAHeaderAndEveryFieldWithOne) {
  EXPECT_EQ(NodeProxyJson(handoff::ProxyMetadata()), "");
  handoff::ProxyMetadata proxy;
  ProxyMetadataFrom(
      Parse(V2Tcp4(Tlv(0x01, "h2") + Tlv(0x05, "\x01\x02") +
                   Tlv(0x20, std::string("\x05\0\0\0\0", 5) +
                                 Tlv(0x22, "cn")))),
      &proxy);
  proxy.tlvs_truncated = true;
  const nlohmann::json got = nlohmann::json::parse(NodeProxyJson(proxy));
  EXPECT_EQ(got["proxy"]["source"],
            nlohmann::json({{"address", "10.0.0.1"},
                            {"port", 1234},
                            {"family", "IPv4"}}));
  EXPECT_EQ(got["proxy"]["destination"]["port"], 443);
  EXPECT_EQ(got["proxy"]["alpn"], "h2");
  EXPECT_EQ(got["proxy"]["uniqueId"], "0102");
  EXPECT_EQ(got["proxy"]["ssl"],
            nlohmann::json({{"client", 5}, {"verify", 0}, {"cn", "cn"}}));
  EXPECT_TRUE(got["proxy"]["tlvsTruncated"].get<bool>());
  EXPECT_FALSE(got["proxy"].contains("authority"));
}

TEST(NodeProxyJsonTest, MappedAddressesAreIpv4AndOthersIpv6) {
  handoff::ProxyMetadata proxy;
  proxy.has_addresses = true;
  auto& source = reinterpret_cast<sockaddr_in6&>(proxy.source);
  source.sin6_family = AF_INET6;
  source.sin6_port = htons(7);
  inet_pton(AF_INET6, "::ffff:192.0.2.9", &source.sin6_addr);
  auto& destination = reinterpret_cast<sockaddr_in6&>(proxy.destination);
  destination.sin6_family = AF_INET6;
  inet_pton(AF_INET6, "2001:db8::1", &destination.sin6_addr);
  const nlohmann::json got = nlohmann::json::parse(NodeProxyJson(proxy));
  EXPECT_EQ(got["proxy"]["source"]["address"], "192.0.2.9");
  EXPECT_EQ(got["proxy"]["source"]["family"], "IPv4");
  EXPECT_EQ(got["proxy"]["destination"]["address"], "2001:db8::1");
  EXPECT_EQ(got["proxy"]["destination"]["family"], "IPv6");
}

// A connected loopback pair: (client, accepted), the client bound to
// `from`.
std::pair<UniqueFd, UniqueFd> Pair(const char* from) {
  UniqueFd listener(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(bind(listener.get(), reinterpret_cast<sockaddr*>(&address),
                 sizeof(address)),
            0);
  socklen_t length = sizeof(address);
  getsockname(listener.get(), reinterpret_cast<sockaddr*>(&address), &length);
  listen(listener.get(), 1);
  UniqueFd client(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in source{};
  source.sin_family = AF_INET;
  inet_pton(AF_INET, from, &source.sin_addr);
  EXPECT_EQ(bind(client.get(), reinterpret_cast<sockaddr*>(&source),
                 sizeof(source)),
            0);
  EXPECT_EQ(connect(client.get(), reinterpret_cast<sockaddr*>(&address),
                    sizeof(address)),
            0);
  UniqueFd accepted(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  return {std::move(client), std::move(accepted)};
}

TEST(PeerMaySendProxyTest, AnyPeerWithoutNetworksElseOnlyTheirs) {
  config::ListenerConfig listener;
  listener.proxy_protocol = true;
  auto [client, accepted] = Pair("127.0.0.3");
  sockaddr_storage peer;
  EXPECT_TRUE(PeerMaySendProxy(listener, accepted.get(), &peer));
  listener.proxy_protocol_from = {*IpNetwork::Parse("127.0.0.2")};
  EXPECT_FALSE(PeerMaySendProxy(listener, accepted.get(), &peer));
  EXPECT_EQ(reinterpret_cast<sockaddr_in&>(peer).sin_addr.s_addr,
            htonl(0x7f000003));
  listener.proxy_protocol_from.push_back(*IpNetwork::Parse("127.0.0.0/30"));
  EXPECT_TRUE(PeerMaySendProxy(listener, accepted.get(), &peer));
  // Not a socket getpeername() can name: no.
  EXPECT_FALSE(PeerMaySendProxy(listener, -1, &peer));
}

TEST(ResetUnreadTest, ThePeerSeesAReset) {
  auto [client, accepted] = Pair("127.0.0.1");
  ASSERT_EQ(write(client.get(), "PROXY", 5), 5);
  ResetUnread(std::move(accepted));
  char byte;
  EXPECT_EQ(read(client.get(), &byte, 1), -1);
  EXPECT_EQ(errno, ECONNRESET);
}

TEST(DiscardProxyHeaderTest, DropsExactlyTheHeader) {
  auto [client, accepted] = Pair("127.0.0.1");
  const std::string header = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
  const std::string sent = header + "GET /";
  ASSERT_EQ(write(client.get(), sent.data(), sent.size()),
            static_cast<ssize_t>(sent.size()));
  // Queued, as the master's peek saw it.
  char peeked[64];
  while (recv(accepted.get(), peeked, sizeof(peeked), MSG_PEEK) <
         static_cast<ssize_t>(sent.size())) {
    usleep(1000);
  }
  ASSERT_TRUE(DiscardProxyHeader(accepted.get(), header.size()).ok());
  char rest[16] = {};
  EXPECT_EQ(read(accepted.get(), rest, sizeof(rest)), 5);
  EXPECT_EQ(std::string(rest, 5), "GET /");
  // Fewer bytes than asked: an error, not a short success.
  EXPECT_FALSE(DiscardProxyHeader(accepted.get(), 10).ok());
}

}  // namespace
}  // namespace master
}  // namespace ddv
