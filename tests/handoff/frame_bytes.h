// Byte surgery on encoded handoff frames, for tests and seed corpora that
// need malformed frames: overwrite a little-endian field, or cut or extend
// the payload while keeping the header's payload_length consistent.
#ifndef DDV_TESTS_HANDOFF_FRAME_BYTES_H_
#define DDV_TESTS_HANDOFF_FRAME_BYTES_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace ddv {
namespace testing {

std::string WithByte(std::string bytes, size_t offset, uint8_t v);
std::string WithU16(std::string bytes, size_t offset, uint16_t v);
std::string WithU32(std::string bytes, size_t offset, uint32_t v);

// Cuts `n` bytes off the end and fixes payload_length, so the header is
// consistent and the payload itself is short.
std::string CutPayload(std::string bytes, size_t n);
// Appends `extra` to the payload and fixes payload_length.
std::string AppendPayload(std::string bytes, const std::string& extra);

}  // namespace testing
}  // namespace ddv

#endif  // DDV_TESTS_HANDOFF_FRAME_BYTES_H_
