// Writes the handoff_wire seed corpus: one valid frame of each type built
// with the encoder, and the ways a peer's frame goes wrong (truncated,
// oversized and inconsistent lengths, bad magic and version, unknown type,
// each payload rule broken once). Each file is named after its scenario.
//
//   bazel run //tests/fuzz:handoff_wire_seeds -- "$PWD/tests/fuzz/corpus/handoff_wire"
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "src/handoff/wire.h"
#include "tests/handoff/frame_bytes.h"

namespace ddv {
namespace handoff {
namespace {

using ::ddv::testing::AppendPayload;
using ::ddv::testing::CutPayload;
using ::ddv::testing::WithByte;
using ::ddv::testing::WithU16;
using ::ddv::testing::WithU32;

HandoffEntry HttpEntry(uint64_t id) {
  HandoffEntry e;
  e.connection_id = id;
  e.listener_index = 0;
  e.site_index = 1;
  e.protocol = Protocol::kHttp;
  e.accept_time_ns = 123456789012345;
  e.host = "a.example.com";
  return e;
}

HandoffEntry TlsInet6Entry() {
  HandoffEntry e = HttpEntry(2);
  e.protocol = Protocol::kTls;
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
  // PP2_TYPE_ALPN "h2", PP2_TYPE_SSL (client 1, verify 0, version TLSv1.3)
  e.proxy.tlvs = std::string("\x01\x00\x02" "h2"
                             "\x20\x00\x0f" "\x01\x00\x00\x00\x00"
                             "\x21\x00\x07" "TLSv1.3",
                             23);
  e.skip_bytes = 75;
  return e;
}

HandoffEntry Inet4Entry() {
  HandoffEntry e = HttpEntry(3);
  e.proxy.has_addresses = true;
  auto* in = reinterpret_cast<sockaddr_in*>(&e.proxy.source);
  in->sin_family = AF_INET;
  in->sin_port = htons(1234);
  in->sin_addr.s_addr = htonl(0x0A000001);
  auto* to = reinterpret_cast<sockaddr_in*>(&e.proxy.destination);
  to->sin_family = AF_INET;
  to->sin_port = htons(80);
  to->sin_addr.s_addr = htonl(0x0A000002);
  e.skip_bytes = 39;
  return e;
}

// A v2 header without addresses (LOCAL or AF_UNSPEC) whose TLVs did not all
// fit.
HandoffEntry TlvsOnlyEntry() {
  HandoffEntry e = HttpEntry(4);
  e.protocol = Protocol::kTcp;
  e.host.clear();
  e.proxy.tlvs = std::string("\x05\x00\x04" "id-1", 7);
  e.proxy.tlvs_truncated = true;
  e.skip_bytes = 700;
  return e;
}

std::string Encoded(const Frame& frame) {
  absl::StatusOr<std::string> bytes = EncodeFrame(frame);
  if (!bytes.ok()) {
    std::fprintf(stderr, "encoding a seed: %s\n",
                 std::string(bytes.status().message()).c_str());
    std::exit(1);
  }
  return *std::move(bytes);
}

std::string Batch(HandoffMode mode, std::vector<HandoffEntry> entries) {
  HandoffBatch batch;
  batch.mode = mode;
  batch.entries = std::move(entries);
  return Encoded(batch);
}


std::vector<std::pair<std::string, std::string>> Seeds() {
  const HandoffMode kScm = HandoffMode::kScmRights;
  const HandoffMode kPidfd = HandoffMode::kPidfd;
  std::vector<std::pair<std::string, std::string>> seeds;
  auto add = [&seeds](std::string name, std::string bytes) {
    seeds.emplace_back(std::move(name), std::move(bytes));
  };

  // Valid frames, every type.
  const std::string hello = Encoded(Hello{4242, 1, kProtocolVersion, "a"});
  add("hello", hello);
  add("hello_long_site", Encoded(Hello{1, 0, kProtocolVersion,
                                       std::string(kMaxSiteIdLength, 's')}));
  const std::string batch = Batch(kScm, {HttpEntry(1)});
  add("batch_scm_http", batch);
  add("batch_scm_proxy_sources",
      Batch(kScm, {TlsInet6Entry(), Inet4Entry(), TlvsOnlyEntry()}));
  HandoffEntry most_tlvs = TlsInet6Entry();
  const size_t value = kMaxProxyTlvLength - 3;
  most_tlvs.proxy.tlvs = std::string(1, '\xea') +
                         static_cast<char>(value >> 8) +
                         static_cast<char>(value & 0xff) +
                         std::string(value, 'v');
  add("batch_largest_proxy_tlvs", Batch(kScm, {most_tlvs}));
  const std::string proxied = Batch(kScm, {Inet4Entry()});
  std::vector<HandoffEntry> pidfd_entries = {HttpEntry(5), TlsInet6Entry()};
  pidfd_entries[0].master_fd = 17;
  pidfd_entries[1].master_fd = 0;
  const std::string pidfd = Batch(kPidfd, pidfd_entries);
  add("batch_pidfd", pidfd);
  std::vector<HandoffEntry> full(kMaxEntriesPerBatch, HttpEntry(9));
  add("batch_max_entries", Batch(kScm, full));
  HandoffEntry long_fields = TlsInet6Entry();
  long_fields.host = std::string(kMaxHostLength, 'h');
  long_fields.alpn = std::string(kMaxAlpnLength - 3, 'p') + ",h2";
  add("batch_longest_host_and_alpn", Batch(kScm, {long_fields}));
  const std::string ack = Encoded(PidfdAck{{{5, 0}, {6, 1 /* EPERM */}}});
  add("pidfd_ack", ack);
  const std::string heartbeat = Encoded(Heartbeat{99, false});
  add("heartbeat", heartbeat);
  add("heartbeat_reply", Encoded(Heartbeat{~0ull, true}));
  const std::string rpc_body =
      R"({"add_hosts":["x.example.com"],"default":true})";
  const std::string request =
      Encoded(Request{1, "update_server_conf", rpc_body});
  add("request_update_server_conf", request);
  add("request_ping", Encoded(Request{2, "ping", "{}"}));
  const std::string response =
      Encoded(Response{1, absl::StatusCode::kOk, "", R"({"pong":true})"});
  add("response_ok", response);
  add("response_error", Encoded(Response{2, absl::StatusCode::kAlreadyExists,
                                         "add_hosts: taken", ""}));
  const std::string message_body = R"({"hi":1})";
  const std::string message =
      Encoded(Message{"b", kAnyWorker, "a", 1, message_body});
  add("message", message);
  add("message_to_worker", Encoded(Message{"b", 3, "", 0, "[]"}));
  const std::string shutdown = Encoded(Shutdown{5000});
  add("shutdown", shutdown);

  // Header: truncated, oversized and inconsistent lengths, bad magic and
  // version, unknown type.
  const size_t p = kHeaderSize;
  const size_t entry = p + 4;  // mode, reserved, count, then entry 0
  add("empty", "");
  add("truncated_header", batch.substr(0, kHeaderSize - 1));
  add("header_only", Encoded(Shutdown{0}).substr(0, kHeaderSize));
  add("truncated_frame", batch.substr(0, batch.size() / 2));
  add("bad_magic", "XDV1" + batch.substr(4));
  add("bad_version", WithU16(batch, 4, kProtocolVersion - 1));
  add("future_version", WithU16(batch, 4, kProtocolVersion + 1));
  add("version_zero", WithU16(heartbeat, 4, 0));
  add("unknown_type", WithU16(heartbeat, 6, 99));
  add("type_zero", WithU16(heartbeat, 6, 0));
  add("oversized_length", WithU32(batch, 8, 0xFFFFFFFF));
  add("length_over_limit",
      WithU32(batch, 8, static_cast<uint32_t>(kMaxFrameBytes)));
  add("length_beyond_message", WithU32(batch, 8, 500));
  add("message_beyond_length", batch + "x");

  // Payloads: each rule broken once, header consistent.
  add("batch_truncated_entry", CutPayload(batch, 1));
  add("batch_truncated_fixed_part", CutPayload(batch, 30));
  add("trailing_bytes", AppendPayload(heartbeat, "zz"));
  add("batch_zero_entries", WithU16(batch, p + 2, 0));
  add("batch_too_many_entries", WithU16(batch, p + 2, kMaxEntriesPerBatch + 1));
  add("batch_count_beyond_data", WithU16(batch, p + 2, 2));
  add("batch_unknown_mode", WithByte(batch, p, 2));
  add("batch_reserved_byte", WithByte(batch, p + 1, 1));
  add("batch_unknown_protocol", WithByte(batch, entry + 32, 3));
  add("batch_reserved_flags", WithByte(batch, entry + 33, 0x80));
  add("batch_host_too_long", WithU16(batch, entry + 34, kMaxHostLength + 1));
  add("batch_alpn_too_long", WithU16(batch, entry + 36, kMaxAlpnLength + 1));
  add("batch_source_without_flag", WithU16(batch, entry + 38, 16));
  add("batch_destination_without_flag", WithU16(batch, entry + 40, 16));
  add("batch_flag_without_source", WithByte(batch, entry + 33, 1));
  add("batch_source_length_oversized",
      WithU16(WithByte(batch, entry + 33, 1), entry + 38, 0xFFFF));
  add("batch_proxy_source_length_vs_family", WithU16(proxied, entry + 44 + 13, 10));
  add("batch_proxy_source_unix", WithU16(proxied, entry + 44 + 13, 1));
  add("batch_tlvs_too_long",
      WithU16(batch, entry + 42, kMaxProxyTlvLength + 1));
  add("batch_tlvs_beyond_data", WithU16(batch, entry + 42, 3));
  add("batch_tlv_overruns",
      WithU16(Batch(kScm, {TlvsOnlyEntry()}), entry + 44 + 1, 0x0500));
  add("batch_scm_with_master_fd", WithU32(batch, entry + 28, 5));
  add("batch_pidfd_without_master_fd", WithByte(batch, p, 1));
  add("batch_pidfd_negative_master_fd", WithU32(pidfd, entry + 28, 0x80000000));
  add("batch_host_with_nul", WithByte(batch, entry + 44, 0));
  add("hello_empty_site", CutPayload(WithU16(hello, p + 10, 0), 1));
  add("hello_site_beyond_data", WithU16(hello, p + 10, 200));
  add("ack_zero_entries", WithU16(ack, p, 0));
  add("ack_reserved", WithU16(ack, p + 2, 1));
  add("ack_count_beyond_data", WithU16(ack, p, 3));
  add("heartbeat_is_reply_2", WithByte(heartbeat, p + 8, 2));
  add("request_method_upper_case", WithByte(request, p + 10, 'U'));
  add("request_method_empty", WithU16(request, p + 8, 0));
  add("request_body_length_oversized",
      WithU32(request, request.size() - rpc_body.size() - 4, 0xFFFFFFFF));
  add("response_status_17", WithU32(response, p + 8, 17));
  add("response_ok_with_error",
      WithU32(Encoded(Response{1, absl::StatusCode::kInternal, "x", ""}),
              p + 8, 0));
  add("message_target_site_too_long", WithU16(message, p, 256));
  add("message_body_beyond_data",
      WithU32(message, message.size() - message_body.size() - 4,
              static_cast<uint32_t>(message_body.size() + 1)));
  add("shutdown_truncated", CutPayload(shutdown, 2));
  return seeds;
}

}  // namespace
}  // namespace handoff
}  // namespace ddv

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  std::filesystem::path dir(argv[1]);
  std::filesystem::create_directories(dir);
  const auto seeds = ddv::handoff::Seeds();
  for (const auto& [name, bytes] : seeds) {
    std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) {
      std::fprintf(stderr, "cannot write %s\n", (dir / name).c_str());
      return 1;
    }
  }
  std::printf("wrote %zu seeds to %s\n", seeds.size(), dir.c_str());
  return 0;
}
