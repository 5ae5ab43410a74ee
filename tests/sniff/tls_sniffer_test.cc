// SniffTlsClientHello: generated hellos (TLS 1.2 and 1.3), hellos captured
// from real clients, each fed one byte at a time and re-framed at every
// record boundary, plus the malformed, foreign and oversized inputs.
#include "src/sniff/tls_sniffer.h"

#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/client_hello_builder.h"

namespace ddv {
namespace sniff {
namespace {

using ::ddv::test::AlpnData;
using ::ddv::test::AppendU16;
using ::ddv::test::AppendU8;
using ::ddv::test::ClientHelloBuilder;
using ::ddv::test::FrameRecords;
using ::ddv::test::HandshakeFromRecords;
using ::ddv::test::ServerNameData;
using ::ddv::test::U16Prefixed;

// The master's default max_peek_bytes (docs/design.md).
constexpr size_t kMaxBytes = 16384;
// Room for every hello below, the 40 KiB padded one included.
constexpr size_t kLargeMaxBytes = 1 << 20;

// What a valid hello is expected to yield.
struct Want {
  std::string sni;
  std::vector<std::string> alpn;
  bool ech = false;
  bool sslv2 = false;
};

std::vector<std::string> AlpnOf(const ClientHelloInfo& info) {
  std::vector<std::string> out;
  for (size_t i = 0; i < info.alpn_count; ++i) {
    out.emplace_back(info.alpn(i));
  }
  return out;
}

// ClientHelloInfo is ~4.5 KiB: keep it off the test's stack frames.
std::unique_ptr<ClientHelloInfo> NewInfo() {
  return std::make_unique<ClientHelloInfo>();
}

SniffStatus Sniff(absl::string_view bytes, size_t max_bytes,
                  ClientHelloInfo* info) {
  return SniffTlsClientHello(bytes, max_bytes, info);
}

void ExpectFound(absl::string_view bytes, const Want& want,
                 size_t max_bytes = kLargeMaxBytes) {
  auto info = NewInfo();
  ASSERT_EQ(Sniff(bytes, max_bytes, info.get()), SniffStatus::kFound)
      << (info->reason ? info->reason : "");
  EXPECT_EQ(info->sni.view(), want.sni);
  EXPECT_EQ(AlpnOf(*info), want.alpn);
  EXPECT_EQ(info->alpn_total, want.alpn.size());
  EXPECT_EQ(info->ech, want.ech);
  EXPECT_EQ(info->sslv2, want.sslv2);
  EXPECT_EQ(info->reason, nullptr);
}

// Every proper prefix needs more, names nothing, and asks for no more than
// the whole hello; `stride` > 1 samples prefixes for the largest hellos.
void ExpectByteByByte(absl::string_view bytes, const Want& want,
                      size_t stride = 1) {
  auto info = NewInfo();
  for (size_t n = 0; n < bytes.size(); n += stride) {
    ASSERT_EQ(Sniff(bytes.substr(0, n), kLargeMaxBytes, info.get()),
              SniffStatus::kNeedMore)
        << "prefix " << n << " of " << bytes.size() << ": "
        << (info->reason ? info->reason : "");
    ASSERT_TRUE(info->sni.empty()) << "prefix " << n;
    ASSERT_EQ(info->alpn_count, 0u) << "prefix " << n;
    ASSERT_GT(info->bytes_needed, n) << "prefix " << n;
    ASSERT_LE(info->bytes_needed, bytes.size()) << "prefix " << n;
  }
  ExpectFound(bytes, want);
}

// Re-frames the hello's handshake message in two records at every possible
// boundary, and once as one-byte records.
void ExpectEveryRecordSplit(absl::string_view records, const Want& want) {
  const std::string handshake = HandshakeFromRecords(records);
  ASSERT_FALSE(handshake.empty());
  for (size_t cut = 1; cut < handshake.size(); ++cut) {
    SCOPED_TRACE(testing::Message() << "split at " << cut);
    ExpectFound(FrameRecords(handshake, {cut}), want);
  }
  SCOPED_TRACE("one-byte records");
  const std::string tiny =
      FrameRecords(handshake, std::vector<size_t>(handshake.size(), 1));
  ExpectFound(tiny, want);
}

void ExpectValidEverywhere(absl::string_view bytes, const Want& want) {
  {
    SCOPED_TRACE("whole");
    ExpectFound(bytes, want);
  }
  {
    SCOPED_TRACE("byte by byte");
    ExpectByteByByte(bytes, want);
  }
  if (!want.sslv2) ExpectEveryRecordSplit(bytes, want);
}

// Every prefix of a broken hello is kNeedMore or `status`, never kFound, and
// the whole input answers `status`.
void ExpectRejected(absl::string_view bytes, SniffStatus status,
                    size_t max_bytes = kMaxBytes,
                    absl::string_view reason = "") {
  auto info = NewInfo();
  for (size_t n = 0; n < bytes.size(); ++n) {
    const SniffStatus got = Sniff(bytes.substr(0, n), max_bytes, info.get());
    ASSERT_TRUE(got == SniffStatus::kNeedMore || got == status)
        << "prefix " << n << ": " << SniffStatusName(got);
    ASSERT_TRUE(info->sni.empty());
  }
  ASSERT_EQ(Sniff(bytes, max_bytes, info.get()), status)
      << SniffStatusName(Sniff(bytes, max_bytes, info.get()));
  ASSERT_NE(info->reason, nullptr);
  EXPECT_NE(absl::string_view(info->reason).find(reason),
            absl::string_view::npos)
      << info->reason;
  EXPECT_TRUE(info->sni.empty());
  EXPECT_EQ(info->alpn_count, 0u);
}

// --- Generated hellos, for TLS 1.2 and TLS 1.3 ---

class TlsVersionTest : public testing::TestWithParam<uint16_t> {
 protected:
  ClientHelloBuilder Builder() const {
    ClientHelloBuilder builder;
    if (GetParam() == test::kTls12) builder.Tls12();
    return builder;
  }
};

INSTANTIATE_TEST_SUITE_P(Versions, TlsVersionTest,
                         testing::Values(test::kTls12, test::kTls13),
                         [](const testing::TestParamInfo<uint16_t>& info) {
                           return info.param == test::kTls12 ? "Tls12"
                                                             : "Tls13";
                         });

TEST_P(TlsVersionTest, SniAndAlpn) {
  ExpectValidEverywhere(
      Builder().Sni("a.test").Alpn({"h2", "http/1.1"}).Build(),
      {"a.test", {"h2", "http/1.1"}});
}

TEST_P(TlsVersionTest, NoSni) {
  ExpectValidEverywhere(Builder().Build(), {"", {}});
}

TEST_P(TlsVersionTest, AlpnOnly) {
  ExpectValidEverywhere(Builder().Alpn({"http/1.1"}).Build(),
                        {"", {"http/1.1"}});
}

TEST_P(TlsVersionTest, SniIsNormalised) {
  ExpectFound(Builder().Sni("WWW.Example.COM.").Build(),
              {"www.example.com", {}});
}

TEST_P(TlsVersionTest, ReportsVersions) {
  auto info = NewInfo();
  ASSERT_EQ(Sniff(Builder().Build(), kMaxBytes, info.get()),
            SniffStatus::kFound);
  EXPECT_EQ(info->legacy_version, test::kTls12);
  if (GetParam() == test::kTls13) {
    EXPECT_TRUE(info->has_supported_versions);
    EXPECT_TRUE(info->OffersVersion(test::kTls13));
    EXPECT_TRUE(info->OffersVersion(test::kTls12));
    EXPECT_EQ(info->supported_versions_count, 2u);
  } else {
    EXPECT_FALSE(info->has_supported_versions);
    EXPECT_FALSE(info->OffersVersion(test::kTls13));
  }
}

TEST_P(TlsVersionTest, SplitRecordsAndTrailingRecords) {
  // A hello in three records followed by what a client may pipeline after
  // it (TLS 1.3 early data as application_data): found, trailing ignored.
  std::string bytes = Builder().Sni("split.test").SplitRecords({7, 50}).Build();
  ExpectValidEverywhere(bytes, {"split.test", {}});
  bytes += std::string("\x17\x03\x03\x00\x02hi", 7);
  ExpectFound(bytes, {"split.test", {}});
}

TEST_P(TlsVersionTest, PaddedTo16KiBParsesWhenAllowed) {
  const std::string bytes =
      Builder().Sni("big.test").Alpn({"h2"}).PadTo(16384).Build();
  ASSERT_GT(bytes.size(), 16384u);  // two records: 2^14 + the rest
  ExpectValidEverywhere(bytes, {"big.test", {"h2"}});
  auto info = NewInfo();
  EXPECT_EQ(Sniff(bytes, bytes.size(), info.get()), SniffStatus::kFound);
  EXPECT_EQ(Sniff(bytes, bytes.size() - 1, info.get()), SniffStatus::kTooLarge);
  EXPECT_NE(info->reason, nullptr);
}

TEST_P(TlsVersionTest, PaddedTo40KiB) {
  const std::string bytes = Builder().Sni("huge.test").PadTo(40000).Build();
  ExpectFound(bytes, {"huge.test", {}});
  ExpectByteByByte(bytes, {"huge.test", {}}, /*stride=*/97);
  ExpectRejected(bytes, SniffStatus::kTooLarge, kMaxBytes);
}

TEST_P(TlsVersionTest, EchOuterHello) {
  ExpectValidEverywhere(Builder().Sni("public.test").Alpn({"h2"}).Ech().Build(),
                        {"public.test", {"h2"}, /*ech=*/true});
}

TEST_P(TlsVersionTest, ManyAlpnProtocolsKeepTheFirst16) {
  std::vector<std::string> protocols;
  for (int i = 0; i < 20; ++i) {
    // The longest names allowed, so the fixed storage is really exercised.
    protocols.push_back(std::string(255, static_cast<char>('a' + i)));
  }
  auto info = NewInfo();
  ASSERT_EQ(
      Sniff(Builder().Alpn(protocols).Build(), kLargeMaxBytes, info.get()),
      SniffStatus::kFound);
  EXPECT_EQ(info->alpn_count, kMaxAlpnProtocols);
  EXPECT_EQ(info->alpn_total, 20u);
  for (size_t i = 0; i < kMaxAlpnProtocols; ++i) {
    EXPECT_EQ(info->alpn(i), protocols[i]);
  }
  EXPECT_TRUE(info->OffersAlpn(protocols[15]));
  EXPECT_FALSE(info->OffersAlpn(protocols[16]));
  EXPECT_EQ(info->alpn(16), "");
}

TEST_P(TlsVersionTest, ManySupportedVersionsKeepTheFirst8) {
  auto info = NewInfo();
  std::vector<uint16_t> versions;
  for (uint16_t i = 0; i < 10; ++i) versions.push_back(0x0a0a + 0x1010 * i);
  ASSERT_EQ(Sniff(Builder().Versions(versions).Build(), kMaxBytes, info.get()),
            SniffStatus::kFound);
  EXPECT_EQ(info->supported_versions_count, kMaxSupportedVersions);
  EXPECT_EQ(info->supported_versions_total, 10u);
  EXPECT_EQ(info->supported_versions[7], versions[7]);
}

TEST_P(TlsVersionTest, PostQuantumKeyShare) {
  // Chrome's X25519MLKEM768 share pushes the hello to ~1.8 KB.
  ExpectValidEverywhere(Builder()
                            .Sni("pq.test")
                            .KeyShares({{test::kGroupX25519MlKem768, 1216},
                                        {test::kGroupX25519, 32}})
                            .Build(),
                        {"pq.test", {}});
}

TEST_P(TlsVersionTest, UnknownNameTypeIsSkipped) {
  std::string entries;
  AppendU8(&entries, 7);  // not host_name
  entries += U16Prefixed("opaque");
  AppendU8(&entries, 0);
  entries += U16Prefixed("named.test");
  ExpectValidEverywhere(
      Builder().Extension(test::kExtServerName, U16Prefixed(entries)).Build(),
      {"named.test", {}});
}

TEST_P(TlsVersionTest, ExtensionBlockOfZeroLength) {
  // An empty extensions block is legal before TLS 1.3 (RFC 5246 §7.4.1.4).
  std::string handshake = Builder().NoExtensions().BuildHandshake();
  handshake += std::string(2, '\0');
  handshake[3] = static_cast<char>(handshake.size() - 4);
  ExpectFound(FrameRecords(handshake), {"", {}});
}

// --- Other shapes ---

TEST(TlsSnifferTest, ExtensionlessHello) {
  const std::string bytes =
      ClientHelloBuilder().Tls12().Sni("ignored.test").NoExtensions().Build();
  ExpectValidEverywhere(bytes, {"", {}});
  auto info = NewInfo();
  ASSERT_EQ(Sniff(bytes, kMaxBytes, info.get()), SniffStatus::kFound);
  EXPECT_EQ(info->legacy_version, test::kTls12);
  EXPECT_FALSE(info->has_supported_versions);
}

TEST(TlsSnifferTest, SslV2CompatibleHello) {
  const std::string bytes =
      ClientHelloBuilder().SslV2().LegacyVersion(test::kTls10).Build();
  ExpectValidEverywhere(bytes, {"", {}, false, /*sslv2=*/true});
  auto info = NewInfo();
  ASSERT_EQ(Sniff(bytes, kMaxBytes, info.get()), SniffStatus::kFound);
  EXPECT_EQ(info->legacy_version, test::kTls10);
}

TEST(TlsSnifferTest, OldLegacyVersionsAreAccepted) {
  for (uint16_t version : {test::kSsl30, test::kTls10, test::kTls11}) {
    ExpectFound(ClientHelloBuilder()
                    .Tls12()
                    .LegacyVersion(version)
                    .Sni("old.test")
                    .Build(),
                {"old.test", {}});
  }
}

TEST(TlsSnifferTest, NotThisProtocol) {
  const std::string sslv2_server_hello("\x80\x2e\x04\x00\x01", 5);
  const std::string ssl20_only("\x80\x2e\x01\x00\x02", 5);
  for (const std::string& bytes :
       {std::string("GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
        std::string("\x15\x03\x01\x00\x02\x02\x28", 7),  // an alert
        std::string("\x16\x02\x00\x00\x04", 5),          // record major 2
        std::string("\x16\xfe\xfd\x00\x04", 5),          // DTLS 1.2
        std::string("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), sslv2_server_hello,
        ssl20_only}) {
    SCOPED_TRACE(testing::PrintToString(bytes));
    ExpectRejected(bytes, SniffStatus::kNotThisProtocol);
  }
}

TEST(TlsSnifferTest, EmptyPrefixNeedsMore) {
  auto info = NewInfo();
  EXPECT_EQ(Sniff("", kMaxBytes, info.get()), SniffStatus::kNeedMore);
  EXPECT_GE(info->bytes_needed, 5u);
}

TEST(TlsSnifferTest, BytesNeededFollowsTheLengths) {
  const std::string bytes =
      ClientHelloBuilder().Sni("n.test").SplitRecords({100}).Build();
  auto info = NewInfo();
  // The record header alone: the hello may end before its record does, so
  // only the handshake header is sure to be needed.
  ASSERT_EQ(Sniff(bytes.substr(0, 5), kMaxBytes, info.get()),
            SniffStatus::kNeedMore);
  EXPECT_EQ(info->bytes_needed, 9u);
  // The message header is read: the whole message plus two record headers.
  ASSERT_EQ(Sniff(bytes.substr(0, 9), kMaxBytes, info.get()),
            SniffStatus::kNeedMore);
  EXPECT_EQ(info->bytes_needed, bytes.size());
  ASSERT_EQ(Sniff(bytes.substr(0, 106), kMaxBytes, info.get()),
            SniffStatus::kNeedMore);
  EXPECT_EQ(info->bytes_needed, bytes.size());
}

TEST(TlsSnifferTest, CapIsHonoured) {
  const std::string bytes = ClientHelloBuilder().Sni("cap.test").Build();
  auto info = NewInfo();
  EXPECT_EQ(Sniff(bytes, bytes.size(), info.get()), SniffStatus::kFound);
  EXPECT_EQ(Sniff(bytes, bytes.size() - 1, info.get()), SniffStatus::kTooLarge);
  // The length fields alone tell it will not fit: no need to wait.
  EXPECT_EQ(Sniff(bytes.substr(0, 9), bytes.size() - 1, info.get()),
            SniffStatus::kTooLarge);
  // Bytes peeked past the cap are ignored.
  EXPECT_EQ(Sniff(bytes + "junk", bytes.size(), info.get()),
            SniffStatus::kFound);
  EXPECT_EQ(Sniff(bytes, 0, info.get()), SniffStatus::kTooLarge);
}

TEST(TlsSnifferTest, HugeHandshakeLengthIsTooLargeAtOnce) {
  // A handshake header claiming 16 MiB: known too large after 9 bytes.
  ExpectRejected(std::string("\x16\x03\x01\x40\x00\x01\xff\xff\xff", 9),
                 SniffStatus::kTooLarge);
}

// --- Malformed hellos ---

// Rewrites one byte of a generated handshake message and frames it.
std::string Patched(std::string handshake, size_t at, uint8_t value) {
  handshake[at] = static_cast<char>(value);
  return FrameRecords(handshake);
}

struct MalformedCase {
  const char* name;
  const char* reason;  // a part of the expected info->reason
  std::string bytes;
};

std::vector<MalformedCase> MalformedCases() {
  const ClientHelloBuilder base = ClientHelloBuilder().Sni("m.test");
  const std::string handshake = base.BuildHandshake();
  // Offsets in the default handshake message: header 4, legacy_version 2,
  // random 32, then legacy_session_id's length.
  constexpr size_t kSessionIdLength = 4 + 2 + 32;
  constexpr size_t kCipherSuitesLength = kSessionIdLength + 1 + 32;
  std::vector<MalformedCase> cases;
  cases.push_back(
      {"server_hello", "not a ClientHello", Patched(handshake, 0, 2)});
  cases.push_back(
      {"legacy_version_2", "version is not TLS", Patched(handshake, 4, 2)});
  cases.push_back({"session_id_33", "over 32 bytes",
                   ClientHelloBuilder().SessionIdLength(33).Build()});
  cases.push_back({"odd_cipher_suites", "zero or odd",
                   Patched(handshake, kCipherSuitesLength + 1, 17)});
  {
    // cipher_suites length 0, built by hand.
    std::string h = handshake;
    h[kCipherSuitesLength] = 0;
    h[kCipherSuitesLength + 1] = 0;
    cases.push_back({"zero_cipher_suites", "zero or odd", FrameRecords(h)});
  }
  cases.push_back({"handshake_length_short", "overruns the ClientHello",
                   Patched(handshake, 3, 40)});
  {
    // Handshake length one more than the extensions block ends at.
    std::string h = handshake + std::string(1, '\0');
    const size_t body = h.size() - 4;
    h[2] = static_cast<char>(body >> 8);
    h[3] = static_cast<char>(body & 0xff);
    cases.push_back(
        {"byte_after_extensions", "extensions length", FrameRecords(h)});
  }
  {
    std::string h = ClientHelloBuilder().NoExtensions().BuildHandshake();
    h += std::string(1, '\0');
    h[3] = static_cast<char>(h.size() - 4);
    cases.push_back(
        {"stray_byte_after_compression", "stray byte", FrameRecords(h)});
  }
  {
    std::string h = ClientHelloBuilder().NoExtensions().BuildHandshake();
    h[h.size() - 2] = 0;  // compression_methods length 0
    h.pop_back();
    h[3] = static_cast<char>(h.size() - 4);
    cases.push_back(
        {"no_compression_methods", "no compression", FrameRecords(h)});
  }
  cases.push_back({"duplicate_extension", "duplicate",
                   ClientHelloBuilder()
                       .Extension(0x1234, "")
                       .Extension(0x1234, "x")
                       .Build()});
  cases.push_back({"duplicate_server_name", "duplicate",
                   ClientHelloBuilder()
                       .Sni("a.test")
                       .Extension(test::kExtServerName, ServerNameData("b"))
                       .Build()});
  cases.push_back({"duplicate_alpn", "duplicate",
                   ClientHelloBuilder()
                       .Alpn({"h2"})
                       .Extension(test::kExtAlpn, AlpnData({"h2"}))
                       .Build()});
  cases.push_back({"sni_invalid_character", "invalid character",
                   ClientHelloBuilder().Sni("a b.test").Build()});
  cases.push_back({"sni_empty_label", "empty label",
                   ClientHelloBuilder().Sni("a..test").Build()});
  cases.push_back({"sni_too_long", "too long",
                   ClientHelloBuilder().Sni(std::string(300, 'a')).Build()});
  cases.push_back(
      {"sni_nul", "invalid character",
       ClientHelloBuilder().Sni(std::string("a\0.test", 7)).Build()});
  cases.push_back({"sni_empty_list", "server_name list",
                   ClientHelloBuilder()
                       .Extension(test::kExtServerName, U16Prefixed(""))
                       .Build()});
  cases.push_back(
      {"sni_empty_extension", "server_name extension too short",
       ClientHelloBuilder().Extension(test::kExtServerName, "").Build()});
  {
    std::string entries;
    AppendU8(&entries, 0);
    entries += U16Prefixed("a.test");
    AppendU8(&entries, 0);
    entries += U16Prefixed("b.test");
    cases.push_back({"sni_two_host_names", "two host_name",
                     ClientHelloBuilder()
                         .Extension(test::kExtServerName, U16Prefixed(entries))
                         .Build()});
  }
  {
    std::string entry;
    AppendU8(&entry, 0);
    entry += U16Prefixed("");
    cases.push_back({"sni_empty_name", "empty server_name",
                     ClientHelloBuilder()
                         .Extension(test::kExtServerName, U16Prefixed(entry))
                         .Build()});
  }
  cases.push_back(
      {"sni_list_shorter_than_extension", "server_name list",
       ClientHelloBuilder()
           .Extension(test::kExtServerName, ServerNameData("a.test") + "x")
           .Build()});
  {
    std::string data = ServerNameData("a.test");
    data[4] = 9;  // host_name length past the list
    cases.push_back(
        {"sni_name_overruns_list", "overruns its list",
         ClientHelloBuilder().Extension(test::kExtServerName, data).Build()});
  }
  cases.push_back({"alpn_empty_list", "ALPN list",
                   ClientHelloBuilder()
                       .Extension(test::kExtAlpn, U16Prefixed(""))
                       .Build()});
  cases.push_back({"alpn_empty_name", "empty ALPN",
                   ClientHelloBuilder()
                       .Extension(test::kExtAlpn, AlpnData({"h2", ""}))
                       .Build()});
  {
    std::string data = AlpnData({"h2"});
    data[2] = 5;  // name overruns the list
    cases.push_back(
        {"alpn_name_overruns_list", "overruns its list",
         ClientHelloBuilder().Extension(test::kExtAlpn, data).Build()});
  }
  cases.push_back({"alpn_list_shorter_than_extension", "ALPN list",
                   ClientHelloBuilder()
                       .Extension(test::kExtAlpn, AlpnData({"h2"}) + "x")
                       .Build()});
  {
    std::string data;
    AppendU8(&data, 3);
    data += "\x03\x04\x03";
    cases.push_back({"supported_versions_odd", "supported_versions length",
                     ClientHelloBuilder()
                         .Versions({})
                         .Extension(test::kExtSupportedVersions, data)
                         .Build()});
  }
  cases.push_back(
      {"supported_versions_empty", "supported_versions length",
       ClientHelloBuilder()
           .Versions({})
           .Extension(test::kExtSupportedVersions, std::string(1, '\0'))
           .Build()});
  {
    // The last extension claims more bytes than the block holds.
    std::string h = handshake;
    const size_t at = h.size() - 2 - 32 - 4 - 2;  // key_share's ext length
    h[at] = static_cast<char>(0x01);
    cases.push_back({"extension_overruns_block", "overruns the extensions",
                     FrameRecords(h)});
  }
  {
    // Record framing.
    std::string records = FrameRecords(handshake, {10});
    records[15] = 21;  // the second record is an alert
    cases.push_back(
        {"alert_between_fragments", "non-handshake record", records});
  }
  {
    std::string records = FrameRecords(handshake, {10});
    records[16] = 2;
    cases.push_back({"second_record_major_2", "major is not 3", records});
  }
  cases.push_back(
      {"empty_record", "empty handshake record", FrameRecords(handshake, {0})});
  cases.push_back({"empty_record_between", "empty handshake record",
                   FrameRecords(handshake, {10, 0})});
  {
    std::string records = std::string("\x16\x03\x01\x40\x01", 5) + handshake +
                          std::string(16385, '\0');
    records.resize(5 + 16385);
    cases.push_back({"record_over_2_14", "2^14", records});
  }
  {
    // SSLv2-compatible hellos with bad fields.
    std::string v2 = ClientHelloBuilder().SslV2().Build();
    std::string bad = v2;
    bad[6] = static_cast<char>(bad[6] + 1);  // cipher_spec_length % 3 != 0
    cases.push_back({"sslv2_cipher_specs", "cipher_specs", bad});
    bad = v2;
    bad[10] = 15;  // challenge under 16
    cases.push_back({"sslv2_challenge", "challenge", bad});
    bad = v2;
    bad[8] = 5;  // session_id_length 5
    cases.push_back({"sslv2_session_id", "session_id", bad});
    bad = v2;
    bad[1] = static_cast<char>(bad[1] - 1);  // msg_length disagrees
    cases.push_back(
        {"sslv2_length", "disagrees", bad.substr(0, bad.size() - 1)});
    cases.push_back({"sslv2_too_short", "too short",
                     std::string("\x80\x05\x01\x03\x01"
                                 "\x00\x00",
                                 7)});
  }
  return cases;
}

class MalformedTest : public testing::TestWithParam<MalformedCase> {};

TEST_P(MalformedTest, IsRejected) {
  ExpectRejected(GetParam().bytes, SniffStatus::kMalformed, kLargeMaxBytes,
                 GetParam().reason);
}

INSTANTIATE_TEST_SUITE_P(Cases, MalformedTest,
                         testing::ValuesIn(MalformedCases()),
                         [](const testing::TestParamInfo<MalformedCase>& info) {
                           return std::string(info.param.name);
                         });

// --- Captured hellos (tests/data/client_hello/README.md) ---

struct CapturedCase {
  const char* file;
  Want want;
  bool tls13;
};

class CapturedTest : public testing::TestWithParam<CapturedCase> {};

std::string ReadCaptured(const char* file) {
  const std::string path = std::string("tests/data/client_hello/") + file;
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

TEST_P(CapturedTest, Sniffs) {
  const CapturedCase& c = GetParam();
  const std::string bytes = ReadCaptured(c.file);
  ASSERT_FALSE(bytes.empty());
  ExpectValidEverywhere(bytes, c.want);
  auto info = NewInfo();
  ASSERT_EQ(Sniff(bytes, kMaxBytes, info.get()), SniffStatus::kFound);
  EXPECT_EQ(info->legacy_version, test::kTls12);
  EXPECT_EQ(info->OffersVersion(test::kTls13), c.tls13);
}

const std::vector<std::string> kH2Http11 = {"h2", "http/1.1"};

INSTANTIATE_TEST_SUITE_P(
    Clients, CapturedTest,
    testing::Values(
        CapturedCase{"chromium_156_sni_a_localhost.bin",
                     {"a.localhost", kH2Http11, /*ech=*/true},
                     true},
        CapturedCase{
            "curl_7_88_sni_a_localhost.bin", {"a.localhost", kH2Http11}, true},
        CapturedCase{"curl_7_88_http11_sni_x_y_a_localhost.bin",
                     {"x.y.a.localhost", {"http/1.1"}},
                     true},
        CapturedCase{"curl_7_88_ip_no_sni.bin", {"", kH2Http11}, true},
        CapturedCase{
            "node_20_sni_a_localhost.bin", {"a.localhost", kH2Http11}, true},
        CapturedCase{"openssl_3_0_sni_a_localhost_alpn_h2.bin",
                     {"a.localhost", kH2Http11},
                     true},
        CapturedCase{"openssl_3_0_tls12_sni_b_localhost.bin",
                     {"b.localhost", {}},
                     false},
        CapturedCase{"openssl_3_0_no_sni.bin", {"", {}}, true},
        CapturedCase{"python_3_11_ssl_sni_b_localhost.bin",
                     {"b.localhost", kH2Http11},
                     true}),
    [](const testing::TestParamInfo<CapturedCase>& info) {
      std::string name = info.param.file;
      name = name.substr(0, name.size() - 4);  // ".bin"
      for (char& c : name) {
        if (c == '.') c = '_';
      }
      return name;
    });

}  // namespace
}  // namespace sniff
}  // namespace ddv
