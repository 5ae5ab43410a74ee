// Master, what it tells about itself over HTTP and in the access logs
// (docs/metrics.md): every connection's outcome counted (and logged), the
// metrics address served through the ring (one handler per op, rules in
// metrics_server.h), and the access logs' writes through the ring.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "glog/logging.h"
#include "src/base/errno_status.h"
#include "src/base/listen_socket.h"
#include "src/base/socket_address.h"
#include "src/master/master.h"

namespace ddv {
namespace master {
namespace {

// Backlog of the metrics socket: scrapers are few.
constexpr int kMetricsBacklog = 64;
constexpr int64_t kRetryBindNs = 1000000000;
constexpr int64_t kAccessLogDrainNs = 2000000000;

}  // namespace

void Master::RecordOutcome(uint32_t index, Outcome outcome, int64_t now_ns) {
  Connection& c = connections_.at(index);
  stats_.CountOutcome(c.listener, c.site, outcome);
  const bool log = access_logs_.Wants(c.listener);
  if (outcome != Outcome::kRouted && !log) return;
  if (now_ns == 0) now_ns = MonotonicNowNs();
  const int64_t elapsed = std::max<int64_t>(0, now_ns - c.accept_ns);
  if (outcome == Outcome::kRouted) {
    stats_.listener(c.listener).handoff_latency.Observe(elapsed);
  }
  if (!log) return;
  // Only for a logged connection: the one syscall the log costs.
  sockaddr_storage peer{};
  socklen_t length = sizeof(peer);
  bool have_peer = false;
  if (c.peer) {  // read before a handoff that closed the fd (SubmitBatch)
    peer = *c.peer;
    have_peer = true;
  } else if (c.fd) {
    have_peer = getpeername(c.fd.get(), reinterpret_cast<sockaddr*>(&peer),
                            &length) == 0;
  }
  AccessLogEntry entry;
  entry.unix_ns = absl::GetCurrentTimeNanos();
  entry.listener = listeners_[c.listener].config.name;
  entry.peer = have_peer ? &peer : nullptr;
  entry.proxy_peer = c.proxy.has_addresses ? &c.proxy.source : nullptr;
  entry.host = c.host.view();
  entry.alpn = c.alpn;
  if (c.site >= 0) entry.site = workers_->site_id(c.site);
  if (outcome == Outcome::kRouted && c.worker >= 0) {
    entry.worker_pid = workers_->pid(c.worker);
  }
  entry.outcome = OutcomeName(outcome);
  entry.micros = elapsed / 1000;
  access_logs_.Append(c.listener, entry);
}

void Master::RecordRefusedAtAccept(uint32_t listener, Outcome outcome,
                                   const sockaddr_storage& peer) {
  stats_.CountOutcome(listener, -1, outcome);
  if (!access_logs_.Wants(listener)) return;
  AccessLogEntry entry;
  entry.unix_ns = absl::GetCurrentTimeNanos();
  entry.listener = listeners_[listener].config.name;
  entry.peer = &peer;
  entry.outcome = OutcomeName(outcome);
  access_logs_.Append(listener, entry);
}

// --- The metrics socket ----------------------------------------------------

void Master::StartObservability() {
  BindAccessLogs();
  const std::string& address = config_.master.metrics_address;
  if (address.empty()) return;
  absl::StatusOr<UniqueFd> fd = BindMetrics(address);
  if (!fd.ok()) {
    // Routing must not depend on it: serve, and try again every second.
    LOG(ERROR) << fd.status().message()
               << "; /metrics and /healthz are not served until it can be "
                  "bound (retried every second)";
    metrics_.address = address;
    metrics_.retry_bind_ns = MonotonicNowNs() + kRetryBindNs;
    return;
  }
  UseMetricsSocket(*std::move(fd), address);
}

// The master binds it itself (SO_REUSEADDR, so a restarted master binds
// again at once): a scraper sees a refused connection while no master runs,
// which is what the scrape should report.
absl::StatusOr<UniqueFd> Master::BindMetrics(const std::string& address) {
  absl::StatusOr<SocketAddress> parsed = ParseSocketAddress(address);
  if (!parsed.ok()) return parsed.status();
  ListenSpec spec;
  spec.name = "metrics";
  spec.address = address;
  spec.bind_to = *parsed;
  spec.defer_accept = false;
  ListenOptions options;
  options.backlog = kMetricsBacklog;
  absl::StatusOr<UniqueFd> fd = BindListenSocket(spec, options);
  if (!fd.ok()) {
    return absl::Status(fd.status().code(),
                        absl::StrCat("metrics_address: ", fd.status().message()));
  }
  // AcceptScrapes accepts until EAGAIN: the loop must never block there.
  const int flags = fcntl(fd->get(), F_GETFL);
  if (flags < 0 || fcntl(fd->get(), F_SETFL, flags | O_NONBLOCK) < 0) {
    return ErrnoStatus(errno, "fcntl(O_NONBLOCK)",
                       absl::StrCat("binding metrics_address ", address));
  }
  return fd;
}

void Master::UseMetricsSocket(UniqueFd fd, const std::string& address) {
  if (metrics_.listen_fd) {
    // The old socket's poll goes first; its last completion is stale.
    io_uring_sqe* sqe = Sqe(kOpCancel, 0);
    io_uring_prep_poll_remove(
        sqe, uring::OpTag{kOpMetricsPoll, 0, metrics_.listen_generation}
                 .Encode());
  }
  metrics_.listen_fd = std::move(fd);
  metrics_.address = address;
  metrics_.bound = address;
  metrics_.retry_bind_ns = 0;
  metrics_.backlog_waiting = false;
  ++metrics_.listen_generation;
  if (!metrics_.listen_fd) return;
  sockaddr_storage bound{};
  socklen_t length = sizeof(bound);
  if (getsockname(metrics_.listen_fd.get(), reinterpret_cast<sockaddr*>(&bound),
                  &length) == 0) {
    absl::StatusOr<std::string> text = FormatSocketAddress(bound);
    if (text.ok()) metrics_.bound = *text;
  }
  ArmMetricsPoll();
  LOG(INFO) << "serving /metrics and /healthz on " << metrics_.bound;
}

void Master::ArmMetricsPoll() {
  io_uring_sqe* sqe = Sqe(kOpMetricsPoll, 0, metrics_.listen_generation);
  io_uring_prep_poll_multishot(sqe, metrics_.listen_fd.get(), POLLIN);
}

void Master::OnMetricsPoll(const uring::OpTag& tag, io_uring_cqe* cqe) {
  if (!tag.Matches(metrics_.listen_generation) || !metrics_.listen_fd) return;
  if (!(cqe->flags & IORING_CQE_F_MORE)) ArmMetricsPoll();
  if (cqe->res < 0) return;
  AcceptScrapes();
}

// Accepts while a slot is free. With none, the newcomers wait in the
// backlog and the oldest client is cut for room: the loop accepts again
// once its slot has freed (CheckScrapes), since the multishot poll fires
// only for new arrivals.
void Master::AcceptScrapes() {
  while (metrics_.listen_fd) {
    const int slot = metrics_.FreeSlot();
    if (slot < 0) {
      metrics_.backlog_waiting = true;
      const int oldest = metrics_.EvictionCandidate();
      if (oldest >= 0) CutScrape(oldest, ScrapeOutcome::kEvicted);
      return;
    }
    metrics_.backlog_waiting = false;
    UniqueFd fd(accept4(metrics_.listen_fd.get(), nullptr, nullptr,
                        SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!fd) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN) {
        PLOG_EVERY_N(WARNING, 100) << "accept4() failed on the metrics socket";
      }
      return;
    }
    ScrapeClient& c = metrics_.client(slot);
    c.fd = std::move(fd);
    ++c.generation;
    c.phase = ScrapeClient::Phase::kReading;
    c.cut = false;
    c.cancel_sent = false;
    c.outcome = ScrapeOutcome::kClosed;
    c.accepted_ns = MonotonicNowNs();
    c.deadline_ns = c.accepted_ns + MetricsServer::kDeadlineNs;
    c.length = 0;
    c.response.clear();
    c.sent = 0;
    c.linger = false;
    SubmitScrapeRecv(slot);
  }
}

ScrapeClient* Master::CompletedScrapeOp(const uring::OpTag& tag) {
  ScrapeClient* c = tag.index < MetricsServer::kMaxClients
                        ? &metrics_.client(tag.index)
                        : nullptr;
  if (c == nullptr || !tag.Matches(c->generation) || c->inflight == 0) {
    ++counters_.stale_completions;
    return nullptr;
  }
  --c->inflight;
  return c;
}

void Master::SubmitScrapeRecv(uint32_t slot) {
  ScrapeClient& c = metrics_.client(slot);
  io_uring_sqe* sqe = Sqe(kOpScrapeRecv, slot, c.generation);
  // Lingering reads are discarded over the same buffer.
  io_uring_prep_recv(sqe, c.fd.get(), c.request.data() + c.length,
                     c.request.size() - c.length, 0);
  ++c.inflight;
}

void Master::OnScrapeRecv(const uring::OpTag& tag, io_uring_cqe* cqe) {
  ScrapeClient* c = CompletedScrapeOp(tag);
  if (c == nullptr) return;
  const uint32_t slot = tag.index;
  if (cqe->res <= 0 || c->cut) {
    // EOF, a reset, or the shutdown of a cut: done. A client that left
    // before a whole request counts as closed; the outcome of one that
    // was answered (lingering) stands.
    CloseScrape(slot);
    return;
  }
  if (c->phase == ScrapeClient::Phase::kLingering) {
    c->length = 0;
    SubmitScrapeRecv(slot);
    return;
  }
  c->length += static_cast<size_t>(cqe->res);
  ScrapeRequest request;
  if (ParseScrapeRequest(absl::string_view(c->request.data(), c->length),
                         &request) == ScrapeParse::kNeedMore) {
    SubmitScrapeRecv(slot);
    return;
  }
  Answer(slot, request);
}

void Master::Answer(uint32_t slot, const ScrapeRequest& request) {
  ScrapeClient& c = metrics_.client(slot);
  if (request.status != 0) {
    c.response = FormatScrapeError(request.status, request.why, request.head);
    c.outcome = ScrapeOutcomeForStatus(request.status);
    // Bytes of an unreadable request may still be coming: read them away
    // after the answer, or the close would reset the connection under it.
    c.linger = request.status == 400 || request.status == 431 ||
               request.status == 505;
  } else if (request.target == ScrapeTarget::kMetrics) {
    c.response = FormatScrapeResponse(200, kMetricsContentType, MetricsText(),
                                      request.head);
    c.outcome = ScrapeOutcome::kServed;
  } else {
    std::string why;
    const bool healthy = Healthy(&why);
    c.response = FormatScrapeResponse(
        healthy ? 200 : 503, "text/plain; charset=utf-8",
        healthy ? std::string("ok\n") : absl::StrCat("unhealthy: ", why, "\n"),
        request.head);
    c.outcome = ScrapeOutcome::kServed;
  }
  c.phase = ScrapeClient::Phase::kSending;
  c.sent = 0;
  SubmitScrapeSend(slot);
}

void Master::SubmitScrapeSend(uint32_t slot) {
  ScrapeClient& c = metrics_.client(slot);
  io_uring_sqe* sqe = Sqe(kOpScrapeSend, slot, c.generation);
  io_uring_prep_send(sqe, c.fd.get(), c.response.data() + c.sent,
                     c.response.size() - c.sent, MSG_NOSIGNAL);
  ++c.inflight;
}

void Master::OnScrapeSent(const uring::OpTag& tag, io_uring_cqe* cqe) {
  ScrapeClient* c = CompletedScrapeOp(tag);
  if (c == nullptr) return;
  const uint32_t slot = tag.index;
  if (cqe->res <= 0 || c->cut) {
    if (!c->cut) c->outcome = ScrapeOutcome::kError;
    CloseScrape(slot);
    return;
  }
  c->sent += static_cast<size_t>(cqe->res);
  if (c->sent < c->response.size()) {
    SubmitScrapeSend(slot);
    return;
  }
  if (!c->linger) {
    CloseScrape(slot);
    return;
  }
  shutdown(c->fd.get(), SHUT_WR);
  c->phase = ScrapeClient::Phase::kLingering;
  c->length = 0;
  SubmitScrapeRecv(slot);
}

void Master::CutScrape(uint32_t slot, ScrapeOutcome outcome) {
  ScrapeClient& c = metrics_.client(slot);
  if (!c.fd || c.cut) return;
  c.cut = true;
  c.cut_ns = MonotonicNowNs();
  switch (c.phase) {
    case ScrapeClient::Phase::kReading:
      c.outcome = outcome;
      if (outcome == ScrapeOutcome::kTimeout) {
        // Nothing of an answer went out yet: 408 fits any socket buffer.
        const std::string timeout =
            FormatScrapeError(408, "request not received in time", false);
        (void)send(c.fd.get(), timeout.data(), timeout.size(),
                   MSG_DONTWAIT | MSG_NOSIGNAL);
      }
      break;
    case ScrapeClient::Phase::kSending:
      c.outcome = outcome;  // its answer never got out whole
      break;
    case ScrapeClient::Phase::kLingering:
    case ScrapeClient::Phase::kFree:
      break;  // answered: the outcome stands
  }
  // Ends the recv (EOF) or send (EPIPE) in flight; its handler closes.
  shutdown(c.fd.get(), SHUT_RDWR);
}

void Master::CloseScrape(uint32_t slot) {
  ScrapeClient& c = metrics_.client(slot);
  metrics_.Count(c.outcome);
  c.fd.Reset();
  c.phase = ScrapeClient::Phase::kFree;
  c.response.clear();
  c.response.shrink_to_fit();  // a /metrics answer is tens of KiB
}

void Master::CheckScrapes(int64_t now_ns) {
  if (!metrics_.listen_fd && !metrics_.address.empty() &&
      metrics_.retry_bind_ns != 0 && now_ns >= metrics_.retry_bind_ns) {
    absl::StatusOr<UniqueFd> fd = BindMetrics(metrics_.address);
    if (fd.ok()) {
      UseMetricsSocket(*std::move(fd), metrics_.address);
    } else {
      metrics_.retry_bind_ns = now_ns + kRetryBindNs;
      LOG_EVERY_N(WARNING, 60) << fd.status().message() << " (retrying)";
    }
  }
  for (uint32_t slot = 0; slot < MetricsServer::kMaxClients; ++slot) {
    ScrapeClient& c = metrics_.client(slot);
    if (!c.fd) continue;
    if (!c.cut && now_ns >= c.deadline_ns) {
      CutScrape(slot, ScrapeOutcome::kTimeout);
    } else if (c.cut && !c.cancel_sent && c.inflight > 0 &&
               now_ns - c.cut_ns >= MetricsServer::kCancelAfterNs) {
      // The shutdown should have ended its op; make sure.
      c.cancel_sent = true;
      for (Op op : {kOpScrapeRecv, kOpScrapeSend}) {
        io_uring_sqe* sqe = Sqe(kOpCancel, slot);
        io_uring_prep_cancel64(sqe, uring::OpTag{op, slot, c.generation}.Encode(),
                               0);
      }
    }
  }
  if (metrics_.backlog_waiting) AcceptScrapes();
}

// --- Access logs -----------------------------------------------------------

void Master::BindAccessLogs() {
  for (uint32_t l = 0; l < listeners_.size(); ++l) {
    const ListenerSlot& slot = listeners_[l];
    const config::ListenerConfig* config = &slot.config;
    if (slot.config_index < 0) {
      // Retired: what it accepted is logged where the running listener of
      // its name logs, if there is one.
      config = nullptr;
      for (const ListenerSlot& other : listeners_) {
        if (other.config_index >= 0 && other.config.name == slot.config.name) {
          config = &other.config;
        }
      }
    }
    int file = -1;
    if (config != nullptr && !config->access_log.empty()) {
      absl::StatusOr<int> opened = access_logs_.Open(config->access_log);
      if (opened.ok()) {
        file = *opened;
      } else {
        LOG(ERROR) << opened.status().message() << " for listener \""
                   << config->name << "\"; it logs nothing until a reopen "
                   << "or reload opens it";
      }
    }
    access_logs_.Bind(l, config != nullptr ? *config : slot.config, file);
  }
  access_logs_.CloseUnbound();
}

void Master::FlushAccessLogs() {
  if (access_logs_.file_count() == 0) return;
  const int64_t now = MonotonicNowNs();
  for (int file = 0; file < access_logs_.file_count(); ++file) {
    AccessLogs::Write write;
    if (!access_logs_.NextWrite(file, now, &write)) continue;
    io_uring_sqe* sqe = Sqe(kOpAccessLogWrite, file);
    // O_APPEND: offset -1, the file's own position, which is its end.
    io_uring_prep_write(sqe, write.fd, write.data, write.size, uint64_t(-1));
  }
}

void Master::OnAccessLogWritten(uint32_t file, io_uring_cqe* cqe) {
  access_logs_.OnWritten(static_cast<int>(file), cqe->res);
}

void Master::ReopenAccessLogs() {
  int reopened = 0;
  absl::Status status = access_logs_.Reopen(&reopened);
  // Files that failed to open at start or reload get another chance.
  BindAccessLogs();
  if (reopened > 0 || !status.ok()) {
    LOG(INFO) << "reopened " << reopened << " access logs"
              << (status.ok() ? std::string()
                              : absl::StrCat("; ", status.message()));
  }
}

bool Master::AccessLogsDrained(int64_t now_ns) {
  if (!access_logs_.Busy()) return true;
  if (access_logs_drain_since_ns_ == 0) access_logs_drain_since_ns_ = now_ns;
  if (now_ns - access_logs_drain_since_ns_ < kAccessLogDrainNs) return false;
  LOG(WARNING) << "an access log write is still in flight after 2 s; "
                  "stopping without it";
  return true;
}

// --- Reload ----------------------------------------------------------------

absl::StatusOr<Master::ObservabilityChange> Master::PrepareObservability(
    const config::Config& next) {
  ObservabilityChange change;
  change.metrics_address = next.master.metrics_address;
  change.metrics_changes =
      next.master.metrics_address != config_.master.metrics_address;
  if (change.metrics_changes && !change.metrics_address.empty()) {
    // Bound beside the running socket, which closes at the commit.
    absl::StatusOr<UniqueFd> fd = BindMetrics(change.metrics_address);
    if (!fd.ok()) return fd.status();
    change.metrics_fd = *std::move(fd);
  }
  for (const config::ListenerConfig& listener : next.listeners) {
    if (listener.access_log.empty()) continue;
    absl::StatusOr<int> opened = access_logs_.Open(listener.access_log);
    if (!opened.ok()) {
      return absl::Status(
          opened.status().code(),
          absl::StrCat(opened.status().message(), " for listener \"",
                       listener.name, "\""));
    }
  }
  return change;
}

void Master::CommitObservability(ObservabilityChange change) {
  if (change.metrics_changes) {
    if (change.metrics_address.empty()) {
      LOG(INFO) << "reload: /metrics and /healthz no longer served";
    }
    UseMetricsSocket(std::move(change.metrics_fd), change.metrics_address);
  }
  BindAccessLogs();
}

}  // namespace master
}  // namespace ddv
