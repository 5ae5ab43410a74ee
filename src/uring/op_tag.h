// OpTag: what a completion belongs to, packed into the 64-bit user_data of its
// submission (liburing's proxy.c shape): an op kind, a slot index and the
// low 24 bits of the slot's generation.
//
// The generation is how a loop recognises a stale completion: one that
// arrives after its slot was freed and reused by something else. The tag
// only carries it; each loop decides which of its slots are reused and
// checks Matches() there (the master checks every connection op and every
// control-client op; see docs/master.md). A slot that is never reused (a
// listener, a worker channel) may put 0 here.
//
// 24 bits wrap after 16,777,216 reuses of one slot. That is safe as long as
// a slot is not reused while one of its ops is in flight, which is the rule
// the generation check backs up: an old completion cannot outlive that many
// reuses.
#ifndef DDV_SRC_URING_OP_TAG_H_
#define DDV_SRC_URING_OP_TAG_H_

#include <cstdint>

namespace ddv {
namespace uring {

struct OpTag {
  static constexpr uint32_t kGenerationMask = 0xffffff;

  uint8_t op = 0;           // caller's enum
  uint32_t index = 0;       // slot index (connection, listener, worker, ...)
  uint32_t generation = 0;  // low 24 bits used

  uint64_t Encode() const {
    return (static_cast<uint64_t>(op) << 56) |
           (static_cast<uint64_t>(generation & kGenerationMask) << 32) | index;
  }
  static OpTag Decode(uint64_t data) {
    OpTag tag;
    tag.op = static_cast<uint8_t>(data >> 56);
    tag.generation = static_cast<uint32_t>((data >> 32) & kGenerationMask);
    tag.index = static_cast<uint32_t>(data);
    return tag;
  }

  // Whether this completion belongs to the slot's current occupant, whose
  // full generation is `current`.
  bool Matches(uint32_t current) const {
    return generation == (current & kGenerationMask);
  }
};

}  // namespace uring
}  // namespace ddv

#endif  // DDV_SRC_URING_OP_TAG_H_
