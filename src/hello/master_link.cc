// MasterLink: the worker library wired into HttpServer's ring as two
// external fds (the channel and a deadline timer).
#include "src/hello/master_link.h"

#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
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
  const worker::ProxyInfo& proxy = in.proxy;
  if (in.peer_from_proxy || !proxy.tlvs.empty()) {
    ProxyFields fields;
    if (in.peer_from_proxy) {
      fields.source = out.peer;
      fields.destination = FormatSockaddr(proxy.destination);
    }
    fields.alpn = proxy.alpn;
    fields.authority = proxy.authority;
    fields.unique_id = proxy.unique_id;
    fields.netns = proxy.netns;
    fields.ssl = proxy.ssl;
    fields.ssl_client = proxy.ssl_client;
    fields.ssl_verify = proxy.ssl_verify;
    fields.ssl_version = proxy.ssl_version;
    fields.ssl_cn = proxy.ssl_cn;
    fields.ssl_cipher = proxy.ssl_cipher;
    fields.ssl_sig_alg = proxy.ssl_sig_alg;
    fields.ssl_key_alg = proxy.ssl_key_alg;
    for (const auto& [type, value] : proxy.AllTlvs()) {
      switch (type) {
        case 0x01:  // ALPN, AUTHORITY, UNIQUE_ID, SSL, NETNS: decoded above
        case 0x02:
        case 0x05:
        case 0x20:
        case 0x30:
          break;
        default:
          fields.other_tlvs.emplace_back(type, std::string(value));
      }
    }
    fields.tlvs_truncated = proxy.tlvs_truncated;
    out.proxy = ProxyLines(fields);
  }
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
  told_open_ = server_->stats().open_connections;
  worker_->SetOpenConnections(told_open_);
  absl::Status status = worker_->Drain();
  if (!status.ok()) LOG(ERROR) << "worker channel: " << status;
  if (worker_->fd() < 0) {
    // The master is gone and the channel closed: stop polling both.
    server_->UnregisterExternalFd(channel_id_);
    server_->UnregisterExternalFd(timer_id_);
    return;
  }
  // Re-arm the timer for the library's next deadline, or sooner to sample
  // the open connections again.
  absl::Duration next = worker_->NextTimeout();
  if (told_open_ > 0) next = std::min(next, absl::Milliseconds(100));
  itimerspec spec{};
  if (next != absl::InfiniteDuration()) {
    if (next < absl::Milliseconds(1)) next = absl::Milliseconds(1);
    spec.it_value = absl::ToTimespec(next);
  }
  timerfd_settime(timer_.get(), 0, &spec, nullptr);
}

}  // namespace hello
}  // namespace ddv
