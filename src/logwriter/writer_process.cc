// Starting, stopping and waiting for the log writer process.
#include "src/logwriter/writer_process.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "src/base/errno_status.h"
#include "src/logwriter/log_writer_client.h"

namespace ddv {
namespace logwriter {
namespace {

absl::StatusOr<std::pair<UniqueFd, UniqueFd>> SeqpacketPair(
    const char* doing) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0,
                 fds) != 0) {
    return ErrnoStatus(errno, "socketpair", doing);
  }
  return std::make_pair(UniqueFd(fds[0]), UniqueFd(fds[1]));
}

// Whether the process behind `pidfd` exits within `timeout`.
bool WaitForExit(int pidfd, absl::Duration timeout) {
  if (pidfd < 0) return true;
  pollfd p{pidfd, POLLIN, 0};
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    const int64_t left = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (left <= 0) return false;
    const int n = poll(&p, 1, static_cast<int>(left));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return false;
  }
}

}  // namespace

absl::StatusOr<WriterSockets> MakeWriterSockets(bool with_park) {
  WriterSockets sockets;
  absl::StatusOr<std::pair<UniqueFd, UniqueFd>> link =
      SeqpacketPair("making the log writer's link");
  if (!link.ok()) return link.status();
  sockets.master_end = std::move(link->first);
  sockets.writer_end = std::move(link->second);
  if (!with_park) return sockets;
  absl::StatusOr<std::pair<UniqueFd, UniqueFd>> park =
      SeqpacketPair("making the log writer's park");
  if (!park.ok()) return park.status();
  sockets.park_send = std::move(park->first);
  sockets.park_recv = std::move(park->second);
  // Each open pipe is a queued record of a few hundred bytes, charged at
  // about 1 KiB to the sender: 8 MiB holds thousands. Without the privilege
  // to force it, the default (~200 KiB, some 200 pipes) is what there is;
  // the writer logs the first pipe it cannot park.
  const int size = 8 << 20;
  if (setsockopt(sockets.park_send.get(), SOL_SOCKET, SO_SNDBUFFORCE, &size,
                 sizeof(size)) != 0) {
    setsockopt(sockets.park_send.get(), SOL_SOCKET, SO_SNDBUF, &size,
               sizeof(size));
  }
  return sockets;
}

absl::Status CheckMasterEnd(int fd) {
  int type = 0;
  socklen_t length = sizeof(type);
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) != 0) {
    return ErrnoStatus(errno, "getsockopt(SO_TYPE)",
                       "checking the log writer link");
  }
  if (type != SOCK_SEQPACKET) {
    return absl::InvalidArgumentError(
        "the log writer link is not a SOCK_SEQPACKET socket");
  }
  return absl::OkStatus();
}

supervise::ProcessSpec WriterSpec(const std::vector<std::string>& command,
                                  const WriterSockets& sockets) {
  supervise::ProcessSpec spec;
  spec.name = "log-writer";
  spec.argv = command;
  spec.argv.push_back(kWriterRoleFlag);
  spec.inherit_fds.emplace_back(sockets.writer_end.get(), kWriterLinkFd);
  if (sockets.park_send) {
    spec.argv.push_back(absl::StrCat(kWriterParkFlag, "=true"));
    spec.inherit_fds.emplace_back(sockets.park_send.get(), kWriterParkSendFd);
    spec.inherit_fds.emplace_back(sockets.park_recv.get(), kWriterParkRecvFd);
  }
  return spec;
}

absl::StatusOr<std::unique_ptr<SupervisedLogWriter>> SupervisedLogWriter::Start(
    const std::vector<std::string>& command, supervise::ProcessTable* table,
    KeptWriter kept) {
  const bool resumed = kept.sockets.master_end.valid();
  WriterSockets sockets = std::move(kept.sockets);
  if (!resumed) {
    absl::StatusOr<WriterSockets> made = MakeWriterSockets(/*with_park=*/true);
    if (!made.ok()) return made.status();
    sockets = *std::move(made);
  }
  std::unique_ptr<SupervisedLogWriter> writer(
      new SupervisedLogWriter(table, std::move(sockets)));
  supervise::ProcessSpec spec = WriterSpec(command, writer->sockets_);
  spec.parent_death_signal = 0;
  writer->slot_ = table->Add(std::move(spec));
  if (resumed && kept.pid > 0 && kept.pidfd.valid()) {
    table->Adopt(writer->slot_, kept.pid, std::move(kept.pidfd));
    LOG(INFO) << "log writer pid " << kept.pid
              << " kept across the upgrade";
    return writer;
  }
  // A failed start is the table's to retry with back-off; meanwhile
  // registrations wait in the link.
  absl::Status started = table->Start(writer->slot_);
  if (!started.ok()) {
    LOG(ERROR) << "cannot start the log writer: " << started.message()
               << "; retrying after back-off";
  }
  return writer;
}

SupervisedLogWriter::~SupervisedLogWriter() {
  if (slot_ < 0) return;
  table_->Stop(slot_, kWriterStopWait);
  if (WaitForExit(table_->pidfd(slot_), kWriterStopWait)) {
    table_->OnExit(slot_);
  } else {
    LOG(WARNING) << "the log writer did not stop within "
                 << absl::FormatDuration(kWriterStopWait);
  }
}

void SupervisedLogWriter::Reopen() {
  LOG(INFO) << "watchdog: SIGUSR1, asking the log writer to reopen the log "
               "files";
  absl::Status sent = LogWriterClient(master_end()).RequestReopen(-1);
  if (!sent.ok()) {
    LOG(ERROR) << "cannot ask the log writer to reopen its files: "
               << sent.message();
  }
}

absl::StatusOr<std::unique_ptr<ChildLogWriter>> ChildLogWriter::Start(
    const std::vector<std::string>& command) {
  absl::StatusOr<WriterSockets> sockets =
      MakeWriterSockets(/*with_park=*/false);
  if (!sockets.ok()) return sockets.status();
  absl::StatusOr<supervise::Spawned> spawned =
      supervise::Spawn(WriterSpec(command, *sockets));
  if (!spawned.ok()) return spawned.status();
  std::unique_ptr<ChildLogWriter> writer(new ChildLogWriter());
  // Only the writer holds its end: when it dies, sends fail at once and
  // new workers fall back to their files.
  writer->master_end_ = std::move(sockets->master_end);
  writer->pid_ = spawned->pid;
  writer->pidfd_ = std::move(spawned->pidfd);
  LOG(INFO) << "started the log writer, pid " << writer->pid_;
  return writer;
}

ChildLogWriter::~ChildLogWriter() {
  master_end_.Reset();  // the end of the link: the writer stops
  if (!WaitForExit(pidfd_.get(), kWriterStopWait)) {
    LOG(WARNING) << "the log writer did not stop within "
                 << absl::FormatDuration(kWriterStopWait) << "; killing it";
    kill(pid_, SIGKILL);
  }
  siginfo_t info{};
  waitid(static_cast<idtype_t>(P_PIDFD), pidfd_.get(), &info, WEXITED);
}

}  // namespace logwriter
}  // namespace ddv
