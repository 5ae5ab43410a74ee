// NodeChannel: ordered, whole-line writes with fds attached, and line reads.
#include "src/master/node_channel.h"

#include <algorithm>
#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "src/handoff/channel.h"

namespace ddv {
namespace master {

namespace node = handoff::node;

void NodeChannel::Reset() {
  outbox_.clear();
  outbox_bytes_ = 0;
  reader_ = node::LineReader();
  unaccepted_.clear();
  listening = false;
  server_key_.clear();
  newconn_prefix_.clear();
  speaks_ddv = false;
  broken_ = false;
  resync_ = false;
}

bool NodeChannel::QueueLine(std::string line) {
  if (outbox_bytes_ + line.size() > kMaxOutboxBytes) return false;
  outbox_bytes_ += line.size();
  outbox_.push_back(Outgoing{std::move(line), 0, -1, -1});
  return true;
}

void NodeChannel::Adopt(std::string server_key, bool speaks_ddv_package,
                        int64_t first_seq) {
  Reset();
  if (!server_key.empty()) {
    SetServerKey(std::move(server_key));
    listening = true;
  }
  speaks_ddv = speaks_ddv_package;
  next_seq_ = std::max(next_seq_, first_seq);
  resync_ = true;
}

void NodeChannel::SetServerKey(std::string key) {
  newconn_prefix_ = node::NewConnectionPrefix(key);
  server_key_ = std::move(key);
}

int64_t NodeChannel::QueueConnection(int fd, uint32_t connection,
                                     int64_t now_ns, absl::string_view ddv) {
  const int64_t seq = NextSeq();
  Outgoing out{std::string(), 0, fd, static_cast<int64_t>(connection)};
  node::AppendNewConnection(newconn_prefix_, seq, &out.bytes, ddv);
  outbox_bytes_ += out.bytes.size();
  outbox_.push_back(std::move(out));
  unaccepted_[seq] = Unanswered{connection, now_ns};
  return seq;
}

int64_t NodeChannel::OldestUnansweredNs() const {
  int64_t oldest = 0;
  for (const auto& [seq, waiting] : unaccepted_) {
    if (oldest == 0 || waiting.queued_ns < oldest) oldest = waiting.queued_ns;
  }
  return oldest;
}

NodeChannel::FlushResult NodeChannel::Flush(int channel_fd,
                                            std::vector<uint32_t>* sent) {
  while (!outbox_.empty()) {
    Outgoing& out = outbox_.front();
    // The fd rides on the first byte of its line; the rest of a line cut
    // short by a full buffer goes out later without it.
    const int fd = out.written == 0 ? out.fd : -1;
    ssize_t n = handoff::SendBytesWithFd(
        channel_fd, absl::string_view(out.bytes).substr(out.written), fd);
    if (n == -EAGAIN || n == -ENOBUFS) return FlushResult::kBlocked;
    if (n < 0) return FlushResult::kClosed;
    if (out.written == 0 && out.connection >= 0) {
      sent->push_back(static_cast<uint32_t>(out.connection));
    }
    out.written += static_cast<size_t>(n);
    if (out.written < out.bytes.size()) return FlushResult::kBlocked;
    outbox_bytes_ -= out.bytes.size();
    outbox_.pop_front();
  }
  return FlushResult::kDone;
}

absl::Status NodeChannel::Read(int channel_fd,
                               std::vector<node::ChildMessage>* messages,
                               std::vector<std::string>* user_lines) {
  if (broken_) return absl::DataLossError("the channel is broken");
  // Bounded per turn so one chatty worker cannot starve the loop.
  for (int i = 0; i < 64; ++i) {
    char buffer[16384];
    // A child never sends handles to the primary in ddv's use: any it
    // attaches are closed.
    ssize_t n =
        handoff::RecvBytesClosingFds(channel_fd, buffer, sizeof(buffer));
    if (n <= 0) break;  // EAGAIN, or EOF (the exit poll handles deaths)
    absl::Status appended =
        reader_.Append(absl::string_view(buffer, static_cast<size_t>(n)));
    if (!appended.ok()) {
      broken_ = true;
      return appended;
    }
    while (std::optional<absl::string_view> line = reader_.Next()) {
      if (line->empty()) continue;
      absl::StatusOr<node::ChildMessage> decoded = node::DecodeChildLine(*line);
      const bool first_after_adoption = resync_;
      resync_ = false;
      if (!decoded.ok() && first_after_adoption) {
        LOG(WARNING) << "Node worker: dropped a torn first line after "
                        "adoption: "
                     << decoded.status().message();
        continue;
      }
      if (!decoded.ok()) {
        broken_ = true;
        return absl::DataLossError(
            absl::StrCat("bad line from the Node worker: ",
                         decoded.status().message()));
      }
      if (decoded->kind == node::ChildMessageKind::kUser) {
        user_lines->emplace_back(*line);
      } else {
        messages->push_back(std::move(*decoded));
      }
    }
    if (static_cast<size_t>(n) < sizeof(buffer)) break;
  }
  return absl::OkStatus();
}

int64_t NodeChannel::TakeAccepted(int64_t ack) {
  auto it = unaccepted_.find(ack);
  if (it == unaccepted_.end()) return -1;
  const uint32_t connection = it->second.connection;
  unaccepted_.erase(it);
  return connection;
}

}  // namespace master
}  // namespace ddv
