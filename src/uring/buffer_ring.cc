// BufferRing: liburing 2.3 has no io_uring_setup_buf_ring, so the ring memory
// is mmap'ed and registered here.
#include "src/uring/buffer_ring.h"

#include <sys/mman.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "src/base/errno_status.h"

namespace ddv {
namespace uring {

absl::Status BufferRing::CheckCount(uint32_t count) {
  if (count == 0 || (count & (count - 1)) != 0 || count > 32768) {
    return absl::InvalidArgumentError(absl::StrCat(
        "buffer ring size must be a power of two up to 32768, not ", count));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<BufferRing>> BufferRing::Create(
    io_uring* ring, uint16_t group_id, uint32_t count, uint32_t buffer_size) {
  absl::Status count_ok = CheckCount(count);
  if (!count_ok.ok()) return count_ok;
  std::unique_ptr<BufferRing> self(new BufferRing());
  self->ring_ = ring;
  self->group_id_ = group_id;
  self->count_ = count;
  self->buffer_size_ = buffer_size;
  self->ring_bytes_ = count * sizeof(io_uring_buf);
  void* mem = mmap(nullptr, self->ring_bytes_, PROT_READ | PROT_WRITE,
                   MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED) {
    return ErrnoStatus(errno, "mmap", "allocating a provided-buffer ring");
  }
  self->buf_ring_ = static_cast<io_uring_buf_ring*>(mem);
  self->buffers_bytes_ = static_cast<size_t>(count) * buffer_size;
  mem = mmap(nullptr, self->buffers_bytes_, PROT_READ | PROT_WRITE,
             MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED) {
    return ErrnoStatus(errno, "mmap", "allocating peek buffers");
  }
  self->buffers_ = static_cast<char*>(mem);

  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(self->buf_ring_);
  reg.ring_entries = count;
  reg.bgid = group_id;
  int ret = io_uring_register_buf_ring(ring, &reg, 0);
  if (ret < 0) {
    return ErrnoStatus(-ret, "io_uring_register_buf_ring",
                       "registering the peek buffer ring (needs Linux 5.19+)");
  }
  self->registered_ = true;
  io_uring_buf_ring_init(self->buf_ring_);
  const int mask = io_uring_buf_ring_mask(count);
  for (uint32_t i = 0; i < count; ++i) {
    io_uring_buf_ring_add(self->buf_ring_, self->buffers_ + i * buffer_size,
                          buffer_size, i, mask, i);
  }
  io_uring_buf_ring_advance(self->buf_ring_, count);
  return self;
}

BufferRing::~BufferRing() {
  if (registered_) io_uring_unregister_buf_ring(ring_, group_id_);
  if (buffers_ != nullptr) munmap(buffers_, buffers_bytes_);
  if (buf_ring_ != nullptr) munmap(buf_ring_, ring_bytes_);
}

void BufferRing::Recycle(uint16_t buffer_id) {
  io_uring_buf_ring_add(buf_ring_,
                        buffers_ + static_cast<size_t>(buffer_id) * buffer_size_,
                        buffer_size_, buffer_id,
                        io_uring_buf_ring_mask(count_), pending_);
  ++pending_;
}

void BufferRing::Publish() {
  if (pending_ == 0) return;
  io_uring_buf_ring_advance(buf_ring_, pending_);
  pending_ = 0;
}

}  // namespace uring
}  // namespace ddv
