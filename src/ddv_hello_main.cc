// ddv_hello: the demo and benchmark worker. Under a ddv master (DDV_CHANNEL_FD
// set) it serves the sockets it is handed; with --port it listens itself (the
// "direct" baseline of the benchmarks). Both can be on at once. The only
// place its flags are defined; docs/hello.md describes them.
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "src/base/errno_status.h"
#include "src/base/unique_fd.h"
#include "src/hello/http_server.h"
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
DEFINE_bool(sqpoll, false,
            "Let a kernel thread poll the io_uring submission queue.");
DEFINE_bool(recv_multishot, true,
            "Multishot recv into a provided-buffer ring (false: one "
            "single-shot recv per read into a per-connection buffer).");
DEFINE_string(tls_cert, "",
              "PEM certificate for TLS listeners (accepted for the master's "
              "command lines; TLS termination is not implemented yet).");
DEFINE_string(tls_key, "", "PEM private key matching --tls_cert.");

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
  return true;
}

// The worker library's view of a handed-off socket → the server's.
hello::ConnectionInfo ToServerInfo(const worker::Worker& w,
                                   const worker::ConnectionInfo& in) {
  hello::ConnectionInfo out;
  out.site_id = in.site.empty() ? w.identity().site : in.site;
  out.worker_index = static_cast<int>(w.identity().worker_index);
  out.host = in.host;
  out.tls = in.tls;
  // On a TLS listener the master routed on the SNI; on HTTP, on Host.
  if (in.tls) out.sni = in.host;
  // What the client offered; once TLS is terminated here this becomes the
  // protocol actually selected.
  out.alpn = absl::StrJoin(in.alpn, ",");
  if (in.peer_length > 0) out.peer = hello::FormatSockaddr(in.peer);
  out.skip_bytes = in.skip_bytes;
  return out;
}

// Master mode: the worker channel and a timer for its heartbeats and RPC
// deadlines are polled by the server's own ring, so one thread and one
// io_uring serve both the handoffs and the clients.
class MasterLink {
 public:
  static absl::StatusOr<std::unique_ptr<MasterLink>> Attach(
      std::unique_ptr<worker::Worker> w, hello::HttpServer* server) {
    UniqueFd timer(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
    if (!timer.valid()) {
      return ErrnoStatus(errno, "timerfd_create",
                         "creating the worker heartbeat timer");
    }
    std::unique_ptr<MasterLink> link(
        new MasterLink(std::move(w), std::move(timer), server));
    link->Wire();
    return link;
  }

 private:
  MasterLink(std::unique_ptr<worker::Worker> w, UniqueFd timer,
             hello::HttpServer* server)
      : worker_(std::move(w)), timer_(std::move(timer)), server_(server) {}

  void Wire() {
    worker::Worker* w = worker_.get();
    w->OnConnection(
        [this, w](UniqueFd socket, const worker::ConnectionInfo& info) {
          server_->AddConnection(std::move(socket), ToServerInfo(*w, info));
        });
    w->OnShutdown([this](absl::Duration grace) {
      LOG(INFO) << "master asked for shutdown (grace "
                << absl::FormatDuration(grace) << ")";
      server_->Stop();
    });
    w->OnMasterGone([this](const absl::Status& why) {
      LOG(WARNING) << "master gone: " << why << "; finishing and exiting";
      server_->Stop();
    });
    channel_id_ = server_->RegisterExternalFd(w->fd(), [this] { Drain(); });
    timer_id_ = server_->RegisterExternalFd(timer_.get(), [this] {
      uint64_t expirations;
      while (read(timer_.get(), &expirations, sizeof(expirations)) > 0) {
      }
      Drain();
    });
    Drain();  // frames may already be queued
  }

  void Drain() {
    if (worker_->fd() < 0) return;
    absl::Status status = worker_->Drain();
    if (!status.ok()) LOG(ERROR) << "worker channel: " << status;
    if (worker_->fd() < 0) {
      // The master is gone and the channel closed: stop polling both.
      server_->UnregisterExternalFd(channel_id_);
      server_->UnregisterExternalFd(timer_id_);
      return;
    }
    // Re-arm the timer for the library's next deadline.
    absl::Duration next = worker_->NextTimeout();
    itimerspec spec{};
    if (next != absl::InfiniteDuration()) {
      if (next < absl::Milliseconds(1)) next = absl::Milliseconds(1);
      spec.it_value = absl::ToTimespec(next);
    }
    timerfd_settime(timer_.get(), 0, &spec, nullptr);
  }

  std::unique_ptr<worker::Worker> worker_;
  UniqueFd timer_;
  hello::HttpServer* server_;
  int channel_id_ = -1;
  int timer_id_ = -1;
};

// SIGTERM/SIGINT arrive through a signalfd polled by the ring: no code runs
// in signal context at all.
absl::StatusOr<UniqueFd> BlockStopSignals() {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  if (sigprocmask(SIG_BLOCK, &mask, nullptr) != 0) {
    return ErrnoStatus(errno, "sigprocmask", "blocking SIGTERM and SIGINT");
  }
  // An ignored disposition survives exec and would make the signalfd deaf
  // (ignored signals are discarded); whoever spawned us may have set it.
  // Blocked first, so the default action can never run.
  signal(SIGTERM, SIG_DFL);
  signal(SIGINT, SIG_DFL);
  UniqueFd fd(signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!fd.valid()) {
    return ErrnoStatus(errno, "signalfd", "receiving SIGTERM and SIGINT");
  }
  // Responses use MSG_NOSIGNAL; this covers anything else writing to a
  // closed socket.
  signal(SIGPIPE, SIG_IGN);
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
  if (!FLAGS_tls_cert.empty()) {
    LOG(WARNING) << "--tls_cert given, but TLS termination is not "
                    "implemented yet: TLS connections are refused";
  }

  absl::StatusOr<UniqueFd> signals = BlockStopSignals();
  if (!signals.ok()) {
    LOG(ERROR) << signals.status();
    return kExitError;
  }

  hello::HttpServer::Options options;
  options.site_id = FLAGS_site;
  options.idle_timeout = absl::Milliseconds(FLAGS_idle_timeout_ms);
  options.stop_timeout = absl::Milliseconds(FLAGS_stop_timeout_ms);
  options.sqpoll = FLAGS_sqpoll;
  options.recv_multishot = FLAGS_recv_multishot;
  absl::StatusOr<std::unique_ptr<hello::HttpServer>> server =
      hello::HttpServer::Create(options);
  if (!server.ok()) {
    LOG(ERROR) << server.status();
    return kExitError;
  }
  hello::HttpServer* s = server->get();

  int signal_fd = signals->get();
  s->RegisterExternalFd(signal_fd, [s, signal_fd] {
    signalfd_siginfo info;
    while (read(signal_fd, &info, sizeof(info)) == sizeof(info)) {
      LOG(INFO) << "signal " << info.ssi_signo << ": stopping";
      s->Stop();
    }
  });

  std::unique_ptr<MasterLink> link;
  if (under_master) {
    absl::StatusOr<std::unique_ptr<MasterLink>> attached =
        MasterLink::Attach(std::move(*w), s);
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
    absl::Status status = s->Listen(address);
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
  LOG(INFO) << "stopped after " << s->stats().requests << " requests";
  return kExitOk;
}

}  // namespace
}  // namespace ddv

int main(int argc, char** argv) { return ddv::Main(argc, argv); }
