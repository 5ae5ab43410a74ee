// MasterLink: the worker library wired into HttpServer's ring as two
// external fds (the channel and a deadline timer).
#include "src/hello/master_link.h"

#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "glog/logging.h"
#include "src/base/errno_status.h"

namespace ddv {
namespace hello {

ConnectionInfo ToServerInfo(const worker::WorkerIdentity& identity,
                            const worker::ConnectionInfo& in) {
  ConnectionInfo out;
  out.site_id = in.site.empty() ? identity.site : in.site;
  out.worker_index = static_cast<int>(identity.worker_index);
  out.host = in.host;
  out.tls = in.tls;
  // On a TLS listener the master routed on the SNI; on HTTP, on Host. Both
  // this and the offered ALPN list are the master's view only: the server
  // replaces them with what its own handshake saw and negotiated.
  if (in.tls) out.sni = in.host;
  out.alpn = absl::StrJoin(in.alpn, ",");
  if (in.peer_length > 0) out.peer = FormatSockaddr(in.peer);
  out.skip_bytes = in.skip_bytes;
  static_assert(kUncheckedListener == worker::kNoListenerKey);
  out.listener_key = in.listener_key;
  return out;
}

absl::StatusOr<std::unique_ptr<MasterLink>> MasterLink::Attach(
    std::unique_ptr<worker::Worker> w, HttpServer* server) {
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

MasterLink::MasterLink(std::unique_ptr<worker::Worker> w, UniqueFd timer,
                       HttpServer* server)
    : worker_(std::move(w)), timer_(std::move(timer)), server_(server) {}

uint64_t MasterLink::generation() const {
  return worker_->host_view_generation();
}

route::HostVerdict MasterLink::Check(uint32_t listener_key,
                                     absl::string_view target,
                                     absl::string_view host) {
  return worker_->CheckRequest(listener_key, target, host);
}

void MasterLink::Wire() {
  worker::Worker* w = worker_.get();
  server_->SetHostGate(this);
  w->OnConnection(
      [this, w](UniqueFd socket, const worker::ConnectionInfo& info) {
        server_->AddConnection(std::move(socket),
                               ToServerInfo(w->identity(), info));
      });
  w->OnShutdown([this](absl::Duration grace) {
    LOG(INFO) << "master asked for shutdown (grace "
              << absl::FormatDuration(grace) << ")";
    // Busy connections get the master's whole drain, not --stop_timeout_ms.
    server_->StopWithin(grace);
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

void MasterLink::Drain() {
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

}  // namespace hello
}  // namespace ddv
