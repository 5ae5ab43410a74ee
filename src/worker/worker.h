// The worker library: what a site's process links to be handed connections
// by the ddv master. It reads its channel from the environment (see
// docs/worker.md), fits into the app's own event loop (fd(), Drain(),
// NextTimeout()) or runs a small one (Run()), and offers RPCs to the master.
#ifndef DDV_SRC_WORKER_WORKER_H_
#define DDV_SRC_WORKER_WORKER_H_

#include <sys/socket.h>
#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "src/base/unique_fd.h"
#include "src/handoff/site_view.h"
#include "src/handoff/wire.h"
#include "src/handoff/worker_env.h"
#include "src/route/host_check.h"

namespace ddv {
namespace handoff {
struct ReceivedFrame;
}  // namespace handoff

namespace worker {

using Protocol = handoff::Protocol;
using HandoffMode = handoff::HandoffMode;
using HostVerdict = route::HostVerdict;

// A listener_key no connection has: CheckRequest allows everything on it
// (for an app that serves sockets of its own next to the master's).
inline constexpr uint32_t kNoListenerKey = UINT32_MAX;

// The environment contract between the master and its workers lives in
// src/handoff/worker_env.h; these names keep the worker API self-contained.
using handoff::kEnvChannelFd;
using handoff::kEnvHandoff;
using handoff::kEnvMasterPid;
using handoff::kEnvSite;
using handoff::kEnvWorkerIndex;

// Who this worker is, as the master told it.
struct WorkerIdentity {
  std::string site;
  uint32_t worker_index = 0;
  HandoffMode handoff = HandoffMode::kScmRights;
  pid_t master_pid = 0;  // needed in pidfd mode only
};

struct WorkerOptions {
  // With no frame from the master for this long, the master is taken as gone
  // (hung or unreachable). After a third of it the worker sends a heartbeat
  // the master must answer, so an idle but healthy master is never mistaken
  // for a dead one. InfiniteDuration() turns the check off.
  absl::Duration master_silence_timeout = absl::Seconds(30);
  // Read and discard the PROXY header bytes (HandoffEntry.skip_bytes) before
  // the connection callback, so the app sees the client's first byte.
  bool consume_proxy_header = true;
  // Unset DDV_* after reading them: the channel fd is made close-on-exec, so
  // the variables would lie to the app's own child processes.
  bool clear_environment = true;
};

// What a PROXY protocol header said beyond the client's address
// (ConnectionInfo::peer), from an L4 tier in front of ddv. Everything is
// empty without a header (docs/worker.md#proxy-protocol).
struct ProxyInfo {
  // The address the client connected to at the L4 tier (the header's
  // destination); destination_length is 0 when it carried no addresses
  // (v1 UNKNOWN, v2 LOCAL), like peer_from_proxy false.
  sockaddr_storage destination{};
  socklen_t destination_length = 0;
  // The v2 TLVs the master passed on, as the header had them (type, u16
  // big-endian length, value), in order, without PP2_TYPE_NOOP and
  // PP2_TYPE_CRC32C (the master checked the checksum), at most
  // handoff::kMaxProxyTlvLength bytes; v1 has none.
  std::string tlvs;
  bool tlvs_truncated = false;  // some did not fit the handoff: left out
  // Decoded from `tlvs`, the first of each type; empty when absent.
  std::string alpn;       // PP2_TYPE_ALPN: what the client negotiated
  std::string authority;  // PP2_TYPE_AUTHORITY: the name it asked for (SNI)
  std::string unique_id;  // PP2_TYPE_UNIQUE_ID: opaque, up to 128 bytes
  std::string netns;      // PP2_TYPE_NETNS
  // PP2_TYPE_SSL: the client spoke TLS to the L4 tier.
  bool ssl = false;
  uint8_t ssl_client = 0;   // PP2_CLIENT_SSL 1 | _CERT_CONN 2 | _CERT_SESS 4
  uint32_t ssl_verify = 0;  // 0: its certificate (if any) verified
  std::string ssl_version, ssl_cn, ssl_cipher, ssl_sig_alg, ssl_key_alg;

  // The value of the first TLV of `type` (any, e.g. a cloud vendor's 0xEA),
  // or nullopt. Types 0x21 to 0x25 (PP2_SUBTYPE_SSL_*) are looked up among
  // PP2_TYPE_SSL's sub-TLVs. Views into `tlvs`.
  std::optional<absl::string_view> Tlv(uint8_t type) const;
  // Every TLV of `tlvs`, in order: (type, value), views into `tlvs`.
  std::vector<std::pair<uint8_t, absl::string_view>> AllTlvs() const;
};

// What the master knew about a handed-off connection.
struct ConnectionInfo {
  uint64_t connection_id = 0;
  std::string site;  // this worker's site id
  uint32_t site_index = 0;
  uint32_t listener_index = 0;
  Protocol protocol = Protocol::kTcp;
  bool tls = false;  // the listener speaks TLS: the worker terminates it
  std::string host;  // normalised Host or SNI; empty when none
  std::vector<std::string> alpn;  // offered by the client, in order
  int64_t accept_time_ns = 0;     // CLOCK_MONOTONIC
  // The client: the PROXY source when there was one, else getpeername().
  // ss_family is AF_UNSPEC and peer_length 0 when neither is known. On a
  // dual-stack listener (v6only = false) an IPv4 client is an IPv4-mapped
  // IPv6 address (::ffff:a.b.c.d), as getpeername() reports it.
  sockaddr_storage peer{};
  socklen_t peer_length = 0;
  bool peer_from_proxy = false;
  // The rest of the PROXY header: the destination and the v2 TLVs.
  ProxyInfo proxy;
  // PROXY header bytes still to read before the client's own bytes: 0 when
  // WorkerOptions.consume_proxy_header did it.
  uint32_t skip_bytes = 0;
  // This library's number for the listener, which CheckRequest takes. It
  // stays right when a master restart renumbers listener_index (the new
  // master's listener at the same address then decides).
  uint32_t listener_key = kNoListenerKey;
};

// A worker -> worker message delivered by the master.
struct IncomingMessage {
  std::string source_site;
  uint32_t source_worker = 0;
  nlohmann::json body;
};

// Arguments of the seed's updateServerConf; unset fields are left alone.
struct ServerConfUpdate {
  std::vector<std::string> add_hosts;
  std::optional<uint32_t> processes;
  std::optional<bool> claim_default;
};

// One worker's end of the channel. Single-threaded: call everything from the
// thread that runs the event loop. Callbacks run inside Drain()/Run() (and,
// when the master is already gone, inside Call()); they may call back into
// the Worker, except Drain() and Run(), and must not destroy it.
class Worker {
 public:
  // The socket is the app's from now on; it may be blocking or not, as the
  // master left it: set the mode you need.
  using ConnectionCallback =
      std::function<void(UniqueFd socket, const ConnectionInfo& info)>;
  using RpcCallback = std::function<void(absl::StatusOr<nlohmann::json>)>;
  using ShutdownCallback = std::function<void(absl::Duration grace)>;
  using MasterGoneCallback = std::function<void(const absl::Status& why)>;
  using MessageCallback = std::function<void(const IncomingMessage&)>;

  // NotFound when DDV_CHANNEL_FD is unset: not started by a master, so the
  // caller runs standalone. Any other error means the master's contract is
  // broken and the process should exit, not go standalone.
  static absl::StatusOr<std::unique_ptr<Worker>> FromEnvironment(
      const WorkerOptions& options = WorkerOptions());

  // For embedders and tests that already hold the channel.
  static absl::StatusOr<std::unique_ptr<Worker>> Create(
      UniqueFd channel, WorkerIdentity identity,
      const WorkerOptions& options = WorkerOptions());

  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // The channel to poll, or -1 once the master is gone (the fd is closed
  // then, which also drops it from any epoll set).
  int fd() const { return channel_.get(); }
  // POLLIN, plus POLLOUT while frames wait for room in the channel.
  short poll_events() const;
  // How long the app's loop may sleep before calling Drain() again even if
  // fd() stays quiet (RPC deadlines, heartbeats, a pending send).
  // InfiniteDuration() when nothing is scheduled.
  absl::Duration NextTimeout() const;

  // Never blocks. Reads every queued frame and acts on it (each batch is
  // of a pidfd batch is acknowledged with a kPidfdAck before its connections
  // reach the app),
  // fires expired RPC deadlines and the heartbeat logic, and flushes
  // outgoing frames. A
  // protocol error from the master is returned after the worker has treated
  // the master as gone; the loss of the master itself is not an error.
  absl::Status Drain();

  // A poll() loop around Drain() until kShutdown arrives or the master is
  // gone; returns OK in both cases so main() can finish its connections and
  // exit.
  absl::Status Run();

  void OnConnection(ConnectionCallback callback);
  // Default: nothing beyond stopping Run(); the app drains and exits.
  void OnShutdown(ShutdownCallback callback);
  // Default: log. Handoffs stop (the channel is closed); pending RPCs fail
  // with Unavailable; Run() returns.
  void OnMasterGone(MasterGoneCallback callback);
  void OnMessage(MessageCallback callback);

  // RPC to the master. The callback runs exactly once: with the response
  // body, the master's error, DeadlineExceeded after `timeout`, or
  // Unavailable when the master is gone. A null callback ignores the
  // result. (Destroying the Worker drops pending callbacks unrun.)
  void Call(absl::string_view method, nlohmann::json body,
            absl::Duration timeout, RpcCallback callback);
  void Ping(absl::Duration timeout, RpcCallback callback);
  void Status(absl::Duration timeout, RpcCallback callback);
  void UpdateServerConf(const ServerConfUpdate& update, absl::Duration timeout,
                        RpcCallback callback);
  // How many connections the app has open now (taken and not yet closed).
  // The library reports it to the master, with the number it has taken,
  // from Drain() (NextTimeout() says when): at most every 10 ms for a site
  // with max_connections, which counts them (docs/isolation.md), every
  // second for one without (the site view says which). Without
  // it only the connections taken are reported. Cheap: call it whenever
  // the count changes.
  void SetOpenConnections(uint64_t open);

  // Worker -> worker: a kMessage the master forwards to `site`'s worker
  // `worker_index` (handoff::kAnyWorker: one of its choice), which receives
  // it as an IncomingMessage. Best effort, like the seed's: OK means queued
  // to the master, not delivered. Unavailable once the master is gone.
  absl::Status SendToWorker(absl::string_view site, uint32_t worker_index,
                            nlohmann::json body);

  // Whether a request on a connection from `info`'s listener may be
  // answered here (docs/isolation.md): the authority it names (an
  // absolute-form `target`'s, else `host`, the Host field value; "" when
  // absent) must be one the master routes to this site on that listener,
  // as the master's latest site view says. kMisdirected: answer 421
  // Misdirected Request with Connection: close (RFC 9110 §15.5.20), and the
  // client retries on a new connection; kInvalid: answer 400. Allowed when
  // the site has strict_host = false, before the master sent a view, and
  // for kNoListenerKey. A connection whose listener the view no longer
  // names (a retired listener's routes released, a master restart that
  // dropped its address) is checked against the listener now at its
  // address, and with none there every request is kMisdirected. Counts
  // every kMisdirected.
  // `first_request`: the request the connection opened with, which the
  // master routed by its name: naming info.host it is allowed whatever the
  // view says by now (route::NamesRoutedHost). Later requests are checked
  // against the current view.
  HostVerdict CheckRequest(const ConnectionInfo& info,
                           absl::string_view target, absl::string_view host,
                           bool first_request = false) {
    if (first_request && route::NamesRoutedHost(target, host, info.host)) {
      return HostVerdict::kAllowed;
    }
    return CheckRequest(info.listener_key, target, host);
  }
  HostVerdict CheckRequest(uint32_t listener_key, absl::string_view target,
                           absl::string_view host);
  // kMisdirected answers CheckRequest gave.
  uint64_t misdirected_requests() const { return misdirected_requests_; }
  // Changes whenever a new site view arrives: a verdict cached for a host
  // is stale once this moved.
  uint64_t host_view_generation() const { return host_view_generation_; }

  const WorkerIdentity& identity() const { return identity_; }
  bool shutdown_requested() const { return shutdown_requested_; }
  bool master_gone() const { return master_gone_; }
  // Run() would return: stop feeding this worker to your loop.
  bool stopped() const { return shutdown_requested_ || master_gone_; }

 private:
  struct PendingCall {
    absl::Duration deadline;  // monotonic
    RpcCallback callback;
  };

  Worker(UniqueFd channel, WorkerIdentity identity,
         const WorkerOptions& options);

  void Enqueue(const handoff::Frame& frame);
  void Flush();
  void HandleFrame(handoff::ReceivedFrame received);
  void HandleBatch(handoff::HandoffBatch& batch, std::vector<UniqueFd>& fds);
  void Deliver(UniqueFd socket, const handoff::HandoffEntry& entry);
  void HandleResponse(const handoff::Response& response);
  // A call from the master: a site view part, the one method served.
  void HandleRequest(const handoff::Request& request);
  void ApplySiteView(const handoff::SiteView& view);
  void ExpireTimers();
  // Queues a `connections` notification when the counts changed and the
  // last one is old enough; returns when the next may go (InfiniteDuration
  // when nothing waits).
  absl::Duration MaybeReport(absl::Duration now);
  void MasterGone(const absl::Status& why);
  void ProtocolError(const absl::Status& why);

  UniqueFd channel_;
  UniqueFd master_pidfd_;  // pidfd mode only
  WorkerIdentity identity_;
  WorkerOptions options_;
  std::deque<std::string> outgoing_;
  absl::flat_hash_map<uint64_t, PendingCall> pending_;
  uint64_t next_request_id_ = 1;
  uint64_t next_heartbeat_ = 1;
  absl::Duration last_heard_;  // monotonic time of the master's last frame
  bool probe_outstanding_ = false;
  bool shutdown_requested_ = false;
  bool master_gone_ = false;
  bool draining_ = false;
  absl::Status fatal_;  // the protocol error that ended the channel, if any
  // The `connections` report: what changed since the last one sent.
  uint64_t taken_ = 0;
  std::optional<uint64_t> open_;
  uint64_t reported_taken_ = 0;
  std::optional<uint64_t> reported_open_;
  absl::Duration last_report_ = -absl::InfiniteDuration();
  // From the site view: 10 ms where the site has max_connections, else 1 s.
  absl::Duration report_interval_ =
      absl::Milliseconds(handoff::kDefaultConnectionsReportMs);

  // Site views (CheckRequest). A listener key names a listener as the
  // master that handed the connection numbered it; keys are never reused.
  struct ListenerKey {
    std::string master;    // "" until the first site view says who
    uint32_t index = 0;    // that master's listener index
    std::string address;   // where it listens, once a view said
    int checker = -1;      // into checkers_; -1: no listener (refused)
  };
  void ResolveListenerKeys();
  handoff::SiteViewAssembler site_view_parts_;
  bool strict_hosts_ = false;
  std::string view_master_;  // who sent the current view
  std::vector<ListenerKey> listener_keys_;
  // The current master's keys by listener index.
  absl::flat_hash_map<uint32_t, uint32_t> key_by_index_;
  // The current view, compiled: one checker per listener entry, found by
  // the entry's index, or for an earlier master's key by address (the
  // live listener there).
  std::vector<route::HostChecker> checkers_;
  std::vector<std::string> checker_addresses_;  // the listener's, per checker
  absl::flat_hash_map<uint32_t, int> checker_by_index_;
  absl::flat_hash_map<std::string, int> checker_by_address_;
  uint64_t host_view_generation_ = 0;
  uint64_t misdirected_requests_ = 0;

  ConnectionCallback on_connection_;
  ShutdownCallback on_shutdown_;
  MasterGoneCallback on_master_gone_;
  MessageCallback on_message_;
};

}  // namespace worker
}  // namespace ddv

#endif  // DDV_SRC_WORKER_WORKER_H_
