// The log writer's loop: liburing's proxy.c shape (submit and wait, one
// handler per op), over the link, the signalfd, the pipes and the files.
#include "src/logwriter/log_writer.h"

#include <liburing.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "glog/logging.h"
#include "src/base/errno_status.h"
#include "src/base/unique_fd.h"
#include "src/logwriter/fd_passing.h"
#include "src/logwriter/line_buffer.h"
#include "src/logwriter/log_file.h"
#include "src/logwriter/park.h"
#include "src/logwriter/wire.h"
#include "src/uring/op_tag.h"
#include "src/uring/ring.h"

namespace ddv {
namespace logwriter {
namespace {

constexpr int kHandledSignals[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1};

void Accumulate(const LogFileCounters& c, LogFileCounters* total) {
  total->bytes_written += c.bytes_written;
  total->write_errors += c.write_errors;
  total->bytes_dropped += c.bytes_dropped;
  total->rotations += c.rotations;
  total->reopens += c.reopens;
}

class LogWriter {
 public:
  explicit LogWriter(const LogWriterOptions& options)
      : options_(options),
        park_(options.park_send_fd, options.park_recv_fd),
        has_park_(options.park_send_fd >= 0 && options.park_recv_fd >= 0) {}

  absl::Status Init();
  void Run();

 private:
  enum Op : uint8_t {
    kOpSignalPoll = 1,  // the signalfd
    kOpLinkPoll,        // the link
    kOpPipeRead,        // index: pipe (generation checked)
    kOpFileWrite,       // index: file (generation checked)
  };

  // One pipe from a worker: its read end, and the line being assembled.
  struct Pipe {
    Pipe(PipeRoute r, UniqueFd f, size_t capacity)
        : route(std::move(r)), fd(std::move(f)), buffer(capacity) {}
    PipeRoute route;
    UniqueFd fd;
    LineBuffer buffer;
    int file = -1;      // index in files_
    uint64_t park_id = 0;
    bool parked = false;
    bool reading = false;  // a read is in flight
    bool waiting = false;  // its file's queue is full: not read for now
    uint32_t generation = 0;
  };

  struct FileSlot {
    std::unique_ptr<LogFile> file;  // null: free
    uint32_t generation = 0;
    bool stall_logged = false;
    bool pipes_waiting = false;  // some pipe waits for this file's queue
  };

  io_uring_sqe* Sqe(Op op, uint32_t index, uint32_t generation) {
    io_uring_sqe* sqe = ring_->GetSqe();
    io_uring_sqe_set_data64(sqe, uring::OpTag{op, index, generation}.Encode());
    return sqe;
  }

  void ArmSignalPoll();
  void ArmLinkPoll();
  void OnCompletion(io_uring_cqe* cqe);
  void OnSignals();
  void OnLinkReadable();
  void OnMessage(Message message, std::vector<UniqueFd> fds);
  void AddPipe(PipeRoute route, UniqueFd fd, uint64_t park_id);
  int FileFor(const PipeRoute& route);
  void SubmitRead(int p);
  void OnPipeRead(const uring::OpTag& tag, int result);
  void ClosePipe(int p);
  void SubmitWrites();
  void OnFileWritten(const uring::OpTag& tag, int result);
  // Pipes waiting for `f` to catch up are read again.
  void WakeWaiting(int f);
  void ForgetFileIfIdle(int f);
  void Reopen(UniqueFd reply_to);
  void BeginStop(absl::string_view why);
  void CheckStalls(absl::Time now);
  void CompactPark();
  // The forced end at the stop deadline: cancels the reads, flushes what
  // the pipes held and writes every queue synchronously.
  void FlushAndClose();
  size_t LivePipes() const;

  LogWriterOptions options_;
  std::unique_ptr<uring::Ring> ring_;
  UniqueFd signal_fd_;
  Park park_;
  bool has_park_;
  uint64_t next_park_id_ = 1;
  bool park_full_logged_ = false;
  std::vector<std::unique_ptr<Pipe>> pipes_;  // null: free slot
  std::vector<uint32_t> pipe_generations_;
  std::vector<FileSlot> files_;
  absl::flat_hash_map<std::string, int> file_by_path_;
  bool link_open_ = true;
  bool stopping_ = false;
  absl::Time stop_deadline_ = absl::InfiniteFuture();
  uint64_t lines_cut_ = 0;
  // Of the files already forgotten (ForgetFileIfIdle), for the last word.
  LogFileCounters forgotten_;
};

absl::Status LogWriter::Init() {
  // Pipes are fds: a big deployment has thousands.
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
  sigset_t mask;
  sigemptyset(&mask);
  for (int sig : kHandledSignals) sigaddset(&mask, sig);
  if (sigprocmask(SIG_BLOCK, &mask, nullptr) != 0) {
    return ErrnoStatus(errno, "sigprocmask", "starting the log writer");
  }
  // A ddvctl client that leaves before its answer must not kill us.
  signal(SIGPIPE, SIG_IGN);
  signal_fd_.Reset(signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!signal_fd_) {
    return ErrnoStatus(errno, "signalfd", "starting the log writer");
  }
  uring::RingOptions ring;
  ring.entries = 256;  // submissions wait for room (GetSqe submits)
  absl::StatusOr<std::unique_ptr<uring::Ring>> created =
      uring::Ring::Create(ring);
  if (!created.ok()) return created.status();
  ring_ = *std::move(created);
  ArmSignalPoll();
  ArmLinkPoll();

  if (has_park_) {
    std::vector<Park::Entry> parked = park_.Replay();
    for (const Park::Entry& entry : parked) {
      next_park_id_ = std::max(next_park_id_, entry.id + 1);
    }
    LOG(INFO) << "log writer pid " << getpid() << ": " << parked.size()
              << " pipes back from the park";
    for (Park::Entry& entry : parked) {
      AddPipe(std::move(entry.route), std::move(entry.fd), entry.id);
    }
  } else {
    LOG(INFO) << "log writer pid " << getpid() << " started (no park)";
  }
  return absl::OkStatus();
}

void LogWriter::ArmSignalPoll() {
  io_uring_prep_poll_add(Sqe(kOpSignalPoll, 0, 0), signal_fd_.get(), POLLIN);
}

// Single-shot, re-armed after each wake-up: at the link's end the poll
// would fire for ever, and we stop arming it.
void LogWriter::ArmLinkPoll() {
  io_uring_prep_poll_add(Sqe(kOpLinkPoll, 0, 0), options_.link_fd, POLLIN);
}

void LogWriter::Run() {
  std::array<io_uring_cqe*, 128> cqes;
  while (true) {
    SubmitWrites();
    __kernel_timespec wait{};
    wait.tv_sec = 1;  // stalls, the stop deadline, park compaction
    io_uring_cqe* first = nullptr;
    int ret = io_uring_submit_and_wait_timeout(ring_->get(), &first, 1, &wait,
                                               nullptr);
    if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EBUSY) {
      LOG(ERROR) << ErrnoStatus(-ret, "io_uring_submit_and_wait_timeout",
                                "running the log writer");
      FlushAndClose();
      return;
    }
    unsigned n;
    while ((n = io_uring_peek_batch_cqe(ring_->get(), cqes.data(),
                                       cqes.size())) > 0) {
      for (unsigned i = 0; i < n; ++i) OnCompletion(cqes[i]);
      io_uring_cq_advance(ring_->get(), n);
    }
    const absl::Time now = absl::Now();
    CheckStalls(now);
    if (has_park_ && park_.WantsCompaction(LivePipes())) CompactPark();
    if (stopping_) {
      bool idle = LivePipes() == 0;
      for (const FileSlot& slot : files_) {
        if (slot.file != nullptr && !slot.file->Idle()) idle = false;
      }
      if (idle) break;
      if (now >= stop_deadline_) {
        LOG(WARNING) << "log writer: " << LivePipes()
                     << " pipes still open at the stop deadline; writing "
                        "what they sent and exiting";
        FlushAndClose();
        break;
      }
    }
  }
  LogFileCounters total = forgotten_;
  for (const FileSlot& slot : files_) {
    if (slot.file != nullptr) Accumulate(slot.file->counters(), &total);
  }
  LOG(INFO) << "log writer pid " << getpid() << " exiting: "
            << total.bytes_written << " bytes written, "
            << total.bytes_dropped << " dropped, " << total.write_errors
            << " failed writes, " << total.rotations << " rotations, "
            << lines_cut_ << " over-long lines cut";
}

void LogWriter::OnCompletion(io_uring_cqe* cqe) {
  const uring::OpTag tag = uring::OpTag::Decode(io_uring_cqe_get_data64(cqe));
  switch (static_cast<Op>(tag.op)) {
    case kOpSignalPoll:
      OnSignals();
      return;
    case kOpLinkPoll:
      OnLinkReadable();
      return;
    case kOpPipeRead:
      OnPipeRead(tag, cqe->res);
      return;
    case kOpFileWrite:
      OnFileWritten(tag, cqe->res);
      return;
  }
  LOG(DFATAL) << "log writer: completion with unknown op " << int{tag.op};
}

void LogWriter::OnSignals() {
  signalfd_siginfo info;
  while (read(signal_fd_.get(), &info, sizeof(info)) == sizeof(info)) {
    switch (info.ssi_signo) {
      case SIGUSR1:
      case SIGHUP:
        LOG(INFO) << "log writer: signal " << info.ssi_signo
                  << ", reopening the log files";
        Reopen(UniqueFd());
        break;
      case SIGTERM:
      case SIGINT:
        BeginStop(absl::StrCat("signal ", info.ssi_signo));
        break;
    }
  }
  ArmSignalPoll();
}

void LogWriter::OnLinkReadable() {
  // Bounded per wake-up, so a flood of registrations cannot starve the pipes.
  for (int i = 0; i < 64; ++i) {
    absl::StatusOr<Received> received = ReceiveWithFds(options_.link_fd);
    if (!received.ok()) {
      if (absl::IsUnavailable(received.status())) break;
      if (absl::IsOutOfRange(received.status())) {
        link_open_ = false;
        BeginStop("no master is left on the link");
        return;
      }
      LOG(ERROR) << "log writer: reading the link: " << received.status();
      if (absl::IsDataLoss(received.status())) continue;
      break;
    }
    absl::StatusOr<Message> message = DecodeMessage(received->bytes);
    if (!message.ok()) {
      LOG(ERROR) << "log writer: dropping a bad message (its "
                 << received->fds.size() << " fds closed): "
                 << message.status().message();
      continue;
    }
    if (FdCount(*message) != received->fds.size() ||
        message->type == MessageType::kPark ||
        message->type == MessageType::kUnpark) {
      LOG(ERROR) << "log writer: dropping a message of type "
                 << int{static_cast<uint8_t>(message->type)} << " with "
                 << received->fds.size() << " fds";
      continue;
    }
    OnMessage(*std::move(message), std::move(received->fds));
  }
  if (!stopping_) ArmLinkPoll();
}

void LogWriter::OnMessage(Message message, std::vector<UniqueFd> fds) {
  if (message.type == MessageType::kReopen) {
    LOG(INFO) << "log writer: reopening the log files, as asked";
    Reopen(message.has_reply ? std::move(fds[0]) : UniqueFd());
    return;
  }
  for (size_t i = 0; i < message.routes.size(); ++i) {
    AddPipe(std::move(message.routes[i]), std::move(fds[i]), 0);
  }
}

int LogWriter::FileFor(const PipeRoute& route) {
  const RotationPolicy policy{route.max_bytes, route.keep};
  auto found = file_by_path_.find(route.path);
  if (found != file_by_path_.end()) {
    files_[found->second].file->set_policy(policy);
    return found->second;
  }
  int f = 0;
  while (f < static_cast<int>(files_.size()) && files_[f].file != nullptr) ++f;
  if (f == static_cast<int>(files_.size())) files_.emplace_back();
  FileSlot& slot = files_[f];
  slot.file = std::make_unique<LogFile>(route.path, policy);
  ++slot.generation;
  slot.stall_logged = false;
  slot.pipes_waiting = false;
  absl::Status opened = slot.file->Open();
  if (!opened.ok()) {
    // The master opened it a moment ago; the next reopen tries again.
    LOG(ERROR) << "log writer: " << opened.message() << " for worker "
               << route.worker << "; its lines are dropped until a reopen "
                                  "succeeds";
  }
  file_by_path_[route.path] = f;
  return f;
}

void LogWriter::AddPipe(PipeRoute route, UniqueFd fd, uint64_t park_id) {
  int p = 0;
  while (p < static_cast<int>(pipes_.size()) && pipes_[p] != nullptr) ++p;
  if (p == static_cast<int>(pipes_.size())) {
    pipes_.emplace_back();
    pipe_generations_.push_back(0);
  }
  const int f = FileFor(route);
  files_[f].file->pipes++;
  auto pipe = std::make_unique<Pipe>(std::move(route), std::move(fd),
                                     options_.line_capacity);
  pipe->file = f;
  pipe->generation = ++pipe_generations_[p];
  if (has_park_) {
    pipe->park_id = park_id != 0 ? park_id : next_park_id_++;
    absl::Status parked = park_.Add(pipe->park_id, pipe->route, pipe->fd.get());
    pipe->parked = parked.ok();
    if (!parked.ok() && !park_full_logged_) {
      park_full_logged_ = true;
      LOG(WARNING) << "log writer: cannot park the pipe of "
                   << pipe->route.worker << " (" << parked.message()
                   << "): if this writer dies, the pipes it could not park "
                      "are lost (logged once)";
    }
  }
  VLOG(1) << "log writer: " << pipe->route.worker << " "
          << StreamName(pipe->route.stream) << " -> " << pipe->route.path;
  pipes_[p] = std::move(pipe);
  SubmitRead(p);
}

void LogWriter::SubmitRead(int p) {
  Pipe& pipe = *pipes_[p];
  pipe.reading = true;
  io_uring_prep_read(Sqe(kOpPipeRead, p, pipe.generation), pipe.fd.get(),
                     pipe.buffer.space(), pipe.buffer.space_size(), -1);
}

void LogWriter::OnPipeRead(const uring::OpTag& tag, int result) {
  if (tag.index >= pipes_.size() || pipes_[tag.index] == nullptr ||
      !tag.Matches(pipes_[tag.index]->generation)) {
    LOG(DFATAL) << "log writer: stale pipe read for slot " << tag.index;
    return;
  }
  const int p = tag.index;
  Pipe& pipe = *pipes_[p];
  pipe.reading = false;
  if (result == -EINTR || result == -EAGAIN || result == -ECANCELED) {
    if (!stopping_ || absl::Now() < stop_deadline_) SubmitRead(p);
    return;
  }
  if (result <= 0) {
    if (result < 0) {
      LOG(ERROR) << ErrnoStatus(-result, "read",
                                absl::StrCat("reading the ",
                                             StreamName(pipe.route.stream),
                                             " of worker ", pipe.route.worker));
    }
    ClosePipe(p);
    return;
  }
  LogFile& file = *files_[pipe.file].file;
  pipe.buffer.Commit(result, file.queue());
  if (file.queued() >= options_.file_queue_limit) {
    pipe.waiting = true;  // WakeWaiting reads it again
    files_[pipe.file].pipes_waiting = true;
    return;
  }
  SubmitRead(p);
}

void LogWriter::ClosePipe(int p) {
  Pipe& pipe = *pipes_[p];
  const int f = pipe.file;
  LogFile& file = *files_[f].file;
  pipe.buffer.Flush(file.queue());
  lines_cut_ += pipe.buffer.lines_cut();
  --file.pipes;
  if (pipe.parked) {
    absl::Status removed = park_.Remove(pipe.park_id);
    if (!removed.ok()) {
      // Harmless: a restarted writer finds the pipe at its end at once.
      VLOG(1) << "log writer: unpark " << pipe.park_id << ": " << removed;
    }
  }
  VLOG(1) << "log writer: " << pipe.route.worker << " "
          << StreamName(pipe.route.stream) << " ended";
  pipes_[p].reset();
  ForgetFileIfIdle(f);
}

void LogWriter::SubmitWrites() {
  const absl::Time now = absl::Now();
  for (size_t f = 0; f < files_.size(); ++f) {
    FileSlot& slot = files_[f];
    if (slot.file == nullptr) continue;
    std::optional<LogFile::Write> write = slot.file->StartWrite(now);
    if (!write) {
      // Dropped (no open file) rather than written: the pipes may go on.
      WakeWaiting(f);
      ForgetFileIfIdle(f);
      continue;
    }
    io_uring_prep_write(Sqe(kOpFileWrite, f, slot.generation), write->fd,
                        write->data, write->size, -1);
  }
}

void LogWriter::OnFileWritten(const uring::OpTag& tag, int result) {
  if (tag.index >= files_.size() || files_[tag.index].file == nullptr ||
      !tag.Matches(files_[tag.index].generation)) {
    LOG(DFATAL) << "log writer: stale file write for slot " << tag.index;
    return;
  }
  FileSlot& slot = files_[tag.index];
  absl::Status status = slot.file->WriteDone(result);
  if (!status.ok()) {
    const LogFileCounters& c = slot.file->counters();
    LOG_EVERY_N(ERROR, 100) << "log writer: " << status.message() << " ("
                            << c.write_errors << " failed writes, "
                            << c.bytes_dropped
                            << " bytes dropped so far for this file)";
  }
  if (slot.stall_logged) {
    LOG(WARNING) << "log writer: \"" << slot.file->path()
                 << "\" takes writes again";
    slot.stall_logged = false;
  }
  WakeWaiting(tag.index);
  ForgetFileIfIdle(tag.index);
}

void LogWriter::WakeWaiting(int f) {
  LogFile* file = files_[f].file.get();
  if (file == nullptr || !files_[f].pipes_waiting ||
      file->queued() >= options_.file_queue_limit / 2) {
    return;
  }
  files_[f].pipes_waiting = false;
  for (size_t p = 0; p < pipes_.size(); ++p) {
    Pipe* pipe = pipes_[p].get();
    if (pipe == nullptr || pipe->file != f || !pipe->waiting) continue;
    pipe->waiting = false;
    SubmitRead(p);
  }
}

void LogWriter::ForgetFileIfIdle(int f) {
  FileSlot& slot = files_[f];
  if (slot.file == nullptr || !slot.file->Idle()) return;
  file_by_path_.erase(slot.file->path());
  Accumulate(slot.file->counters(), &forgotten_);
  slot.file.reset();
}

void LogWriter::Reopen(UniqueFd reply_to) {
  int files = 0;
  std::vector<std::string> failures;
  for (FileSlot& slot : files_) {
    if (slot.file == nullptr) continue;
    ++files;
    absl::Status opened = slot.file->Open();
    if (!opened.ok()) failures.emplace_back(opened.message());
  }
  std::string reply;
  if (failures.empty()) {
    reply = absl::StrCat("ok: reopened ", files, " log files\n");
    LOG(INFO) << "log writer: reopened " << files << " log files";
  } else {
    reply = absl::StrCat("error: reopened ", files - failures.size(), " of ",
                         files, " log files (the others keep their old "
                         "file): ",
                         absl::StrJoin(failures, "; "), "\n");
    LOG(ERROR) << "log writer: " << reply;
  }
  if (!reply_to) return;
  // The reply is small; a client that does not read gets it cut, never a
  // stalled writer.
  if (send(reply_to.get(), reply.data(), reply.size(),
           MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
    VLOG(1) << "log writer: the reopen reply was not sent: "
            << strerror(errno);
  }
}

void LogWriter::BeginStop(absl::string_view why) {
  if (stopping_) return;
  stopping_ = true;
  stop_deadline_ = absl::Now() + options_.stop_grace;
  LOG(INFO) << "log writer: stopping (" << why << "); " << LivePipes()
            << " pipes are read to their end for at most "
            << absl::FormatDuration(options_.stop_grace);
}

void LogWriter::CheckStalls(absl::Time now) {
  for (size_t f = 0; f < files_.size(); ++f) {
    FileSlot& slot = files_[f];
    if (slot.file == nullptr ||
        !slot.file->Stalled(now, options_.stall_limit)) {
      continue;
    }
    if (!slot.stall_logged) {
      slot.stall_logged = true;
      LOG(ERROR) << "log writer: a write to \"" << slot.file->path()
                 << "\" has not finished in "
                 << absl::FormatDuration(options_.stall_limit)
                 << "; its lines are dropped until it does, so its workers "
                    "are not held up";
    }
    slot.file->DropQueue();
    WakeWaiting(f);
  }
}

void LogWriter::CompactPark() {
  park_.Clear();
  size_t parked = 0;
  for (const std::unique_ptr<Pipe>& pipe : pipes_) {
    if (pipe == nullptr) continue;
    pipe->parked =
        park_.Add(pipe->park_id, pipe->route, pipe->fd.get()).ok();
    parked += pipe->parked ? 1 : 0;
  }
  VLOG(1) << "log writer: park compacted to " << parked << " pipes";
}

void LogWriter::FlushAndClose() {
  ring_->CancelAll();
  for (size_t p = 0; p < pipes_.size(); ++p) {
    if (pipes_[p] == nullptr) continue;
    Pipe& pipe = *pipes_[p];
    pipe.buffer.Flush(files_[pipe.file].file->queue());
    lines_cut_ += pipe.buffer.lines_cut();
    --files_[pipe.file].file->pipes;
    pipes_[p].reset();  // the park keeps its copy, if it has one
  }
  for (FileSlot& slot : files_) {
    if (slot.file != nullptr) slot.file->WriteQueueBlocking();
  }
}

size_t LogWriter::LivePipes() const {
  size_t live = 0;
  for (const std::unique_ptr<Pipe>& pipe : pipes_) live += pipe != nullptr;
  return live;
}

}  // namespace

absl::Status RunLogWriter(const LogWriterOptions& options) {
  if (options.link_fd < 0) {
    return absl::InvalidArgumentError("the log writer needs its link fd");
  }
  LogWriter writer(options);
  absl::Status status = writer.Init();
  if (!status.ok()) return status;
  writer.Run();
  return absl::OkStatus();
}

}  // namespace logwriter
}  // namespace ddv
