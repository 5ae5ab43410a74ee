// Worker: the worker's side of the channel. Receives handoff batches, turns
// entries into ConnectionInfo for the app, keeps the master's heartbeat, and
// matches RPC responses to their callbacks and deadlines.
#include "src/worker/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "glog/logging.h"
#include "src/base/errno_status.h"
#include "src/handoff/channel.h"
#include "src/sniff/proxy_protocol.h"

namespace ddv {
namespace worker {
namespace {

using handoff::Frame;
using handoff::FrameType;
using handoff::HandoffBatch;
using handoff::HandoffEntry;
using nlohmann::json;

// Output that cannot be sent yet is retried this often even when the app's
// loop polls fd() for POLLIN only.
constexpr absl::Duration kRetrySendAfter = absl::Milliseconds(10);
// `connections` reports go at most this often: fresh enough for the
// master's max_connections, rare enough to cost it nothing.
// The PROXY header was peeked by the master, so it is queued on the socket;
// this bound only matters if something is badly wrong.
constexpr absl::Duration kProxyHeaderWait = absl::Seconds(1);

absl::Duration MonotonicNow() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return absl::DurationFromTimespec(ts);
}

int PollMillis(absl::Duration d) {
  if (d == absl::InfiniteDuration()) return -1;
  if (d <= absl::ZeroDuration()) return 0;
  int64_t ms = absl::ToInt64Milliseconds(d + absl::Microseconds(999));
  return ms > 1000000 ? 1000000 : static_cast<int>(ms);
}

// The errno to report in a PidfdAck for a failed PullFd.
int32_t PullErrno(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kPermissionDenied:
      return EPERM;
    case absl::StatusCode::kNotFound:
      return EBADF;
    case absl::StatusCode::kUnavailable:
      return ESRCH;
    default:
      return EIO;
  }
}

// The channel must be ours to read: a seqpacket Unix socket. Anything else
// means DDV_CHANNEL_FD is stale or the master spawned us wrongly.
absl::Status CheckChannelFd(int fd) {
  if (::fcntl(fd, F_GETFD) < 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        kEnvChannelFd, "=", fd, " is not an open fd in this process"));
  }
  int type = 0, domain = 0;
  socklen_t len = sizeof(type);
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 ||
      type != SOCK_SEQPACKET) {
    return absl::FailedPreconditionError(absl::StrCat(
        kEnvChannelFd, "=", fd, " is not a SOCK_SEQPACKET socket"));
  }
  len = sizeof(domain);
  if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 ||
      domain != AF_UNIX) {
    return absl::FailedPreconditionError(
        absl::StrCat(kEnvChannelFd, "=", fd, " is not an AF_UNIX socket"));
  }
  return absl::OkStatus();
}

// Close-on-exec so the app's children do not hold the channel open (the
// master would never see this worker's EOF); non-blocking so Drain() never
// stalls.
absl::Status PrepareChannelFd(int fd) {
  int fd_flags = ::fcntl(fd, F_GETFD);
  if (fd_flags < 0 || ::fcntl(fd, F_SETFD, fd_flags | FD_CLOEXEC) != 0) {
    return ErrnoStatus(errno, "fcntl", "making the channel close-on-exec");
  }
  int fl_flags = ::fcntl(fd, F_GETFL);
  if (fl_flags < 0 || ::fcntl(fd, F_SETFL, fl_flags | O_NONBLOCK) != 0) {
    return ErrnoStatus(errno, "fcntl", "making the channel non-blocking");
  }
  return absl::OkStatus();
}

// Reads and drops `n` bytes: the PROXY header in front of the client's data.
absl::Status DiscardBytes(int fd, uint32_t n) {
  char buf[4096];
  absl::Duration deadline = MonotonicNow() + kProxyHeaderWait;
  while (n > 0) {
    ssize_t r = ::recv(fd, buf, n < sizeof(buf) ? n : sizeof(buf),
                       MSG_DONTWAIT);
    if (r > 0) {
      n -= static_cast<uint32_t>(r);
      continue;
    }
    if (r == 0) {
      return absl::AbortedError("client closed inside the PROXY header");
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      return ErrnoStatus(errno, "recv", "consuming the PROXY header");
    }
    pollfd p{fd, POLLIN, 0};
    int wait = PollMillis(deadline - MonotonicNow());
    if (wait == 0 || ::poll(&p, 1, wait) == 0) {
      return absl::DeadlineExceededError(
          absl::StrCat(n, " PROXY header bytes never arrived"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> ParseUint32Env(const char* name, const char* value) {
  uint32_t v = 0;
  if (value == nullptr || !absl::SimpleAtoi(value, &v)) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, "=", value == nullptr ? "(unset)" : value,
        " is not a non-negative integer"));
  }
  return v;
}

// The PROXY header's rest, decoded once for the app. The master checked
// the TLVs (sniff::ParseProxyTlvs) and the wire their framing, so a failure
// here means a master of another build: the raw TLVs still go through.
void FillProxyInfo(const handoff::ProxyMetadata& from, ProxyInfo* to) {
  if (from.has_addresses) {
    to->destination = from.destination;
    to->destination_length = handoff::InetSockaddrLength(from.destination);
  }
  to->tlvs = from.tlvs;
  to->tlvs_truncated = from.tlvs_truncated;
  if (from.tlvs.empty()) return;
  sniff::ProxyTlvs t;
  if (const char* error = sniff::ParseProxyTlvs(to->tlvs, &t)) {
    LOG_EVERY_N(WARNING, 1000) << "PROXY TLVs from the master: " << error;
    return;
  }
  to->alpn = std::string(t.alpn);
  to->authority = std::string(t.authority);
  to->unique_id = std::string(t.unique_id);
  to->netns = std::string(t.netns);
  to->ssl = t.has_ssl;
  to->ssl_client = t.ssl_client;
  to->ssl_verify = t.ssl_verify;
  to->ssl_version = std::string(t.ssl_version);
  to->ssl_cn = std::string(t.ssl_cn);
  to->ssl_cipher = std::string(t.ssl_cipher);
  to->ssl_sig_alg = std::string(t.ssl_sig_alg);
  to->ssl_key_alg = std::string(t.ssl_key_alg);
}

// The first TLV of `type` in `tlvs`.
std::optional<absl::string_view> FindTlv(absl::string_view tlvs,
                                         uint8_t type) {
  uint8_t found = 0;
  absl::string_view value;
  while (sniff::NextProxyTlv(&tlvs, &found, &value)) {
    if (found == type) return value;
  }
  return std::nullopt;
}

}  // namespace

std::optional<absl::string_view> ProxyInfo::Tlv(uint8_t type) const {
  if (type < sniff::kPp2SubtypeSslVersion ||
      type > sniff::kPp2SubtypeSslKeyAlg) {
    return FindTlv(tlvs, type);
  }
  std::optional<absl::string_view> ssl = FindTlv(tlvs, sniff::kPp2TypeSsl);
  if (!ssl.has_value() || ssl->size() < sniff::kPp2SslFixedLength) {
    return std::nullopt;
  }
  return FindTlv(ssl->substr(sniff::kPp2SslFixedLength), type);
}

std::vector<std::pair<uint8_t, absl::string_view>> ProxyInfo::AllTlvs()
    const {
  std::vector<std::pair<uint8_t, absl::string_view>> all;
  absl::string_view rest = tlvs;
  uint8_t type = 0;
  absl::string_view value;
  while (sniff::NextProxyTlv(&rest, &type, &value)) all.emplace_back(type, value);
  return all;
}

absl::StatusOr<std::unique_ptr<Worker>> Worker::FromEnvironment(
    const WorkerOptions& options) {
  const char* fd_text = std::getenv(kEnvChannelFd);
  if (fd_text == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        kEnvChannelFd, " is not set: not started by a ddv master"));
  }
  absl::StatusOr<uint32_t> fd = ParseUint32Env(kEnvChannelFd, fd_text);
  if (!fd.ok()) return fd.status();
  if (*fd > static_cast<uint32_t>(INT32_MAX)) {
    return absl::InvalidArgumentError(
        absl::StrCat(kEnvChannelFd, "=", fd_text, " is out of range"));
  }

  WorkerIdentity identity;
  const char* site = std::getenv(kEnvSite);
  if (site == nullptr || *site == '\0') {
    return absl::InvalidArgumentError(
        absl::StrCat(kEnvSite, " is unset or empty"));
  }
  identity.site = site;
  absl::StatusOr<uint32_t> index =
      ParseUint32Env(kEnvWorkerIndex, std::getenv(kEnvWorkerIndex));
  if (!index.ok()) return index.status();
  identity.worker_index = *index;

  const char* handoff = std::getenv(kEnvHandoff);
  if (handoff == nullptr ||
      std::strcmp(handoff, handoff::kHandoffScmRights) == 0) {
    identity.handoff = HandoffMode::kScmRights;
  } else if (std::strcmp(handoff, handoff::kHandoffPidfd) == 0) {
    identity.handoff = HandoffMode::kPidfd;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        kEnvHandoff, "=", handoff, " is neither ", handoff::kHandoffScmRights,
        " nor ", handoff::kHandoffPidfd));
  }
  const char* master_pid = std::getenv(kEnvMasterPid);
  if (master_pid != nullptr || identity.handoff == HandoffMode::kPidfd) {
    absl::StatusOr<uint32_t> pid = ParseUint32Env(kEnvMasterPid, master_pid);
    if (!pid.ok()) return pid.status();
    identity.master_pid = static_cast<pid_t>(*pid);
  }

  int channel = static_cast<int>(*fd);
  // Checked before taking ownership: a wrong number must not close an fd
  // that belongs to someone else.
  if (absl::Status s = CheckChannelFd(channel); !s.ok()) return s;
  if (options.clear_environment) {
    for (const char* name : {kEnvChannelFd, kEnvSite, kEnvWorkerIndex,
                             kEnvHandoff, kEnvMasterPid}) {
      ::unsetenv(name);
    }
  }
  return Create(UniqueFd(channel), std::move(identity), options);
}

absl::StatusOr<std::unique_ptr<Worker>> Worker::Create(
    UniqueFd channel, WorkerIdentity identity, const WorkerOptions& options) {
  if (identity.site.empty() ||
      identity.site.size() > handoff::kMaxSiteIdLength) {
    return absl::InvalidArgumentError(absl::StrCat(
        "site id \"", identity.site, "\" must be 1..",
        handoff::kMaxSiteIdLength, " bytes"));
  }
  if (absl::Status s = PrepareChannelFd(channel.get()); !s.ok()) return s;
  UniqueFd pidfd;
  if (identity.handoff == HandoffMode::kPidfd) {
    absl::StatusOr<UniqueFd> opened = handoff::OpenPidfd(identity.master_pid);
    if (!opened.ok()) return opened.status();
    pidfd = std::move(*opened);
  }
  std::unique_ptr<Worker> worker(
      new Worker(std::move(channel), std::move(identity), options));
  worker->master_pidfd_ = std::move(pidfd);

  handoff::Hello hello;
  hello.pid = static_cast<uint32_t>(::getpid());
  hello.worker_index = worker->identity_.worker_index;
  hello.site = worker->identity_.site;
  worker->Enqueue(hello);
  worker->Flush();
  if (worker->master_gone_) {
    return absl::UnavailableError(
        "the ddv master closed the channel before this worker said hello");
  }
  return worker;
}

Worker::Worker(UniqueFd channel, WorkerIdentity identity,
               const WorkerOptions& options)
    : channel_(std::move(channel)),
      identity_(std::move(identity)),
      options_(options),
      last_heard_(MonotonicNow()) {}

Worker::~Worker() = default;

short Worker::poll_events() const {
  return static_cast<short>(POLLIN | (outgoing_.empty() ? 0 : POLLOUT));
}

absl::Duration Worker::NextTimeout() const {
  if (!channel_) return absl::InfiniteDuration();
  absl::Duration now = MonotonicNow();
  absl::Duration earliest = absl::InfiniteDuration();
  for (const auto& [id, call] : pending_) {
    earliest = std::min(earliest, call.deadline);
  }
  absl::Duration silence = options_.master_silence_timeout;
  if (silence != absl::InfiniteDuration()) {
    earliest = std::min(
        earliest, last_heard_ + (probe_outstanding_ ? silence : silence / 3));
  }
  if (!outgoing_.empty()) earliest = std::min(earliest, now + kRetrySendAfter);
  if (taken_ != reported_taken_ || open_ != reported_open_) {
    earliest = std::min(earliest, last_report_ + report_interval_);
  }
  if (earliest == absl::InfiniteDuration()) return earliest;
  return std::max(absl::ZeroDuration(), earliest - now);
}

void Worker::OnConnection(ConnectionCallback callback) {
  on_connection_ = std::move(callback);
}
void Worker::OnShutdown(ShutdownCallback callback) {
  on_shutdown_ = std::move(callback);
}
void Worker::OnMasterGone(MasterGoneCallback callback) {
  on_master_gone_ = std::move(callback);
}
void Worker::OnMessage(MessageCallback callback) {
  on_message_ = std::move(callback);
}

void Worker::Enqueue(const Frame& frame) {
  if (!channel_) return;
  std::string bytes;
  absl::Status status = handoff::EncodeFrame(frame, &bytes);
  // Only RPC arguments come from the app, and Call() checks those first.
  CHECK(status.ok()) << "encoding a frame the worker built: " << status;
  outgoing_.push_back(std::move(bytes));
}

void Worker::Flush() {
  while (channel_ && !outgoing_.empty()) {
    absl::Status status = handoff::SendFrame(channel_.get(), outgoing_.front(),
                                             {}, absl::ZeroDuration());
    if (status.ok()) {
      outgoing_.pop_front();
    } else if (handoff::IsWouldBlock(status)) {
      return;  // POLLOUT (or the NextTimeout retry) brings us back
    } else if (handoff::IsPeerClosed(status)) {
      MasterGone(status);
    } else {
      ProtocolError(status);
    }
  }
}

absl::Status Worker::Drain() {
  if (draining_) {
    return absl::FailedPreconditionError(
        "Worker::Drain() called from inside a worker callback");
  }
  draining_ = true;
  absl::Cleanup done = [this] { draining_ = false; };
  Flush();
  while (channel_) {
    absl::StatusOr<handoff::ReceivedFrame> received =
        handoff::ReceiveFrame(channel_.get(), absl::ZeroDuration());
    if (!received.ok()) {
      if (handoff::IsWouldBlock(received.status())) break;
      if (handoff::IsPeerClosed(received.status())) {
        MasterGone(received.status());
      } else {
        ProtocolError(received.status());
      }
      break;
    }
    last_heard_ = MonotonicNow();
    probe_outstanding_ = false;
    HandleFrame(std::move(*received));
  }
  ExpireTimers();
  MaybeReport(MonotonicNow());
  Flush();
  absl::Status result = std::move(fatal_);
  fatal_ = absl::OkStatus();
  return result;
}

void Worker::SetOpenConnections(uint64_t open) { open_ = open; }

absl::Duration Worker::MaybeReport(absl::Duration now) {
  if (!channel_ || (taken_ == reported_taken_ && open_ == reported_open_)) {
    return absl::InfiniteDuration();
  }
  if (now < last_report_ + report_interval_) {
    return last_report_ + report_interval_;
  }
  // A notification: id 0 asks for no answer (docs/handoff.md). A master
  // that predates it answers "unknown method", which HandleResponse drops.
  handoff::Request report;
  report.method = "connections";
  json body = {{"taken", taken_}};
  if (open_) body["open"] = *open_;
  report.body = body.dump();
  Enqueue(report);
  reported_taken_ = taken_;
  reported_open_ = open_;
  last_report_ = now;
  return absl::InfiniteDuration();
}

absl::Status Worker::Run() {
  while (!stopped()) {
    pollfd p{channel_.get(), poll_events(), 0};
    int n = ::poll(&p, 1, PollMillis(NextTimeout()));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "poll", "waiting on the master channel");
    }
    if (absl::Status s = Drain(); !s.ok()) return s;
  }
  return absl::OkStatus();
}

void Worker::HandleFrame(handoff::ReceivedFrame received) {
  Frame& frame = received.frame;
  switch (handoff::TypeOf(frame)) {
    case FrameType::kHandoffBatch:
      HandleBatch(std::get<HandoffBatch>(frame), received.fds);
      return;
    case FrameType::kHeartbeat: {
      const auto& beat = std::get<handoff::Heartbeat>(frame);
      if (!beat.is_reply) Enqueue(handoff::Heartbeat{beat.sequence, true});
      return;  // a reply only refreshed last_heard_
    }
    case FrameType::kResponse:
      HandleResponse(std::get<handoff::Response>(frame));
      return;
    case FrameType::kMessage: {
      auto& message = std::get<handoff::Message>(frame);
      IncomingMessage incoming;
      incoming.source_site = std::move(message.source_site);
      incoming.source_worker = message.source_worker;
      incoming.body = json::parse(message.body, nullptr, false);
      if (incoming.body.is_discarded()) {
        LOG(WARNING) << "dropped a message from " << incoming.source_site
                     << "#" << incoming.source_worker << ": body is not JSON";
        return;
      }
      if (on_message_) on_message_(incoming);
      return;
    }
    case FrameType::kShutdown: {
      shutdown_requested_ = true;
      auto grace = absl::Milliseconds(
          std::get<handoff::Shutdown>(frame).grace_ms);
      if (on_shutdown_) on_shutdown_(grace);
      return;
    }
    case FrameType::kRequest:
      HandleRequest(std::get<handoff::Request>(frame));
      return;
    case FrameType::kHello:
    case FrameType::kPidfdAck:
      ProtocolError(absl::InvalidArgumentError(absl::StrCat(
          "the master sent a ", handoff::FrameTypeName(handoff::TypeOf(frame)),
          " frame, which only workers send")));
      return;
  }
}

void Worker::HandleBatch(HandoffBatch& batch, std::vector<UniqueFd>& fds) {
  if (batch.mode == HandoffMode::kScmRights) {
    // No acknowledgement: the master closed its copies when the message was
    // sent, and gets back whatever a dead worker left unread through the
    // channel's other end (docs/master.md).
    // ReceiveFrame guarantees one fd per entry, in order.
    for (size_t i = 0; i < batch.entries.size(); ++i) {
      Deliver(std::move(fds[i]), batch.entries[i]);
    }
    return;
  }
  if (!master_pidfd_ && identity_.master_pid > 0) {
    absl::StatusOr<UniqueFd> pidfd = handoff::OpenPidfd(identity_.master_pid);
    if (pidfd.ok()) {
      master_pidfd_ = std::move(*pidfd);
    } else {
      LOG(ERROR) << pidfd.status();
    }
  }
  std::vector<UniqueFd> pulled(batch.entries.size());
  handoff::PidfdAck ack;
  for (size_t i = 0; i < batch.entries.size(); ++i) {
    const HandoffEntry& entry = batch.entries[i];
    absl::StatusOr<UniqueFd> fd =
        master_pidfd_ ? handoff::PullFd(master_pidfd_.get(), entry.master_fd)
                      : absl::StatusOr<UniqueFd>(absl::FailedPreconditionError(
                            "pidfd handoff without DDV_MASTER_PID"));
    if (fd.ok()) {
      pulled[i] = std::move(*fd);
      ack.entries.push_back({entry.connection_id, 0});
    } else {
      LOG_EVERY_N(ERROR, 1000) << "connection " << entry.connection_id
                               << " lost: " << fd.status();
      ack.entries.push_back({entry.connection_id, PullErrno(fd.status())});
    }
  }
  // Ack before serving, so the master closes its copies as early as it can.
  Enqueue(ack);
  Flush();
  for (size_t i = 0; i < batch.entries.size(); ++i) {
    if (pulled[i]) Deliver(std::move(pulled[i]), batch.entries[i]);
  }
}

void Worker::Deliver(UniqueFd socket, const HandoffEntry& entry) {
  ++taken_;
  ConnectionInfo info;
  info.connection_id = entry.connection_id;
  info.site = identity_.site;
  info.site_index = entry.site_index;
  info.listener_index = entry.listener_index;
  auto [key, added] = key_by_index_.try_emplace(
      entry.listener_index, static_cast<uint32_t>(listener_keys_.size()));
  if (added) {
    ListenerKey listener;
    listener.master = view_master_;
    listener.index = entry.listener_index;
    if (auto it = checker_by_index_.find(entry.listener_index);
        it != checker_by_index_.end()) {
      listener.checker = it->second;
      listener.address = checker_addresses_[it->second];
    }
    listener_keys_.push_back(std::move(listener));
  }
  info.listener_key = key->second;
  info.protocol = entry.protocol;
  info.tls = entry.protocol == Protocol::kTls;
  info.host = entry.host;
  info.alpn = absl::StrSplit(entry.alpn, ',', absl::SkipEmpty());
  info.accept_time_ns = entry.accept_time_ns;
  FillProxyInfo(entry.proxy, &info.proxy);
  if (entry.proxy.has_addresses) {
    info.peer = entry.proxy.source;
    info.peer_length = handoff::InetSockaddrLength(entry.proxy.source);
    info.peer_from_proxy = true;
  } else {
    socklen_t length = sizeof(info.peer);
    if (::getpeername(socket.get(), reinterpret_cast<sockaddr*>(&info.peer),
                      &length) == 0) {
      info.peer_length = length;
    } else {
      // The client may already have reset; the app still owns the socket
      // and learns that on its first read.
      info.peer = sockaddr_storage{};
      info.peer.ss_family = AF_UNSPEC;
    }
  }
  info.skip_bytes = entry.skip_bytes;
  if (entry.skip_bytes > 0 && options_.consume_proxy_header) {
    absl::Status skipped = DiscardBytes(socket.get(), entry.skip_bytes);
    if (!skipped.ok()) {
      LOG_EVERY_N(WARNING, 1000) << "connection " << entry.connection_id
                                 << " dropped: " << skipped;
      return;
    }
    info.skip_bytes = 0;
  }
  if (!on_connection_) {
    LOG_EVERY_N(WARNING, 1000)
        << "no connection callback set: closing connection "
        << entry.connection_id;
    return;
  }
  on_connection_(std::move(socket), info);
}

// Master -> worker calls. Always answered, so the master never waits on
// us; a library that predates a method answers Unimplemented, which is what
// lets the master send site views to workers of any version.
void Worker::HandleRequest(const handoff::Request& request) {
  handoff::Response response;
  response.id = request.id;
  if (request.method != handoff::kSiteViewMethod) {
    response.code = absl::StatusCode::kUnimplemented;
    response.error = absl::StrCat("this worker library serves no method \"",
                                  request.method, "\"");
    Enqueue(response);
    return;
  }
  json part = json::parse(request.body, nullptr, /*allow_exceptions=*/false);
  absl::StatusOr<std::optional<handoff::SiteView>> view =
      site_view_parts_.Add(part);
  if (!view.ok()) {
    // Checks go on by the last whole view; the master's next one replaces it.
    LOG(ERROR) << "site view from the master refused: " << view.status();
    response.code = view.status().code();
    response.error = std::string(view.status().message());
  } else if (view->has_value()) {
    ApplySiteView(**view);
  }
  Enqueue(response);
}

void Worker::ApplySiteView(const handoff::SiteView& view) {
  strict_hosts_ = view.strict;
  report_interval_ = absl::Milliseconds(view.connections_report_ms);
  if (view.master != view_master_) {
    // A new master numbers its listeners afresh: the keys it hands out are
    // new ones. Connections handed before any view are the first master's.
    for (ListenerKey& key : listener_keys_) {
      if (key.master.empty()) key.master = view.master;
    }
    if (!view_master_.empty()) key_by_index_.clear();
    view_master_ = view.master;
  }
  checkers_.clear();
  checker_addresses_.clear();
  checker_by_index_.clear();
  checker_by_address_.clear();
  for (const handoff::SiteViewListener& listener : view.listeners) {
    absl::StatusOr<route::HostChecker> checker =
        route::HostChecker::Create(listener.hosts);
    if (!checker.ok()) continue;  // the assembler checked every pattern
    const int at = static_cast<int>(checkers_.size());
    checkers_.push_back(*std::move(checker));
    checker_addresses_.push_back(listener.address);
    checker_by_index_[listener.index] = at;
    // A listener a reload retired shares its address with the one that
    // took over its socket: for an earlier master's connection the live
    // one decides.
    if (!listener.retired || !checker_by_address_.contains(listener.address)) {
      checker_by_address_[listener.address] = at;
    }
    if (auto key = key_by_index_.find(listener.index);
        key != key_by_index_.end()) {
      listener_keys_[key->second].address = listener.address;
    }
  }
  ResolveListenerKeys();
  ++host_view_generation_;
  VLOG(1) << "site view " << view.version << " from master " << view.master
          << ": " << view.listeners.size() << " listeners, strict_host "
          << (view.strict ? "on" : "off");
}

// Each key's checker in the current view: its own listener's for keys of
// the master that sent it (a retired listener keeps the routes it had, as
// the master does for what it accepted there); for an earlier master's,
// and for a retired listener the master has since left out (its routes
// released), the live listener at the same address. A key left with none
// is refused by CheckRequest.
void Worker::ResolveListenerKeys() {
  for (ListenerKey& key : listener_keys_) {
    key.checker = -1;
    if (key.master == view_master_) {
      auto it = checker_by_index_.find(key.index);
      if (it != checker_by_index_.end()) {
        key.checker = it->second;
        continue;
      }
    }
    if (!key.address.empty()) {
      auto it = checker_by_address_.find(key.address);
      if (it != checker_by_address_.end()) key.checker = it->second;
    }
  }
}

HostVerdict Worker::CheckRequest(uint32_t listener_key,
                                 absl::string_view target,
                                 absl::string_view host) {
  if (!strict_hosts_ || listener_key >= listener_keys_.size()) {
    return HostVerdict::kAllowed;
  }
  // A connection from a listener the view names no more, nor any at its
  // address: the master routes nothing there now, so nothing is this
  // site's (fail closed; the client retries on a new connection).
  const int checker = listener_keys_[listener_key].checker;
  HostVerdict verdict = checker < 0
                            ? HostVerdict::kMisdirected
                            : checkers_[checker].CheckRequest(target, host);
  if (verdict == HostVerdict::kMisdirected) ++misdirected_requests_;
  return verdict;
}

void Worker::HandleResponse(const handoff::Response& response) {
  auto it = pending_.find(response.id);
  if (it == pending_.end()) {
    VLOG(1) << "response to RPC " << response.id << " after its deadline";
    return;
  }
  RpcCallback callback = std::move(it->second.callback);
  pending_.erase(it);
  if (response.code != absl::StatusCode::kOk) {
    callback(absl::Status(response.code, response.error));
    return;
  }
  if (response.body.empty()) {
    callback(json(nullptr));
    return;
  }
  json body = json::parse(response.body, nullptr, false);
  if (body.is_discarded()) {
    callback(absl::InternalError(absl::StrCat(
        "the master answered RPC ", response.id, " with invalid JSON")));
    return;
  }
  callback(std::move(body));
}

void Worker::ExpireTimers() {
  absl::Duration now = MonotonicNow();
  // Collected first: a callback may start a new call and change pending_.
  std::vector<RpcCallback> expired;
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second.deadline <= now) {
      expired.push_back(std::move(it->second.callback));
      pending_.erase(it++);
    } else {
      ++it;
    }
  }
  for (RpcCallback& callback : expired) {
    callback(absl::DeadlineExceededError("the master did not answer in time"));
  }

  absl::Duration silence = options_.master_silence_timeout;
  if (!channel_ || silence == absl::InfiniteDuration()) return;
  absl::Duration quiet = MonotonicNow() - last_heard_;
  if (quiet >= silence) {
    MasterGone(absl::UnavailableError(
        absl::StrCat("the master has been silent for ",
                     absl::FormatDuration(quiet))));
  } else if (quiet >= silence / 3 && !probe_outstanding_) {
    Enqueue(handoff::Heartbeat{next_heartbeat_++, false});
    probe_outstanding_ = true;
  }
}

void Worker::MasterGone(const absl::Status& why) {
  if (master_gone_) return;
  master_gone_ = true;
  channel_.Reset();
  master_pidfd_.Reset();
  outgoing_.clear();
  LOG(WARNING) << "ddv master gone (" << why.message()
               << "): this worker takes no more connections";
  absl::flat_hash_map<uint64_t, PendingCall> failed;
  failed.swap(pending_);
  for (auto& [id, call] : failed) {
    call.callback(absl::UnavailableError(
        absl::StrCat("the ddv master is gone: ", why.message())));
  }
  if (on_master_gone_) on_master_gone_(why);
}

void Worker::ProtocolError(const absl::Status& why) {
  LOG(ERROR) << "closing the master channel after a protocol error: " << why;
  if (fatal_.ok()) fatal_ = why;
  MasterGone(why);
}

void Worker::Call(absl::string_view method, json body, absl::Duration timeout,
                  RpcCallback callback) {
  if (!callback) callback = [](absl::StatusOr<json>) {};
  if (master_gone_) {
    callback(absl::UnavailableError("the ddv master is gone"));
    return;
  }
  handoff::Request request;
  request.id = next_request_id_++;
  request.method = std::string(method);
  // replace: invalid UTF-8 in an app string must not throw (no exceptions).
  request.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  std::string bytes;
  if (absl::Status s = handoff::EncodeFrame(request, &bytes); !s.ok()) {
    callback(s);
    return;
  }
  pending_[request.id] = PendingCall{MonotonicNow() + timeout,
                                     std::move(callback)};
  outgoing_.push_back(std::move(bytes));
  Flush();
}

void Worker::Ping(absl::Duration timeout, RpcCallback callback) {
  Call("ping", json::object(), timeout, std::move(callback));
}

void Worker::Status(absl::Duration timeout, RpcCallback callback) {
  Call("status", json::object(), timeout, std::move(callback));
}

void Worker::UpdateServerConf(const ServerConfUpdate& update,
                              absl::Duration timeout, RpcCallback callback) {
  json body = json::object();
  if (!update.add_hosts.empty()) body["add_hosts"] = update.add_hosts;
  if (update.processes) body["processes"] = *update.processes;
  if (update.claim_default) body["default"] = *update.claim_default;
  Call("update_server_conf", std::move(body), timeout, std::move(callback));
}

absl::Status Worker::SendToWorker(absl::string_view site,
                                  uint32_t worker_index, json body) {
  if (master_gone_) return absl::UnavailableError("the ddv master is gone");
  handoff::Message message;
  message.target_site = std::string(site);
  message.target_worker = worker_index;
  message.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  std::string bytes;
  if (absl::Status s = handoff::EncodeFrame(message, &bytes); !s.ok()) {
    return s;
  }
  outgoing_.push_back(std::move(bytes));
  Flush();
  return master_gone_ ? absl::UnavailableError("the ddv master is gone")
                      : absl::OkStatus();
}

}  // namespace worker
}  // namespace ddv
