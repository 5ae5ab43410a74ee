// ddvctl: the control CLI. `status [--json]`, `top`, `reload`, `stop`,
// `metrics`, `restart SITE`, `upgrade`, `reopen`, against --control_socket. Every
// failure exits non-zero with the reason on stderr and an exit code that
// says which kind of failure it was (kExitCodes below, `ddvctl --help`).
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gflags/gflags.h"
#include "nlohmann/json.hpp"
#include "src/cli/flag_help.h"
#include "src/control/control_client.h"
#include "src/control/top.h"

DEFINE_string(control_socket, "/tmp/ddv-demo/control.sock",
              "the master's control socket ([master] control_socket)");
DEFINE_int32(timeout_ms, 5000, "give up waiting for the master after this long");
DEFINE_bool(json, false, "status: print the raw JSON");
DEFINE_double(interval, 1.0,
              "top: seconds between two samples (at least 0.1)");
DEFINE_bool(once, false,
            "top: take two samples --interval apart, print one frame to "
            "standard output and exit (for scripts; like top -b -n 1)");

namespace {

// `ddvctl --help` (src/cli/flag_help.h). tests/package/man_pages_test.py
// reads its "commands:" and "exit codes:" blocks; keep the exit codes in
// step with control_client.h and docs/ddvctl.md.
constexpr char kCommands[] =
    R"(commands:
  status [--json]  the master, its listeners, sites, hosts and claimed
                   hosts, and workers (--json: the raw object)
  top [--interval=SECONDS] [--once]
                   live view of each site's connection and refusal rates
                   and each worker's outstanding handoffs and restarts,
                   every --interval; q quits (--once: one frame to stdout)
  metrics          counters in Prometheus text format
  reload           re-read the config file; on a bad file, its errors
                   (FILE:LINE:COL: ...) and the running config is kept
  stop             drain and stop the master
  restart SITE     replace SITE's workers one at a time
  upgrade          run the ddv_master binary now on disk: it checks the
                   last good config, the master hands over to it and the
                   watchdog re-executes it in place; the workers keep
                   running and are adopted. Waits (up to 30 s, or
                   --timeout_ms if longer) until the new master answers
  reopen           reopen every log file (after logrotate moved them);
                   workers are not touched
)";

constexpr char kExitCodes[] =
    R"(exit codes:
  0  done
  1  the master refused or failed the command (its reason on stderr), or
     another error talking to it
  2  bad ddvctl command line
  3  the master is not running (no control socket, or nobody listening)
  4  the master did not answer in time (busy or stuck)
  5  permission denied: only root, the master's user and members of
     [master] control_socket_group may use the control socket
)";

const ddv::cli::HelpText& Help() {
  static const auto* help = new ddv::cli::HelpText{
      "usage: ddvctl [FLAG...] COMMAND [SITE]\n"
      "\n"
      "Controls a running ddv_master over its control socket (ddvctl(8)).\n",
      kCommands,
      {
          {"Connecting", "", {"control_socket=PATH", "timeout_ms=N"}},
          {"status", "", {"json"}},
          {"top", "", {"interval=SECONDS", "once"}},
      },
      kExitCodes,
      "src/ddvctl_main.cc",
  };
  return *help;
}

std::string Usage() { return ddv::cli::RenderHelp(Help(), false); }

void PrintStatus(const std::string& text) {
  nlohmann::json status = nlohmann::json::parse(text, nullptr, false);
  if (status.is_discarded()) {
    std::printf("%s", text.c_str());
    return;
  }
  std::printf("master pid %d, up %llds, config %s%s\n",
              status.value("pid", 0),
              static_cast<long long>(status.value("uptime_seconds", 0)),
              status.value("config", std::string()).c_str(),
              status.value("stopping", false) ? " (stopping)" : "");
  for (const auto& l : status["listeners"]) {
    std::printf("listener %-10s %-22s %s\n",
                l.value("name", std::string()).c_str(),
                l.value("address", std::string()).c_str(),
                l.value("protocol", std::string()).c_str());
  }
  for (const auto& s : status["sites"]) {
    std::vector<std::string> hosts = s.value("hosts", std::vector<std::string>());
    std::printf("site %-10s%s%s hosts: %s\n",
                s.value("id", std::string()).c_str(),
                s.value("default", false) ? " (default)" : "",
                s.value("failed", false) ? " FAILED" : "",
                hosts.empty() ? "-" : absl::StrJoin(hosts, " ").c_str());
    std::vector<std::string> claimed;
    for (const auto& c : s.value("claimed_hosts", nlohmann::json::array())) {
      claimed.push_back(c.value("host", std::string()) + " (#" +
                        std::to_string(c.value("worker", 0)) + ")");
    }
    for (const auto& c : s.value("claimed_default", nlohmann::json::array())) {
      claimed.push_back("default (#" + std::to_string(c.get<int>()) + ")");
    }
    if (!claimed.empty()) {
      std::printf("  claimed: %s\n", absl::StrJoin(claimed, " ").c_str());
    }
    for (const auto& w : s["workers"]) {
      std::printf("  #%d pid %-7d %-9s restarts %d outstanding %d\n",
                  w.value("index", 0), w.value("pid", 0),
                  w.value("state", std::string()).c_str(),
                  w.value("restarts", 0), w.value("outstanding", 0));
    }
  }
}

// The pid in a status reply, 0 if there is none.
int MasterPid(const absl::StatusOr<std::string>& reply) {
  if (!reply.ok()) return 0;
  nlohmann::json status = nlohmann::json::parse(*reply, nullptr, false);
  if (!status.is_object()) return 0;
  auto pid = status.find("pid");
  return pid != status.end() && pid->is_number_integer() ? pid->get<int>()
                                                         : 0;
}

int PrintFailure(const absl::Status& status) {
  std::string message(status.message());
  if (message.empty() || message.back() != '\n') message += '\n';
  std::fprintf(stderr, "ddvctl: %s", message.c_str());
  return ddv::control::ExitCodeFor(status);
}

// `upgrade`: the master answers once the watchdog has checked the new
// binary; the new master then has to come up and answer status.
int Upgrade() {
  const absl::Duration timeout =
      std::max(absl::Seconds(30), absl::Milliseconds(FLAGS_timeout_ms));
  const absl::Time deadline = absl::Now() + timeout;
  const absl::Duration each = absl::Milliseconds(FLAGS_timeout_ms);
  absl::StatusOr<std::string> before =
      ddv::control::SendControlCommand(FLAGS_control_socket, "status", each);
  if (!before.ok()) return PrintFailure(before.status());
  const int old_pid = MasterPid(before);
  absl::StatusOr<std::string> reply = ddv::control::SendControlCommand(
      FLAGS_control_socket, "upgrade", timeout);
  if (!reply.ok()) return PrintFailure(reply.status());
  std::printf("%s", reply->c_str());
  while (absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));
    absl::StatusOr<std::string> now = ddv::control::SendControlCommand(
        FLAGS_control_socket, "status", each);
    const int pid = MasterPid(now);
    if (pid != 0 && pid != old_pid) {
      std::printf("ok: master %d replaced by %d\n", old_pid, pid);
      return ddv::control::kExitOk;
    }
  }
  std::fprintf(stderr,
               "ddvctl: no new master answered within %s (see the "
               "watchdog's log)\n",
               absl::FormatDuration(timeout).c_str());
  return ddv::control::kExitNoAnswer;
}

// `top`: the live view, or one frame with --once.
int Top() {
  if (!(FLAGS_interval >= 0.1)) {
    std::fprintf(stderr, "ddvctl: --interval must be at least 0.1 seconds\n");
    return ddv::control::kExitUsage;
  }
  ddv::control::TopOptions options;
  options.control_socket = FLAGS_control_socket;
  options.interval = absl::Seconds(FLAGS_interval);
  options.timeout = absl::Milliseconds(FLAGS_timeout_ms);
  if (FLAGS_once) return ddv::control::RunTopOnce(options);
  // Keys wait while a sample is asked for: a stuck master must not keep q
  // from quitting for long.
  options.timeout = std::min(options.timeout,
                             std::max(options.interval, absl::Seconds(1)));
  return ddv::control::RunTop(options);
}

}  // namespace

int main(int argc, char** argv) {
  ddv::cli::ParseFlags(Help(), &argc, &argv);
  if (argc < 2) {
    std::fprintf(stderr, "%s", Usage().c_str());
    return ddv::control::kExitUsage;
  }
  if (std::strcmp(argv[1], "help") == 0) {
    std::printf("%s", Usage().c_str());
    return ddv::control::kExitOk;
  }
  std::string command = argv[1];
  if (command == "restart") {
    if (argc != 3) {
      std::fprintf(stderr, "usage: ddvctl restart SITE\n");
      return ddv::control::kExitUsage;
    }
    command += std::string(" ") + argv[2];
  } else if (command != "status" && command != "metrics" &&
             command != "reload" && command != "stop" &&
             command != "upgrade" && command != "reopen" && command != "top") {
    std::fprintf(stderr, "ddvctl: unknown command \"%s\"\n\n%s",
                 command.c_str(), Usage().c_str());
    return ddv::control::kExitUsage;
  } else if (argc > 2) {
    std::fprintf(stderr, "ddvctl: %s takes no argument\n\n%s",
                 command.c_str(), Usage().c_str());
    return ddv::control::kExitUsage;
  }
  if (command == "upgrade") return Upgrade();
  if (command == "top") return Top();
  absl::StatusOr<std::string> reply = ddv::control::SendControlCommand(
      FLAGS_control_socket, command, absl::Milliseconds(FLAGS_timeout_ms));
  if (!reply.ok()) {
    std::string message(reply.status().message());
    if (message.empty() || message.back() != '\n') message += '\n';
    std::fprintf(stderr, "ddvctl: %s", message.c_str());
    return ddv::control::ExitCodeFor(reply.status());
  }
  if (command == "status" && !FLAGS_json) {
    PrintStatus(*reply);
  } else {
    std::printf("%s", reply->c_str());
  }
  return ddv::control::kExitOk;
}
