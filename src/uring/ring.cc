// Ring set-up: one comment per flag, probe, and clean fallbacks.
#include "src/uring/ring.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "src/base/errno_status.h"

namespace ddv {
namespace uring {
namespace {

struct RequiredOp {
  int opcode;
  const char* name;
};

// Every opcode the master and ddv_hello submit.
constexpr RequiredOp kRequiredOps[] = {
    {IORING_OP_ACCEPT, "IORING_OP_ACCEPT"},
    {IORING_OP_RECV, "IORING_OP_RECV"},
    {IORING_OP_SEND, "IORING_OP_SEND"},
    {IORING_OP_SENDMSG, "IORING_OP_SENDMSG"},
    {IORING_OP_CLOSE, "IORING_OP_CLOSE"},
    {IORING_OP_POLL_ADD, "IORING_OP_POLL_ADD"},
    {IORING_OP_TIMEOUT, "IORING_OP_TIMEOUT"},
    {IORING_OP_LINK_TIMEOUT, "IORING_OP_LINK_TIMEOUT"},
    {IORING_OP_ASYNC_CANCEL, "IORING_OP_ASYNC_CANCEL"},
    {IORING_OP_SHUTDOWN, "IORING_OP_SHUTDOWN"},
};

absl::Status ProbeOps(io_uring* ring) {
  io_uring_probe* probe = io_uring_get_probe_ring(ring);
  if (probe == nullptr) {
    return absl::FailedPreconditionError(
        "io_uring_get_probe_ring() failed: this kernel cannot report its "
        "io_uring opcodes (ddv needs Linux 6.1 or newer)");
  }
  absl::Status status;
  for (const RequiredOp& op : kRequiredOps) {
    if (!io_uring_opcode_supported(probe, op.opcode)) {
      status = absl::FailedPreconditionError(absl::StrCat(
          "this kernel's io_uring lacks ", op.name,
          " (ddv needs Linux 6.1 or newer)"));
      break;
    }
  }
  io_uring_free_probe(probe);
  return status;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Ring>> Ring::Create(const RingOptions& options) {
  std::unique_ptr<Ring> ring(new Ring());
  io_uring_params params{};
  // A CQ twice the SQ: multishot accept and recv post several completions per
  // submission, and an overflowing CQ costs a slow path.
  params.flags |= IORING_SETUP_CQSIZE;
  params.cq_entries =
      options.cq_entries != 0 ? options.cq_entries : options.entries * 2;
  // Tell the kernel to finish completions' task work only when the loop
  // waits, so a burst of completions is handled in one batch.
  if (options.coop_taskrun) params.flags |= IORING_SETUP_COOP_TASKRUN;
  // Keep submitting the rest of a batch after one SQE fails to issue: one
  // bad op must not leave the others (a close, a cancel) unsubmitted.
  if (options.submit_all) params.flags |= IORING_SETUP_SUBMIT_ALL;
  if (options.single_issuer) params.flags |= IORING_SETUP_SINGLE_ISSUER;
  // DEFER_TASKRUN needs SINGLE_ISSUER and is incompatible with SQPOLL.
  if (options.defer_taskrun && options.single_issuer && !options.sqpoll) {
    params.flags |= IORING_SETUP_DEFER_TASKRUN;
  }
  if (options.sqpoll) {
    params.flags |= IORING_SETUP_SQPOLL;
    params.sq_thread_idle = options.sqpoll_idle_ms;
  }

  int ret = io_uring_queue_init_params(options.entries, &ring->ring_, &params);
  if (ret == -EINVAL) {
    // An older kernel rejects flags it does not know: retry with the basics.
    LOG(WARNING) << "io_uring_queue_init_params() rejected setup flags 0x"
                 << std::hex << params.flags << std::dec
                 << "; retrying without SINGLE_ISSUER/DEFER_TASKRUN/COOP_TASKRUN";
    io_uring_params basic{};
    basic.flags = IORING_SETUP_CQSIZE | (params.flags & IORING_SETUP_SQPOLL);
    basic.cq_entries = params.cq_entries;
    basic.sq_thread_idle = options.sqpoll_idle_ms;
    ret = io_uring_queue_init_params(options.entries, &ring->ring_, &basic);
  }
  if (ret < 0) {
    return ErrnoStatus(-ret, "io_uring_queue_init_params",
                       absl::StrCat("setting up an io_uring of ",
                                    options.entries, " entries"));
  }
  ring->initialised_ = true;
  absl::Status probe = ProbeOps(&ring->ring_);
  if (!probe.ok()) return probe;
  // Saves the fd table lookup of the ring itself on every io_uring_enter.
  // Best effort: without it (before Linux 5.18) the ring works the same.
  if (options.register_ring_fd) io_uring_register_ring_fd(&ring->ring_);
  return ring;
}

Ring::~Ring() {
  if (initialised_) io_uring_queue_exit(&ring_);
}

io_uring_sqe* Ring::GetSqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  while (sqe == nullptr) {
    io_uring_submit(&ring_);
    sqe = io_uring_get_sqe(&ring_);
  }
  return sqe;
}

void Ring::Reserve(unsigned count) {
  if (io_uring_sq_space_left(&ring_) < count) io_uring_submit(&ring_);
}

}  // namespace uring
}  // namespace ddv
