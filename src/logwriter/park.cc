// Park: records in, replay out.
#include "src/logwriter/park.h"

#include <map>

#include "glog/logging.h"
#include "src/logwriter/fd_passing.h"

namespace ddv {
namespace logwriter {

std::vector<Park::Entry> Park::Replay() {
  std::map<uint64_t, Entry> parked;
  size_t read = 0;
  while (true) {
    absl::StatusOr<Received> received = ReceiveWithFds(recv_fd_);
    if (!received.ok()) {
      if (!absl::IsUnavailable(received.status())) {
        LOG(ERROR) << "log writer: reading the park: " << received.status();
        if (absl::IsDataLoss(received.status())) continue;
      }
      break;
    }
    ++read;
    absl::StatusOr<Message> message = DecodeMessage(received->bytes);
    if (!message.ok() || FdCount(*message) != received->fds.size() ||
        (message->type != MessageType::kPark &&
         message->type != MessageType::kUnpark)) {
      LOG(ERROR) << "log writer: dropping a bad park record: "
                 << (message.ok() ? "wrong fds or type"
                                  : std::string(message.status().message()));
      continue;
    }
    if (message->type == MessageType::kUnpark) {
      parked.erase(message->park_id);
      continue;
    }
    // A pipe parked twice (a compaction cut short) is one pipe: the later
    // copy replaces the earlier, which closes.
    Entry& entry = parked[message->park_id];
    entry.id = message->park_id;
    entry.route = std::move(message->routes[0]);
    entry.fd = std::move(received->fds[0]);
  }
  records_ = 0;
  VLOG(1) << "log writer: replayed " << read << " park records, "
          << parked.size() << " pipes";
  std::vector<Entry> entries;
  entries.reserve(parked.size());
  for (auto& [id, entry] : parked) entries.push_back(std::move(entry));
  return entries;
}

absl::Status Park::Add(uint64_t id, const PipeRoute& route, int fd) {
  Message message;
  message.type = MessageType::kPark;
  message.park_id = id;
  message.routes.push_back(route);
  absl::StatusOr<std::string> bytes = EncodeMessage(message);
  if (!bytes.ok()) return bytes.status();
  const int fds[] = {fd};
  absl::Status sent = SendWithFds(send_fd_, *bytes, fds);
  if (sent.ok()) ++records_;
  return sent;
}

absl::Status Park::Remove(uint64_t id) {
  Message message;
  message.type = MessageType::kUnpark;
  message.park_id = id;
  absl::StatusOr<std::string> bytes = EncodeMessage(message);
  if (!bytes.ok()) return bytes.status();
  absl::Status sent = SendWithFds(send_fd_, *bytes, {});
  if (sent.ok()) ++records_;
  return sent;
}

void Park::Clear() {
  while (true) {
    absl::StatusOr<Received> received = ReceiveWithFds(recv_fd_);
    if (!received.ok() && !absl::IsDataLoss(received.status())) break;
  }
  records_ = 0;
}

}  // namespace logwriter
}  // namespace ddv
