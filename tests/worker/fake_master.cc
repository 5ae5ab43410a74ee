// FakeMaster: a master's side of one channel, for worker tests.
#include "tests/worker/fake_master.h"

#include <utility>

namespace ddv {
namespace testing {

absl::StatusOr<FakeMaster> FakeMaster::Create() {
  auto pair = handoff::MakeChannelPair();
  if (!pair.ok()) return pair.status();
  auto listener = LoopbackListener::Create();
  if (!listener.ok()) return listener.status();
  FakeMaster master;
  master.master_ = std::move(pair->first);
  master.worker_ = std::move(pair->second);
  master.listener_ = std::move(*listener);
  return master;
}

absl::StatusOr<handoff::ReceivedFrame> FakeMaster::Receive(
    absl::Duration timeout) {
  return handoff::ReceiveFrame(master_.get(), timeout);
}

absl::Status FakeMaster::Send(const handoff::Frame& frame,
                              absl::Span<const int> fds) {
  absl::StatusOr<std::string> bytes = handoff::EncodeFrame(frame);
  if (!bytes.ok()) return bytes.status();
  return handoff::SendFrame(master_.get(), *bytes, fds);
}

absl::Status FakeMaster::HandOff(int socket, handoff::HandoffEntry entry) {
  handoff::HandoffBatch batch;
  batch.entries.push_back(std::move(entry));
  return Send(batch, {&socket, 1});
}

}  // namespace testing
}  // namespace ddv
