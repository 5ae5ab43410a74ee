// SniffProxyHeader: PROXY v1/v2 vectors built by small builders, each valid
// one also fed one byte at a time, and the earliest byte each refusal needs.
#include "src/sniff/proxy_protocol.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdint>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace ddv {
namespace sniff {
namespace {

const std::string kV2Signature("\r\n\r\n\0\r\nQUIT\n", 12);
const std::string kHttpPayload = "GET / HTTP/1.1\r\nHost: a.localhost\r\n\r\n";
// The first bytes of a TLS handshake record, as a TLS payload would start.
const std::string kTlsPayload("\x16\x03\x01\x00\xc8\x01", 6);

// --- builders ---------------------------------------------------------------

std::string Bytes(std::initializer_list<int> bytes) {
  std::string out;
  for (int b : bytes) out.push_back(static_cast<char>(b));
  return out;
}

std::string Be16(int value) { return Bytes({value >> 8, value & 0xff}); }

std::string Ip4(const char* text) {
  in_addr addr;
  EXPECT_EQ(inet_pton(AF_INET, text, &addr), 1) << text;
  return std::string(reinterpret_cast<const char*>(&addr), sizeof(addr));
}

std::string Ip6(const char* text) {
  in6_addr addr;
  EXPECT_EQ(inet_pton(AF_INET6, text, &addr), 1) << text;
  return std::string(reinterpret_cast<const char*>(&addr), sizeof(addr));
}

std::string Tlv(int type, const std::string& value) {
  return Bytes({type}) + Be16(static_cast<int>(value.size())) + value;
}

// A v2 header: signature, ver_cmd (version 2 | command), fam, len, block.
std::string V2(int command, int family_transport, const std::string& block) {
  return kV2Signature + Bytes({0x20 | command, family_transport}) +
         Be16(static_cast<int>(block.size())) + block;
}

// `header` (a v2 header whose first CRC32C TLV holds zeros) with that
// TLV's value set to the header's checksum, as a sender computes it.
std::string WithCrc32c(std::string header) {
  const std::string zero_crc = Tlv(0x03, std::string(4, '\0'));
  const size_t at = header.find(zero_crc, kProxyV2FixedLength) + 3;
  const uint32_t crc = ProxyCrc32c(header);
  for (int i = 0; i < 4; ++i) {
    header[at + i] = static_cast<char>(crc >> (24 - 8 * i));
  }
  return header;
}

constexpr int kLocal = 0x0;
constexpr int kProxy = 0x1;
constexpr int kTcp4 = 0x11;    // AF_INET, STREAM
constexpr int kTcp6 = 0x21;    // AF_INET6, STREAM
constexpr int kUdp4 = 0x12;    // AF_INET, DGRAM
constexpr int kUnixStream = 0x31;
constexpr int kUnspec = 0x00;

std::string V2Tcp4Block(const char* src, const char* dst, int sport,
                        int dport) {
  return Ip4(src) + Ip4(dst) + Be16(sport) + Be16(dport);
}

std::string V2Tcp6Block(const char* src, const char* dst, int sport,
                        int dport) {
  return Ip6(src) + Ip6(dst) + Be16(sport) + Be16(dport);
}

// Renders a sockaddr as "ip:port" / "[ip]:port" for comparisons.
std::string Render(const sockaddr_storage& address) {
  char text[INET6_ADDRSTRLEN];
  if (address.ss_family == AF_INET) {
    const auto& sin = reinterpret_cast<const sockaddr_in&>(address);
    inet_ntop(AF_INET, &sin.sin_addr, text, sizeof(text));
    return std::string(text) + ":" + std::to_string(ntohs(sin.sin_port));
  }
  if (address.ss_family == AF_INET6) {
    const auto& sin6 = reinterpret_cast<const sockaddr_in6&>(address);
    inet_ntop(AF_INET6, &sin6.sin6_addr, text, sizeof(text));
    return "[" + std::string(text) + "]:" +
           std::to_string(ntohs(sin6.sin6_port));
  }
  return "-";
}

// --- valid headers ------------------------------------------------------------

struct ValidCase {
  const char* name;
  std::string header;  // the PROXY header alone
  int version;
  bool local;
  int family;
  const char* source;       // Render() form
  const char* destination;  // Render() form
};

std::vector<ValidCase> ValidCases() {
  return {
      {"v1_tcp4", "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n", 1, false,
       AF_INET, "192.0.2.1:56324", "198.51.100.7:443"},
      {"v1_tcp4_extremes", "PROXY TCP4 255.255.255.255 0.0.0.0 65535 0\r\n", 1,
       false, AF_INET, "255.255.255.255:65535", "0.0.0.0:0"},
      {"v1_tcp6", "PROXY TCP6 2001:db8::1 2001:db8::2 40000 80\r\n", 1, false,
       AF_INET6, "[2001:db8::1]:40000", "[2001:db8::2]:80"},
      {"v1_tcp6_upper_case_and_mapped",
       "PROXY TCP6 2001:DB8::A ::ffff:192.0.2.1 1 2\r\n", 1, false, AF_INET6,
       "[2001:db8::a]:1", "[::ffff:192.0.2.1]:2"},
      // v1 §2.1's longest TCP6 line: 104 bytes with CRLF.
      {"v1_tcp6_longest",
       "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
       "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
       1, false, AF_INET6, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
       "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"},
      {"v1_tcp6_mapped_ipv4_text", "PROXY TCP6 ::ffff:1.2.3.4 ::1 1 2\r\n", 1,
       false, AF_INET6, "[::ffff:1.2.3.4]:1", "[::1]:2"},
      // The longest line a receiver must take: 107 bytes with CRLF.
      {"v1_unknown_107_bytes",
       "PROXY UNKNOWN " + std::string(91, 'a') + "\r\n", 1, true, AF_UNSPEC,
       "-", "-"},
      {"v1_unknown", "PROXY UNKNOWN\r\n", 1, true, AF_UNSPEC, "-", "-"},
      {"v1_unknown_with_addresses",
       "PROXY UNKNOWN ffff:f::1 ffff:f::2 65535 65535\r\n", 1, true, AF_UNSPEC,
       "-", "-"},
      {"v2_tcp4",
       V2(kProxy, kTcp4, V2Tcp4Block("192.0.2.1", "198.51.100.7", 56324, 443)),
       2, false, AF_INET, "192.0.2.1:56324", "198.51.100.7:443"},
      {"v2_tcp6",
       V2(kProxy, kTcp6, V2Tcp6Block("2001:db8::1", "2001:db8::2", 40000, 80)),
       2, false, AF_INET6, "[2001:db8::1]:40000", "[2001:db8::2]:80"},
      {"v2_local", V2(kLocal, kUnspec, ""), 2, true, AF_UNSPEC, "-", "-"},
      // LOCAL discards the block, family byte and contents included.
      {"v2_local_with_ignored_block", V2(kLocal, 0xff, std::string(7, 'x')), 2,
       true, AF_UNSPEC, "-", "-"},
      {"v2_proxy_unspec", V2(kProxy, kUnspec, ""), 2, true, AF_UNSPEC, "-",
       "-"},
      {"v2_unix", V2(kProxy, kUnixStream, std::string(216, '\0')), 2, true,
       AF_UNSPEC, "-", "-"},
      {"v2_with_tlvs",
       V2(kProxy, kTcp4,
          V2Tcp4Block("10.0.0.1", "10.0.0.2", 1234, 443) +
              Tlv(0x01, "h2") +         // PP2_TYPE_ALPN
              Tlv(0x02, "a.example") +  // PP2_TYPE_AUTHORITY
              Tlv(0x04, "") +           // PP2_TYPE_NOOP, empty
              Tlv(0x04, std::string(300, '\0'))),
       2, false, AF_INET, "10.0.0.1:1234", "10.0.0.2:443"},
      {"v2_tcp6_with_every_known_tlv",
       WithCrc32c(V2(
           kProxy, kTcp6,
           V2Tcp6Block("2001:db8::1", "2001:db8::2", 40000, 443) +
               Tlv(0x03, std::string(4, '\0')) + Tlv(0x01, "h2") +
               Tlv(0x02, "a.example") + Tlv(0x05, std::string(128, 'u')) +
               Tlv(0x20, Bytes({7, 0, 0, 0, 0}) + Tlv(0x21, "TLSv1.3")) +
               Tlv(0x30, "ns1") + Tlv(0xea, "vpce-1"))),
       2, false, AF_INET6, "[2001:db8::1]:40000", "[2001:db8::2]:443"},
  };
}

class ValidHeaderTest : public testing::TestWithParam<ValidCase> {};

void ExpectFound(const ValidCase& c, absl::string_view input,
                 const ProxyHeader& header) {
  EXPECT_EQ(header.version, c.version);
  EXPECT_EQ(header.local, c.local);
  EXPECT_EQ(header.family, c.family);
  EXPECT_EQ(Render(header.source), c.source);
  EXPECT_EQ(Render(header.destination), c.destination);
  EXPECT_EQ(header.header_length, c.header.size());
  EXPECT_EQ(header.reason, nullptr);
}

TEST_P(ValidHeaderTest, FoundAlone) {
  const ValidCase& c = GetParam();
  ProxyHeader header;
  ASSERT_EQ(SniffProxyHeader(c.header, &header), SniffStatus::kFound)
      << header.reason;
  ExpectFound(c, c.header, header);
}

TEST_P(ValidHeaderTest, FoundWithHttpAndTlsPayload) {
  const ValidCase& c = GetParam();
  for (const std::string& payload : {kHttpPayload, kTlsPayload}) {
    ProxyHeader header;
    ASSERT_EQ(SniffProxyHeader(c.header + payload, &header),
              SniffStatus::kFound)
        << header.reason;
    ExpectFound(c, c.header + payload, header);
  }
}

// Every strict prefix of a valid header is "need more", never a verdict:
// the peek may stop anywhere.
TEST_P(ValidHeaderTest, OneByteAtATime) {
  const ValidCase& c = GetParam();
  std::string input = c.header + kHttpPayload;
  for (size_t n = 0; n < c.header.size(); ++n) {
    ProxyHeader header;
    ASSERT_EQ(SniffProxyHeader(absl::string_view(input.data(), n), &header),
              SniffStatus::kNeedMore)
        << "after " << n << " bytes: " << header.reason;
  }
  for (size_t n = c.header.size(); n <= input.size(); ++n) {
    ProxyHeader header;
    ASSERT_EQ(SniffProxyHeader(absl::string_view(input.data(), n), &header),
              SniffStatus::kFound)
        << "after " << n << " bytes";
    ExpectFound(c, absl::string_view(input.data(), n), header);
  }
}

INSTANTIATE_TEST_SUITE_P(Table, ValidHeaderTest,
                         testing::ValuesIn(ValidCases()),
                         [](const testing::TestParamInfo<ValidCase>& info) {
                           return std::string(info.param.name);
                         });

TEST(ProxyHeaderTest, LongestLinesHaveTheSpecLengths) {
  for (const ValidCase& c : ValidCases()) {
    if (std::string(c.name) == "v1_tcp6_longest") {
      EXPECT_EQ(c.header.size(), 104u);
    }
    if (std::string(c.name) == "v1_unknown_107_bytes") {
      EXPECT_EQ(c.header.size(), kProxyV1MaxLength);
    }
  }
}

TEST(ProxyHeaderTest, V2NeedMoreReportsTotalLength) {
  std::string input = V2(kProxy, kTcp4, V2Tcp4Block("10.0.0.1", "10.0.0.2",
                                                    1, 2) +
                                            Tlv(0x04, std::string(1000, 'z')));
  ProxyHeader header;
  ASSERT_EQ(SniffProxyHeader(absl::string_view(input.data(), 15), &header),
            SniffStatus::kNeedMore);
  EXPECT_EQ(header.header_length, 0u);
  ASSERT_EQ(SniffProxyHeader(absl::string_view(input.data(), 16), &header),
            SniffStatus::kNeedMore);
  EXPECT_EQ(header.header_length, input.size());
}

TEST(ProxyHeaderTest, ResetsHeaderEachCall) {
  ProxyHeader header;
  ASSERT_EQ(SniffProxyHeader("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", &header),
            SniffStatus::kFound);
  ASSERT_EQ(SniffProxyHeader("GET", &header), SniffStatus::kNotThisProtocol);
  EXPECT_EQ(header.version, 0);
  EXPECT_EQ(header.family, AF_UNSPEC);
  EXPECT_EQ(header.header_length, 0u);
  EXPECT_EQ(Render(header.source), "-");
  EXPECT_NE(header.reason, nullptr);
}

// --- TLVs -------------------------------------------------------------------

TEST(ProxyTlvTest, Crc32cOfTheCheckString) {
  // The CRC-32C check value (RFC 3720 B.4 lists the same polynomial).
  EXPECT_EQ(ProxyCrc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(ProxyCrc32c(""), 0u);
}

TEST(ProxyTlvTest, DecodesEveryKnownType) {
  const std::string ssl =
      Bytes({0x07, 0, 0, 0, 0}) + Tlv(0x21, "TLSv1.3") +
      Tlv(0x22, "client.example") + Tlv(0x23, "TLS_AES_128_GCM_SHA256") +
      Tlv(0x24, "SHA256") + Tlv(0x25, "RSA2048") + Tlv(0x2f, "unknown");
  const std::string tlvs =
      Tlv(0x03, std::string(4, '\0')) + Tlv(0x01, "h2") +
      Tlv(0x02, "a.example") + Tlv(0x05, "id-1") + Tlv(0x20, ssl) +
      Tlv(0x30, "ns1") + Tlv(0xea, "vpce-1") + Tlv(0x01, "second alpn");
  const std::string input = WithCrc32c(V2(
      kProxy, kTcp4, V2Tcp4Block("10.0.0.1", "10.0.0.2", 1, 2) + tlvs));
  // The header's views point into what was sniffed: keep it alive.
  const std::string peeked = input + kHttpPayload;
  ProxyHeader header;
  ASSERT_EQ(SniffProxyHeader(peeked, &header), SniffStatus::kFound)
      << header.reason;
  EXPECT_EQ(header.tlvs, input.substr(16 + 12));
  const ProxyTlvs& t = header.tlv;
  EXPECT_EQ(t.alpn, "h2");  // the first of two
  EXPECT_EQ(t.authority, "a.example");
  EXPECT_EQ(t.unique_id, "id-1");
  EXPECT_EQ(t.netns, "ns1");
  EXPECT_TRUE(t.has_crc32c);
  EXPECT_TRUE(t.has_ssl);
  EXPECT_EQ(t.ssl_client, 7);
  EXPECT_EQ(t.ssl_verify, 0u);
  EXPECT_EQ(t.ssl_version, "TLSv1.3");
  EXPECT_EQ(t.ssl_cn, "client.example");
  EXPECT_EQ(t.ssl_cipher, "TLS_AES_128_GCM_SHA256");
  EXPECT_EQ(t.ssl_sig_alg, "SHA256");
  EXPECT_EQ(t.ssl_key_alg, "RSA2048");
}

TEST(ProxyTlvTest, SslVerifyIsReadInNetworkOrder) {
  ProxyTlvs tlvs;
  ASSERT_EQ(ParseProxyTlvs(Tlv(0x20, Bytes({0x01, 0, 0, 0x01, 0x02})), &tlvs),
            nullptr);
  EXPECT_TRUE(tlvs.has_ssl);
  EXPECT_EQ(tlvs.ssl_client, 1);
  EXPECT_EQ(tlvs.ssl_verify, 0x0102u);
  EXPECT_TRUE(tlvs.ssl_version.empty());
}

TEST(ProxyTlvTest, NextProxyTlvWalksAndStopsAtAPartialTlv) {
  std::string block = Tlv(0x01, "h2") + Tlv(0xe0, "") + Tlv(0x02, "ab");
  block.pop_back();
  absl::string_view rest = block;
  uint8_t type = 0;
  absl::string_view value;
  ASSERT_TRUE(NextProxyTlv(&rest, &type, &value));
  EXPECT_EQ(type, 0x01);
  EXPECT_EQ(value, "h2");
  ASSERT_TRUE(NextProxyTlv(&rest, &type, &value));
  EXPECT_EQ(type, 0xe0);
  EXPECT_EQ(value, "");
  EXPECT_FALSE(NextProxyTlv(&rest, &type, &value));
  EXPECT_EQ(rest.size(), 4u);
  ProxyTlvs tlvs;
  EXPECT_STREQ(ParseProxyTlvs(block, &tlvs),
               "PROXY v2 TLV overruns the header");
}

TEST(ProxyTlvTest, ACorrectCrc32cIsFoundAndAFlippedByteIsNot) {
  const std::string input = WithCrc32c(
      V2(kProxy, kTcp4, V2Tcp4Block("10.0.0.1", "10.0.0.2", 1, 2) +
                            Tlv(0x03, std::string(4, '\0')) +
                            Tlv(0x02, "a.example")));
  ProxyHeader header;
  ASSERT_EQ(SniffProxyHeader(input, &header), SniffStatus::kFound)
      << header.reason;
  // Every byte of the header is covered, the addresses included, except
  // the CRC TLV's own type byte (0x02 there leaves no checksum to check)
  // and the command byte (LOCAL ignores the block).
  const size_t crc_type = 16 + 12;
  ASSERT_EQ(input[crc_type], 0x03);
  for (size_t i = 13; i < input.size(); ++i) {
    if (i == crc_type) continue;
    std::string flipped = input;
    flipped[i] ^= 0x01;
    const SniffStatus status = SniffProxyHeader(flipped, &header);
    // A flipped length or type byte may break the framing first.
    EXPECT_TRUE(status == SniffStatus::kMalformed ||
                status == SniffStatus::kNeedMore)
        << "byte " << i << ": " << SniffStatusName(status);
  }
}

TEST(ProxyTlvTest, LocalIgnoresTlvsEvenBrokenOnes) {
  const std::string input =
      V2(kLocal, kTcp4, V2Tcp4Block("10.0.0.1", "10.0.0.2", 1, 2) +
                            Tlv(0x03, std::string(4, '\0')) +
                            Tlv(0x05, std::string(200, 'u')));
  ProxyHeader header;
  ASSERT_EQ(SniffProxyHeader(input, &header), SniffStatus::kFound);
  EXPECT_TRUE(header.local);
  EXPECT_TRUE(header.tlvs.empty());
}

TEST(ProxyTlvTest, UnspecFamilyStillCarriesItsTlvs) {
  const std::string input = V2(kProxy, kUnspec, Tlv(0x05, "id"));
  ProxyHeader header;
  ASSERT_EQ(SniffProxyHeader(input, &header), SniffStatus::kFound);
  EXPECT_TRUE(header.local);
  EXPECT_EQ(header.tlv.unique_id, "id");
}

// --- refusals -------------------------------------------------------------------

struct RefusedCase {
  const char* name;
  std::string input;
  SniffStatus want;
  // The verdict must already be given after this many bytes (earlier
  // prefixes may only be kNeedMore): "decide from as few bytes as possible".
  size_t decided_after;
};

std::vector<RefusedCase> RefusedCases() {
  const SniffStatus kNot = SniffStatus::kNotThisProtocol;
  const SniffStatus kBad = SniffStatus::kMalformed;
  std::string tcp4 = V2Tcp4Block("10.0.0.1", "10.0.0.2", 1, 2);
  return {
      // Not a PROXY header at all: one byte is usually enough.
      {"http_get", kHttpPayload, kNot, 1},
      {"tls_record", kTlsPayload, kNot, 1},
      {"webdav_propfind", "PROPFIND / HTTP/1.1\r\n", kNot, 4},
      {"proxy_without_space", "PROXYTCP4", kNot, 6},
      {"lower_case_proxy", "proxy TCP4", kNot, 1},
      {"bad_v2_signature",
       std::string("\r\n\r\n\0\r\nQUIX\n", 12) + Bytes({0x21}), kNot, 11},
      {"http_blank_line_start", "\r\nGET / HTTP/1.1\r\n", kNot, 3},
      // v1 grammar.
      // "U" could still be UNKNOWN; "UD" cannot.
      {"v1_unknown_protocol", "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", kBad, 8},
      {"v1_protocol_lower_case", "PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", kBad, 7},
      {"v1_protocol_too_long", "PROXY TCP44 1.2.3.4 5.6.7.8 1 2\r\n", kBad, 11},
      {"v1_unknownx", "PROXY UNKNOWNX\r\n", kBad, 14},
      {"v1_empty", "PROXY \r\n", kBad, 7},
      {"v1_double_space", "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", kBad, 12},
      {"v1_ipv6_in_tcp4", "PROXY TCP4 ::1 ::1 1 2\r\n", kBad, 12},
      {"v1_ipv4_in_tcp6", "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", kBad, 19},
      {"v1_ipv4_leading_zero", "PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", kBad, 20},
      {"v1_ipv4_octet_range", "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", kBad,
       21},
      {"v1_ipv4_three_parts", "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", kBad, 17},
      {"v1_ipv4_too_long", "PROXY TCP4 1111.2222.3333.4444 5.6.7.8 1 2\r\n",
       kBad, 27},
      {"v1_port_range", "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", kBad, 32},
      {"v1_port_leading_zero", "PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n", kBad,
       29},
      {"v1_port_sign", "PROXY TCP4 1.2.3.4 5.6.7.8 +80 2\r\n", kBad, 28},
      {"v1_port_six_digits", "PROXY TCP4 1.2.3.4 5.6.7.8 000001 2\r\n", kBad,
       29},
      {"v1_missing_port", "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", kBad, 29},
      // The space after the destination port already opens a sixth field.
      {"v1_extra_field", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", kBad, 31},
      {"v1_trailing_space", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", kBad, 31},
      {"v1_lf_only", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", kBad, 31},
      {"v1_cr_without_lf", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", kBad, 32},
      {"v1_binary", "PROXY \x16\x03\x01", kBad, 7},
      {"v1_too_long", "PROXY UNKNOWN " + std::string(100, 'a') + "\r\n", kBad,
       106},
      // One byte over: the CR is byte 107, its LF would be byte 108.
      {"v1_108_bytes", "PROXY UNKNOWN " + std::string(92, 'a') + "\r\n", kBad,
       106},
      // v2 grammar: each fixed byte judged on arrival.
      {"v2_version_1", kV2Signature + Bytes({0x11, 0x11, 0, 12}) + tcp4, kBad,
       13},
      {"v2_version_3", kV2Signature + Bytes({0x31, 0x11, 0, 12}) + tcp4, kBad,
       13},
      {"v2_command_2", kV2Signature + Bytes({0x22, 0x11, 0, 12}) + tcp4, kBad,
       13},
      {"v2_family_4", V2(kProxy, 0x41, tcp4), kBad, 14},
      {"v2_transport_3", V2(kProxy, 0x13, tcp4), kBad, 14},
      {"v2_dgram", V2(kProxy, kUdp4, tcp4), kBad, 14},
      {"v2_tcp6_unspec_transport", V2(kProxy, 0x20, std::string(36, '\0')),
       kBad, 14},
      {"v2_tcp4_length_short", V2(kProxy, kTcp4, tcp4.substr(0, 11)), kBad, 16},
      {"v2_tcp6_length_short", V2(kProxy, kTcp6, tcp4 + tcp4), kBad, 16},
      {"v2_unix_length_short", V2(kProxy, kUnixStream, std::string(215, 'u')),
       kBad, 16},
      {"v2_tlv_truncated_header", V2(kProxy, kTcp4, tcp4 + Bytes({0x04, 0})),
       kBad, 30},
      {"v2_tlv_overrun", V2(kProxy, kTcp4, tcp4 + Tlv(0x04, "abc").substr(0, 5)),
       kBad, 33},
      // Known TLVs keep their own rules, judged once the header is whole.
      {"v2_unique_id_129_bytes",
       V2(kProxy, kTcp4, tcp4 + Tlv(0x05, std::string(129, 'u'))), kBad,
       16 + 12 + 3 + 129},
      {"v2_crc32c_3_bytes", V2(kProxy, kTcp4, tcp4 + Tlv(0x03, "abc")), kBad,
       16 + 12 + 6},
      {"v2_crc32c_mismatch",
       V2(kProxy, kTcp4, tcp4 + Tlv(0x03, std::string(4, '\0'))), kBad,
       16 + 12 + 7},
      {"v2_two_crc32c",
       WithCrc32c(V2(kProxy, kTcp4, tcp4 + Tlv(0x03, std::string(4, '\0')) +
                                        Tlv(0x03, std::string(4, '\0')))),
       kBad, 16 + 12 + 14},
      {"v2_ssl_4_bytes", V2(kProxy, kTcp4, tcp4 + Tlv(0x20, Bytes({1, 0, 0, 0}))),
       kBad, 16 + 12 + 7},
      {"v2_ssl_sub_tlv_overrun",
       V2(kProxy, kTcp4,
          tcp4 + Tlv(0x20, Bytes({1, 0, 0, 0, 0}) +
                               Tlv(0x21, "TLSv1.3").substr(0, 6))),
       kBad, 16 + 12 + 3 + 11},
  };
}

class RefusedTest : public testing::TestWithParam<RefusedCase> {};

TEST_P(RefusedTest, RefusedAsEarlyAsPossible) {
  const RefusedCase& c = GetParam();
  ASSERT_LE(c.decided_after, c.input.size());
  for (size_t n = 0; n <= c.input.size(); ++n) {
    ProxyHeader header;
    SniffStatus status =
        SniffProxyHeader(absl::string_view(c.input.data(), n), &header);
    if (n < c.decided_after) {
      ASSERT_EQ(status, SniffStatus::kNeedMore)
          << "after " << n << " bytes: " << header.reason;
    } else {
      ASSERT_EQ(status, c.want)
          << "after " << n << " bytes: " << SniffStatusName(status);
      EXPECT_NE(header.reason, nullptr);
      EXPECT_EQ(header.version, 0);
      EXPECT_EQ(header.header_length, 0u);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Table, RefusedTest, testing::ValuesIn(RefusedCases()),
                         [](const testing::TestParamInfo<RefusedCase>& info) {
                           return std::string(info.param.name);
                         });

}  // namespace
}  // namespace sniff
}  // namespace ddv
