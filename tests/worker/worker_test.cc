// Worker, in one process: the test holds the master's end of a real channel
// and drives the Worker through Drain(). Cross-process behaviour is in
// worker_process_test.cc.
#include "src/worker/worker.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <cstring>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/handoff/test_sockets.h"
#include "tests/worker/fake_master.h"

namespace ddv {
namespace worker {
namespace {

using ::ddv::testing::FakeMaster;
using ::ddv::testing::TcpPair;
using ::testing::HasSubstr;
using nlohmann::json;

struct Fixture {
  FakeMaster master;
  std::unique_ptr<Worker> worker;
};

Fixture Start(WorkerOptions options = WorkerOptions()) {
  auto master = FakeMaster::Create();
  EXPECT_TRUE(master.ok()) << master.status();
  WorkerIdentity identity;
  identity.site = "a";
  identity.worker_index = 1;
  auto worker = Worker::Create(master->TakeWorkerEnd(), identity, options);
  EXPECT_TRUE(worker.ok()) << worker.status();
  auto hello = master->Expect<handoff::Hello>();
  EXPECT_TRUE(hello.ok()) << hello.status();
  return Fixture{std::move(*master), std::move(*worker)};
}

// The app's event loop, in miniature: poll what the worker asks for, with
// its timeout, until `done` or `limit`.
bool PumpUntil(Worker& worker, const std::function<bool()>& done,
               absl::Duration limit = absl::Seconds(5)) {
  absl::Time end = absl::Now() + limit;
  while (!done()) {
    if (absl::Now() > end) return false;
    absl::Duration wait = std::min(worker.NextTimeout(), absl::Milliseconds(20));
    pollfd p{worker.fd(), worker.poll_events(), 0};
    ::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(wait)) + 1);
    EXPECT_TRUE(worker.Drain().ok());
  }
  return true;
}

handoff::HandoffEntry Entry(uint64_t id) {
  handoff::HandoffEntry e;
  e.connection_id = id;
  e.listener_index = 2;
  e.site_index = 4;
  e.protocol = Protocol::kHttp;
  e.accept_time_ns = 777;
  e.host = "a.localhost";
  return e;
}

TEST(WorkerTest, SaysHelloWithItsIdentity) {
  auto master = FakeMaster::Create();
  ASSERT_TRUE(master.ok());
  WorkerIdentity identity{"shop", 3, HandoffMode::kScmRights, 0};
  auto worker = Worker::Create(master->TakeWorkerEnd(), identity);
  ASSERT_TRUE(worker.ok()) << worker.status();
  auto hello = master->Expect<handoff::Hello>();
  ASSERT_TRUE(hello.ok()) << hello.status();
  EXPECT_EQ(hello->site, "shop");
  EXPECT_EQ(hello->worker_index, 3u);
  EXPECT_EQ(hello->pid, static_cast<uint32_t>(::getpid()));
  EXPECT_EQ(hello->protocol_version, handoff::kProtocolVersion);
  EXPECT_TRUE(::fcntl((*worker)->fd(), F_GETFL) & O_NONBLOCK);
}

TEST(WorkerTest, DeliversSocketWithConnectionInfo) {
  Fixture f = Start();
  auto pair = f.master.Connect();
  ASSERT_TRUE(pair.ok());
  handoff::HandoffEntry entry = Entry(42);
  entry.protocol = Protocol::kTls;
  entry.host = "x.a.localhost";
  entry.alpn = "h2,http/1.1";
  ASSERT_TRUE(f.master.HandOff(pair->server.get(), entry).ok());
  pair->server.Reset();  // the master's copy goes right after the send

  UniqueFd got;
  ConnectionInfo info;
  f.worker->OnConnection([&](UniqueFd socket, const ConnectionInfo& i) {
    got = std::move(socket);
    info = i;
  });
  ASSERT_TRUE(PumpUntil(*f.worker, [&] { return got.valid(); }));
  EXPECT_EQ(info.connection_id, 42u);
  EXPECT_EQ(info.site, "a");
  EXPECT_EQ(info.site_index, 4u);
  EXPECT_EQ(info.listener_index, 2u);
  EXPECT_TRUE(info.tls);
  EXPECT_EQ(info.host, "x.a.localhost");
  EXPECT_THAT(info.alpn, ::testing::ElementsAre("h2", "http/1.1"));
  EXPECT_EQ(info.accept_time_ns, 777);
  EXPECT_FALSE(info.peer_from_proxy);
  // Without PROXY the peer is the real client (getpeername).
  auto* in = reinterpret_cast<const sockaddr_in*>(&info.peer);
  EXPECT_EQ(info.peer_length, sizeof(sockaddr_in));
  EXPECT_EQ(absl::StrCat("127.0.0.1:", ntohs(in->sin_port)),
            testing::LocalAddress(pair->client.get()));
  ASSERT_TRUE(testing::WriteAll(got.get(), "hi"));
  EXPECT_EQ(testing::ReadExactly(pair->client.get(), 2, absl::Seconds(5)),
            "hi");
  // SCM_RIGHTS batches are not acknowledged (the master closed its copy
  // when it sent them): nothing but heartbeats may follow.
  for (int i = 0; i < 3; ++i) {
    auto frame = f.master.Receive(absl::Milliseconds(100));
    if (!frame.ok()) break;
    EXPECT_FALSE(std::holds_alternative<handoff::PidfdAck>(frame->frame));
  }
}

// The `connections` notification (docs/handoff.md): taken always, open
// once the app says it; id 0, never answered; at most one per 10 ms.
TEST(WorkerTest, ReportsConnectionsTakenAndOpen) {
  Fixture f = Start();
  std::vector<UniqueFd> got;
  f.worker->OnConnection(
      [&](UniqueFd socket, const ConnectionInfo&) {
        got.push_back(std::move(socket));
      });
  // Nothing taken, nothing said: no report.
  ASSERT_TRUE(f.worker->Drain().ok());
  EXPECT_FALSE(f.master.Receive(absl::Milliseconds(50)).ok());

  std::vector<TcpPair> pairs;
  for (uint64_t id : {1, 2}) {
    auto pair = f.master.Connect();
    ASSERT_TRUE(pair.ok());
    ASSERT_TRUE(f.master.HandOff(pair->server.get(), Entry(id)).ok());
    pair->server.Reset();
    pairs.push_back(*std::move(pair));
  }
  ASSERT_TRUE(PumpUntil(*f.worker, [&] { return got.size() == 2; }));
  auto report = f.master.Receive();
  ASSERT_TRUE(report.ok()) << report.status();
  auto* request = std::get_if<handoff::Request>(&report->frame);
  ASSERT_NE(request, nullptr);
  EXPECT_EQ(request->id, 0u);
  EXPECT_EQ(request->method, "connections");
  EXPECT_EQ(json::parse(request->body), json({{"taken", 2}}));

  // The app closed one and says so: reported within the interval.
  got.pop_back();
  f.worker->SetOpenConnections(1);
  EXPECT_LE(f.worker->NextTimeout(), absl::Milliseconds(10));
  absl::StatusOr<handoff::ReceivedFrame> next;
  ASSERT_TRUE(PumpUntil(*f.worker, [&] {
    next = f.master.Receive(absl::Milliseconds(20));
    return next.ok();
  }));
  request = std::get_if<handoff::Request>(&next->frame);
  ASSERT_NE(request, nullptr);
  EXPECT_EQ(json::parse(request->body), json({{"taken", 2}, {"open", 1}}));
  // Unchanged: nothing more.
  ASSERT_TRUE(f.worker->Drain().ok());
  EXPECT_GT(f.worker->NextTimeout(), absl::Seconds(1));
  EXPECT_FALSE(f.master.Receive(absl::Milliseconds(50)).ok());
}

TEST(WorkerTest, ProxySourceAndHeaderBytesAreHandled) {
  Fixture f = Start();
  auto pair = f.master.Connect();
  ASSERT_TRUE(pair.ok());
  const std::string proxy = "PROXY TCP4 192.0.2.1 192.0.2.2 5000 80\r\n";
  ASSERT_TRUE(testing::WriteAll(pair->client.get(), proxy + "GET /"));
  handoff::HandoffEntry entry = Entry(1);
  entry.proxy.has_addresses = true;
  auto* src = reinterpret_cast<sockaddr_in*>(&entry.proxy.source);
  src->sin_family = AF_INET;
  src->sin_port = htons(5000);
  ::inet_pton(AF_INET, "192.0.2.1", &src->sin_addr);
  auto* dst = reinterpret_cast<sockaddr_in*>(&entry.proxy.destination);
  dst->sin_family = AF_INET;
  dst->sin_port = htons(80);
  ::inet_pton(AF_INET, "192.0.2.2", &dst->sin_addr);
  entry.skip_bytes = static_cast<uint32_t>(proxy.size());
  ASSERT_TRUE(f.master.HandOff(pair->server.get(), entry).ok());

  UniqueFd got;
  ConnectionInfo info;
  f.worker->OnConnection([&](UniqueFd socket, const ConnectionInfo& i) {
    got = std::move(socket);
    info = i;
  });
  ASSERT_TRUE(PumpUntil(*f.worker, [&] { return got.valid(); }));
  EXPECT_TRUE(info.peer_from_proxy);
  EXPECT_EQ(info.skip_bytes, 0u);
  const auto* peer = reinterpret_cast<const sockaddr_in*>(&info.peer);
  EXPECT_EQ(ntohs(peer->sin_port), 5000);
  EXPECT_EQ(peer->sin_addr.s_addr, src->sin_addr.s_addr);
  ASSERT_EQ(info.proxy.destination_length, sizeof(sockaddr_in));
  EXPECT_EQ(std::memcmp(&info.proxy.destination, dst, sizeof(sockaddr_in)),
            0);
  EXPECT_TRUE(info.proxy.tlvs.empty());  // v1
  EXPECT_FALSE(info.proxy.ssl);
  // The app's first read starts at the client's own bytes.
  EXPECT_EQ(testing::ReadExactly(got.get(), 5, absl::Seconds(5)), "GET /");
}

std::string Tlv(int type, const std::string& value) {
  return std::string(1, static_cast<char>(type)) +
         static_cast<char>(value.size() >> 8) +
         static_cast<char>(value.size() & 0xff) + value;
}

TEST(WorkerTest, ProxyTlvsAreDecodedForTheApp) {
  Fixture f = Start();
  auto pair = f.master.Connect();
  ASSERT_TRUE(pair.ok());
  handoff::HandoffEntry entry = Entry(1);
  entry.proxy.has_addresses = true;
  auto* src = reinterpret_cast<sockaddr_in6*>(&entry.proxy.source);
  src->sin6_family = AF_INET6;
  ::inet_pton(AF_INET6, "2001:db8::1", &src->sin6_addr);
  auto* dst = reinterpret_cast<sockaddr_in6*>(&entry.proxy.destination);
  dst->sin6_family = AF_INET6;
  dst->sin6_port = htons(443);
  const std::string ssl = std::string("\x05\x00\x00\x00\x00", 5) +
                          Tlv(0x21, "TLSv1.3") + Tlv(0x22, "client.example") +
                          Tlv(0x23, "TLS_AES_128_GCM_SHA256");
  entry.proxy.tlvs = Tlv(0x01, "h2") + Tlv(0x02, "a.example") +
                     Tlv(0x05, std::string("\x00\x01id", 4)) +
                     Tlv(0x20, ssl) + Tlv(0xea, "vpce-1");
  entry.proxy.tlvs_truncated = true;
  ASSERT_TRUE(f.master.HandOff(pair->server.get(), entry).ok());

  ConnectionInfo info;
  bool got = false;
  f.worker->OnConnection([&](UniqueFd, const ConnectionInfo& i) {
    info = i;
    got = true;
  });
  ASSERT_TRUE(PumpUntil(*f.worker, [&] { return got; }));
  EXPECT_TRUE(info.peer_from_proxy);
  EXPECT_EQ(info.peer.ss_family, AF_INET6);
  EXPECT_EQ(info.proxy.destination_length, sizeof(sockaddr_in6));
  const ProxyInfo& p = info.proxy;
  EXPECT_EQ(p.tlvs, entry.proxy.tlvs);
  EXPECT_TRUE(p.tlvs_truncated);
  EXPECT_EQ(p.alpn, "h2");
  EXPECT_EQ(p.authority, "a.example");
  EXPECT_EQ(p.unique_id, std::string("\x00\x01id", 4));
  EXPECT_TRUE(p.ssl);
  EXPECT_EQ(p.ssl_client, 5);
  EXPECT_EQ(p.ssl_verify, 0u);
  EXPECT_EQ(p.ssl_version, "TLSv1.3");
  EXPECT_EQ(p.ssl_cn, "client.example");
  EXPECT_EQ(p.ssl_cipher, "TLS_AES_128_GCM_SHA256");
  EXPECT_TRUE(p.ssl_sig_alg.empty());
  EXPECT_EQ(p.Tlv(0xea), "vpce-1");
  EXPECT_EQ(p.Tlv(0x22), "client.example");  // inside PP2_TYPE_SSL
  EXPECT_FALSE(p.Tlv(0x24).has_value());
  EXPECT_FALSE(p.Tlv(0x30).has_value());
}

TEST(WorkerTest, AnswersHeartbeats) {
  Fixture f = Start();
  ASSERT_TRUE(f.master.Send(handoff::Heartbeat{55, false}).ok());
  ASSERT_TRUE(f.worker->Drain().ok());
  auto beat = f.master.Expect<handoff::Heartbeat>();
  ASSERT_TRUE(beat.ok()) << beat.status();
  EXPECT_EQ(beat->sequence, 55u);
  EXPECT_TRUE(beat->is_reply);
}

TEST(WorkerTest, SilentMasterIsProbedThenGivenUp) {
  WorkerOptions options;
  options.master_silence_timeout = absl::Milliseconds(300);
  Fixture f = Start(options);
  absl::Status gone_why;
  f.worker->OnMasterGone([&](const absl::Status& why) { gone_why = why; });
  absl::Time start = absl::Now();
  ASSERT_TRUE(f.worker->Run().ok());
  absl::Duration took = absl::Now() - start;
  EXPECT_TRUE(f.worker->master_gone());
  EXPECT_EQ(f.worker->fd(), -1);
  EXPECT_GE(took, absl::Milliseconds(250));
  EXPECT_LT(took, absl::Seconds(2));
  EXPECT_THAT(std::string(gone_why.message()), HasSubstr("silent"));
  // It asked before giving up.
  auto probe = f.master.Expect<handoff::Heartbeat>();
  ASSERT_TRUE(probe.ok()) << probe.status();
  EXPECT_FALSE(probe->is_reply);
}

TEST(WorkerTest, AnsweredProbesKeepAQuietMasterAlive) {
  WorkerOptions options;
  options.master_silence_timeout = absl::Milliseconds(300);
  Fixture f = Start(options);
  absl::Time end = absl::Now() + absl::Milliseconds(900);
  int answered = 0;
  while (absl::Now() < end) {
    PumpUntil(*f.worker, [] { return false; }, absl::Milliseconds(30));
    auto probe = f.master.Receive(absl::ZeroDuration());
    if (probe.ok()) {
      auto& beat = std::get<handoff::Heartbeat>(probe->frame);
      ASSERT_TRUE(f.master.Send(handoff::Heartbeat{beat.sequence, true}).ok());
      ++answered;
    }
  }
  EXPECT_FALSE(f.worker->master_gone());
  EXPECT_GE(answered, 2);
}

TEST(WorkerTest, RpcResultsReachTheirCallbacks) {
  Fixture f = Start();
  std::vector<absl::StatusOr<json>> results(3);
  int done = 0;
  for (int i = 0; i < 3; ++i) {
    f.worker->Call("ping", json{{"n", i}}, absl::Seconds(5),
                   [&, i](absl::StatusOr<json> r) {
                     results[i] = std::move(r);
                     ++done;
                   });
  }
  std::vector<handoff::Request> requests;
  for (int i = 0; i < 3; ++i) {
    auto request = f.master.Expect<handoff::Request>();
    ASSERT_TRUE(request.ok()) << request.status();
    EXPECT_EQ(request->method, "ping");
    EXPECT_EQ(json::parse(request->body)["n"], i);
    requests.push_back(*request);
  }
  // Answered out of order: matched by id.
  ASSERT_TRUE(f.master
                  .Send(handoff::Response{requests[2].id,
                                          absl::StatusCode::kOk, "",
                                          "not json"})
                  .ok());
  ASSERT_TRUE(f.master
                  .Send(handoff::Response{requests[1].id,
                                          absl::StatusCode::kNotFound,
                                          "no such site", ""})
                  .ok());
  ASSERT_TRUE(f.master
                  .Send(handoff::Response{requests[0].id,
                                          absl::StatusCode::kOk, "",
                                          R"({"pong":true})"})
                  .ok());
  ASSERT_TRUE(PumpUntil(*f.worker, [&] { return done == 3; }));
  ASSERT_TRUE(results[0].ok());
  EXPECT_EQ((*results[0])["pong"], true);
  EXPECT_EQ(results[1].status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(results[1].status().message(), "no such site");
  EXPECT_EQ(results[2].status().code(), absl::StatusCode::kInternal);
}

TEST(WorkerTest, RpcTimesOutWhenTheMasterNeverAnswers) {
  Fixture f = Start();
  absl::StatusOr<json> result;
  bool done = false;
  absl::Time start = absl::Now();
  f.worker->Ping(absl::Milliseconds(150), [&](absl::StatusOr<json> r) {
    result = std::move(r);
    done = true;
  });
  EXPECT_LE(f.worker->NextTimeout(), absl::Milliseconds(150));
  ASSERT_TRUE(PumpUntil(*f.worker, [&] { return done; }));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(140));
  // A late answer is ignored.
  auto request = f.master.Expect<handoff::Request>();
  ASSERT_TRUE(request.ok());
  ASSERT_TRUE(f.master
                  .Send(handoff::Response{request->id, absl::StatusCode::kOk,
                                          "", "{}"})
                  .ok());
  EXPECT_TRUE(f.worker->Drain().ok());
  EXPECT_GT(f.worker->NextTimeout(), absl::Seconds(1));
}

TEST(WorkerTest, ConvenienceRpcsSendTheDocumentedBodies) {
  Fixture f = Start();
  f.worker->Status(absl::Seconds(5), nullptr);
  ServerConfUpdate update;
  update.add_hosts = {"new.example.com", "*.new.example.com"};
  update.processes = 4;
  update.claim_default = true;
  f.worker->UpdateServerConf(update, absl::Seconds(5), nullptr);

  auto status = f.master.Expect<handoff::Request>();
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->method, "status");
  auto conf = f.master.Expect<handoff::Request>();
  ASSERT_TRUE(conf.ok());
  EXPECT_EQ(conf->method, "update_server_conf");
  EXPECT_EQ(json::parse(conf->body),
            json::parse(R"({"add_hosts":["new.example.com","*.new.example.com"],
                            "processes":4,"default":true})"));
}

TEST(WorkerTest, SendToWorkerIsAMessageFrame) {
  Fixture f = Start();
  ASSERT_TRUE(f.worker->SendToWorker("b", 0, json{{"hello", "b"}}).ok());
  ASSERT_TRUE(
      f.worker->SendToWorker("b", handoff::kAnyWorker, json::array()).ok());
  auto first = f.master.Expect<handoff::Message>();
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->target_site, "b");
  EXPECT_EQ(first->target_worker, 0u);
  EXPECT_EQ(json::parse(first->body), json::parse(R"({"hello":"b"})"));
  auto any = f.master.Expect<handoff::Message>();
  ASSERT_TRUE(any.ok());
  EXPECT_EQ(any->target_worker, handoff::kAnyWorker);
  EXPECT_EQ(any->body, "[]");
  EXPECT_EQ(f.worker->SendToWorker(std::string(300, 's'), 0, json()).code(),
            absl::StatusCode::kInvalidArgument);
  f.master.CloseChannel();
  ASSERT_TRUE(f.worker->Drain().ok());
  EXPECT_EQ(f.worker->SendToWorker("b", 0, json()).code(),
            absl::StatusCode::kUnavailable);
}

TEST(WorkerTest, DeliversMessagesAndShutdown) {
  Fixture f = Start();
  std::vector<IncomingMessage> messages;
  f.worker->OnMessage(
      [&](const IncomingMessage& m) { messages.push_back(m); });
  absl::Duration grace = absl::ZeroDuration();
  f.worker->OnShutdown([&](absl::Duration g) { grace = g; });
  handoff::Message message;
  message.source_site = "b";
  message.source_worker = 2;
  message.body = R"({"x":1})";
  ASSERT_TRUE(f.master.Send(message).ok());
  message.body = "{broken";  // dropped with a warning, not fatal
  ASSERT_TRUE(f.master.Send(message).ok());
  ASSERT_TRUE(f.master.Send(handoff::Shutdown{2500}).ok());
  ASSERT_TRUE(f.worker->Run().ok());  // returns on shutdown
  EXPECT_TRUE(f.worker->shutdown_requested());
  EXPECT_FALSE(f.worker->master_gone());
  EXPECT_EQ(grace, absl::Milliseconds(2500));
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].source_site, "b");
  EXPECT_EQ(messages[0].source_worker, 2u);
  EXPECT_EQ(messages[0].body["x"], 1);
}

TEST(WorkerTest, MasterGoneFailsPendingCallsAndClosesTheChannel) {
  Fixture f = Start();
  absl::Status pending;
  f.worker->Ping(absl::Seconds(30),
                 [&](absl::StatusOr<json> r) { pending = r.status(); });
  bool gone = false;
  f.worker->OnMasterGone([&](const absl::Status&) { gone = true; });
  f.master.CloseChannel();
  ASSERT_TRUE(f.worker->Run().ok());
  EXPECT_TRUE(gone);
  EXPECT_EQ(pending.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(f.worker->fd(), -1);
  EXPECT_EQ(f.worker->NextTimeout(), absl::InfiniteDuration());
  absl::Status after;
  f.worker->Ping(absl::Seconds(1),
                 [&](absl::StatusOr<json> r) { after = r.status(); });
  EXPECT_EQ(after.code(), absl::StatusCode::kUnavailable);
}

TEST(WorkerTest, ProtocolErrorEndsTheChannel) {
  Fixture f = Start();
  ASSERT_TRUE(f.master.Send(handoff::Hello{1, 0, 1, "a"}).ok());
  absl::Status status = f.worker->Drain();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("only workers send"));
  EXPECT_TRUE(f.worker->master_gone());
}

TEST(WorkerTest, MasterRequestsGetUnimplemented) {
  Fixture f = Start();
  ASSERT_TRUE(f.master.Send(handoff::Request{9, "reload", "{}"}).ok());
  ASSERT_TRUE(f.worker->Drain().ok());
  auto response = f.master.Expect<handoff::Response>();
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->id, 9u);
  EXPECT_EQ(response->code, absl::StatusCode::kUnimplemented);
}

// The master's site view for site "a": listener 2 at 127.0.0.1:80 has
// "a.test" and "*.w.test", with "b.w.test" another site's; listener 5 is a
// default site's view.
handoff::SiteView ViewOfA(uint64_t version, std::string master = "m1") {
  handoff::SiteView view;
  view.master = master;
  view.version = version;
  handoff::SiteViewListener http;
  http.index = 2;
  http.address = "127.0.0.1:80";
  http.hosts.own = {"*.w.test", "a.test"};
  http.hosts.others = {"b.w.test"};
  handoff::SiteViewListener fallback;
  fallback.index = 5;
  fallback.address = "127.0.0.1:81";
  fallback.hosts.is_default = true;
  fallback.hosts.others = {"b.test"};
  view.listeners = {http, fallback};
  return view;
}

// Sends `view` as the master does: site_view calls, one per part, each
// answered.
void SendView(Fixture& f, const handoff::SiteView& view, size_t part_bytes) {
  uint64_t id = 100;
  std::vector<json> parts = handoff::EncodeSiteView(view, part_bytes);
  for (const json& part : parts) {
    ASSERT_TRUE(f.master
                    .Send(handoff::Request{id++, handoff::kSiteViewMethod,
                                           part.dump()})
                    .ok());
  }
  ASSERT_TRUE(f.worker->Drain().ok());
  for (size_t i = 0; i < parts.size(); ++i) {
    auto response = f.master.Expect<handoff::Response>();
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(response->code, absl::StatusCode::kOk) << response->error;
  }
}

// Hands off one connection on `listener` and returns what the app got.
ConnectionInfo HandOffOn(Fixture& f, uint32_t listener, uint64_t id) {
  auto pair = f.master.Connect();
  EXPECT_TRUE(pair.ok());
  handoff::HandoffEntry entry = Entry(id);
  entry.listener_index = listener;
  EXPECT_TRUE(f.master.HandOff(pair->server.get(), entry).ok());
  ConnectionInfo info;
  bool got = false;
  f.worker->OnConnection([&](UniqueFd, const ConnectionInfo& i) {
    info = i;
    got = true;
  });
  EXPECT_TRUE(PumpUntil(*f.worker, [&] { return got; }));
  return info;
}

// The view sets how often connections are reported: a site without
// max_connections is told once a second (each report wakes the master).
TEST(WorkerTest, TheSiteViewSetsTheReportInterval) {
  Fixture f = Start();
  std::vector<UniqueFd> got;
  f.worker->OnConnection(
      [&](UniqueFd socket, const ConnectionInfo&) {
        got.push_back(std::move(socket));
      });
  handoff::SiteView view = ViewOfA(1);
  view.connections_report_ms = 1000;
  SendView(f, view, handoff::kMaxSiteViewPartBytes);
  auto pair = f.master.Connect();
  ASSERT_TRUE(pair.ok());
  ASSERT_TRUE(f.master.HandOff(pair->server.get(), Entry(1)).ok());
  ASSERT_TRUE(PumpUntil(*f.worker, [&] { return got.size() == 1; }));
  auto first = f.master.Receive();
  ASSERT_TRUE(first.ok()) << first.status();
  auto* report = std::get_if<handoff::Request>(&first->frame);
  ASSERT_NE(report, nullptr);
  EXPECT_EQ(report->method, "connections");
  // A change right after: not before a second has passed since.
  f.worker->SetOpenConnections(0);
  EXPECT_GT(f.worker->NextTimeout(), absl::Milliseconds(500));
  EXPECT_LE(f.worker->NextTimeout(), absl::Seconds(1));
  ASSERT_TRUE(f.worker->Drain().ok());
  EXPECT_FALSE(f.master.Receive(absl::Milliseconds(100)).ok());
  // A reload that gives the site max_connections: 10 ms again, so the
  // change (held back so far) goes with the Drain that applies the view.
  view.version += 1;
  view.connections_report_ms = 10;
  SendView(f, view, handoff::kMaxSiteViewPartBytes);
  auto next = f.master.Receive(absl::Milliseconds(100));
  ASSERT_TRUE(next.ok()) << next.status();
  report = std::get_if<handoff::Request>(&next->frame);
  ASSERT_NE(report, nullptr);
  EXPECT_EQ(report->method, "connections");
  EXPECT_EQ(json::parse(report->body), json({{"taken", 1}, {"open", 0}}));
}

TEST(WorkerTest, NothingIsCheckedBeforeASiteView) {
  Fixture f = Start();
  ConnectionInfo info = HandOffOn(f, 2, 1);
  EXPECT_NE(info.listener_key, kNoListenerKey);
  EXPECT_EQ(f.worker->CheckRequest(info, "/", "b.test"), HostVerdict::kAllowed);
  EXPECT_EQ(f.worker->CheckRequest(kNoListenerKey, "/", "b.test"),
            HostVerdict::kAllowed);
  EXPECT_EQ(f.worker->misdirected_requests(), 0u);
}

TEST(WorkerTest, SiteViewDecidesRequests) {
  Fixture f = Start();
  const uint64_t before = f.worker->host_view_generation();
  SendView(f, ViewOfA(1), handoff::kMaxSiteViewPartBytes);
  EXPECT_NE(f.worker->host_view_generation(), before);
  ConnectionInfo http = HandOffOn(f, 2, 1);
  ConnectionInfo fallback = HandOffOn(f, 5, 2);
  ConnectionInfo unknown = HandOffOn(f, 9, 3);
  ASSERT_NE(http.listener_key, kNoListenerKey);
  ASSERT_NE(fallback.listener_key, kNoListenerKey);
  EXPECT_NE(http.listener_key, fallback.listener_key);
  // A listener the view does not name: nothing routes there, so nothing
  // is this site's.
  EXPECT_NE(unknown.listener_key, kNoListenerKey);

  EXPECT_EQ(f.worker->CheckRequest(http, "/", "a.test:80"),
            HostVerdict::kAllowed);
  EXPECT_EQ(f.worker->CheckRequest(http, "/", "x.y.w.test"),
            HostVerdict::kAllowed);
  EXPECT_EQ(f.worker->CheckRequest(http, "/", "b.w.test"),
            HostVerdict::kMisdirected);
  EXPECT_EQ(f.worker->CheckRequest(http, "http://b.w.test/", "a.test"),
            HostVerdict::kMisdirected);
  EXPECT_EQ(f.worker->CheckRequest(http, "/", "elsewhere.test"),
            HostVerdict::kMisdirected);
  EXPECT_EQ(f.worker->CheckRequest(http, "/", "bad host"),
            HostVerdict::kInvalid);
  EXPECT_EQ(f.worker->CheckRequest(http, "/", ""), HostVerdict::kAllowed);
  EXPECT_EQ(f.worker->CheckRequest(fallback, "/", "elsewhere.test"),
            HostVerdict::kAllowed);
  EXPECT_EQ(f.worker->CheckRequest(fallback, "/", "b.test"),
            HostVerdict::kMisdirected);
  EXPECT_EQ(f.worker->CheckRequest(unknown, "/", "a.test"),
            HostVerdict::kMisdirected);
  EXPECT_EQ(f.worker->misdirected_requests(), 5u);

  // strict_host = false: nothing is refused any more.
  handoff::SiteView lax = ViewOfA(2);
  lax.strict = false;
  SendView(f, lax, handoff::kMaxSiteViewPartBytes);
  EXPECT_EQ(f.worker->CheckRequest(http, "/", "b.w.test"),
            HostVerdict::kAllowed);
}

TEST(WorkerTest, ListenerKeysFollowAddressesAcrossMasters) {
  Fixture f = Start();
  SendView(f, ViewOfA(1), handoff::kMaxSiteViewPartBytes);
  ConnectionInfo http = HandOffOn(f, 2, 1);
  // A new master numbers its listeners afresh: the same address is index
  // 0 now, and 2 is another listener. The connection keeps its listener.
  handoff::SiteView renumbered = ViewOfA(1, "m2");
  renumbered.listeners[0].index = 0;
  renumbered.listeners[0].hosts.own = {"a.test"};
  renumbered.listeners[1].index = 2;
  SendView(f, renumbered, handoff::kMaxSiteViewPartBytes);
  EXPECT_EQ(f.worker->CheckRequest(http, "/", "x.w.test"),
            HostVerdict::kMisdirected);
  EXPECT_EQ(f.worker->CheckRequest(http, "/", "a.test"),
            HostVerdict::kAllowed);
  // The new master's index 2 is the default listener's.
  ConnectionInfo fallback = HandOffOn(f, 2, 2);
  EXPECT_NE(fallback.listener_key, http.listener_key);
  EXPECT_EQ(f.worker->CheckRequest(fallback, "/", "elsewhere.test"),
            HostVerdict::kAllowed);
  EXPECT_EQ(f.worker->CheckRequest(http, "/", "elsewhere.test"),
            HostVerdict::kMisdirected);
}

TEST(WorkerTest, ConnectionsBeforeTheFirstViewAreItsMasters) {
  Fixture f = Start();
  ConnectionInfo early = HandOffOn(f, 2, 1);
  EXPECT_EQ(f.worker->CheckRequest(early, "/", "b.w.test"),
            HostVerdict::kAllowed);
  SendView(f, ViewOfA(1), handoff::kMaxSiteViewPartBytes);
  EXPECT_EQ(f.worker->CheckRequest(early, "/", "b.w.test"),
            HostVerdict::kMisdirected);
  EXPECT_EQ(f.worker->CheckRequest(early, "/", "a.test"),
            HostVerdict::kAllowed);
}

// A reload moves the name a connection was routed by to another site, and
// the new view arrives before the app read the connection's first request:
// that request is still the site's; later ones are checked by the view.
TEST(WorkerTest, TheFirstRequestNamingTheRoutedHostOutlivesAMove) {
  Fixture f = Start();
  SendView(f, ViewOfA(1), handoff::kMaxSiteViewPartBytes);
  ConnectionInfo info = HandOffOn(f, 2, 1);  // routed by "a.localhost"
  ASSERT_EQ(info.host, "a.localhost");
  handoff::SiteView moved = ViewOfA(2);
  moved.listeners[0].hosts.others = {"a.localhost", "b.w.test"};
  SendView(f, moved, handoff::kMaxSiteViewPartBytes);
  EXPECT_EQ(f.worker->CheckRequest(info, "/", "A.localhost:80",
                                   /*first_request=*/true),
            HostVerdict::kAllowed);
  EXPECT_EQ(f.worker->CheckRequest(info, "/", "a.localhost"),
            HostVerdict::kMisdirected);
  // A first request for another name is checked as any.
  EXPECT_EQ(f.worker->CheckRequest(info, "/", "b.w.test",
                                   /*first_request=*/true),
            HostVerdict::kMisdirected);
  EXPECT_EQ(f.worker->misdirected_requests(), 2u);
}

TEST(WorkerTest, RetiredListenerKeepsItsRoutesForItsOwnConnections) {
  Fixture f = Start();
  handoff::SiteView view = ViewOfA(1);
  handoff::SiteViewListener retired = view.listeners[0];
  retired.index = 7;
  retired.retired = true;
  retired.hosts.own = {"old.test"};
  retired.hosts.others.clear();
  view.listeners.insert(view.listeners.begin(), retired);
  SendView(f, view, handoff::kMaxSiteViewPartBytes);
  // Accepted on the retired listener (before a reload changed it): routed
  // by its old table, and checked by it.
  ConnectionInfo old_one = HandOffOn(f, 7, 1);
  EXPECT_EQ(f.worker->CheckRequest(old_one, "/", "old.test"),
            HostVerdict::kAllowed);
  EXPECT_EQ(f.worker->CheckRequest(old_one, "/", "a.test"),
            HostVerdict::kMisdirected);
  // After a master restart the live listener at that address decides.
  SendView(f, ViewOfA(1, "m2"), handoff::kMaxSiteViewPartBytes);
  EXPECT_EQ(f.worker->CheckRequest(old_one, "/", "old.test"),
            HostVerdict::kMisdirected);
  EXPECT_EQ(f.worker->CheckRequest(old_one, "/", "a.test"),
            HostVerdict::kAllowed);
}

// A reload renames a listener (the new index takes over its socket, the
// old one is retired), and a later reload releases the old index: the next
// view leaves it out. Its long-lived connections are then checked against
// the listener at the same address, not let through unchecked; with no
// listener there at all they are refused.
TEST(WorkerTest, ReleasedRetiredListenerFallsBackToItsAddress) {
  Fixture f = Start();
  SendView(f, ViewOfA(1), handoff::kMaxSiteViewPartBytes);
  ConnectionInfo old_one = HandOffOn(f, 2, 1);
  ASSERT_EQ(f.worker->CheckRequest(old_one, "/", "b.w.test"),
            HostVerdict::kMisdirected);
  // Renamed: index 2 retired, index 8 live at the same address.
  handoff::SiteView renamed = ViewOfA(2);
  handoff::SiteViewListener live = renamed.listeners[0];
  live.index = 8;
  live.hosts.own = {"a.test"};
  live.hosts.others = {"b.w.test", "x.w.test"};
  renamed.listeners[0].retired = true;
  renamed.listeners.push_back(live);
  SendView(f, renamed, handoff::kMaxSiteViewPartBytes);
  EXPECT_EQ(f.worker->CheckRequest(old_one, "/", "x.w.test"),
            HostVerdict::kAllowed);  // its own (retired) routes still
  // Released: index 2 is gone from the view.
  handoff::SiteView released = renamed;
  released.version = 3;
  released.listeners.erase(released.listeners.begin());
  SendView(f, released, handoff::kMaxSiteViewPartBytes);
  EXPECT_EQ(f.worker->CheckRequest(old_one, "/", "b.w.test"),
            HostVerdict::kMisdirected);
  EXPECT_EQ(f.worker->CheckRequest(old_one, "/", "x.w.test"),
            HostVerdict::kMisdirected);
  EXPECT_EQ(f.worker->CheckRequest(old_one, "/", "a.test"),
            HostVerdict::kAllowed);
  // Nothing listens at its address any more: fail closed.
  handoff::SiteView gone = released;
  gone.version = 4;
  gone.listeners.pop_back();
  SendView(f, gone, handoff::kMaxSiteViewPartBytes);
  EXPECT_EQ(f.worker->CheckRequest(old_one, "/", "a.test"),
            HostVerdict::kMisdirected);
  // strict_host = false still lets everything through.
  gone.version = 5;
  gone.strict = false;
  SendView(f, gone, handoff::kMaxSiteViewPartBytes);
  EXPECT_EQ(f.worker->CheckRequest(old_one, "/", "b.w.test"),
            HostVerdict::kAllowed);
}

TEST(WorkerTest, SiteViewInManyParts) {
  Fixture f = Start();
  handoff::SiteView view = ViewOfA(3);
  for (int i = 0; i < 300; ++i) {
    view.listeners[1].hosts.others.push_back(absl::StrCat("o", i, ".test"));
  }
  SendView(f, view, 1024);
  ConnectionInfo fallback = HandOffOn(f, 5, 1);
  EXPECT_EQ(f.worker->CheckRequest(fallback, "/", "o299.test"),
            HostVerdict::kMisdirected);
  EXPECT_EQ(f.worker->CheckRequest(fallback, "/", "o300.test"),
            HostVerdict::kAllowed);
}

TEST(WorkerTest, BadSiteViewIsAnsweredAndKeepsTheLastOne) {
  Fixture f = Start();
  SendView(f, ViewOfA(1), handoff::kMaxSiteViewPartBytes);
  json bad = handoff::EncodeSiteView(ViewOfA(2))[0];
  bad["listeners"][0]["own"][0] = "NOT NORMAL";
  ASSERT_TRUE(
      f.master.Send(handoff::Request{5, handoff::kSiteViewMethod, bad.dump()})
          .ok());
  ASSERT_TRUE(f.worker->Drain().ok());
  auto response = f.master.Expect<handoff::Response>();
  ASSERT_TRUE(response.ok());
  EXPECT_EQ(response->code, absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(f.worker->master_gone());
  ConnectionInfo http = HandOffOn(f, 2, 1);
  EXPECT_EQ(f.worker->CheckRequest(http, "/", "b.w.test"),
            HostVerdict::kMisdirected);
}

TEST(WorkerTest, DrainFromACallbackIsRefused) {
  Fixture f = Start();
  absl::Status inner;
  f.worker->OnShutdown([&](absl::Duration) { inner = f.worker->Drain(); });
  ASSERT_TRUE(f.master.Send(handoff::Shutdown{}).ok());
  ASSERT_TRUE(PumpUntil(*f.worker, [&] { return f.worker->stopped(); }));
  EXPECT_EQ(inner.code(), absl::StatusCode::kFailedPrecondition);
}

TEST(WorkerTest, QueuesOutputWhenTheChannelIsFull) {
  Fixture f = Start();
  std::string big(60000, 'x');
  int calls = 0;
  while (!(f.worker->poll_events() & POLLOUT)) {
    f.worker->Call("ping", json{{"pad", big}}, absl::Seconds(30), nullptr);
    ASSERT_LT(++calls, 1000);
  }
  EXPECT_LE(f.worker->NextTimeout(), absl::Milliseconds(10));
  // The master reads everything; the worker's queue drains.
  int received = 0;
  ASSERT_TRUE(PumpUntil(*f.worker, [&] {
    while (f.master.Receive(absl::ZeroDuration()).ok()) ++received;
    return received == calls;
  }));
  EXPECT_FALSE(f.worker->poll_events() & POLLOUT);
}

TEST(WorkerTest, FromEnvironmentWithoutAMasterIsNotFound) {
  ::unsetenv(kEnvChannelFd);
  auto worker = Worker::FromEnvironment();
  EXPECT_EQ(worker.status().code(), absl::StatusCode::kNotFound);
}

TEST(WorkerTest, FromEnvironmentRejectsABrokenContract) {
  auto master = FakeMaster::Create();
  ASSERT_TRUE(master.ok());
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  std::string channel = std::to_string(master->worker_fd());
  struct Case {
    std::string fd, site, index, handoff, pid, message;
  } cases[] = {
      {"abc", "a", "0", "scm_rights", "", "DDV_CHANNEL_FD=abc"},
      {channel, "", "0", "scm_rights", "", "DDV_SITE"},
      {channel, "a", "-1", "scm_rights", "", "DDV_WORKER_INDEX=-1"},
      {channel, "a", "0", "carrier_pigeon", "", "carrier_pigeon"},
      {channel, "a", "0", "pidfd", "", "DDV_MASTER_PID=(unset)"},
      {std::to_string(null_fd), "a", "0", "scm_rights", "",
       "not a SOCK_SEQPACKET socket"},
      {"19999", "a", "0", "scm_rights", "", "not an open fd"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.message);
    ::setenv(kEnvChannelFd, c.fd.c_str(), 1);
    ::setenv(kEnvSite, c.site.c_str(), 1);
    ::setenv(kEnvWorkerIndex, c.index.c_str(), 1);
    ::setenv(kEnvHandoff, c.handoff.c_str(), 1);
    if (c.pid.empty()) ::unsetenv(kEnvMasterPid);
    auto worker = Worker::FromEnvironment();
    ASSERT_FALSE(worker.ok());
    EXPECT_NE(worker.status().code(), absl::StatusCode::kNotFound);
    EXPECT_THAT(std::string(worker.status().message()),
                HasSubstr(c.message));
  }
  // A wrong fd number is not closed: it may belong to someone else.
  EXPECT_GE(::fcntl(null_fd, F_GETFD), 0);
  ::close(null_fd);
  ::unsetenv(kEnvChannelFd);
}

TEST(WorkerTest, FromEnvironmentTakesTheChannelAndClearsTheVariables) {
  auto master = FakeMaster::Create();
  ASSERT_TRUE(master.ok());
  int fd = master->TakeWorkerEnd().Release();
  // The master hands the fd over inheritable; the worker makes it cloexec.
  ::fcntl(fd, F_SETFD, 0);
  ::setenv(kEnvChannelFd, std::to_string(fd).c_str(), 1);
  ::setenv(kEnvSite, "a", 1);
  ::setenv(kEnvWorkerIndex, "7", 1);
  ::setenv(kEnvHandoff, "scm_rights", 1);
  ::unsetenv(kEnvMasterPid);
  auto worker = Worker::FromEnvironment();
  ASSERT_TRUE(worker.ok()) << worker.status();
  EXPECT_EQ((*worker)->fd(), fd);
  EXPECT_TRUE(::fcntl(fd, F_GETFD) & FD_CLOEXEC);
  EXPECT_EQ((*worker)->identity().worker_index, 7u);
  EXPECT_EQ(std::getenv(kEnvChannelFd), nullptr);
  EXPECT_EQ(std::getenv(kEnvSite), nullptr);
  auto hello = master->Expect<handoff::Hello>();
  ASSERT_TRUE(hello.ok());
  EXPECT_EQ(hello->worker_index, 7u);
}

}  // namespace
}  // namespace worker
}  // namespace ddv
