// ddv_hello: the demo and benchmark worker. Under a ddv master (DDV_CHANNEL_FD
// set) it serves the sockets it is handed; with --port it listens itself (the
// "direct" baseline of the benchmarks). Both can be on at once. The only
// place its flags are defined; docs/hello.md describes them.
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "src/base/errno_status.h"
#include "src/base/unique_fd.h"
#include "src/hello/http_server.h"
#include "src/hello/master_link.h"
#include "src/tls/tls_context.h"
#include "src/worker/worker.h"

DEFINE_int32(port, -1,
             "Standalone mode: listen on --address:PORT (0 lets the kernel "
             "pick and prints it). Unset (-1): serve only what a master hands "
             "over.");
DEFINE_string(address, "127.0.0.1", "Standalone mode: the IP to listen on.");
DEFINE_string(site, "standalone",
              "Standalone mode: the site id in response bodies (under a "
              "master the site comes from the master).");
DEFINE_int32(idle_timeout_ms, 60000,
             "Close a connection after this long without progress.");
DEFINE_int32(stop_timeout_ms, 10000,
             "On SIGTERM/SIGINT, close connections still busy after this.");
DEFINE_uint32(ring_entries, 1024,
              "io_uring submission queue entries (the completion queue has "
              "4x); each ring's memory counts against RLIMIT_MEMLOCK");
DEFINE_bool(sqpoll, false,
            "Let a kernel thread poll the io_uring submission queue.");
DEFINE_bool(recv_multishot, true,
            "Multishot recv into a provided-buffer ring (false: one "
            "single-shot recv per read into a per-connection buffer).");
DEFINE_string(tls_cert, "",
              "PEM certificate files for TLS, comma-separated (the first is "
              "the default; the others are chosen by SNI). Overrides "
              "DDV_TLS_CERT from the master.");
DEFINE_string(tls_key, "",
              "PEM private keys matching --tls_cert, comma-separated, in the "
              "same order. Overrides DDV_TLS_KEY.");
DEFINE_bool(tls, false,
            "Standalone mode: the --port listener speaks TLS (needs "
            "--tls_cert/--tls_key).");
DEFINE_string(alpn, "http/1.1",
              "ALPN protocols to select from, comma-separated, in server "
              "preference order. h2 is refused: ddv_hello does not serve "
              "HTTP/2.");
DEFINE_string(ticket_secret, "",
              "Session ticket secret, 64 hex digits, shared by the processes "
              "that should resume each other's sessions. Default: "
              "DDV_TLS_TICKET_SECRET, else random per process.");
DEFINE_bool(ktls, true,
            "Ask OpenSSL for kernel TLS (counted as active or fallback per "
            "handshake).");

namespace ddv {
namespace {

// Exit codes, nginx's convention: 2 means "fatal, do not respawn".
constexpr int kExitOk = 0;
constexpr int kExitError = 1;
constexpr int kExitUsage = 2;

// gflags exits with 1 on an unknown flag or a bad value; the contract says
// 2. So argv is parsed here and each flag set through gflags' registry,
// which reports errors instead of exiting. Handles --name=value, --name
// value, --bool, --nobool, with one or two dashes.
bool ParseFlagsStrictly(int argc, char** argv, bool* help) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.size() < 2 || arg[0] != '-') {
      std::fprintf(stderr, "ddv_hello: unexpected argument \"%s\"\n",
                   arg.c_str());
      return false;
    }
    std::string name = arg.substr(arg[1] == '-' ? 2 : 1);
    std::string value;
    bool has_value = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
      has_value = true;
    }
    if (name == "help" || name == "helpshort") {
      *help = true;
      continue;
    }
    gflags::CommandLineFlagInfo info;
    if (!gflags::GetCommandLineFlagInfo(name.c_str(), &info)) {
      if (!has_value && name.rfind("no", 0) == 0 &&
          gflags::GetCommandLineFlagInfo(name.c_str() + 2, &info) &&
          info.type == "bool") {
        name = name.substr(2);
        value = "false";
        has_value = true;
      } else {
        std::fprintf(stderr, "ddv_hello: unknown flag \"%s\"\n", arg.c_str());
        return false;
      }
    }
    if (!has_value) {
      if (info.type == "bool") {
        value = "true";
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        std::fprintf(stderr, "ddv_hello: flag \"%s\" needs a value\n",
                     arg.c_str());
        return false;
      }
    }
    if (gflags::SetCommandLineOption(name.c_str(), value.c_str()).empty()) {
      std::fprintf(stderr, "ddv_hello: bad value \"%s\" for --%s (%s)\n",
                   value.c_str(), name.c_str(), info.type.c_str());
      return false;
    }
  }
  return true;
}

// Checks values gflags cannot (ranges, combinations).
bool ValidateFlags() {
  if (FLAGS_port < -1 || FLAGS_port > 65535) {
    std::fprintf(stderr, "ddv_hello: --port must be 0..65535\n");
    return false;
  }
  if (FLAGS_idle_timeout_ms <= 0 || FLAGS_stop_timeout_ms < 0) {
    std::fprintf(stderr,
                 "ddv_hello: --idle_timeout_ms must be > 0 and "
                 "--stop_timeout_ms >= 0\n");
    return false;
  }
  if (FLAGS_site.empty()) {
    std::fprintf(stderr, "ddv_hello: --site must not be empty\n");
    return false;
  }
  if (FLAGS_tls_cert.empty() != FLAGS_tls_key.empty()) {
    std::fprintf(stderr, "ddv_hello: --tls_cert and --tls_key go together\n");
    return false;
  }
  if (FLAGS_tls && FLAGS_port < 0) {
    std::fprintf(stderr, "ddv_hello: --tls needs --port\n");
    return false;
  }
  for (absl::string_view proto : absl::StrSplit(FLAGS_alpn, ',')) {
    if (proto == "h2") {
      std::fprintf(stderr,
                   "ddv_hello: --alpn lists h2, but ddv_hello does not serve "
                   "HTTP/2\n");
      return false;
    }
    if (proto.empty() || proto.size() > 255) {
      std::fprintf(stderr,
                   "ddv_hello: --alpn wants comma-separated protocol names "
                   "of 1 to 255 bytes\n");
      return false;
    }
  }
  return true;
}

// What the master put in the environment for TLS (docs/tls.md), read before
// anything else runs and then removed: the ticket secret must not reach
// child processes.
struct TlsEnvironment {
  std::string certs;   // DDV_TLS_CERT: paths joined by ':'
  std::string keys;    // DDV_TLS_KEY
  std::string secret;  // DDV_TLS_TICKET_SECRET: 64 hex digits
};

TlsEnvironment TakeTlsEnvironment() {
  TlsEnvironment env;
  for (auto [name, value] :
       {std::pair<const char*, std::string*>{tls::kEnvTlsCert, &env.certs},
        {tls::kEnvTlsKey, &env.keys},
        {tls::kEnvTlsTicketSecret, &env.secret}}) {
    if (const char* v = std::getenv(name); v != nullptr) *value = v;
    ::unsetenv(name);
  }
  return env;
}

// Flags override the environment. Returns false (after printing why) when
// the combination is unusable: exit 2. `*options` stays without
// certificates when TLS is not configured at all.
bool BuildTlsOptions(const TlsEnvironment& env, tls::TlsOptions* options) {
  std::vector<std::string> certs;
  std::vector<std::string> keys;
  std::string source;
  if (!FLAGS_tls_cert.empty()) {
    certs = absl::StrSplit(FLAGS_tls_cert, ',');
    keys = absl::StrSplit(FLAGS_tls_key, ',');
    source = "--tls_cert/--tls_key";
  } else if (!env.certs.empty() || !env.keys.empty()) {
    certs = absl::StrSplit(env.certs, ':');
    keys = absl::StrSplit(env.keys, ':');
    source = absl::StrCat(tls::kEnvTlsCert, "/", tls::kEnvTlsKey);
  } else {
    if (FLAGS_tls) {
      std::fprintf(stderr, "ddv_hello: --tls needs --tls_cert and --tls_key\n");
      return false;
    }
    return true;
  }
  if (certs.size() != keys.size()) {
    std::fprintf(stderr,
                 "ddv_hello: %s: %zu certificates but %zu keys (they go in "
                 "pairs)\n",
                 source.c_str(), certs.size(), keys.size());
    return false;
  }
  for (size_t i = 0; i < certs.size(); ++i) {
    if (certs[i].empty() || keys[i].empty()) {
      std::fprintf(stderr, "ddv_hello: %s: empty path in the list\n",
                   source.c_str());
      return false;
    }
    options->certificates.push_back({certs[i], keys[i]});
  }
  options->alpn_protocols = absl::StrSplit(FLAGS_alpn, ',');
  options->ticket_secret_hex =
      !FLAGS_ticket_secret.empty() ? FLAGS_ticket_secret : env.secret;
  options->enable_ktls = FLAGS_ktls;
  return true;
}

// SIGTERM/SIGINT (stop) and SIGHUP (reload the TLS certificates) arrive
// through a signalfd polled by the ring: no code runs in signal context.
absl::StatusOr<UniqueFd> BlockSignals() {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  if (sigprocmask(SIG_BLOCK, &mask, nullptr) != 0) {
    return ErrnoStatus(errno, "sigprocmask",
                       "blocking SIGTERM, SIGINT and SIGHUP");
  }
  // An ignored disposition survives exec and would make the signalfd deaf
  // (ignored signals are discarded); whoever spawned us may have set it.
  // Blocked first, so the default action can never run.
  signal(SIGTERM, SIG_DFL);
  signal(SIGINT, SIG_DFL);
  signal(SIGHUP, SIG_DFL);
  UniqueFd fd(signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!fd.valid()) {
    return ErrnoStatus(errno, "signalfd",
                       "receiving SIGTERM, SIGINT and SIGHUP");
  }
  // Responses use MSG_NOSIGNAL; this covers anything else writing to a
  // closed socket.
  signal(SIGPIPE, SIG_IGN);
  // A stray SIGUSR1 (logrotate's `kill -USR1` sent to the wrong process or
  // group) must not kill a worker: its default action would. ddv_hello has
  // nothing to reopen: its log is the stderr the master opened for it.
  signal(SIGUSR1, SIG_IGN);
  return fd;
}

int Main(int argc, char** argv) {
  gflags::SetUsageMessage(
      "ddv_hello [--port=N] [--site=ID] ...: answers every HTTP request with "
      "one line naming site, worker, pid, host, sni, alpn, tls and peer");
  bool help = false;
  if (!ParseFlagsStrictly(argc, argv, &help)) return kExitUsage;
  if (help) {
    gflags::ShowUsageWithFlagsRestrict(argv[0], "ddv_hello_main");
    return kExitOk;
  }
  if (!ValidateFlags()) return kExitUsage;
  // A worker's stderr is captured per site by the master; log there unless
  // --log_dir says otherwise (glog's own default directory comes from the
  // environment, e.g. TEST_TMPDIR, which is not a choice anyone made).
  if (gflags::GetCommandLineFlagInfoOrDie("log_dir").is_default) {
    FLAGS_logtostderr = true;
  }
  google::InitGoogleLogging(argv[0]);

  // Read the master contract before anything else can run a child.
  const TlsEnvironment tls_env = TakeTlsEnvironment();
  tls::TlsOptions tls_options;
  if (!BuildTlsOptions(tls_env, &tls_options)) return kExitUsage;
  worker::WorkerOptions worker_options;
  // The server discards the PROXY header bytes itself, inside its ring,
  // instead of a blocking read in the library.
  worker_options.consume_proxy_header = false;
  absl::StatusOr<std::unique_ptr<worker::Worker>> w =
      worker::Worker::FromEnvironment(worker_options);
  const bool under_master = w.ok();
  if (!w.ok() && !absl::IsNotFound(w.status())) {
    LOG(ERROR) << "cannot attach to the master: " << w.status();
    return kExitUsage;
  }
  if (!under_master && FLAGS_port < 0) {
    std::fprintf(stderr,
                 "ddv_hello: not started by a ddv master (no %s); give "
                 "--port=N to listen yourself\n",
                 worker::kEnvChannelFd);
    return kExitUsage;
  }
  std::unique_ptr<tls::TlsServerContext> tls_context;
  if (!tls_options.certificates.empty()) {
    absl::StatusOr<std::unique_ptr<tls::TlsServerContext>> created =
        tls::TlsServerContext::Create(tls_options);
    if (!created.ok()) {
      // A bad certificate is a configuration error: do not respawn.
      LOG(ERROR) << "TLS: " << created.status();
      std::fprintf(stderr, "ddv_hello: TLS: %s\n",
                   std::string(created.status().message()).c_str());
      return kExitUsage;
    }
    tls_context = std::move(*created);
    LOG(INFO) << "TLS: " << tls_options.certificates.size()
              << " certificate(s), ALPN " << FLAGS_alpn << ", tickets "
              << (tls_options.ticket_secret_hex.empty()
                      ? "with a random per-process key"
                      : "with the shared secret")
              << "; kTLS " << (FLAGS_ktls ? "asked for: " : "off: ")
              << tls_context->ktls_probe();
  }

  absl::StatusOr<UniqueFd> signals = BlockSignals();
  if (!signals.ok()) {
    LOG(ERROR) << signals.status();
    return kExitError;
  }

  hello::HttpServer::Options options;
  options.site_id = FLAGS_site;
  options.idle_timeout = absl::Milliseconds(FLAGS_idle_timeout_ms);
  options.stop_timeout = absl::Milliseconds(FLAGS_stop_timeout_ms);
  options.sqpoll = FLAGS_sqpoll;
  options.ring_entries = FLAGS_ring_entries;
  options.recv_multishot = FLAGS_recv_multishot;
  options.tls_context = tls_context.get();
  absl::StatusOr<std::unique_ptr<hello::HttpServer>> server =
      hello::HttpServer::Create(options);
  if (!server.ok()) {
    LOG(ERROR) << server.status();
    return kExitError;
  }
  hello::HttpServer* s = server->get();

  int signal_fd = signals->get();
  tls::TlsServerContext* tls_ctx = tls_context.get();
  s->RegisterExternalFd(signal_fd, [s, signal_fd, tls_ctx,
                                    stop_signals = 0]() mutable {
    signalfd_siginfo info;
    while (read(signal_fd, &info, sizeof(info)) == sizeof(info)) {
      if (info.ssi_signo == SIGHUP) {
        if (tls_ctx == nullptr) {
          LOG(INFO) << "SIGHUP: no TLS certificates to reload";
          continue;
        }
        // New connections get the re-read files; running ones keep theirs.
        absl::Status reloaded = tls_ctx->Reload();
        if (reloaded.ok()) {
          LOG(INFO) << "SIGHUP: TLS certificates reloaded";
        } else {
          LOG(ERROR) << "SIGHUP: TLS reload failed, keeping the old "
                        "certificates: "
                     << reloaded;
        }
        continue;
      }
      // The first signal drains; a second one (Ctrl-C again) does not wait.
      // A master's kShutdown or disappearance is not a signal: a worker
      // whose master died gets SIGTERM (PDEATHSIG) and sees its channel
      // close, and still drains.
      if (++stop_signals == 1) {
        LOG(INFO) << "signal " << info.ssi_signo << ": stopping";
        s->Stop();
      } else {
        LOG(INFO) << "signal " << info.ssi_signo << " again: stopping now";
        s->StopNow();
      }
    }
  });

  std::unique_ptr<hello::MasterLink> link;
  if (under_master) {
    absl::StatusOr<std::unique_ptr<hello::MasterLink>> attached =
        hello::MasterLink::Attach(std::move(*w), s);
    if (!attached.ok()) {
      LOG(ERROR) << attached.status();
      return kExitError;
    }
    link = std::move(*attached);
  }

  if (FLAGS_port >= 0) {
    std::string address =
        FLAGS_address.find(':') == std::string::npos
            ? absl::StrCat(FLAGS_address, ":", FLAGS_port)
            : absl::StrCat("[", FLAGS_address, "]:", FLAGS_port);
    absl::Status status = s->Listen(address, FLAGS_tls);
    if (!status.ok()) {
      LOG(ERROR) << status;
      return kExitError;
    }
    // Tests and scripts read the port from this line (--port=0).
    std::string host = FLAGS_address.find(':') == std::string::npos
                           ? FLAGS_address
                           : absl::StrCat("[", FLAGS_address, "]");
    std::printf("ddv_hello listening on %s:%d (site %s, pid %d)\n",
                host.c_str(), s->port(), FLAGS_site.c_str(),
                static_cast<int>(getpid()));
    std::fflush(stdout);
  }

  absl::Status status = s->Run();
  if (!status.ok()) {
    LOG(ERROR) << status;
    return kExitError;
  }
  LOG(INFO) << "stopped after " << s->stats().requests << " requests ("
            << s->stats().misdirected_requests
            << " refused 421 Misdirected Request)";
  if (tls_context != nullptr) {
    const tls::TlsCounters& c = tls_context->counters();
    LOG(INFO) << "TLS: " << c.handshakes.load() << " handshakes ("
              << c.resumed.load() << " resumed), "
              << c.handshake_failures.load() << " failed; kTLS "
              << c.ktls_active.load() << " active, " << c.ktls_fallback.load()
              << " fallback; " << c.reloads.load() << " reloads";
  }
  return kExitOk;
}

}  // namespace
}  // namespace ddv

int main(int argc, char** argv) { return ddv::Main(argc, argv); }
