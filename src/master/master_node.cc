// Master, Node.js workers (`runtime = "node"`): the master plays Node's
// cluster primary on the worker's SOCK_STREAM channel (docs/node.md).
// A connection goes out as one `newconn` line with its fd; the master keeps
// its own copy until the child answers `accepted`, like Node's primary, so a
// worker at its maxConnections, or one that dies before answering, loses
// nothing: the connection goes to another worker. ddv's own messages
// (replies, worker messages, heartbeats) ride as {"ddv": ...} objects, which
// Node delivers to process.on('message') and the ddv-worker package consumes.
#include <poll.h>
#include <signal.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "nlohmann/json.hpp"
#include "src/handoff/node_cluster.h"
#include "src/master/master.h"
#include "src/master/proxy_source.h"

namespace ddv {
namespace master {
namespace {

namespace node = handoff::node;
using json = nlohmann::json;

// Reads an integer member without exceptions (the build has none).
bool IntMember(const json& object, const char* name, int64_t* out) {
  auto it = object.find(name);
  if (it == object.end() || !it->is_number_integer()) return false;
  *out = it->get<int64_t>();
  return true;
}

bool StringMember(const json& object, const char* name, std::string* out) {
  auto it = object.find(name);
  if (it == object.end() || !it->is_string()) return false;
  *out = it->get<std::string>();
  return true;
}

std::string key_for_site(int site, const std::string& key) {
  return absl::StrCat(site, "/", key);
}

}  // namespace

void Master::FlushNode(int w) {
  Worker& worker = workers_->at(w);
  NodeChannel& channel = *worker.node;
  // No process: nothing may go into the channel a successor will read
  // (the dead one's connections are re-routed by ReclaimFromWorker).
  if (!worker.channel || worker.channel_full || workers_->pid(w) == 0) return;
  // Queued connections enter the outbox while the child holds fewer than
  // the cap unanswered; the rest wait in the queue, and count as load.
  // None while the site view is not in the outbox yet (it was full): the
  // preload must have the view before the app gets a connection.
  size_t taken = 0;
  while (!SiteViewPending(w) && taken < worker.queue.size() &&
         channel.unaccepted() < options_.node_max_unaccepted &&
         channel.listening) {
    const uint32_t index = worker.queue[taken++];
    Connection& c = connections_.at(index);
    if (c.state != ConnState::kQueued || c.worker != w) continue;
    if (c.skip_bytes > 0) {
      // A Node app reads the socket as Node hands it over: the PROXY
      // header goes first, its facts ride in the newconn message.
      absl::Status dropped = DiscardProxyHeader(c.fd.get(), c.skip_bytes);
      if (!dropped.ok()) {
        LOG_EVERY_N(WARNING, 100) << dropped;
        if (worker.outstanding > 0) --worker.outstanding;
        ++counters_.closed_before_decision;
        Close(index);
        continue;
      }
      c.skip_bytes = 0;
    }
    c.state = ConnState::kSending;
    // The routed host rides along for the preload's first-request rule.
    channel.QueueConnection(
        c.fd.get(), index, MonotonicNowNs(),
        node::NewConnectionDdv(c.host.view(), NodeProxyJson(c.proxy)));
  }
  worker.queue.erase(worker.queue.begin(), worker.queue.begin() + taken);

  std::vector<uint32_t> sent;
  NodeChannel::FlushResult result = channel.Flush(worker.channel.get(), &sent);
  for (uint32_t index : sent) {
    Connection& c = connections_.at(index);
    if (c.state == ConnState::kSending && c.worker == w) {
      c.state = ConnState::kSent;  // answered by `accepted`
    }
  }
  if (result == NodeChannel::FlushResult::kBlocked && !worker.channel_full) {
    // As for ddv workers: Pick skips it until the channel drains.
    worker.channel_full = true;
    counters_.handoff_channel_full += 1;
    io_uring_sqe* sqe = Sqe(kOpChannelWritable, w, 0);
    io_uring_prep_poll_add(sqe, worker.channel.get(), POLLOUT);
  }
  if (result == NodeChannel::FlushResult::kClosed) {
    // Not EAGAIN: the master holds the child end, so this is an fd that is
    // not what it was (EBADF) or a broken socket. The head of the outbox
    // would fail forever; the worker is killed, and its death re-routes
    // what it had not answered.
    ++counters_.node_protocol_errors;
    LOG(ERROR) << "Node worker " << workers_->site_id(worker.site) << "#"
               << worker.index << ": writing its channel failed; killing it";
    workers_->Signal(w, SIGKILL);
  }
}

void Master::OnNodeReadable(int w) {
  Worker& worker = workers_->at(w);
  NodeChannel& channel = *worker.node;
  std::vector<node::ChildMessage> messages;
  std::vector<std::string> user_lines;
  absl::Status status = channel.Read(worker.channel.get(), &messages,
                                     &user_lines);
  if (!messages.empty() || !user_lines.empty()) {
    worker.last_heard_ns = MonotonicNowNs();
  }
  for (const node::ChildMessage& m : messages) {
    switch (m.kind) {
      case node::ChildMessageKind::kQueryServer:
        OnNodeQueryServer(w, m);
        break;
      case node::ChildMessageKind::kListening:
        worker.ready = channel.listening;
        RecordWorkerReady(w);
        VLOG(1) << "Node worker " << workers_->site_id(worker.site) << "#"
                << worker.index << " listening";
        break;
      case node::ChildMessageKind::kAccepted:
        OnNodeAccepted(w, m.ack, m.accepted);
        break;
      case node::ChildMessageKind::kClose:
        // The app closed its server: nothing to hand it any more.
        if (m.key == channel.server_key()) {
          channel.listening = false;
          worker.ready = false;
          // What waits in its queue goes to a sibling; what it was sent
          // comes back as `accepted: false` and goes there too.
          RequeueFromDraining(w);
        }
        break;
      case node::ChildMessageKind::kOnline:
      case node::ChildMessageKind::kHandleAck:
      case node::ChildMessageKind::kExitedAfterDisconnect:
      case node::ChildMessageKind::kInternal:
      case node::ChildMessageKind::kUser:
        break;
    }
  }
  for (const std::string& line : user_lines) OnNodeUserMessage(w, line);
  if (!status.ok()) {
    // Its stream cannot be trusted any more: the child is killed, and its
    // unanswered connections go to another worker when it is reaped.
    ++counters_.node_protocol_errors;
    LOG(ERROR) << "Node worker " << workers_->site_id(worker.site) << "#"
               << worker.index << " pid " << workers_->pid(w) << ": "
               << status.message() << "; killing it";
    workers_->Signal(w, SIGKILL);
  }
}

void Master::OnNodeQueryServer(int w, const node::ChildMessage& m) {
  Worker& worker = workers_->at(w);
  NodeChannel& channel = *worker.node;
  if (m.address_type != 4 && m.address_type != 6) {
    // listen(path), listen({fd}) or a handle: ddv hands TCP sockets only.
    LOG(WARNING) << "Node worker " << workers_->site_id(worker.site) << "#"
                 << worker.index
                 << " asked to listen on something other than a TCP port; "
                    "refused (listen(PORT) instead)";
    channel.QueueLine(node::EncodeQueryServerError(m.seq, "EADDRNOTAVAIL",
                                                   channel.NextSeq()));
    return;
  }
  // Every TCP listen gets the round-robin answer; the site's connections go
  // to its first server (an app normally has one). sockname echoes the
  // request, or Node fails the listen with EADDRINUSE.
  const std::string key = node::ServerKey(m.port, m.address_type, m.address);
  if (!channel.listening) {
    channel.SetServerKey(key);
    channel.listening = true;
  }
  const std::string address =
      !m.address.empty() ? m.address
                         : (m.address_type == 6 ? "::" : "0.0.0.0");
  // Like Node's primary: every worker of the site gets the first one's
  // server data (a TLS server's ticket keys), so a session ticket issued by
  // one process resumes on another. Kept across restarts of the workers.
  std::string& shared = node_server_data_[key_for_site(worker.site, key)];
  // Only an object is data (Node's primary tests `if (!handle.data)`): a
  // plain server's null must not stick, or a TLS build of the app on the
  // same port would get null back and throw in _setServerData.
  const bool has_data = !m.data.empty() && m.data.front() == '{';
  if (has_data && shared.empty()) shared = m.data;
  channel.QueueLine(node::EncodeQueryServerReply(
      m.seq, key, m.address_type, address, m.port, channel.NextSeq(),
      has_data ? shared : std::string("null")));
}

void Master::OnNodeAccepted(int w, int64_t ack, bool accepted) {
  Worker& worker = workers_->at(w);
  const int64_t index = worker.node->TakeAccepted(ack);
  if (index < 0) return;  // stale: an answer from a process since replaced
  Connection& c = connections_.at(static_cast<uint32_t>(index));
  // Only a connection whose line (and fd) the child really received can be
  // answered: an answer for one still in the outbox is forged, and acting
  // on it would close an fd whose number the outbox still holds.
  if (c.worker != w || c.state != ConnState::kSent) return;
  if (worker.outstanding > 0) --worker.outstanding;
  if (accepted) {
    CountHandedOff(w);
    site_caps_.HandedOff(CapsRef(w));
    RecordOutcome(static_cast<uint32_t>(index), Outcome::kRouted);
    Close(static_cast<uint32_t>(index));  // the child's copy serves it
    return;
  }
  // The child closed its copy (server.maxConnections reached): as Node's
  // primary does, another worker gets it; once every worker refused, 503.
  ++counters_.node_not_accepted;
  if (++c.node_refusals >= workers_->LiveWorkers(c.site)) {
    CountUnavailable(c.site);
    RecordOutcome(static_cast<uint32_t>(index), Outcome::kUnavailable);
    Refuse(static_cast<uint32_t>(index), Refusal::kUnavailable);
    return;
  }
  ++counters_.connections_rerouted;
  ++stats_.site(c.site).handoff_retries;
  c.state = ConnState::kRouted;
  QueueForWorker(static_cast<uint32_t>(index));  // excludes c.worker
}

void Master::OnNodeUserMessage(int w, const std::string& line) {
  json message = json::parse(line, nullptr, /*allow_exceptions=*/false);
  std::string kind;
  if (!message.is_object() || !StringMember(message, "ddv", &kind)) {
    return;  // the app's own process.send(): nobody to deliver it to
  }
  Worker& worker = workers_->at(w);
  if (kind == "hello") {
    worker.node->speaks_ddv = true;  // heartbeats from now on
    RecordWorkerReady(w);
  } else if (kind == "pong") {
    // last_heard_ns is already set
  } else if (kind == "rpc") {
    handoff::Request request;
    int64_t id = 0;
    auto body = message.find("body");
    if (!IntMember(message, "id", &id) || id < 0 ||
        !StringMember(message, "method", &request.method)) {
      return;
    }
    request.id = static_cast<uint64_t>(id);
    request.body = body == message.end() ? "{}" : body->dump();
    OnWorkerRequest(w, request);
  } else if (kind == "send") {
    handoff::Message forward;
    int64_t target = -1;
    if (!StringMember(message, "site", &forward.target_site)) return;
    if (IntMember(message, "worker", &target) && target >= 0) {
      forward.target_worker = static_cast<uint32_t>(target);
    }
    auto body = message.find("body");
    forward.body = body == message.end() ? "null" : body->dump();
    ForwardMessage(w, std::move(forward));
  }
}

bool Master::SendToNode(int w, std::string line) {
  Worker& worker = workers_->at(w);
  if (!worker.channel) return false;
  if (!worker.node->QueueLine(std::move(line))) {
    LOG_EVERY_N(WARNING, 100)
        << "Node worker " << workers_->site_id(worker.site) << "#"
        << worker.index << " does not read its channel; a message for it "
        << "was dropped";
    return false;
  }
  FlushNode(w);
  return true;
}

std::string Master::NodeReplyLine(uint64_t id, const absl::Status& status,
                                  const std::string& body) {
  json reply = {{"ddv", "reply"}, {"id", id}, {"ok", status.ok()}};
  if (status.ok()) {
    json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
    reply["body"] = parsed.is_discarded() ? json(nullptr) : parsed;
  } else {
    reply["error"] = std::string(status.message());
  }
  return reply.dump() + "\n";
}

std::string Master::NodeMessageLine(const handoff::Message& message) {
  json parsed = json::parse(message.body, nullptr, /*allow_exceptions=*/false);
  json line = {
      {"ddv", "message"},
      {"from",
       {{"site", message.source_site}, {"worker", message.source_worker}}},
      // A C++ worker may send any bytes; non-JSON arrives as a string.
      {"body", parsed.is_discarded() ? json(message.body) : parsed},
  };
  return line.dump() + "\n";
}

std::string Master::NodePingLine(uint64_t seq) {
  return json({{"ddv", "ping"}, {"seq", seq}}).dump() + "\n";
}

}  // namespace master
}  // namespace ddv
