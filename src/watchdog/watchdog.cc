// RunWatchdog: a poll() loop over a signalfd and the master's pidfd. It
// exits only when asked to stop (a signal, or a master that stopped on
// request); any other end of the master is restarted, forever.
#include "src/watchdog/watchdog.h"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "glog/logging.h"
#include "src/logwriter/writer_process.h"

namespace ddv {
namespace watchdog {

int RunWatchdog(const WatchdogOptions& options,
                std::vector<UniqueFd> listeners) {
  absl::Status status = supervise::BecomeSubreaper();
  if (!status.ok()) LOG(WARNING) << status;

  sigset_t mask;
  sigemptyset(&mask);
  for (int sig : {SIGHUP, SIGTERM, SIGINT, SIGUSR1, SIGCHLD}) {
    sigaddset(&mask, sig);
  }
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  UniqueFd signal_fd(signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signal_fd) {
    PLOG(ERROR) << "signalfd() failed while starting the watchdog";
    return 1;
  }

  supervise::ProcessSpec spec;
  spec.name = "master";
  spec.argv = options.master_argv;
  std::vector<std::string> fds;
  // Inherited at the same numbers, from 3 up, in listener order.
  for (size_t i = 0; i < listeners.size(); ++i) {
    int child_fd = 3 + static_cast<int>(i);
    spec.inherit_fds.emplace_back(listeners[i].get(), child_fd);
    fds.push_back(absl::StrCat(options.listener_names[i], "=", child_fd));
  }
  spec.argv.push_back(absl::StrCat("--listen_fds=", absl::StrJoin(fds, ",")));

  // The watchdog holds the listeners: while it runs, clients queue in the
  // backlog for the next master. Giving up would turn them all away, so a
  // config error (status 2) or a crash loop only slows the restarts down.
  supervise::BackoffPolicy policy = options.backoff;
  policy.never_give_up = true;
  supervise::ProcessTable table(policy);
  // The master inherits our environment (its flags may depend on it).
  std::vector<std::pair<std::string, std::string>> env;
  for (char** e = environ; *e != nullptr; ++e) {
    absl::string_view kv(*e);
    size_t eq = kv.find('=');
    if (eq == absl::string_view::npos) continue;
    env.emplace_back(std::string(kv.substr(0, eq)),
                     std::string(kv.substr(eq + 1)));
  }
  table.set_base_env(env);
  // The log writer (docs/logs.md): in this table, so it is restarted like
  // the master; started first, so the first master's workers have it. Every
  // master gets the link after the listeners.
  std::unique_ptr<logwriter::SupervisedLogWriter> log_writer;
  if (!options.log_writer_command.empty()) {
    absl::StatusOr<std::unique_ptr<logwriter::SupervisedLogWriter>> started =
        logwriter::SupervisedLogWriter::Start(options.log_writer_command,
                                              &table);
    if (started.ok()) {
      log_writer = *std::move(started);
      const int child_fd = 3 + static_cast<int>(listeners.size());
      spec.inherit_fds.emplace_back(log_writer->master_end(), child_fd);
      spec.argv.push_back(absl::StrCat("--log_writer_fd=", child_fd));
    } else {
      LOG(ERROR) << "no log writer: " << started.status().message()
                 << "; workers write their log files directly";
    }
  }
  int slot = table.Add(spec);
  status = table.Start(slot);
  if (status.ok()) {
    LOG(INFO) << "watchdog " << getpid() << " started master "
              << table.pid(slot);
  } else {
    LOG(ERROR) << "watchdog: cannot start the master: " << status.message()
               << "; retrying after back-off";
  }

  bool stopping = false;
  std::deque<absl::Time> recent_exits;  // within crash_loop_window
  while (true) {
    const pid_t running = table.pid(slot);
    pollfd fds_to_poll[2] = {{signal_fd.get(), POLLIN, 0},
                             {table.pidfd(slot), POLLIN, 0}};
    int n = poll(fds_to_poll, table.pidfd(slot) >= 0 ? 2 : 1, 100);
    if (n < 0 && errno != EINTR) {
      PLOG(ERROR) << "poll() failed in the watchdog loop";
      return 1;
    }
    signalfd_siginfo info;
    while (read(signal_fd.get(), &info, sizeof(info)) == sizeof(info)) {
      int sig = info.ssi_signo;
      if (sig == SIGCHLD) continue;
      pid_t master = table.pid(slot);
      if (sig == SIGTERM || sig == SIGINT) {
        LOG(INFO) << "watchdog: signal " << sig << ", stopping the master";
        stopping = true;
        table.Stop(slot, options.stop_grace);
      } else if (sig == SIGUSR1 && log_writer != nullptr) {
        log_writer->Reopen();  // the writer holds every log file
      } else if (master > 0) {
        kill(master, sig);  // SIGHUP: reload (SIGUSR1: no writer to ask)
      }
    }
    if (table.pidfd(slot) >= 0 && (fds_to_poll[1].revents & POLLIN)) {
      table.OnExit(slot);
    }
    table.ReapOrphans();
    // Decide on the exit whichever path reaped the master (its pidfd, or
    // ReapOrphans).
    if (running != 0 && table.pid(slot) != running) {
      const std::optional<supervise::ExitStatus> exit = table.last_exit(slot);
      const std::string how =
          exit ? exit->ToString() : std::string("an unknown status");
      if (stopping) {
        LOG(INFO) << "watchdog: master pid " << running << " stopped ("
                  << how << "), exiting";
        return 0;
      }
      if (exit && exit->exited() && exit->code == 0) {
        // The master exits 0 only when asked to stop (ddvctl stop, or a
        // signal sent to it directly): that is final, not a crash.
        LOG(INFO) << "watchdog: master stopped on request, exiting";
        table.Stop(slot, absl::ZeroDuration());  // cancels the restart
        return 0;
      }
      const absl::Time now = absl::Now();
      recent_exits.push_back(now);
      while (recent_exits.front() <= now - policy.crash_loop_window) {
        recent_exits.pop_front();
      }
      const std::string next = absl::StrCat(
          "restarting in ",
          absl::FormatDuration(absl::Ceil(
              std::max(table.restart_at(slot) - now, absl::ZeroDuration()),
              absl::Milliseconds(1))),
          "; the listeners stay open and clients wait in the backlog");
      const bool config_error =
          exit && exit->exited() && exit->code == supervise::kExitNoRestart;
      if (static_cast<int>(recent_exits.size()) > policy.crash_loop_limit) {
        LOG(ERROR) << "watchdog: the master is crash-looping ("
                   << recent_exits.size() << " exits within "
                   << absl::FormatDuration(policy.crash_loop_window)
                   << "; the last, pid " << running << ", " << how
                   << (config_error ? ": it refused its config or flags" : "")
                   << "); still retrying, at most "
                   << absl::FormatDuration(policy.max) << " apart: " << next;
      } else if (config_error) {
        LOG(ERROR) << "watchdog: master pid " << running << " exited with "
                   << how << ": it refused its config or flags (see its "
                   << "log); " << next;
      } else {
        LOG(WARNING) << "watchdog: master pid " << running << " ended with "
                     << how << "; " << next;
      }
    }
    if (table.pid(slot) == 0 &&
        (stopping || table.state(slot) == supervise::ProcessState::kExited)) {
      LOG(INFO) << "watchdog: master stopped, exiting";
      return 0;
    }
    table.RestartDue(absl::Now());
    if (running == 0 && table.pid(slot) != 0) {
      LOG(INFO) << "watchdog: started master " << table.pid(slot);
    }
  }
}

}  // namespace watchdog
}  // namespace ddv
