// ddvctl: the control CLI. `status [--json]`, `top`, `reload`, `stop`,
// `metrics`, `restart SITE`, `upgrade`, `reopen`, against --control_socket. Every
// failure exits non-zero with the reason on stderr and an exit code that
// says which kind of failure it was (kExitCodes below, `ddvctl --help`).
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gflags/gflags.h"
#include "nlohmann/json.hpp"
#include "src/cli/flag_help.h"
#include "src/control/control_client.h"
#include "src/control/top.h"

DEFINE_string(control_socket, "",
              "the master's control socket ([master] control_socket); "
              "default: $DDV_CONTROL_SOCKET, else /run/ddv/control.sock "
              "when it exists (the service), else the demo's "
              "/tmp/ddv-demo/control.sock");
namespace {
constexpr char kServiceSocket[] = "/run/ddv/control.sock";
constexpr char kDemoSocket[] = "/tmp/ddv-demo/control.sock";
}  // namespace

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
// "12.3 MiB": memory for people.
std::string Bytes(const nlohmann::json& value) {
  if (!value.is_number()) return "-";
  double bytes = value.get<double>();
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  while (bytes >= 1024 && unit < 4) {
    bytes /= 1024;
    ++unit;
  }
  return unit == 0 ? absl::StrFormat("%.0f B", bytes)
                   : absl::StrFormat("%.1f %s", bytes, units[unit]);
}

// A site's limits, usage and caps (docs/isolation.md), three lines.
void PrintIsolation(const nlohmann::json& s) {
  if (!s.contains("connections")) return;  // a master before these
  std::vector<std::string> limits;
  const nlohmann::json set = s.value("limits", nlohmann::json::object());
  for (const auto& [name, value] : set.items()) {
    limits.push_back(absl::StrCat(
        name, "=",
        value.is_string() ? value.get<std::string>() : value.dump()));
  }
  std::printf("  limits: %s cwd=%s\n",
              limits.empty() ? "(the master's)"
                             : absl::StrJoin(limits, " ").c_str(),
              s.value("cwd", std::string("/")).c_str());
  const nlohmann::json usage = s.value("usage", nlohmann::json::object());
  const nlohmann::json cgroup = s.value("cgroup", nlohmann::json());
  std::string memory = Bytes(usage.value("memory_bytes", nlohmann::json()));
  std::string where = "no cgroup";
  if (cgroup.is_object()) {
    where = absl::StrCat("cgroup ", cgroup.value("path", std::string()));
    const nlohmann::json max = cgroup.value("memory_max", nlohmann::json());
    if (max.is_number()) {
      absl::StrAppend(&memory, " of ", Bytes(max),
                      cgroup.value("memory_max_applied", false)
                          ? ""
                          : " (not applied)");
    }
    const nlohmann::json weight = cgroup.value("cpu_weight", nlohmann::json());
    if (weight.is_number()) {
      absl::StrAppend(&where, ", cpu.weight ", weight.dump(),
                      cgroup.value("cpu_weight_applied", false)
                          ? ""
                          : " (not applied)");
    }
  }
  const nlohmann::json cpu = usage.value("cpu_usec", nlohmann::json());
  std::printf("  usage: %d processes, memory %s, cpu %s (%s)\n",
              usage.value("processes", 0), memory.c_str(),
              cpu.is_number()
                  ? absl::StrFormat("%.2f s", cpu.get<double>() / 1e6).c_str()
                  : "-",
              where.c_str());
  const nlohmann::json c = s["connections"];
  auto cap = [&c](const char* name, const char* prefix) {
    const nlohmann::json value = c.value(name, nlohmann::json());
    return value.is_number() ? absl::StrCat(prefix, value.dump())
                             : std::string();
  };
  std::printf(
      "  connections: open %llu%s, pending %llu%s, refused %llu at "
      "max_pending, %llu at max_connections\n",
      c.value("open", 0ULL), cap("max_connections", " (with pending) of ").c_str(),
      c.value("pending", 0ULL), cap("max_pending", " of ").c_str(),
      c.value("refused_max_pending", 0ULL),
      c.value("refused_max_connections", 0ULL));
}

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
  // More than one master loop (docs/shards.md): one line each.
  const nlohmann::json shards = status.value("shards", nlohmann::json::array());
  if (shards.size() > 1) {
    for (const auto& shard : shards) {
      if (shard.value("primary", false)) {
        std::printf("shard %d (primary) holds %u\n", shard.value("id", 0),
                    shard.value("connections", 0u));
        continue;
      }
      std::printf(
          "shard %d holds %u; accepted %llu, handed off %llu, forwarded %llu\n",
          shard.value("id", 0), shard.value("connections", 0u),
          static_cast<unsigned long long>(shard.value("accepted", 0ull)),
          static_cast<unsigned long long>(shard.value("handed_off", 0ull)),
          static_cast<unsigned long long>(shard.value("forwarded", 0ull)));
    }
  }
  for (const auto& l : status["listeners"]) {
    // More than one socket: a SO_REUSEPORT group, one per loop (shards).
    const int sockets = l.value("sockets", 1);
    std::printf("listener %-10s %-22s %s%s\n",
                l.value("name", std::string()).c_str(),
                l.value("address", std::string()).c_str(),
                l.value("protocol", std::string()).c_str(),
                sockets > 1 ? absl::StrCat(" (", sockets, " sockets)").c_str()
                            : "");
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
    PrintIsolation(s);
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

// Where the master is when --control_socket is not given: an operator's
// $DDV_CONTROL_SOCKET, the packaged service's socket once it exists, or the
// demo's (`bazel run //src:ddv_master` with no config).
std::string DefaultControlSocket() {
  const char* env = std::getenv("DDV_CONTROL_SOCKET");
  if (env != nullptr && env[0] != '\0') return env;
  struct stat st;
  if (::stat(kServiceSocket, &st) == 0 && S_ISSOCK(st.st_mode)) {
    return kServiceSocket;
  }
  return kDemoSocket;
}

}  // namespace

int main(int argc, char** argv) {
  ddv::cli::ParseFlags(Help(), &argc, &argv);
  if (FLAGS_control_socket.empty()) {
    FLAGS_control_socket = DefaultControlSocket();
  }
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
