// Ring set-up: one comment per flag, probe, and clean fallbacks.
#include "src/uring/ring.h"

#include <unistd.h>

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

// Every opcode the master, ddv_hello and the log writer submit.
constexpr RequiredOp kRequiredOps[] = {
    {IORING_OP_READ, "IORING_OP_READ"},
    {IORING_OP_WRITE, "IORING_OP_WRITE"},
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
  if (sqe != nullptr) return sqe;
  Reserve(1);
  sqe = io_uring_get_sqe(&ring_);
  CHECK(sqe != nullptr) << "io_uring: no free SQE after submitting";
  return sqe;
}

void Ring::Reserve(unsigned count) {
  const unsigned entries = ring_.sq.ring_entries;
  CHECK_LE(count, entries) << "io_uring: " << count
                           << " linked SQEs cannot fit a submission queue of "
                           << entries << " entries";
  // One submit may not free everything: without SUBMIT_ALL the kernel stops
  // at an SQE that fails to issue and leaves the rest queued, and an SQPOLL
  // thread takes entries when it gets to them. So submit until there is
  // room, and give up loudly if the kernel takes nothing: going on would
  // split an op from its IOSQE_IO_LINK'ed timeout, and the op would run
  // with no deadline.
  int stalled = 0;
  int last = 0;
  while (io_uring_sq_space_left(&ring_) < count) {
    const unsigned before = io_uring_sq_space_left(&ring_);
    last = io_uring_submit(&ring_);
    if (io_uring_sq_space_left(&ring_) > before) {
      stalled = 0;
      continue;
    }
    if (ring_.flags & IORING_SETUP_SQPOLL) {
      // The kernel thread frees entries as it takes them.
      last = io_uring_sqring_wait(&ring_);
    }
    // -EAGAIN (out of memory for requests), -EBUSY (CQ overflow that
    // could not be flushed), -EINTR: the kernel may take them in a moment.
    // Anything else (-EBADF, -EFAULT, ...) will not get better.
    const bool transient =
        last >= 0 || last == -EAGAIN || last == -EBUSY || last == -EINTR;
    CHECK(transient && ++stalled < 1000)
        << "io_uring_submit cannot make room for " << count
        << " SQEs (free " << io_uring_sq_space_left(&ring_) << " of "
        << entries << "; last result "
        << (last < 0 ? strerror(-last) : absl::StrCat(last, " submitted"))
        << "); refusing to split a linked op from its timeout";
    usleep(1000);
  }
}

void Ring::CancelAll() {
  io_uring_sync_cancel_reg cancel{};
  cancel.fd = -1;
  cancel.flags = IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL;
  cancel.timeout.tv_sec = 1;
  const int ret = io_uring_register_sync_cancel(&ring_, &cancel);
  if (ret < 0 && ret != -ENOENT) {
    LOG(WARNING) << "cancelling the ring's ops at teardown: " << strerror(-ret);
  }
}

}  // namespace uring
}  // namespace ddv
