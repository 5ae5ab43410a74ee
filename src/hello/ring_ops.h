// What each completion on ddv_hello's ring is for (the op of its
// uring::OpTag), and the two fire-and-forget submissions, cancel and close,
// that both the server loop and the connections make.
#ifndef DDV_SRC_HELLO_RING_OPS_H_
#define DDV_SRC_HELLO_RING_OPS_H_

#include <cstdint>

#include "src/base/unique_fd.h"
#include "src/uring/op_tag.h"
#include "src/uring/ring.h"

namespace ddv {
namespace hello {

enum Op : uint8_t {
  kOpAccept = 1,  // index: listener
  kOpRecv,        // index: connection
  kOpSend,        // index: connection
  kOpExternal,    // index: external fd
  kOpWake,        // the Stop() eventfd
  kOpIgnore,      // cancels and closes; posted only when they fail
};

// No generation is needed: a connection slot is reused only after its last
// operation completed, so no completion can reach the wrong connection.
inline uint64_t Tag(Op op, uint32_t index) {
  return uring::OpTag{op, index, 0}.Encode();
}

// Cancels the operation tagged `user_data`. Its own completion is skipped on
// success and tagged kOpIgnore otherwise.
void SubmitCancel(uring::Ring* ring, uint64_t user_data);

// Closes `fd` through the ring, batched with the other submissions of this
// loop pass (the ring's pending ops on it are ended first by the caller).
void SubmitClose(uring::Ring* ring, UniqueFd fd);

}  // namespace hello
}  // namespace ddv

#endif  // DDV_SRC_HELLO_RING_OPS_H_
