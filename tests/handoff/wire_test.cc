// Wire format: every frame type round-trips, the encoder refuses what the
// decoder would refuse, and a table of malformed frames gets clear errors.
#include "src/handoff/wire.h"
#include "tests/handoff/frame_bytes.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ddv {
namespace handoff {
namespace {

using ::testing::HasSubstr;
using ::ddv::testing::AppendPayload;
using ::ddv::testing::CutPayload;
using ::ddv::testing::WithByte;
using ::ddv::testing::WithU16;
using ::ddv::testing::WithU32;

HandoffEntry HttpEntry(uint64_t id) {
  HandoffEntry e;
  e.connection_id = id;
  e.listener_index = 1;
  e.site_index = 7;
  e.protocol = Protocol::kHttp;
  e.accept_time_ns = 123456789012345;
  e.host = "a.example.com";
  return e;
}

HandoffEntry TlsEntryWithProxy() {
  HandoffEntry e;
  e.connection_id = 0xFFFFFFFFFFFFFFF0ull;
  e.listener_index = 2;
  e.site_index = 3;
  e.protocol = Protocol::kTls;
  e.accept_time_ns = -1;  // signed: survives the u64 trip
  e.host = "x.y.a.example.com";
  e.alpn = "h2,http/1.1";
  e.proxy.has_addresses = true;
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&e.proxy.source);
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons(40000);
  ::inet_pton(AF_INET6, "2001:db8::1", &in6->sin6_addr);
  auto* to6 = reinterpret_cast<sockaddr_in6*>(&e.proxy.destination);
  to6->sin6_family = AF_INET6;
  to6->sin6_port = htons(443);
  ::inet_pton(AF_INET6, "2001:db8::2", &to6->sin6_addr);
  // PP2_TYPE_ALPN "h2", PP2_TYPE_AUTHORITY "a.example"
  e.proxy.tlvs = std::string("\x01\x00\x02" "h2" "\x02\x00\x09" "a.example",
                             17);
  e.skip_bytes = 84;
  return e;
}

HandoffEntry Ipv4ProxyEntry() {
  HandoffEntry e = HttpEntry(9);
  e.proxy.has_addresses = true;
  auto* in = reinterpret_cast<sockaddr_in*>(&e.proxy.source);
  in->sin_family = AF_INET;
  in->sin_port = htons(1234);
  in->sin_addr.s_addr = htonl(0x0A000001);
  auto* to = reinterpret_cast<sockaddr_in*>(&e.proxy.destination);
  to->sin_family = AF_INET;
  to->sin_port = htons(80);
  to->sin_addr.s_addr = htonl(0x0A000002);
  e.proxy.tlvs_truncated = true;
  e.skip_bytes = 39;
  return e;
}

// A v2 header with TLVs but no addresses (AF_UNSPEC).
HandoffEntry TlvsOnlyEntry() {
  HandoffEntry e = HttpEntry(10);
  e.proxy.tlvs = std::string("\x05\x00\x04" "id-1", 7);  // PP2_TYPE_UNIQUE_ID
  e.skip_bytes = 23;
  return e;
}

std::vector<Frame> EveryFrameType() {
  std::vector<Frame> frames;
  frames.push_back(Hello{4242, 1, kProtocolVersion, "a"});
  HandoffBatch scm;
  scm.entries = {HttpEntry(1), TlsEntryWithProxy(), Ipv4ProxyEntry(),
                 TlvsOnlyEntry()};
  frames.push_back(scm);
  HandoffBatch pidfd;
  pidfd.mode = HandoffMode::kPidfd;
  pidfd.entries = {HttpEntry(5), HttpEntry(6)};
  pidfd.entries[0].master_fd = 17;
  pidfd.entries[1].master_fd = 0;
  frames.push_back(pidfd);
  frames.push_back(PidfdAck{{{5, 0}, {6, 1 /* EPERM */}}});
  frames.push_back(Heartbeat{99, false});
  frames.push_back(Heartbeat{~0ull, true});
  frames.push_back(Request{1, "update_server_conf", R"({"add_hosts":["x"]})"});
  frames.push_back(Request{2, "ping", ""});
  frames.push_back(Response{1, absl::StatusCode::kOk, "", R"({"pong":true})"});
  frames.push_back(
      Response{2, absl::StatusCode::kNotFound, "no such site", ""});
  frames.push_back(Message{"b", 0, "", 0, R"({"hi":1})"});
  frames.push_back(Message{"", kAnyWorker, "a", 1, "[]"});
  frames.push_back(Shutdown{5000});
  return frames;
}

TEST(WireTest, EveryFrameTypeRoundTrips) {
  for (const Frame& frame : EveryFrameType()) {
    SCOPED_TRACE(FrameTypeName(TypeOf(frame)));
    absl::StatusOr<std::string> bytes = EncodeFrame(frame);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    absl::StatusOr<FrameHeader> header = DecodeHeader(*bytes);
    ASSERT_TRUE(header.ok()) << header.status();
    EXPECT_EQ(header->type, TypeOf(frame));
    EXPECT_EQ(header->payload_length, bytes->size() - kHeaderSize);
    absl::StatusOr<Frame> decoded = DecodeFrame(*bytes);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_TRUE(*decoded == frame);
  }
}

TEST(WireTest, HeaderBytesAreAsDocumented) {
  std::string bytes = *EncodeFrame(Shutdown{0x01020304});
  ASSERT_EQ(bytes.size(), kHeaderSize + 4);
  EXPECT_EQ(bytes.substr(0, 4), "DDV1");
  EXPECT_EQ(bytes.substr(4, 2), std::string("\x02\x00", 2));  // version 2
  EXPECT_EQ(bytes.substr(6, 2), std::string("\x08\x00", 2));  // kShutdown
  EXPECT_EQ(bytes.substr(8, 4), std::string("\x04\x00\x00\x00", 4));
  EXPECT_EQ(bytes.substr(12), std::string("\x04\x03\x02\x01", 4));
}

TEST(WireTest, ExpectedFdCount) {
  std::vector<Frame> frames = EveryFrameType();
  EXPECT_EQ(ExpectedFdCount(frames[1]), 4u);  // scm batch
  EXPECT_EQ(ExpectedFdCount(frames[2]), 0u);  // pidfd batch
  EXPECT_EQ(ExpectedFdCount(frames[0]), 0u);
}

TEST(WireTest, ScmModeEncoderWritesMinusOneForMasterFd) {
  HandoffEntry e = HttpEntry(1);
  e.master_fd = 12;  // meaningless in scm mode; must not leak onto the wire
  std::string bytes;
  ASSERT_TRUE(EncodeHandoffBatch(HandoffMode::kScmRights, {e}, &bytes).ok());
  auto decoded = DecodeFrame(bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(std::get<HandoffBatch>(*decoded).entries[0].master_fd, -1);
}

TEST(WireTest, FullBatchOfWorstCaseEntriesFits) {
  std::vector<HandoffEntry> entries(kMaxEntriesPerBatch, TlsEntryWithProxy());
  for (HandoffEntry& e : entries) {
    e.host = std::string(kMaxHostLength, 'h');
    e.alpn = std::string(kMaxAlpnLength, 'p');
    // One TLV of the largest length that fits.
    const size_t value = kMaxProxyTlvLength - 3;
    e.proxy.tlvs = std::string(1, '\xe0') +
                   static_cast<char>(value >> 8) +
                   static_cast<char>(value & 0xff) + std::string(value, 'v');
  }
  std::string bytes;
  absl::Status status =
      EncodeHandoffBatch(HandoffMode::kScmRights, entries, &bytes);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_LE(bytes.size(), kMaxFrameBytes);
  auto decoded = DecodeFrame(bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(std::get<HandoffBatch>(*decoded).entries.size(),
            kMaxEntriesPerBatch);
}

TEST(WireTest, AlpnListIsCutAtAWholeProtocol) {
  EXPECT_EQ(TruncateAlpnList("h2,http/1.1", 100), "h2,http/1.1");
  EXPECT_EQ(TruncateAlpnList("h2,http/1.1", 5), "h2");
  EXPECT_EQ(TruncateAlpnList("h2,http/1.1", 2), "h2");  // comma at the limit
  EXPECT_EQ(TruncateAlpnList("abcdef", 3), "");

  HandoffEntry e = HttpEntry(1);
  for (int i = 0; i < 200; ++i) e.alpn += (i ? ",proto" : "proto");
  std::string bytes;
  ASSERT_TRUE(EncodeHandoffBatch(HandoffMode::kScmRights, {e}, &bytes).ok());
  std::string alpn = std::get<HandoffBatch>(*DecodeFrame(bytes)).entries[0].alpn;
  EXPECT_LE(alpn.size(), kMaxAlpnLength);
  EXPECT_EQ(alpn.back(), 'o');  // ends on a whole "proto"
  EXPECT_EQ(e.alpn.compare(0, alpn.size(), alpn), 0);
}

struct EncodeCase {
  const char* name;
  Frame frame;
  const char* message;
};

TEST(WireTest, EncoderRejectsWhatTheDecoderWould) {
  HandoffBatch empty;
  HandoffBatch too_many;
  too_many.entries.assign(kMaxEntriesPerBatch + 1, HttpEntry(1));
  HandoffBatch long_host;
  long_host.entries = {HttpEntry(1)};
  long_host.entries[0].host = std::string(kMaxHostLength + 1, 'a');
  HandoffBatch bad_host;
  bad_host.entries = {HttpEntry(1)};
  bad_host.entries[0].host = "a b";
  HandoffBatch pidfd_without_fd;
  pidfd_without_fd.mode = HandoffMode::kPidfd;
  pidfd_without_fd.entries = {HttpEntry(1)};
  HandoffBatch bad_source;
  bad_source.entries = {Ipv4ProxyEntry()};
  bad_source.entries[0].proxy.source.ss_family = AF_UNIX;
  HandoffBatch mixed_families;
  mixed_families.entries = {Ipv4ProxyEntry()};
  mixed_families.entries[0].proxy.destination =
      TlsEntryWithProxy().proxy.destination;
  HandoffBatch long_tlvs;
  long_tlvs.entries = {HttpEntry(1)};
  long_tlvs.entries[0].proxy.tlvs =
      std::string("\xe0\x02\x80", 3) + std::string(640, 'v');
  HandoffBatch torn_tlv;
  torn_tlv.entries = {HttpEntry(1)};
  torn_tlv.entries[0].proxy.tlvs = std::string("\x01\x00\x05" "h2", 5);

  std::vector<EncodeCase> cases = {
      {"empty batch", empty, "0 entries"},
      {"65 entries", too_many, "65 entries"},
      {"long host", long_host, "254 bytes"},
      {"host with space", bad_host, "0x20"},
      {"pidfd without master_fd", pidfd_without_fd, "master_fd"},
      {"unix proxy source", bad_source, "is not inet/inet6"},
      {"source and destination families", mixed_families, "families differ"},
      {"TLVs over the limit", long_tlvs, "643 bytes, over 640"},
      {"torn TLV", torn_tlv, "overruns the TLVs"},
      {"hello without site", Hello{1, 0, 1, ""}, "without site"},
      {"long site", Hello{1, 0, 1, std::string(256, 's')}, "256 bytes"},
      {"empty method", Request{1, "", "{}"}, "method length 0"},
      {"upper-case method", Request{1, "Ping", "{}"}, "[a-z0-9_.]"},
      {"OK with error", Response{1, absl::StatusCode::kOk, "x", ""},
       "OK response"},
      {"empty ack", PidfdAck{}, "0 entries"},
      {"huge body", Request{1, "ping", std::string(kMaxFrameBytes, 'x')},
       "over the limit"},
  };
  for (const EncodeCase& c : cases) {
    SCOPED_TRACE(c.name);
    std::string out = "stale";
    absl::Status status = EncodeFrame(c.frame, &out);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr(c.message));
  }
}

// Byte surgery on a valid frame for the malformed-frame table.
std::string Encoded(const Frame& frame) { return *EncodeFrame(frame); }

struct MalformedCase {
  const char* name;
  std::string bytes;
  absl::StatusCode code;
  const char* message;
};

TEST(WireTest, MalformedFramesGetClearErrors) {
  HandoffBatch one;
  one.entries = {HttpEntry(1)};
  const std::string batch = Encoded(one);
  // Offsets inside the batch payload: mode, reserved, count, then entry 0.
  const size_t p = kHeaderSize;
  const size_t entry = p + 4;

  const std::string heartbeat = Encoded(Heartbeat{1, false});
  const std::string request = Encoded(Request{7, "ping", "{}"});
  const std::string response =
      Encoded(Response{7, absl::StatusCode::kOk, "", "{}"});

  const absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;
  std::vector<MalformedCase> cases = {
      {"empty", "", kInvalid, "truncated frame: 0 bytes"},
      {"short header", batch.substr(0, 11), kInvalid, "header needs 12"},
      {"bad magic", "XDV1" + batch.substr(4), kInvalid, "bad magic"},
      {"version 1", WithU16(batch, 4, 1), absl::StatusCode::kFailedPrecondition,
       "unsupported protocol version 1"},
      {"version 3", WithU16(batch, 4, 3), absl::StatusCode::kFailedPrecondition,
       "unsupported protocol version 3"},
      {"version 0", WithU16(batch, 4, 0), absl::StatusCode::kFailedPrecondition,
       "unsupported protocol version 0"},
      {"type 0", WithU16(heartbeat, 6, 0), kInvalid, "unknown frame type 0"},
      {"type 99", WithU16(heartbeat, 6, 99), kInvalid, "unknown frame type 99"},
      {"length overflow", WithU32(batch, 8, 0xFFFFFFFF), kInvalid,
       "over the limit"},
      {"length beyond message", WithU32(batch, 8, 500), kInvalid,
       "truncated or padded"},
      {"message beyond length", batch + "x", kInvalid, "truncated or padded"},
      {"truncated batch entry", CutPayload(batch, 1), kInvalid,
       "truncated handoff_batch payload: host"},
      {"truncated batch fixed part", CutPayload(batch, 30), kInvalid,
       "truncated handoff_batch payload"},
      {"trailing bytes", AppendPayload(heartbeat, "zz"), kInvalid,
       "2 trailing bytes"},
      {"zero entries", WithU16(batch, p + 2, 0), kInvalid, "count 0"},
      {"too many entries", WithU16(batch, p + 2, 65), kInvalid, "count 65"},
      {"count beyond data", WithU16(batch, p + 2, 2), kInvalid,
       "entry 1: truncated"},
      {"unknown mode", WithByte(batch, p, 2), kInvalid, "unknown handoff mode"},
      {"reserved byte", WithByte(batch, p + 1, 1), kInvalid, "reserved"},
      {"unknown protocol", WithByte(batch, entry + 32, 3), kInvalid,
       "unknown protocol 3"},
      {"reserved flags", WithByte(batch, entry + 33, 0x80), kInvalid,
       "reserved entry flag"},
      {"host too long", WithU16(batch, entry + 34, 300), kInvalid,
       "host_length 300"},
      {"alpn too long", WithU16(batch, entry + 36, 1025), kInvalid,
       "alpn_length 1025"},
      {"source without flag", WithU16(batch, entry + 38, 16), kInvalid,
       "contradict the proxy-addresses flag"},
      {"destination without flag", WithU16(batch, entry + 40, 16), kInvalid,
       "contradict the proxy-addresses flag"},
      {"flag without addresses", WithByte(batch, entry + 33, 1), kInvalid,
       "contradict the proxy-addresses flag"},
      {"source over sockaddr_in6",
       WithU16(WithU16(WithByte(batch, entry + 33, 1), entry + 38, 29),
               entry + 40, 16),
       kInvalid, "over 28"},
      {"tlvs too long", WithU16(batch, entry + 42, 641), kInvalid,
       "tlvs_length 641 over 640"},
      {"tlvs beyond data", WithU16(batch, entry + 42, 3), kInvalid,
       "truncated handoff_batch payload: proxy_tlvs"},
      {"scm batch with master_fd", WithU32(batch, entry + 28, 5), kInvalid,
       "master_fd 5"},
      {"pidfd batch without master_fd", WithByte(batch, p, 1), kInvalid,
       "master_fd -1"},
      {"host with NUL", WithByte(batch, entry + 44, 0), kInvalid, "0x00"},
      {"heartbeat is_reply 2", WithByte(heartbeat, kHeaderSize + 8, 2),
       kInvalid, "is_reply is 2"},
      {"method upper case", WithByte(request, kHeaderSize + 10, 'P'), kInvalid,
       "[a-z0-9_.]"},
      {"method length 0", WithU16(request, kHeaderSize + 8, 0), kInvalid,
       "method length 0"},
      {"body length overflow", WithU32(request, request.size() - 6, 0xFFFFFF),
       kInvalid, "truncated request payload: body"},
      {"status code 17", WithU32(response, kHeaderSize + 8, 17), kInvalid,
       "unknown status code 17"},
      {"hello empty site", CutPayload(WithU16(Encoded(Hello{1, 0, 1, "a"}),
                                              kHeaderSize + 10, 0),
                                      1),
       kInvalid, "site_length 0"},
      {"ack count 0", WithU16(Encoded(PidfdAck{{{1, 0}}}), kHeaderSize, 0),
       kInvalid, "count 0"},
      {"shutdown truncated", CutPayload(Encoded(Shutdown{1}), 2), kInvalid,
       "truncated shutdown payload: grace_ms"},
  };
  for (const MalformedCase& c : cases) {
    SCOPED_TRACE(c.name);
    absl::StatusOr<Frame> decoded = DecodeFrame(c.bytes);
    ASSERT_FALSE(decoded.ok());
    EXPECT_EQ(decoded.status().code(), c.code) << decoded.status();
    EXPECT_THAT(std::string(decoded.status().message()), HasSubstr(c.message));
  }
}

// Every prefix of every valid frame, with the header patched to match and
// not, must be rejected: no prefix of a frame is itself a valid frame.
TEST(WireTest, EveryTruncationIsRejected) {
  for (const Frame& frame : EveryFrameType()) {
    std::string bytes = Encoded(frame);
    for (size_t n = 0; n < bytes.size(); ++n) {
      std::string prefix = bytes.substr(0, n);
      EXPECT_FALSE(DecodeFrame(prefix).ok()) << n;
      if (n >= kHeaderSize) {
        EXPECT_FALSE(DecodeFrame(CutPayload(bytes, bytes.size() - n)).ok())
            << FrameTypeName(TypeOf(frame)) << " cut to " << n;
      }
    }
  }
}

// Random corruption must never crash or read out of bounds (ASan run), and
// whatever still decodes must re-encode to a valid frame.
TEST(WireTest, RandomCorruptionNeverCrashes) {
  std::mt19937 rng(42);
  std::vector<Frame> frames = EveryFrameType();
  int decoded = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string bytes = Encoded(frames[i % frames.size()]);
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      bytes[rng() % bytes.size()] = static_cast<char>(rng());
    }
    absl::StatusOr<Frame> frame = DecodeFrame(bytes);
    if (!frame.ok()) continue;
    ++decoded;
    std::string again;
    EXPECT_TRUE(EncodeFrame(*frame, &again).ok());
  }
  EXPECT_GT(decoded, 0);  // some flips land in free-form bytes
}

}  // namespace
}  // namespace handoff
}  // namespace ddv
