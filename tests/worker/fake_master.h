// FakeMaster: the test plays the master's side of one worker channel with
// the real wire format and channel code, plus a loopback listener to make
// connections to hand off.
#ifndef DDV_TESTS_WORKER_FAKE_MASTER_H_
#define DDV_TESTS_WORKER_FAKE_MASTER_H_

#include <cstdint>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "src/base/unique_fd.h"
#include "src/handoff/channel.h"
#include "src/handoff/wire.h"
#include "tests/handoff/test_sockets.h"

namespace ddv {
namespace testing {

class FakeMaster {
 public:
  static absl::StatusOr<FakeMaster> Create();

  // The master's end.
  int fd() const { return master_.get(); }
  // The worker's end, until a worker takes it.
  int worker_fd() const { return worker_.get(); }
  UniqueFd TakeWorkerEnd() { return std::move(worker_); }
  // After fork(): the parent drops the child's end so EOF can be seen.
  void CloseWorkerEnd() { worker_.Reset(); }
  void CloseChannel() { master_.Reset(); }

  absl::StatusOr<handoff::ReceivedFrame> Receive(
      absl::Duration timeout = absl::Seconds(5));

  // Receives one frame and insists on its type.
  // Acknowledgements (which the worker sends for every batch, in both
  // handoff modes) are set aside in acked() unless T is PidfdAck itself.
  template <typename T>
  absl::StatusOr<T> Expect(absl::Duration timeout = absl::Seconds(5)) {
    absl::StatusOr<handoff::ReceivedFrame> r = Receive(timeout);
    // So are `connections` reports (docs/isolation.md), in reports().
    while (r.ok() && ((!std::is_same<T, handoff::PidfdAck>::value &&
                       std::holds_alternative<handoff::PidfdAck>(r->frame)) ||
                      IsConnectionsReport(r->frame))) {
      if (auto* ack = std::get_if<handoff::PidfdAck>(&r->frame)) {
        for (const auto& entry : ack->entries) {
          acked_.push_back(entry.connection_id);
        }
      } else {
        reports_.push_back(std::get<handoff::Request>(r->frame).body);
      }
      r = Receive(timeout);
    }
    if (!r.ok()) return r.status();
    if (T* frame = std::get_if<T>(&r->frame)) return std::move(*frame);
    return absl::InternalError(
        absl::StrCat("expected another frame type, got ",
                     handoff::FrameTypeName(handoff::TypeOf(r->frame))));
  }

  absl::Status Send(const handoff::Frame& frame,
                    absl::Span<const int> fds = {});

  const std::vector<uint64_t>& acked() const { return acked_; }
  // Bodies of the `connections` reports set aside, in order.
  const std::vector<std::string>& reports() const { return reports_; }
  static bool IsConnectionsReport(const handoff::Frame& frame) {
    const auto* request = std::get_if<handoff::Request>(&frame);
    return request != nullptr && request->id == 0 &&
           request->method == "connections";
  }

  // A new loopback connection: the master would hand off `server`.
  absl::StatusOr<TcpPair> Connect() { return listener_.Connect(); }

  // Hands off `socket` in scm_rights mode with the given entry fields.
  absl::Status HandOff(int socket, handoff::HandoffEntry entry);

 private:
  UniqueFd master_;
  UniqueFd worker_;
  LoopbackListener listener_;
  std::vector<uint64_t> acked_;
  std::vector<std::string> reports_;
};

}  // namespace testing
}  // namespace ddv

#endif  // DDV_TESTS_WORKER_FAKE_MASTER_H_
