// A master event loop's ring and the provided buffers its peeks use: what
// the primary loop and each shard (docs/shards.md) set up alike.
#ifndef DDV_SRC_MASTER_PEEK_RING_H_
#define DDV_SRC_MASTER_PEEK_RING_H_

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "src/uring/buffer_ring.h"
#include "src/uring/ring.h"

namespace ddv {
namespace master {

// The buffer group every peek selects from (IOSQE_BUFFER_SELECT).
inline constexpr uint16_t kPeekBufferGroup = 1;

// Sets up `*ring` with `options` and registers `buffers` peek buffers of
// `buffer_size` bytes on it. Called on the thread that runs the loop: the
// ring is single-issuer.
absl::Status CreatePeekRing(const uring::RingOptions& options,
                            uint32_t buffers, uint32_t buffer_size,
                            std::unique_ptr<uring::Ring>* ring,
                            std::unique_ptr<uring::BufferRing>* peek_buffers);

}  // namespace master
}  // namespace ddv

#endif  // DDV_SRC_MASTER_PEEK_RING_H_
