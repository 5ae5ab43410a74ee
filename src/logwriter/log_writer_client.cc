// The master's side of the log writer link.
#include "src/logwriter/log_writer_client.h"

#include <fcntl.h>
#include <unistd.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "src/base/errno_status.h"
#include "src/base/unique_fd.h"
#include "src/logwriter/fd_passing.h"
#include "src/logwriter/log_file.h"
#include "src/logwriter/wire.h"

namespace ddv {
namespace logwriter {

absl::StatusOr<supervise::StdioPipes> LogWriterClient::Route(
    const supervise::ProcessSpec& spec) {
  supervise::StdioPipes pipes;
  Message message;
  message.type = MessageType::kRegister;
  std::vector<UniqueFd> read_ends;
  // log_all (one path for both): one pipe, as it was one file.
  const bool both = !spec.stdout_path.empty() &&
                    spec.stdout_path == spec.stderr_path;
  pipes.err_to_out = both;
  struct Wanted {
    std::string path;
    Stream stream;
    UniqueFd* write_end;
  };
  const Wanted wanted[] = {
      {spec.stdout_path, both ? Stream::kBoth : Stream::kStdout, &pipes.out},
      {both ? std::string() : spec.stderr_path, Stream::kStderr, &pipes.err}};
  for (const Wanted& w : wanted) {
    if (w.path.empty()) continue;  // inherits the master's
    absl::StatusOr<UniqueFd> check = OpenLogForAppend(w.path);
    if (!check.ok()) {
      return absl::Status(check.status().code(),
                          absl::StrCat(check.status().message(),
                                       " for worker ", spec.name));
    }
    // Blocking on both sides, as a file would be: the worker's writes wait
    // when the pipe is full, and the writer's io_uring reads poll.
    int ends[2];
    if (pipe2(ends, O_CLOEXEC) != 0) {
      return ErrnoStatus(errno, "pipe2",
                         absl::StrCat("making the ", StreamName(w.stream),
                                      " pipe of worker ", spec.name));
    }
    read_ends.emplace_back(ends[0]);
    w.write_end->Reset(ends[1]);
    PipeRoute route;
    route.worker = spec.name;
    route.stream = w.stream;
    route.path = w.path;
    route.max_bytes = spec.log_max_bytes;
    route.keep = spec.log_keep;
    message.routes.push_back(std::move(route));
  }
  if (message.routes.empty()) return pipes;
  absl::StatusOr<std::string> bytes = EncodeMessage(message);
  absl::Status sent = bytes.status();
  if (bytes.ok()) {
    std::vector<int> fds;
    for (const UniqueFd& fd : read_ends) fds.push_back(fd.get());
    sent = SendWithFds(link_fd_, *bytes, fds);
  }
  if (sent.ok()) {
    if (fallback_logged_) {
      LOG(INFO) << "the log writer takes workers' output again";
      fallback_logged_ = false;
    }
    return pipes;
  }
  if (!fallback_logged_) {
    fallback_logged_ = true;
    LOG(ERROR) << "the log writer cannot take worker " << spec.name
               << "'s output (" << sent.message()
               << "): it and the workers started after it write their log "
                  "files directly, which a reopen does not reach until they "
                  "restart (logged once)";
  }
  return supervise::StdioPipes();
}

absl::Status LogWriterClient::RequestReopen(int reply_to) {
  Message message;
  message.type = MessageType::kReopen;
  message.has_reply = reply_to >= 0;
  absl::StatusOr<std::string> bytes = EncodeMessage(message);
  if (!bytes.ok()) return bytes.status();
  std::vector<int> fds;
  if (reply_to >= 0) fds.push_back(reply_to);
  return SendWithFds(link_fd_, *bytes, fds);
}

}  // namespace logwriter
}  // namespace ddv
