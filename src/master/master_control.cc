// Master, control plane: signals (a signalfd, so no handler ever runs user
// code), the control socket behind `ddvctl`, and the control point. Signal
// and command handlers only record what was asked (pending_); the loop acts
// on it once per turn in RunControlPoint, in nginx's master-cycle order.
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "glog/logging.h"
#include "src/base/errno_status.h"
#include "src/config/config_snapshot.h"
#include "src/control/control_access.h"
#include "src/master/master.h"

namespace ddv {
namespace master {
namespace {

// A refused reload's reply lists this many of the file's errors and counts
// the rest (ddv_master --check_config lists them all).
constexpr size_t kReloadErrorsShown = 20;

constexpr int kHandledSignals[] = {SIGHUP,  SIGTERM, SIGINT,
                                   SIGUSR1, SIGUSR2, SIGCHLD};

}  // namespace

absl::Status Master::InitSignals() {
  sigset_t mask;
  sigemptyset(&mask);
  for (int sig : kHandledSignals) sigaddset(&mask, sig);
  // Blocked so they queue on the signalfd; children get a clean mask at
  // spawn (supervise::Spawn resets it).
  if (sigprocmask(SIG_BLOCK, &mask, nullptr) < 0) {
    return ErrnoStatus(errno, "sigprocmask", "blocking handled signals");
  }
  signal_fd_.Reset(signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!signal_fd_) return ErrnoStatus(errno, "signalfd", "watching signals");
  ArmSignalPoll();
  // A worker's channel or a ddvctl client can close under a write; every
  // send says MSG_NOSIGNAL, and this covers whatever does not. Before any
  // worker is spawned; supervise::Spawn resets it in the child.
  if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
    return ErrnoStatus(errno, "signal", "ignoring SIGPIPE");
  }

  const std::string& path = config_.master.control_socket;
  if (path.empty()) return absl::OkStatus();
  std::error_code error;
  std::filesystem::create_directories(
      std::filesystem::path(path).parent_path(), error);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("control socket path too long: ", path));
  }
  memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  control_fd_.Reset(
      socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!control_fd_) {
    return ErrnoStatus(errno, "socket", "creating the control socket");
  }
  // A stale socket from a crashed master would make bind fail.
  unlink(path.c_str());
  // bind() creates the file with 0777 & ~umask: with this umask it is born
  // 0600, so nobody else can connect before its mode and group are set.
  const mode_t umask_before = umask(0177);
  const int bound = bind(control_fd_.get(), reinterpret_cast<sockaddr*>(&addr),
                         sizeof(addr));
  const int bind_errno = errno;
  umask(umask_before);
  if (bound < 0) {
    return ErrnoStatus(
        bind_errno, "bind",
        absl::StrCat("binding the control socket \"", path, "\""));
  }
  control_socket_path_ = path;
  absl::Status access = ApplyControlSocketAccess(config_.master);
  if (!access.ok()) return access;
  if (listen(control_fd_.get(), 16) < 0) {
    return ErrnoStatus(errno, "listen", "listening on the control socket");
  }
  ArmControlPoll();
  return absl::OkStatus();
}

absl::Status Master::ApplyControlSocketAccess(
    const config::MasterConfig& master) {
  return control::SetControlSocketAccess(
      control_socket_path_, master.control_socket_mode,
      master.control_socket_group.empty() ? getegid()
                                          : master.control_socket_gid);
}

void Master::ArmSignalPoll() {
  io_uring_sqe* sqe = Sqe(kOpSignalPoll, 0);
  io_uring_prep_poll_multishot(sqe, signal_fd_.get(), POLLIN);
}

void Master::ArmControlPoll() {
  io_uring_sqe* sqe = Sqe(kOpControlPoll, 0);
  io_uring_prep_poll_multishot(sqe, control_fd_.get(), POLLIN);
}

void Master::OnSignalPoll(io_uring_cqe* cqe) {
  if (!(cqe->flags & IORING_CQE_F_MORE)) ArmSignalPoll();
  OnSignals();
}

void Master::OnControlPoll(io_uring_cqe* cqe) {
  if (!(cqe->flags & IORING_CQE_F_MORE)) ArmControlPoll();
  OnControlReadable();
}

void Master::OnSignals() {
  signalfd_siginfo info;
  while (read(signal_fd_.get(), &info, sizeof(info)) == sizeof(info)) {
    switch (info.ssi_signo) {
      case SIGTERM:
      case SIGINT:
        LOG(INFO) << "signal " << info.ssi_signo << ": graceful stop";
        pending_.stop = true;
        break;
      case SIGHUP:
        LOG(INFO) << "SIGHUP: reloading " << config_.path;
        pending_.reload = true;
        break;
      case SIGUSR1:
        // logrotate's `kill -USR1`: the log writer holds the files, so it
        // reopens them. Never forwarded: the workers' pipes stay as they
        // are, and SIGUSR1's default action would kill them.
        LOG(INFO) << "SIGUSR1: reopening the log files";
        pending_.reopen = true;
        break;
      case SIGUSR2:
        LOG(INFO) << "SIGUSR2: upgrade";
        pending_.upgrade = true;
        break;
      case SIGCHLD:
        break;  // exits are seen through each worker's pidfd
    }
  }
}

// Control clients are served through the ring: a client that connects and
// says nothing costs the loop nothing (it is closed after a second). With
// every slot busy, new clients wait in the control socket's backlog (the
// multishot poll will not fire again for them, so the control point retries
// once a slot is free): accepting and closing one with its command unread
// would reset it.
void Master::OnControlReadable() {
  while (true) {
    // A slot is free once its fd is closed and its ops have completed, so
    // a late completion never meets the next client.
    uint32_t slot = 0;
    while (slot < control_clients_.size() &&
           (control_clients_[slot].fd || control_clients_[slot].inflight > 0)) {
      ++slot;
    }
    control_backlog_waiting_ = slot == control_clients_.size();
    if (control_backlog_waiting_) return;
    UniqueFd client(accept4(control_fd_.get(), nullptr, nullptr,
                            SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!client) return;
    ControlClient& c = control_clients_[slot];
    c.fd = std::move(client);
    c.length = 0;
    c.resubmit = false;
    c.awaiting_control_point = false;
    ++c.generation;
    c.deadline = ToTimespecNs(MonotonicNowNs() + 1000000000LL);
    CheckControlPeer(slot);
    // A refused client is still read, and answered: closing it with its
    // command unread would reset the connection before it read why.
    SubmitControlRecv(slot);
  }
}

// Workers run under their sites' `user`, and a socket mode may be set wide:
// the kernel's record of who connected is what decides.
void Master::CheckControlPeer(uint32_t slot) {
  ControlClient& c = control_clients_[slot];
  absl::StatusOr<control::PeerCredentials> peer =
      control::ReadPeerCredentials(c.fd.get());
  if (!peer.ok()) {
    // Fail closed: a peer we cannot identify gets nothing.
    ++counters_.control_refused;
    LOG_EVERY_N(WARNING, 100) << "control client refused, unidentified: "
                              << peer.status();
    c.allowed = false;
    c.peer_uid = -1;
    c.peer_pid = 0;
    return;
  }
  control::ControlAccess access;
  access.owner_uid = geteuid();
  if (!config_.master.control_socket_group.empty()) {
    access.group = config_.master.control_socket_gid;
  }
  c.allowed = control::MayControl(*peer, access);
  c.peer_uid = peer->uid;
  c.peer_pid = peer->pid;
  if (!c.allowed) LogControlRefusal(slot);
}

void Master::LogControlRefusal(uint32_t slot) {
  const ControlClient& c = control_clients_[slot];
  ++counters_.control_refused;
  const int64_t now = MonotonicNowNs();
  if (control_refusal_logged_ns_ != 0 &&
      now - control_refusal_logged_ns_ < 10 * 1000000000LL) {
    ++control_refusals_unlogged_;
    return;
  }
  LOG(WARNING) << "control client refused: uid " << c.peer_uid << " pid "
               << c.peer_pid
               << " is not root, the master's user or in "
               << (config_.master.control_socket_group.empty()
                       ? std::string("a control_socket_group (none is set)")
                       : absl::StrCat("control_socket_group \"",
                                      config_.master.control_socket_group,
                                      "\""))
               << (control_refusals_unlogged_ > 0
                       ? absl::StrCat(" (", control_refusals_unlogged_,
                                      " more refused since the last line)")
                       : std::string());
  control_refusal_logged_ns_ = now;
  control_refusals_unlogged_ = 0;
}

void Master::SubmitControlRecv(uint32_t slot) {
  ControlClient& c = control_clients_[slot];
  ring_->Reserve(2);
  io_uring_sqe* sqe = Sqe(kOpControlRecv, slot, c.generation);
  io_uring_prep_recv(sqe, c.fd.get(), c.buffer + c.length,
                     sizeof(c.buffer) - c.length, 0);
  sqe->flags |= IOSQE_IO_LINK;
  io_uring_sqe* timeout = Sqe(kOpControlTimeout, slot, c.generation);
  io_uring_prep_link_timeout(timeout, &c.deadline, IORING_TIMEOUT_ABS);
  c.inflight += 2;
}

// As CompletedOp for connections: the control client a completion is for,
// with its in-flight count taken down; nullptr (counted) when stale.
Master::ControlClient* Master::CompletedControlOp(const uring::OpTag& tag) {
  ControlClient* c = tag.index < control_clients_.size()
                         ? &control_clients_[tag.index]
                         : nullptr;
  if (c == nullptr || !tag.Matches(c->generation) || c->inflight == 0) {
    ++counters_.stale_completions;
    VLOG(1) << "stale control completion for slot " << tag.index;
    return nullptr;
  }
  --c->inflight;
  return c;
}

void Master::OnControlRecv(const uring::OpTag& tag, io_uring_cqe* cqe) {
  ControlClient* c = CompletedControlOp(tag);
  if (c == nullptr) return;
  if (!c->fd || c->awaiting_control_point) return;
  if (cqe->res <= 0) {
    c->fd.Reset();  // EOF, an error, or the one-second deadline
    return;
  }
  c->length += cqe->res;
  absl::string_view text(c->buffer, c->length);
  if (text.find('\n') == absl::string_view::npos &&
      c->length < sizeof(c->buffer)) {
    // Not a whole line yet. The next recv waits for this one's link
    // timeout to complete: they share the slot's deadline.
    if (c->inflight == 0) {
      SubmitControlRecv(tag.index);
    } else {
      c->resubmit = true;
    }
    return;
  }
  OnControlCommand(tag.index, text);
}

// The recv's link timeout: -ETIME when it fired (the recv then completes
// with -ECANCELED), else -ECANCELED or -ENOENT. A recv that waited for it
// goes out now.
void Master::OnControlTimeout(const uring::OpTag& tag) {
  ControlClient* c = CompletedControlOp(tag);
  if (c == nullptr) return;
  if (c->resubmit && c->inflight == 0 && c->fd) {
    c->resubmit = false;
    SubmitControlRecv(tag.index);
  }
}

void Master::OnControlCommand(uint32_t slot, absl::string_view line) {
  // Refused at accept (CheckControlPeer, which logged it); answered once
  // its command is read.
  if (!control_clients_[slot].allowed) {
    ReplyToControlClient(
        slot, absl::StrCat("error: permission denied (uid ",
                           control_clients_[slot].peer_uid, ")\n"));
    return;
  }
  line = absl::StripAsciiWhitespace(line);
  std::vector<std::string> words = absl::StrSplit(line, ' ', absl::SkipEmpty());
  if (words.empty()) {
    ReplyToControlClient(slot, "error: empty command\n");
    return;
  }
  // Read-only commands are answered at once; the others change the master
  // and are answered by the control point once they are done.
  if (words[0] == "status") {
    ReplyToControlClient(slot, StatusJson() + "\n");
  } else if (words[0] == "metrics") {
    ReplyToControlClient(slot, MetricsText());
  } else if (words[0] == "reload") {
    pending_.reload = true;
    pending_.reload_clients.push_back(slot);
    control_clients_[slot].awaiting_control_point = true;
  } else if (words[0] == "stop") {
    pending_.stop = true;
    pending_.stop_clients.push_back(slot);
    control_clients_[slot].awaiting_control_point = true;
  } else if (words[0] == "upgrade") {
    pending_.upgrade = true;
    pending_.upgrade_clients.push_back(slot);
    control_clients_[slot].awaiting_control_point = true;
  } else if (words[0] == "restart" && words.size() == 2) {
    pending_.restarts.push_back({slot, words[1]});
    control_clients_[slot].awaiting_control_point = true;
  } else if (words[0] == "reopen") {
    pending_.reopen_clients.push_back(slot);
    control_clients_[slot].awaiting_control_point = true;
  } else {
    ReplyToControlClient(
        slot,
        absl::StrCat("error: unknown command \"", words[0],
                     "\" (status, metrics, reload, stop, restart SITE, "
                     "upgrade, reopen)\n"));
  }
}

void Master::ReplyToControlClient(uint32_t slot, const std::string& reply) {
  ControlClient& c = control_clients_[slot];
  c.awaiting_control_point = false;
  if (!c.fd) return;
  // The socket buffer (~200 KiB) holds any reply we make; a client that
  // does not read gets a truncated answer, never a stalled loop.
  size_t sent = 0;
  while (sent < reply.size()) {
    ssize_t n = send(c.fd.get(), reply.data() + sent, reply.size() - sent,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n <= 0) break;
    sent += n;
  }
  c.fd.Reset();
}

// nginx's master cycle: terminate/quit, reconfigure, then reopen. A stop
// wins over what was asked in the same turn: a master that is stopping
// starts nothing new (its log files are still reopened when asked).
void Master::RunControlPoint() {
  PendingControl pending;
  std::swap(pending, pending_);

  if (pending.stop) BeginStop();
  for (uint32_t slot : pending.stop_clients) {
    ReplyToControlClient(slot, "ok: stopping\n");
  }

  // Before the reload, so it re-checks only claims whose makers live.
  if (!pending.exited.empty()) DropClaimsOfExited(pending.exited);

  if (pending.reload) {
    absl::Status status =
        absl::FailedPreconditionError("the master is stopping");
    if (!stopping_) {
      ReportReloading();  // systemd: RELOADING=1, READY=1 when it is over
      status = Reload();
      ReportReloaded(status);
    }
    const std::string reply =
        status.ok()
            ? absl::StrCat("ok: reloaded ", config_.path, "\n")
            : absl::StrCat("error: reload failed, keeping the running config: ",
                           // The first few of many errors: the reply is
                           // read by a person at a terminal.
                           config::DescribeConfigErrors(
                               status, config_.path, kReloadErrorsShown),
                           "\n");
    for (uint32_t slot : pending.reload_clients) {
      ReplyToControlClient(slot, reply);
    }
  }

  for (const PendingControl::ServerConf& update : pending.server_conf) {
    // A process that exited since it asked gets nothing: its claims would
    // outlive it, and the reply would reach its successor on the channel.
    if (workers_->pid(update.worker) == 0 ||
        workers_->at(update.worker).generation != update.generation) {
      continue;
    }
    const Worker& asking = workers_->at(update.worker);
    absl::Status status;
    if (stopping_) {
      status = absl::UnavailableError("the master is stopping");
    } else if (asking.retired || asking.draining ||
               config_.sites[asking.site].processes == 0) {
      // A worker on its way out (its site removed by a reload, fewer
      // processes, a rolling restart) must not bring its site back or take
      // hosts for it.
      status = absl::FailedPreconditionError(
          "this worker is shutting down; its site's config is not changed");
    } else {
      status = UpdateServerConf(update.worker, update.body);
    }
    Reply(update.worker, update.request_id, status, "{}");
  }

  for (const PendingControl::Restart& restart : pending.restarts) {
    std::string reply = absl::StrCat("error: no site \"", restart.site, "\"\n");
    for (size_t s = 0; s < config_.sites.size(); ++s) {
      if (config_.sites[s].id != restart.site ||
          config_.sites[s].processes == 0) {
        continue;
      }
      if (stopping_) {
        reply = "error: the master is stopping\n";
      } else {
        workers_->RollingRestart(s);
        reply =
            absl::StrCat("ok: restarting ", workers_->LiveWorkers(s),
                         " workers of \"", restart.site, "\" one at a time\n");
      }
    }
    ReplyToControlClient(restart.client, reply);
  }

  if (pending.upgrade) {
    if (pending.upgrade_clients.empty()) RequestUpgrade(-1);
    for (uint32_t slot : pending.upgrade_clients) RequestUpgrade(slot);
  }

  if (pending.reopen || !pending.reopen_clients.empty()) {
    ReopenLogs(pending.reopen_clients);
  }

  // Control clients left in the backlog while every slot was busy.
  if (control_backlog_waiting_) OnControlReadable();
}

// The master's own log is glog's stderr, which it does not open: what holds
// files is the log writer (docs/logs.md). A `ddvctl reopen` client goes to
// the writer with the request, as a connection goes to a worker, and the
// writer answers it once every file is reopened ("ok: reopened N log
// files"), so the answer tells what happened, not only that it was asked.
void Master::ReopenLogs(const std::vector<uint32_t>& clients) {
  logwriter::LogWriterClient* writer = options_.log_writer;
  if (writer == nullptr) {
    LOG(WARNING) << "no log writer: nothing to reopen";
    for (uint32_t slot : clients) {
      ReplyToControlClient(slot,
                           "error: this master has no log writer (see its "
                           "log): nothing to reopen\n");
    }
    return;
  }
  if (clients.empty()) {
    absl::Status sent = writer->RequestReopen(-1);
    if (!sent.ok()) {
      LOG(ERROR) << "cannot ask the log writer to reopen the log files: "
                 << sent.message();
    }
    return;
  }
  for (uint32_t slot : clients) {
    ControlClient& c = control_clients_[slot];
    if (!c.fd) continue;
    absl::Status sent = writer->RequestReopen(c.fd.get());
    if (!sent.ok()) {
      ReplyToControlClient(
          slot, absl::StrCat("error: cannot ask the log writer to reopen the "
                             "log files: ",
                             sent.message(), "\n"));
      continue;
    }
    // The writer holds its own copy and answers; ours closes now.
    c.awaiting_control_point = false;
    c.fd.Reset();
  }
}

absl::Status Master::Reload() {
  absl::StatusOr<config::Config> loaded = config::LoadConfigFile(config_.path);
  if (loaded.ok()) ApplyOverrides(options_.overrides, &*loaded);
  absl::Status status = loaded.ok() ? ApplyConfig(*loaded) : loaded.status();
  if (!status.ok()) {
    LOG(ERROR) << "reload failed, keeping the running config: "
               << config::DescribeConfigErrors(status, config_.path);
    return status;
  }
  LOG(INFO) << "reloaded " << config_.path;
  SaveConfigSnapshot();
  return absl::OkStatus();
}

void Master::SaveConfigSnapshot() {
  if (options_.config_snapshot.empty()) return;
  absl::Status status =
      config::WriteConfigSnapshot(options_.config_snapshot, config_.text);
  if (!status.ok()) {
    // The old snapshot must not outlive the config that replaced it: a
    // restarted master would run what this reload undid. Without one it
    // reads the file.
    const bool removed =
        unlink(options_.config_snapshot.c_str()) == 0 || errno == ENOENT;
    LOG(ERROR) << status.message() << "; "
               << (removed ? absl::StrCat("removed the old snapshot, so a "
                                          "restarted master reads ",
                                          config_.path)
                           : absl::StrCat("could not remove the old snapshot ",
                                          options_.config_snapshot,
                                          ": a restarted master would run "
                                          "the config before this one"));
  }
}

}  // namespace master
}  // namespace ddv
