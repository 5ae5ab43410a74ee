// OpTag: what a completion belongs to, packed into the 64-bit user_data of its
// submission: an op kind, a slot index and the slot's generation, so a
// completion that arrives after its slot was reused is recognised and dropped.
#ifndef DDV_SRC_URING_OP_TAG_H_
#define DDV_SRC_URING_OP_TAG_H_

#include <cstdint>

namespace ddv {
namespace uring {

struct OpTag {
  uint8_t op = 0;           // caller's enum
  uint32_t index = 0;       // slot index (connection, listener, worker, ...)
  uint32_t generation = 0;  // low 24 bits used

  uint64_t Encode() const {
    return (static_cast<uint64_t>(op) << 56) |
           (static_cast<uint64_t>(generation & 0xffffff) << 32) | index;
  }
  static OpTag Decode(uint64_t data) {
    OpTag tag;
    tag.op = static_cast<uint8_t>(data >> 56);
    tag.generation = static_cast<uint32_t>((data >> 32) & 0xffffff);
    tag.index = static_cast<uint32_t>(data);
    return tag;
  }
};

}  // namespace uring
}  // namespace ddv

#endif  // DDV_SRC_URING_OP_TAG_H_
