// Cancel and close through the ring, with CQE_SKIP_SUCCESS: the loop only
// hears of them when they fail.
#include "src/hello/ring_ops.h"

#include <liburing.h>

namespace ddv {
namespace hello {

void SubmitCancel(uring::Ring* ring, uint64_t user_data) {
  io_uring_sqe* sqe = ring->GetSqe();
  io_uring_prep_cancel64(sqe, user_data, 0);
  io_uring_sqe_set_data64(sqe, Tag(kOpIgnore, 0));
  io_uring_sqe_set_flags(sqe, IOSQE_CQE_SKIP_SUCCESS);
}

void SubmitClose(uring::Ring* ring, UniqueFd fd) {
  io_uring_sqe* sqe = ring->GetSqe();
  io_uring_prep_close(sqe, fd.Release());
  io_uring_sqe_set_data64(sqe, Tag(kOpIgnore, 0));
  io_uring_sqe_set_flags(sqe, IOSQE_CQE_SKIP_SUCCESS);
}

}  // namespace hello
}  // namespace ddv
