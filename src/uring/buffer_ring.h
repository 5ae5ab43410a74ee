// BufferRing: a provided-buffer ring (IORING_REGISTER_PBUF_RING). The kernel
// picks a buffer per recv, so idle connections hold no memory; the loop gives
// each buffer back with Recycle once it has parsed it in place.
#ifndef DDV_SRC_URING_BUFFER_RING_H_
#define DDV_SRC_URING_BUFFER_RING_H_

#include <liburing.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"

namespace ddv {
namespace uring {

class BufferRing {
 public:
  // `count` must be a power of two (a kernel rule for buffer rings).
  static absl::StatusOr<std::unique_ptr<BufferRing>> Create(
      io_uring* ring, uint16_t group_id, uint32_t count, uint32_t buffer_size);
  // The check Create makes of `count`, for callers that validate their
  // options before any ring exists.
  static absl::Status CheckCount(uint32_t count);
  ~BufferRing();

  BufferRing(const BufferRing&) = delete;
  BufferRing& operator=(const BufferRing&) = delete;

  uint16_t group_id() const { return group_id_; }
  uint32_t buffer_size() const { return buffer_size_; }
  uint32_t count() const { return count_; }

  const char* Buffer(uint16_t buffer_id) const {
    return buffers_ + static_cast<size_t>(buffer_id) * buffer_size_;
  }

  // Returns a buffer to the kernel. Cheap: publishing is batched until
  // Publish(), called once per loop iteration.
  void Recycle(uint16_t buffer_id);
  void Publish();

 private:
  BufferRing() = default;

  io_uring* ring_ = nullptr;
  io_uring_buf_ring* buf_ring_ = nullptr;
  size_t ring_bytes_ = 0;
  char* buffers_ = nullptr;
  size_t buffers_bytes_ = 0;
  uint16_t group_id_ = 0;
  uint32_t count_ = 0;
  uint32_t buffer_size_ = 0;
  int pending_ = 0;
  bool registered_ = false;
};

}  // namespace uring
}  // namespace ddv

#endif  // DDV_SRC_URING_BUFFER_RING_H_
