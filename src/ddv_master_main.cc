// ddv_master: the front door. The only place its flags are defined; they
// become plain option structs here and nothing below reads a flag.
//
// Roles: with --watchdog (default) this process binds the listeners and runs
// a second ddv_master (--watchdog=false --listen_fds=...) as the master,
// restarting it if it dies, and a third (--log_writer) as the log writer
// beside it (docs/logs.md). With --watchdog=false it binds (or inherits) the
// listeners and runs the master loop itself, starting its own log writer
// unless the watchdog gave it one (--log_writer_fd). Under systemd
// (docs/package.md) the listeners may come from socket activation instead
// of being bound, and the process systemd started (the watchdog, or a
// master alone) tells it READY=1 and the rest (docs/lifecycle.md).
#include <sched.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "src/base/socket_address.h"
#include "src/base/sd_notify.h"
#include "src/base/socket_activation.h"
#include "src/cli/flag_help.h"
#include "src/config/config.h"
#include "src/config/config_snapshot.h"
#include "src/logwriter/log_writer.h"
#include "src/logwriter/log_writer_client.h"
#include "src/logwriter/writer_process.h"
#include "src/watchdog/service_notifier.h"
#include "src/watchdog/upgrade_state.h"
#include "src/watchdog/watchdog.h"
#include "src/master/config_apply.h"
#include "src/master/listener_socket.h"
#include "src/master/master.h"
#include "src/supervise/spawn.h"
#include "src/tls/self_signed.h"

DEFINE_string(config, "",
              "TOML config file; empty runs the embedded demo "
              "(docs/design.md)");
DEFINE_bool(check_config, false, "validate --config, print a summary, exit");
DEFINE_bool(watchdog, true,
            "run as the watchdog that owns the listeners and restarts the "
            "master; false runs the master alone");
DEFINE_string(listen_fds, "",
              "internal: listening sockets inherited from the watchdog, "
              "name=fd,...");
DEFINE_int32(watchdog_fd, -1,
             "internal, set by the watchdog: its link to this master, over "
             "which running workers are adopted and recorded "
             "(docs/lifecycle.md)");
DEFINE_int32(watchdog_state_fd, -1,
             "internal, set by a watchdog re-executing itself for an "
             "upgrade: its listeners and workers (docs/lifecycle.md)");
DEFINE_string(config_snapshot, "",
              "internal, set by the watchdog: the last good config "
              "(docs/master.md). A master started with it runs that file "
              "when it exists and writes every config it applies there; "
              "--config stays the file reloads read and errors name");
DEFINE_bool(log_writer, false,
            "internal: run as the log writer (docs/logs.md), reading its "
            "link on fd 3");
DEFINE_bool(log_writer_park, false,
            "internal, with --log_writer: the watchdog's park is on fds 4 "
            "and 5");
DEFINE_int32(log_writer_fd, -1,
             "internal, set by the watchdog: the master's end of the link to "
             "the log writer");
DEFINE_string(control_socket, "",
              "override [master] control_socket (ddvctl talks to it)");
DEFINE_string(handoff, "", "override [master] handoff: scm_rights or pidfd");
DEFINE_string(metrics_address, "",
              "serve Prometheus text at /metrics and /healthz on IP:PORT, "
              "e.g. 127.0.0.1:9150; overrides [master] metrics_address "
              "(docs/metrics.md)");
DEFINE_string(demo_dir, "/tmp/ddv-demo",
              "where the demo writes its config, logs and control socket");
DEFINE_int32(demo_http_port, 8080, "demo HTTP port on 127.0.0.1");
DEFINE_int32(demo_tls_port, 8443, "demo TLS port on 127.0.0.1");
DEFINE_string(demo_tls_cert, "",
              "demo: PEM certificate for the demo hosts (default: a "
              "self-signed one made at start in --demo_dir)");
DEFINE_string(demo_tls_key, "", "demo: the key of --demo_tls_cert");
DEFINE_uint32(ring_entries, 4096, "io_uring submission queue entries");
DEFINE_bool(sqpoll, false, "let a kernel thread poll the submission queue");
DEFINE_bool(defer_taskrun, true, "IORING_SETUP_DEFER_TASKRUN");
DEFINE_uint32(peek_buffers, 1024, "provided peek buffers (power of two)");
DEFINE_uint32(peek_buffer_size, 4096, "bytes per provided peek buffer");
DEFINE_uint32(max_connections, 16384,
              "connections the master holds at once (accept..handoff); at "
              "the limit it stops accepting and clients wait in the listen "
              "backlog (ddv_accept_paused_total)");
DEFINE_int32(backlog, 4096,
             "listen(2) backlog of each listening socket (with --shards, "
             "each listener has one per loop): where clients wait while no "
             "master accepts (at --max_connections, or while the master "
             "restarts)");
DEFINE_uint32(handoff_batch, 32, "connections per handoff message (1..64)");
DEFINE_string(shards, "1",
              "master event loops (1..64, or auto: one per CPU the master "
              "may run on), each accepting on its own socket of every "
              "listener (SO_REUSEPORT); --max_connections is split among "
              "them (docs/shards.md)");
DEFINE_uint64(shard_fault_after, 0,
              "tests: shard 1's loop fails after accepting N connections, "
              "once, to exercise its replacement (0: never)");
DEFINE_string(shard_fault, "fail",
              "tests: what --shard_fault_after does to the shard: fail "
              "(it is replaced), lost (it fails and its replacement "
              "cannot start) or hang (its loop stops turning)");
DEFINE_string(start_hang_token, "",
              "tests: a master that removes this file as it starts hangs "
              "there, after starting its workers and before it serves; the "
              "next finds no file and starts clean (one file, one hang)");
DEFINE_bool(fault_no_heartbeats, false,
            "tests: the master neither offers heartbeats in its `serving` "
            "nor sends them, as one from before the watchdog's hang check");
DEFINE_int32(worker_wait_ms, 1000,
             "how long a connection waits for a live worker before 503");
DEFINE_int32(defer_accept_seconds, 1,
             "TCP_DEFER_ACCEPT on http/tls listeners (0: off)");
DEFINE_int32(backoff_initial_ms, 100,
             "first restart delay of a dead worker, and of a dead master "
             "under the watchdog; it doubles with each restart in a row");
DEFINE_int32(backoff_max_ms, 30000,
             "longest restart delay, for workers and for the watchdog's "
             "master (which it retries forever while holding the listeners)");
DEFINE_int32(crash_loop_limit, 5,
             "exits within --crash_loop_window_s that mark a site failed "
             "(for the master: logged as a crash loop, still retried)");
DEFINE_int32(crash_loop_window_s, 60, "crash-loop window");
DEFINE_int32(master_hang_timeout, 10,
             "seconds a serving master may send the watchdog nothing (it "
             "reports from its event loop every second) before the watchdog "
             "kills it as hung and starts another; 0: never (at least 2)");
DEFINE_int32(master_start_timeout, 60,
             "seconds a master started by the watchdog may take to say it "
             "serves (it does once its workers are up, or after 30 s, or "
             "half of this if less) before the watchdog kills it as hung "
             "starting and starts another; 0: never (at least 2)");
DEFINE_int32(heartbeat_interval_ms, 5000, "how often the master probes workers");
DEFINE_uint32(node_max_unaccepted, 128,
              "connections a Node worker may hold before answering "
              "`accepted` (1 = one in flight, as Node's own primary)");
DEFINE_string(node_preload, "/usr/lib/ddv/node/ddv-worker/preload.js",
              "the ddv-worker package's preload.js, which the master adds to "
              "every Node worker's NODE_OPTIONS (--require) so a stock app "
              "answers 421 to a Host another site serves; empty: none");
DEFINE_int32(heartbeat_timeout_ms, 20000,
             "a worker silent this long is killed and replaced");
DEFINE_int32(drain_timeout, 30,
             "seconds any drain may take: a graceful stop (SIGTERM, "
             "`ddvctl stop`), workers retired by a reload, each worker of a "
             "rolling restart. Workers are asked to finish what they hold "
             "and exit; what still runs after this gets SIGTERM, and SIGKILL "
             "5 s later");

namespace {

constexpr int kExitConfigError = 2;

// --help: the flags above by purpose (package/man/ddv_master.8 has the same
// groups, and tests/package/man_pages_test.py checks that they agree).
const ddv::cli::HelpText& Help() {
  static const auto* help = new ddv::cli::HelpText{
      "usage: ddv_master [--config=FILE] [--check_config] "
      "[--watchdog=false] [FLAG...]\n"
      "\n"
      "The ddv front door: routes connections by Host or SNI to per-site\n"
      "worker processes (ddv_master(8), docs/design.md). Without --config\n"
      "it runs the embedded demo.\n",
      "",
      {
          {"Configuration and roles", "",
           {"config=FILE", "check_config", "watchdog=BOOL",
            "control_socket=PATH", "metrics_address=IP:PORT"}},
          {"Listeners and accepting", "",
           {"max_connections=N", "backlog=N", "defer_accept_seconds=N",
            "shards=N|auto"}},
          {"Handoff", "",
           {"handoff=MODE", "handoff_batch=N", "worker_wait_ms=MS",
            "node_max_unaccepted=N", "node_preload=PATH"}},
          {"io_uring", "",
           {"ring_entries=N", "sqpoll", "defer_taskrun=BOOL",
            "peek_buffers=N", "peek_buffer_size=BYTES"}},
          {"Supervision: workers and the master's restarts", "",
           {"drain_timeout=SECONDS", "heartbeat_interval_ms=MS",
            "heartbeat_timeout_ms=MS", "backoff_initial_ms=MS",
            "backoff_max_ms=MS", "crash_loop_limit=N",
            "crash_loop_window_s=SECONDS", "master_hang_timeout=SECONDS",
            "master_start_timeout=SECONDS"}},
          {"Logging",
           "glog's; without --log_dir everything goes to standard error. "
           "Workers' output goes to their site's log files through the log "
           "writer (docs/logs.md).",
           {"log_dir=DIR", "minloglevel=N", "v=N"}},
          {"The demo (without --config)", "",
           {"demo_dir=DIR", "demo_http_port=PORT", "demo_tls_port=PORT",
            "demo_tls_cert=FILE", "demo_tls_key=FILE"}},
          {"Internal",
           "Set by the watchdog on the processes it starts; not for "
           "operators.",
           {"listen_fds=NAME=FD,...", "config_snapshot=FILE", "watchdog_fd=FD",
            "watchdog_state_fd=FD", "log_writer", "log_writer_park",
            "log_writer_fd=FD"},
           /*full_only=*/true},
          {"Fault injection",
           "For tests of what survives a failure; not for operators.",
           {"shard_fault_after=N", "shard_fault=fail|lost|hang",
            "start_hang_token=FILE", "fault_no_heartbeats"},
           /*full_only=*/true},
      },
      "",
      "src/ddv_master_main.cc",
  };
  return *help;
}

std::string SelfDir() {
  char path[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
  if (n <= 0) return ".";
  path[n] = '\0';
  std::string self(path);
  return self.substr(0, self.rfind('/'));
}

// The embedded demo (docs/design.md): written as a real config file so
// reload and --check_config work on it exactly as on a deployment's. Returns
// "" after printing why when the demo cannot be set up.
std::string WriteDemoConfig() {
  const std::string dir = FLAGS_demo_dir;
  mkdir(dir.c_str(), 0755);
  const std::string hello = SelfDir() + "/ddv_hello";
  std::string cert = FLAGS_demo_tls_cert;
  std::string key = FLAGS_demo_tls_key;
  if (cert.empty() != key.empty()) {
    std::fprintf(stderr, "--demo_tls_cert and --demo_tls_key go together\n");
    return "";
  }
  if (cert.empty()) {
    cert = dir + "/demo.crt";
    key = dir + "/demo.key";
    absl::Status made = ddv::tls::WriteSelfSignedCertificate(
        {"a.localhost", "*.a.localhost", "b.localhost", "localhost"}, cert,
        key, absl::Hours(24 * 30));
    if (!made.ok()) {
      std::fprintf(stderr, "cannot make the demo certificate: %s\n",
                   std::string(made.message()).c_str());
      return "";
    }
  }
  const std::string tls = absl::StrCat("tls_cert = [\"", cert,
                                       "\"]\ntls_key = [\"", key, "\"]\n");
  std::string toml = absl::StrCat(R"([master]
control_socket = ")", dir, R"(/control.sock"
peek_timeout_ms = 5000
max_peek_bytes = 16384
handoff = "scm_rights"

[[listener]]
name = "http"
address = "127.0.0.1:)", FLAGS_demo_http_port, R"("
protocol = "http"

[[listener]]
name = "https"
address = "127.0.0.1:)", FLAGS_demo_tls_port, R"("
protocol = "tls"

[[site]]
id = "a"
command = [")", hello, R"(", "--site=a"]
processes = 2
hosts = ["a.localhost", "*.a.localhost"]
log_all = ")", dir, R"(/a.log"
)", tls, R"(

[[site]]
id = "b"
command = [")", hello, R"(", "--site=b"]
processes = 1
hosts = ["b.localhost"]
log_all = ")", dir, R"(/b.log"
)", tls, R"(

[[site]]
id = "fallback"
command = [")", hello, R"(", "--site=fallback"]
processes = 1
default = true
log_all = ")", dir, R"(/fallback.log"
)", tls);
  const std::string path = dir + "/ddv.toml";
  std::ofstream(path) << toml;
  return path;
}

// Raises the soft fd limit to the hard one: the watchdog holds three fds
// per running worker (its record) besides the listeners.
void RaiseFdLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

// Raises the soft fd limit to the hard one, and keeps --max_connections
// below it with room for listeners, worker channels and the ring: running
// out of fds mid-accept is worse than a smaller table.
uint32_t FdBudgetedConnections(uint32_t wanted) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return wanted;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
    getrlimit(RLIMIT_NOFILE, &limit);
  }
  const rlim_t reserve = 1024;
  if (limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur > wanted + reserve) {
    return wanted;
  }
  uint32_t budget =
      limit.rlim_cur > 2 * reserve ? limit.rlim_cur - reserve : limit.rlim_cur / 2;
  if (budget >= wanted) return wanted;  // a small table fits a small limit
  LOG(WARNING) << "--max_connections=" << wanted << " lowered to " << budget
               << " to fit the fd limit of " << limit.rlim_cur;
  return budget;
}

// The CPUs this process may run on (a container's cpuset, taskset), not
// every CPU online.
long AllowedCpus() {
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  return sched_getaffinity(0, sizeof(cpus), &cpus) == 0
             ? CPU_COUNT(&cpus)
             : sysconf(_SC_NPROCESSORS_ONLN);
}

// --shards: a count, or "auto" for one per allowed CPU. 0 on a bad value.
uint32_t ShardsFromFlag() {
  if (FLAGS_shards == "auto") {
    return static_cast<uint32_t>(std::clamp<long>(AllowedCpus(), 1, 64));
  }
  uint32_t shards = 0;
  if (!absl::SimpleAtoi(FLAGS_shards, &shards) || shards > 64) return 0;
  const long cpus = AllowedCpus();
  if (shards > 1 && cpus > 0 && shards > cpus) {
    // Measured (benchmarks/RESULTS.md, "Master shards: a socket per
    // loop"): two loops on one CPU cost 25-29% more master CPU per
    // connection than one.
    LOG(WARNING) << "--shards=" << shards << " with " << cpus
                 << " CPU(s) allowed: the loops share them, and each "
                    "connection costs more than with one loop per CPU "
                    "(docs/shards.md)";
  }
  return shards;
}

ddv::ListenOptions ListenOptionsFromFlags() {
  ddv::ListenOptions listen;
  listen.backlog = FLAGS_backlog;
  listen.defer_accept_seconds = FLAGS_defer_accept_seconds;
  return listen;
}

ddv::master::MasterOptions MasterOptionsFromFlags() {
  ddv::master::MasterOptions options;
  options.ring.entries = FLAGS_ring_entries;
  options.ring.sqpoll = FLAGS_sqpoll;
  options.ring.defer_taskrun = FLAGS_defer_taskrun;
  options.peek_buffers = FLAGS_peek_buffers;
  options.peek_buffer_size = FLAGS_peek_buffer_size;
  // The total across the shards; each loop gets an equal table.
  options.shards = ShardsFromFlag();
  options.max_connections = std::max<uint32_t>(
      1, FdBudgetedConnections(FLAGS_max_connections) / options.shards);
  options.shard_fault_after = FLAGS_shard_fault_after;
  options.shard_fault_hangs = FLAGS_shard_fault == "hang";
  options.shard_fault_lost = FLAGS_shard_fault == "lost";
  options.start_hang_token = FLAGS_start_hang_token;
  options.fault_no_heartbeats = FLAGS_fault_no_heartbeats;
  options.listen = ListenOptionsFromFlags();
  options.handoff_batch = FLAGS_handoff_batch;
  options.worker_wait = absl::Milliseconds(FLAGS_worker_wait_ms);
  options.heartbeat_interval = absl::Milliseconds(FLAGS_heartbeat_interval_ms);
  options.heartbeat_timeout = absl::Milliseconds(FLAGS_heartbeat_timeout_ms);
  options.node_max_unaccepted = FLAGS_node_max_unaccepted;
  options.workers.node_preload = FLAGS_node_preload;
  options.workers.backoff.initial = absl::Milliseconds(FLAGS_backoff_initial_ms);
  options.workers.drain_timeout = absl::Seconds(FLAGS_drain_timeout);
  options.workers.backoff.max = absl::Milliseconds(FLAGS_backoff_max_ms);
  options.workers.backoff.crash_loop_limit = FLAGS_crash_loop_limit;
  options.workers.backoff.crash_loop_window =
      absl::Seconds(FLAGS_crash_loop_window_s);
  return options;
}

// The config a master starts with: the last good config when there is one,
// so a restart never runs a file edited (maybe broken) since; --config stays
// the path reloads read and messages name. Without a usable snapshot: the
// file.
absl::StatusOr<ddv::config::Config> LoadStartConfig(
    const std::string& path, const std::string& snapshot) {
  if (snapshot.empty() || access(snapshot.c_str(), F_OK) != 0) {
    return ddv::config::LoadConfigFile(path);
  }
  absl::StatusOr<ddv::config::Config> good =
      ddv::config::LoadConfigFile(snapshot);
  if (!good.ok()) {
    LOG(ERROR) << "the last good config is unusable, reading " << path
               << " instead: " << good.status().message();
    return ddv::config::LoadConfigFile(path);
  }
  good->path = path;
  // Tell the operator when the file says something else: an edit not yet
  // applied by a reload, or one a reload refused.
  absl::StatusOr<ddv::config::Config> file = ddv::config::LoadConfigFile(path);
  if (!file.ok()) {
    LOG(WARNING) << "running the last good config " << snapshot << "; "
                 << path << " does not load: " << file.status().message();
  } else if (file->text != good->text) {
    LOG(WARNING) << "running the last good config " << snapshot << "; "
                 << path << " has changed since it was applied (a reload "
                 << "applies it)";
  } else {
    LOG(INFO) << "running the last good config " << snapshot;
  }
  return good;
}

// The watchdog's side of the last good config: it starts every master with
// --config_snapshot, and first writes there the text it just validated, so
// the first master runs exactly that and a snapshot left by an earlier run
// is gone. Returns the path, or "" when there can be no snapshot.
std::string PrepareConfigSnapshot(const ddv::config::Config& config) {
  const std::string snapshot =
      ddv::config::SnapshotPathFor(config.master.control_socket);
  if (snapshot.empty()) {
    LOG(WARNING) << "no control socket, so no last good config: a restarted "
                    "master reads "
                 << config.path;
    return "";
  }
  // The master creates the control socket's directory; it may not exist yet.
  std::error_code ignored;
  std::filesystem::create_directories(
      std::filesystem::path(snapshot).parent_path(), ignored);
  absl::Status saved = ddv::config::WriteConfigSnapshot(snapshot, config.text);
  if (saved.ok()) return snapshot;
  // Never leave an older snapshot to be run instead of this config.
  if (unlink(snapshot.c_str()) == 0 || errno == ENOENT) {
    LOG(WARNING) << saved.message()
                 << "; the master writes it once it has started";
    return snapshot;
  }
  LOG(ERROR) << saved.message() << ", and the old one cannot be removed: "
             << "no last good config, a restarted master reads "
             << config.path;
  return "";
}

// The log writer's command line: this binary, logging where the master
// does (glog's --log_dir, or stderr), with the drain its workers get.
std::vector<std::string> LogWriterCommand() {
  return {SelfDir() + "/ddv_master", "--log_dir=" + FLAGS_log_dir,
          absl::StrCat("--v=", FLAGS_v),
          absl::StrCat("--drain_timeout=", FLAGS_drain_timeout)};
}

void PrintDemoBanner(const ddv::config::Config& config) {
  std::printf(
      "ddv demo is up (config %s).\n"
      "  curl -H 'Host: a.localhost' http://127.0.0.1:%d/\n"
      "  curl -H 'Host: b.localhost' http://127.0.0.1:%d/\n"
      "  curl http://127.0.0.1:%d/            # no Host match: site fallback\n"
      "  curl -k --resolve a.localhost:%d:127.0.0.1 https://a.localhost:%d/\n"
      "  bazel run //src:ddvctl -- --control_socket=%s status\n"
      "Stop with Ctrl-C.\n",
      config.path.c_str(), FLAGS_demo_http_port, FLAGS_demo_http_port,
      FLAGS_demo_http_port, FLAGS_demo_tls_port, FLAGS_demo_tls_port,
      config.master.control_socket.c_str());
  std::fflush(stdout);
}

// What systemd asked for in the environment (NOTIFY_SOCKET, WATCHDOG_USEC):
// for the process it started, which alone notifies. A malformed value is
// logged and leaves the watchdog pings off.
ddv::watchdog::ServiceNotifierOptions NotifyOptionsFromEnv() {
  ddv::watchdog::ServiceNotifierOptions notify;
  absl::StatusOr<ddv::SystemdNotifyEnv> env = ddv::ReadSystemdNotifyEnv();
  if (!env.ok()) {
    LOG(ERROR) << "systemd: " << env.status().message()
               << "; no WATCHDOG=1 pings";
    if (const char* socket = getenv("NOTIFY_SOCKET")) {
      notify.notify_socket = socket;
    }
    return notify;
  }
  notify.notify_socket = env->notify_socket;
  notify.watchdog = env->watchdog;
  return notify;
}

// The listeners at start: the sockets systemd passed (socket activation,
// matched to the config's listeners by name), or bound here. `activated`
// says which. A unit and a config that disagree are a config error.
absl::StatusOr<std::vector<ddv::UniqueFd>> ListenersAtStart(
    const ddv::config::Config& config, const ddv::ListenOptions& listen,
    bool* activated) {
  *activated = false;
  absl::StatusOr<std::vector<ddv::PassedSocket>> passed =
      ddv::TakePassedSockets();
  if (!passed.ok() || !passed->empty()) *activated = true;
  if (!passed.ok()) return passed.status();
  if (passed->empty()) return ddv::master::BindAll(config, listen);
  std::vector<ddv::ListenSpec> specs;
  for (const auto& listener : config.listeners) {
    specs.push_back(ddv::master::ListenSpecFor(listener));
  }
  LOG(INFO) << "socket activation: " << passed->size()
            << " listening sockets passed for " << specs.size()
            << " listeners";
  return ddv::MatchPassedSockets(*std::move(passed), specs);
}

ddv::watchdog::WatchdogOptions WatchdogOptionsFromFlags() {
  RaiseFdLimit();
  ddv::watchdog::WatchdogOptions options;
  // The master drains for --drain_timeout, then gives its workers
  // SIGTERM and 5 s more: SIGKILL it only well after that.
  options.stop_grace = absl::Seconds(FLAGS_drain_timeout) + absl::Seconds(10);
  // The same back-off flags as for workers; the watchdog never gives up.
  options.backoff.initial = absl::Milliseconds(FLAGS_backoff_initial_ms);
  options.backoff.max = absl::Milliseconds(FLAGS_backoff_max_ms);
  options.backoff.crash_loop_limit = FLAGS_crash_loop_limit;
  options.backoff.crash_loop_window = absl::Seconds(FLAGS_crash_loop_window_s);
  options.master_hang_timeout = absl::Seconds(FLAGS_master_hang_timeout);
  options.master_start_timeout = absl::Seconds(FLAGS_master_start_timeout);
  // A reload's new listeners are bound by the watchdog, as the first were.
  options.listen = ListenOptionsFromFlags();
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> original_args(argv, argv + argc);
  ddv::cli::ParseFlags(Help(), &argc, &argv);
  FLAGS_logtostderr = FLAGS_log_dir.empty();
  google::InitGoogleLogging(argv[0]);

  if (FLAGS_log_writer) {
    ddv::logwriter::LogWriterOptions writer;
    writer.link_fd = ddv::logwriter::kWriterLinkFd;
    // Once stopped (its link ended: no watchdog and no master left), the
    // workers still writing are draining: read them as long as that takes.
    writer.stop_grace = absl::Seconds(FLAGS_drain_timeout) + absl::Seconds(10);
    if (FLAGS_log_writer_park) {
      writer.park_send_fd = ddv::logwriter::kWriterParkSendFd;
      writer.park_recv_fd = ddv::logwriter::kWriterParkRecvFd;
    }
    absl::Status status = ddv::logwriter::RunLogWriter(writer);
    if (!status.ok()) {
      LOG(ERROR) << "log writer: " << status;
      return 1;
    }
    return 0;
  }

  if (FLAGS_drain_timeout < 0) {
    std::fprintf(stderr, "--drain_timeout must be 0 or more seconds\n");
    return kExitConfigError;
  }
  // A serving master reports every second (plus up to a loop turn's
  // 100 ms): less than 2 s would kill masters that are merely busy.
  if (FLAGS_master_hang_timeout != 0 && FLAGS_master_hang_timeout < 2) {
    std::fprintf(stderr,
                 "--master_hang_timeout must be 0 (never) or at least 2 "
                 "seconds (a serving master reports every second), not %d\n",
                 FLAGS_master_hang_timeout);
    return kExitConfigError;
  }
  // The master says `serving` after half of it at the latest: less than
  // 2 s would leave it under a second for its own start.
  if (FLAGS_master_start_timeout != 0 && FLAGS_master_start_timeout < 2) {
    std::fprintf(stderr,
                 "--master_start_timeout must be 0 (never) or at least 2 "
                 "seconds (a master says it serves after half of it at the "
                 "latest), not %d\n",
                 FLAGS_master_start_timeout);
    return kExitConfigError;
  }
  if (FLAGS_max_connections == 0) {
    std::fprintf(stderr,
                 "--max_connections must be at least 1 (connections the "
                 "master holds before a worker has them)\n");
    return kExitConfigError;
  }
  if (ShardsFromFlag() == 0) {
    std::fprintf(stderr,
                 "--shards must be 1..64 or auto (master event loops), not "
                 "\"%s\"\n",
                 FLAGS_shards.c_str());
    return kExitConfigError;
  }
  if (FLAGS_shard_fault != "fail" && FLAGS_shard_fault != "hang" &&
      FLAGS_shard_fault != "lost") {
    std::fprintf(stderr,
                 "--shard_fault must be fail, lost or hang, not \"%s\"\n",
                 FLAGS_shard_fault.c_str());
    return kExitConfigError;
  }
  if (FLAGS_node_max_unaccepted == 0) {
    std::fprintf(stderr,
                 "--node_max_unaccepted must be at least 1 (1 = one "
                 "connection in flight per Node worker)\n");
    return kExitConfigError;
  }

  // 0 would leave every routed connection queued forever; a message holds
  // at most kMaxHandoffBatch sockets.
  if (FLAGS_handoff_batch < 1 ||
      FLAGS_handoff_batch > ddv::master::kMaxHandoffBatch) {
    std::fprintf(stderr,
                 "--handoff_batch must be 1..%u (connections per handoff "
                 "message), not %u\n",
                 ddv::master::kMaxHandoffBatch, FLAGS_handoff_batch);
    return kExitConfigError;
  }

  if (FLAGS_watchdog_state_fd >= 0) {
    // A watchdog re-executed for an upgrade: everything it needs comes
    // from the state its previous image saved, not from the config file
    // (which may have been edited since, even broken).
    absl::StatusOr<ddv::watchdog::WatchdogState> state =
        ddv::watchdog::ReadWatchdogState(FLAGS_watchdog_state_fd);
    if (!state.ok()) {
      LOG(ERROR) << "upgrade: " << state.status().message();
      return 1;
    }
    ddv::watchdog::WatchdogOptions options = WatchdogOptionsFromFlags();
    for (const std::string& arg : original_args) {
      if (!absl::StartsWith(arg, "--watchdog_state_fd=")) {
        options.self_argv.push_back(arg);
      }
    }
    options.master_argv = std::move(state->master_argv);
    options.listener_names = std::move(state->listener_names);
    options.log_writer_command = LogWriterCommand();
    // The same pid for systemd: what it was told before still holds.
    options.notify = NotifyOptionsFromEnv();
    options.notify.ready_sent = state->service.ready_sent;
    options.notify.reloading = state->service.reloading;
    options.socket_activated = state->service.socket_activated;
    for (const std::string& why : state->skipped) {
      LOG(ERROR) << "upgrade: not kept: " << why;
    }
    LOG(INFO) << "watchdog " << getpid() << " upgraded in place: "
              << state->listeners.size() << " listeners, "
              << state->workers.size() << " workers kept";
    return ddv::watchdog::RunWatchdog(options, std::move(state->listeners),
                                      std::move(state->workers),
                                      std::move(state->log_writer));
  }

  const bool demo = FLAGS_config.empty();
  const std::string path = demo ? WriteDemoConfig() : FLAGS_config;
  if (path.empty()) return kExitConfigError;
  const bool watchdog = FLAGS_watchdog && FLAGS_listen_fds.empty();
  // The watchdog and --check_config validate the file itself.
  absl::StatusOr<ddv::config::Config> config =
      watchdog || FLAGS_check_config
          ? ddv::config::LoadConfigFile(path)
          : LoadStartConfig(path, FLAGS_config_snapshot);
  if (!config.ok()) {
    std::fprintf(
        stderr, "%s\n",
        ddv::config::DescribeConfigErrors(config.status(), path).c_str());
    return kExitConfigError;
  }
  // The master applies them again to every file a reload loads.
  ddv::master::MasterOverrides overrides;
  overrides.control_socket = FLAGS_control_socket;
  if (FLAGS_handoff == "pidfd") {
    overrides.handoff = ddv::config::HandoffMode::kPidfd;
  } else if (FLAGS_handoff == "scm_rights") {
    overrides.handoff = ddv::config::HandoffMode::kScmRights;
  } else if (!FLAGS_handoff.empty()) {
    std::fprintf(stderr, "--handoff must be scm_rights or pidfd, not \"%s\"\n",
                 FLAGS_handoff.c_str());
    return kExitConfigError;
  }
  if (!FLAGS_metrics_address.empty()) {
    absl::StatusOr<ddv::SocketAddress> metrics =
        ddv::ParseSocketAddress(FLAGS_metrics_address);
    if (!metrics.ok()) {
      std::fprintf(stderr, "--metrics_address: %s\n",
                   std::string(metrics.status().message()).c_str());
      return kExitConfigError;
    }
    overrides.metrics_address = FLAGS_metrics_address;
  }
  ddv::master::ApplyOverrides(overrides, &*config);
  if (FLAGS_check_config) {
    std::printf("%s", ddv::config::DescribeConfig(*config).c_str());
    return 0;
  }

  const ddv::ListenOptions listen = ListenOptionsFromFlags();

  if (watchdog) {
    bool activated = false;
    absl::StatusOr<std::vector<ddv::UniqueFd>> listeners =
        ListenersAtStart(*config, listen, &activated);
    if (!listeners.ok()) {
      LOG(ERROR) << listeners.status().message();
      // A unit that passes other sockets than the config names: retrying
      // does not fix it.
      return activated && absl::IsInvalidArgument(listeners.status())
                 ? kExitConfigError
                 : 1;
    }
    ddv::watchdog::WatchdogOptions options = WatchdogOptionsFromFlags();
    options.self_argv = original_args;
    options.master_argv.push_back(SelfDir() + "/ddv_master");
    for (size_t i = 1; i < original_args.size(); ++i) {
      options.master_argv.push_back(original_args[i]);
    }
    options.master_argv.push_back("--watchdog=false");
    options.master_argv.push_back("--config=" + path);
    const std::string snapshot = PrepareConfigSnapshot(*config);
    if (!snapshot.empty()) {
      options.master_argv.push_back("--config_snapshot=" + snapshot);
    }
    for (const auto& listener : config->listeners) {
      options.listener_names.push_back(listener.name);
    }
    options.log_writer_command = LogWriterCommand();
    options.notify = NotifyOptionsFromEnv();
    options.socket_activated = activated;
    if (demo) PrintDemoBanner(*config);
    return ddv::watchdog::RunWatchdog(options, std::move(*listeners));
  }

  // From the watchdog: the sockets it holds for this config's listeners;
  // the master binds (through it) any the config has and it lacks.
  std::vector<std::string> held_as;
  std::vector<std::vector<ddv::UniqueFd>> group_members;
  bool activated = false;
  absl::StatusOr<std::vector<ddv::UniqueFd>> listeners =
      FLAGS_listen_fds.empty()
          ? ListenersAtStart(*config, listen, &activated)
          : ddv::master::TakeListenFds(FLAGS_listen_fds, *config, &held_as,
                                       &group_members);
  if (!listeners.ok()) {
    LOG(ERROR) << listeners.status().message();
    return activated && absl::IsInvalidArgument(listeners.status())
               ? kExitConfigError
               : 1;
  }
  ddv::master::MasterOptions options = MasterOptionsFromFlags();
  // A listener's SO_REUSEPORT group has a socket per loop of the master
  // that grew it (docs/shards.md). One no loop accepted on would keep
  // the connections the kernel gives it: a master with fewer loops (an
  // `auto` that found fewer CPUs) runs one per socket instead.
  for (size_t i = 0; i < group_members.size(); ++i) {
    const uint32_t sockets = 1 + group_members[i].size();
    if (sockets <= options.shards) continue;
    LOG(WARNING) << "listener \"" << config->listeners[i].name << "\" has "
                 << sockets << " sockets, one per loop of the master that "
                 << "bound them; running " << sockets << " loops, not "
                 << options.shards;
    options.max_connections = std::max<uint32_t>(
        1, options.max_connections * options.shards / sockets);
    options.shards = sockets;
  }
  options.overrides = overrides;
  options.config_snapshot = FLAGS_config_snapshot;
  options.watchdog_fd = FLAGS_watchdog_fd;
  options.listeners_held_as = std::move(held_as);
  options.socket_activated = activated;
  // A master alone is what systemd started: it notifies. Under a watchdog
  // the watchdog does (and kept NOTIFY_SOCKET from us).
  if (FLAGS_watchdog_fd < 0) options.notify = NotifyOptionsFromEnv();
  // The log writer's link: the watchdog's, or, for a master alone, one it
  // starts for itself (its child, not restarted; docs/logs.md). Both
  // outlive `master`. Under a watchdog the workers outlive the master, so a
  // writer of the master's own would leave them without a reader: none.
  std::unique_ptr<ddv::logwriter::ChildLogWriter> own_writer;
  int log_link = FLAGS_log_writer_fd;
  if (log_link >= 0) {
    absl::Status link = ddv::logwriter::CheckMasterEnd(log_link);
    if (!link.ok()) {
      std::fprintf(stderr, "--log_writer_fd=%d: %s\n", log_link,
                   std::string(link.message()).c_str());
      return kExitConfigError;
    }
  } else if (FLAGS_watchdog_fd < 0) {
    absl::StatusOr<std::unique_ptr<ddv::logwriter::ChildLogWriter>> started =
        ddv::logwriter::ChildLogWriter::Start(LogWriterCommand());
    if (started.ok()) {
      own_writer = *std::move(started);
      log_link = own_writer->master_end();
    } else {
      LOG(ERROR) << "no log writer: " << started.status().message()
                 << "; workers write their log files directly, and SIGUSR1 "
                    "reopens nothing";
    }
  }
  std::unique_ptr<ddv::logwriter::LogWriterClient> log_client;
  if (log_link >= 0) {
    log_client = std::make_unique<ddv::logwriter::LogWriterClient>(log_link);
    options.log_writer = log_client.get();
    options.workers.stdio_router =
        [client = log_client.get()](const ddv::supervise::ProcessSpec& spec) {
          return client->Route(spec);
        };
  }
  absl::StatusOr<std::unique_ptr<ddv::master::Master>> master =
      ddv::master::Master::Create(options, std::move(*config),
                                  std::move(*listeners),
                                  std::move(group_members));
  if (!master.ok()) {
    LOG(ERROR) << "cannot start the master: " << master.status().message();
    // A config the master rejects will not get better by restarting.
    return master.status().code() == absl::StatusCode::kInvalidArgument
               ? kExitConfigError
               : 1;
  }
  if (demo && !FLAGS_watchdog) PrintDemoBanner((*master)->config());
  absl::Status status = (*master)->Run();
  if (!status.ok()) {
    LOG(ERROR) << status;
    return 1;
  }
  return (*master)->handed_over() ? ddv::master::kExitHandedOver : 0;
}
