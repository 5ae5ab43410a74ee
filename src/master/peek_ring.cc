#include "src/master/peek_ring.h"

#include <utility>

namespace ddv {
namespace master {

absl::Status CreatePeekRing(const uring::RingOptions& options,
                            uint32_t buffers, uint32_t buffer_size,
                            std::unique_ptr<uring::Ring>* ring,
                            std::unique_ptr<uring::BufferRing>* peek_buffers) {
  absl::StatusOr<std::unique_ptr<uring::Ring>> created =
      uring::Ring::Create(options);
  if (!created.ok()) return created.status();
  *ring = std::move(*created);
  absl::StatusOr<std::unique_ptr<uring::BufferRing>> registered =
      uring::BufferRing::Create((*ring)->get(), kPeekBufferGroup, buffers,
                                buffer_size);
  if (!registered.ok()) return registered.status();
  *peek_buffers = std::move(*registered);
  return absl::OkStatus();
}

}  // namespace master
}  // namespace ddv
