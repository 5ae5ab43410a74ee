// RunWatchdog: a poll() loop over a signalfd and the master's pidfd.
#include "src/watchdog/watchdog.h"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "glog/logging.h"

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

  supervise::ProcessTable table(options.backoff);
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
  int slot = table.Add(spec);
  status = table.Start(slot);
  if (!status.ok()) {
    LOG(ERROR) << "cannot start the master: " << status;
    return 1;
  }
  LOG(INFO) << "watchdog " << getpid() << " started master "
            << table.pid(slot);

  bool stopping = false;
  while (true) {
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
      } else if (master > 0) {
        kill(master, sig);  // SIGHUP reload, SIGUSR1: the master's to answer
      }
    }
    if (table.pidfd(slot) >= 0 && (fds_to_poll[1].revents & POLLIN)) {
      table.OnExit(slot);
      std::optional<supervise::ExitStatus> exit = table.last_exit(slot);
      if (!stopping && exit && exit->exited() && exit->code == 0) {
        // The master exits 0 only when asked to stop (ddvctl stop, or a
        // signal sent to it directly): that is final, not a crash.
        LOG(INFO) << "watchdog: master stopped on request";
        table.Stop(slot, absl::ZeroDuration());
        return 0;
      }
      if (!stopping && table.state(slot) != supervise::ProcessState::kDone &&
          table.state(slot) != supervise::ProcessState::kFailed) {
        LOG(WARNING) << "watchdog: master "
                     << (exit ? exit->ToString() : std::string("exited"))
                     << "; restarting after back-off";
      }
    }
    table.ReapOrphans();
    // Decide on the state, whichever path reaped the master (its pidfd, or
    // ReapOrphans) and even when it was in back-off with no process at all.
    if (table.pid(slot) == 0) {
      supervise::ProcessState state = table.state(slot);
      std::optional<supervise::ExitStatus> exit = table.last_exit(slot);
      if (stopping || state == supervise::ProcessState::kExited) {
        LOG(INFO) << "watchdog: master stopped, exiting";
        return 0;
      }
      if (state == supervise::ProcessState::kDone ||
          state == supervise::ProcessState::kFailed) {
        LOG(ERROR) << "watchdog: master "
                   << (exit ? exit->ToString() : std::string("exited"))
                   << "; not restarting";
        return exit && exit->code == supervise::kExitNoRestart ? 2 : 1;
      }
    }
    table.RestartDue(absl::Now());
  }
}

}  // namespace watchdog
}  // namespace ddv
