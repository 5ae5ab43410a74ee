// Byte surgery on encoded handoff frames (see frame_bytes.h).
#include "tests/handoff/frame_bytes.h"

#include "src/handoff/wire.h"

namespace ddv {
namespace testing {

// payload_length: the u32 at offset 8 of the 12-byte header.
constexpr size_t kPayloadLengthOffset = 8;

std::string WithByte(std::string bytes, size_t offset, uint8_t v) {
  bytes[offset] = static_cast<char>(v);
  return bytes;
}

std::string WithU16(std::string bytes, size_t offset, uint16_t v) {
  bytes[offset] = static_cast<char>(v);
  bytes[offset + 1] = static_cast<char>(v >> 8);
  return bytes;
}

std::string WithU32(std::string bytes, size_t offset, uint32_t v) {
  for (int i = 0; i < 4; ++i) {
    bytes[offset + i] = static_cast<char>(v >> (8 * i));
  }
  return bytes;
}

std::string CutPayload(std::string bytes, size_t n) {
  bytes.resize(bytes.size() - n);
  return WithU32(bytes, kPayloadLengthOffset,
                 static_cast<uint32_t>(bytes.size() - handoff::kHeaderSize));
}

std::string AppendPayload(std::string bytes, const std::string& extra) {
  bytes += extra;
  return WithU32(bytes, kPayloadLengthOffset,
                 static_cast<uint32_t>(bytes.size() - handoff::kHeaderSize));
}

}  // namespace testing
}  // namespace ddv
