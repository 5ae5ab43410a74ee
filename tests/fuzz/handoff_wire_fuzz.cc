// Fuzzes the handoff wire decoder (DecodeHeader, DecodeFrame): the master
// reads every frame a worker sends with it, and a worker every frame of the
// master's. Besides "no crash", it checks what the two sides rely on:
//  - the two entry points agree: a header refusal is the frame's refusal,
//    and a decoded frame has the header's type;
//  - a refusal is InvalidArgument, or FailedPrecondition for a version this
//    build does not speak, and says what is wrong;
//  - a decoded frame respects the documented limits;
//  - decode and encode are inverse: whatever decodes re-encodes to exactly
//    the same bytes (the format has no slack: reserved bits are zero, no
//    trailing bytes), so neither side accepts what the other would refuse.
// Each input is also decoded with its payload_length patched to match, so a
// mutation that changes the size still reaches the payload decoders.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <variant>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "src/handoff/wire.h"
#include "tests/fuzz/fuzz_check.h"

namespace ddv {
namespace handoff {
namespace {

uint16_t U16At(absl::string_view bytes, size_t offset) {
  return static_cast<uint16_t>(static_cast<uint8_t>(bytes[offset]) |
                               static_cast<uint8_t>(bytes[offset + 1]) << 8);
}

// The documented limits of a frame that decoded.
void CheckLimits(const Frame& frame) {
  if (const auto* hello = std::get_if<Hello>(&frame)) {
    FUZZ_CHECK(!hello->site.empty() && hello->site.size() <= kMaxSiteIdLength);
  }
  if (const auto* batch = std::get_if<HandoffBatch>(&frame)) {
    FUZZ_CHECK(!batch->entries.empty() &&
               batch->entries.size() <= kMaxEntriesPerBatch);
    for (const HandoffEntry& e : batch->entries) {
      FUZZ_CHECK(e.host.size() <= kMaxHostLength);
      FUZZ_CHECK(e.alpn.size() <= kMaxAlpnLength);
      FUZZ_CHECK(e.protocol == Protocol::kTcp ||
                 e.protocol == Protocol::kHttp ||
                 e.protocol == Protocol::kTls);
      if (batch->mode == HandoffMode::kPidfd) {
        FUZZ_CHECK(e.master_fd >= 0);
      } else {
        FUZZ_CHECK(e.master_fd == -1);
      }
      if (e.proxy.has_addresses) {
        FUZZ_CHECK(InetSockaddrLength(e.proxy.source) != 0);
        FUZZ_CHECK(e.proxy.source.ss_family ==
                   e.proxy.destination.ss_family);
      }
      FUZZ_CHECK(e.proxy.tlvs.size() <= kMaxProxyTlvLength);
    }
    FUZZ_CHECK(ExpectedFdCount(frame) ==
               (batch->mode == HandoffMode::kScmRights ? batch->entries.size()
                                                       : 0));
  } else {
    FUZZ_CHECK(ExpectedFdCount(frame) == 0);
  }
  if (const auto* ack = std::get_if<PidfdAck>(&frame)) {
    FUZZ_CHECK(!ack->entries.empty() &&
               ack->entries.size() <= kMaxEntriesPerBatch);
  }
  if (const auto* request = std::get_if<Request>(&frame)) {
    FUZZ_CHECK(!request->method.empty() &&
               request->method.size() <= kMaxMethodLength);
  }
  if (const auto* response = std::get_if<Response>(&frame)) {
    FUZZ_CHECK(response->code != absl::StatusCode::kOk ||
               response->error.empty());
  }
  if (const auto* message = std::get_if<Message>(&frame)) {
    FUZZ_CHECK(message->target_site.size() <= kMaxSiteIdLength);
    FUZZ_CHECK(message->source_site.size() <= kMaxSiteIdLength);
  }
}

void CheckOne(absl::string_view bytes) {
  absl::StatusOr<FrameHeader> header = DecodeHeader(bytes);
  absl::StatusOr<Frame> frame = DecodeFrame(bytes);

  if (!header.ok()) {
    FUZZ_CHECK(!frame.ok());
    FUZZ_CHECK(frame.status() == header.status());
  } else {
    FUZZ_CHECK(header->version == kProtocolVersion);
    FUZZ_CHECK(header->payload_length == bytes.size() - kHeaderSize);
    FUZZ_CHECK(bytes.size() <= kMaxFrameBytes);
  }

  if (!frame.ok()) {
    const absl::Status& s = frame.status();
    FUZZ_CHECK(!s.message().empty());
    if (s.code() == absl::StatusCode::kFailedPrecondition) {
      // Only the version says "the other side is a different build".
      FUZZ_CHECK(bytes.size() >= kHeaderSize);
      FUZZ_CHECK(U16At(bytes, 4) != kProtocolVersion);
    } else {
      FUZZ_CHECK(s.code() == absl::StatusCode::kInvalidArgument);
    }
    return;
  }

  FUZZ_CHECK(header.ok());
  FUZZ_CHECK(TypeOf(*frame) == header->type);
  CheckLimits(*frame);

  // Decode then encode is the identity on bytes.
  std::string again = "stale";
  absl::Status encoded = EncodeFrame(*frame, &again);
  if (!encoded.ok()) {
    std::fprintf(stderr, "decoded %s frame does not re-encode: %s\n",
                 FrameTypeName(TypeOf(*frame)),
                 std::string(encoded.message()).c_str());
    std::abort();
  }
  FUZZ_CHECK(again == bytes);
  absl::StatusOr<Frame> twice = DecodeFrame(again);
  FUZZ_CHECK(twice.ok());
  FUZZ_CHECK(*twice == *frame);
}

}  // namespace
}  // namespace handoff
}  // namespace ddv

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using ddv::handoff::kHeaderSize;
  absl::string_view input(reinterpret_cast<const char*>(data), size);
  ddv::handoff::CheckOne(input);

  if (size >= kHeaderSize) {
    std::string patched(input);
    const uint32_t payload = static_cast<uint32_t>(size - kHeaderSize);
    for (int i = 0; i < 4; ++i) {
      patched[8 + i] = static_cast<char>(payload >> (8 * i));
    }
    if (patched != input) ddv::handoff::CheckOne(patched);
  }
  return 0;
}
