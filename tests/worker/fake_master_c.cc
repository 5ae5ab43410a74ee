// C shim over FakeMaster for the C API test.
#include "tests/worker/fake_master_c.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>

#include <cstdio>
#include <cstring>
#include <memory>

#include "src/handoff/site_view.h"
#include "tests/worker/fake_master.h"

struct fake_master {
  ddv::testing::FakeMaster master;
};

extern "C" {

fake_master* fake_master_create(void) {
  auto master = ddv::testing::FakeMaster::Create();
  if (!master.ok()) {
    std::fprintf(stderr, "fake_master_create: %s\n",
                 master.status().ToString().c_str());
    return nullptr;
  }
  // A real master hands this end over inheritable (dup2 into the child).
  ::fcntl(master->worker_fd(), F_SETFD, 0);
  return new fake_master{std::move(*master)};
}

void fake_master_destroy(fake_master* m) { delete m; }

int fake_master_worker_fd(const fake_master* m) {
  return m->master.worker_fd();
}

int fake_master_expect_hello(fake_master* m, char* site, size_t site_size) {
  auto hello = m->master.Expect<ddv::handoff::Hello>();
  if (!hello.ok()) {
    std::fprintf(stderr, "expect hello: %s\n",
                 hello.status().ToString().c_str());
    return -1;
  }
  std::snprintf(site, site_size, "%s", hello->site.c_str());
  return static_cast<int>(hello->worker_index);
}

int fake_master_hand_off(fake_master* m, const char* host, int protocol) {
  auto pair = m->master.Connect();
  if (!pair.ok()) return -1;
  ddv::handoff::HandoffEntry entry;
  entry.connection_id = 1;
  entry.host = host;
  entry.protocol = static_cast<ddv::handoff::Protocol>(protocol);
  entry.alpn = protocol == 2 ? "h2,http/1.1" : "";
  absl::Status sent = m->master.HandOff(pair->server.get(), entry);
  if (!sent.ok()) {
    std::fprintf(stderr, "hand off: %s\n", sent.ToString().c_str());
    return -1;
  }
  return pair->client.Release();
}

int fake_master_send_site_view(fake_master* m, const char* part_json) {
  ddv::handoff::Request request;
  request.id = 1;
  request.method = ddv::handoff::kSiteViewMethod;
  request.body = part_json;
  return m->master.Send(request).ok() ? 0 : -1;
}

int fake_master_hand_off_proxied(fake_master* m, const char* host) {
  auto pair = m->master.Connect();
  if (!pair.ok()) return -1;
  ddv::handoff::HandoffEntry entry;
  entry.connection_id = 2;
  entry.host = host;
  entry.protocol = ddv::handoff::Protocol::kHttp;
  ddv::handoff::ProxyMetadata& proxy = entry.proxy;
  proxy.has_addresses = true;
  auto* source = reinterpret_cast<sockaddr_in6*>(&proxy.source);
  source->sin6_family = AF_INET6;
  source->sin6_port = htons(40000);
  inet_pton(AF_INET6, "2001:db8::1", &source->sin6_addr);
  auto* destination = reinterpret_cast<sockaddr_in6*>(&proxy.destination);
  destination->sin6_family = AF_INET6;
  destination->sin6_port = htons(443);
  inet_pton(AF_INET6, "2001:db8::2", &destination->sin6_addr);
  // ALPN "h2"; SSL: client 0x03, verify 0, sub-TLV CN "cn.example".
  proxy.tlvs = std::string("\x01\x00\x02" "h2"
                           "\x20\x00\x12" "\x03\x00\x00\x00\x00"
                           "\x22\x00\x0a" "cn.example",
                           26);
  absl::Status sent = m->master.HandOff(pair->server.get(), entry);
  if (!sent.ok()) {
    std::fprintf(stderr, "hand off: %s\n", sent.ToString().c_str());
    return -1;
  }
  return pair->client.Release();
}

int fake_master_answer(fake_master* m, const char* method,
                       const char* response_json) {
  auto request = m->master.Expect<ddv::handoff::Request>();
  if (!request.ok() || request->method != method) {
    std::fprintf(stderr, "expect %s request: %s\n", method,
                 request.ok() ? request->method.c_str()
                              : request.status().ToString().c_str());
    return -1;
  }
  ddv::handoff::Response response;
  response.id = request->id;
  response.body = response_json;
  return m->master.Send(response).ok() ? 0 : -1;
}

int fake_master_expect_type(fake_master* m, int type) {
  auto frame = m->master.Receive();
  // Acknowledgements come for every handed-off batch, and `connections`
  // reports (requests) after some: skip them unless asked.
  while (frame.ok() &&
         ((type != 3 &&
           std::holds_alternative<ddv::handoff::PidfdAck>(frame->frame)) ||
          (type != 5 && ddv::testing::FakeMaster::IsConnectionsReport(frame->frame)))) {
    frame = m->master.Receive();
  }
  if (!frame.ok()) {
    std::fprintf(stderr, "expect frame %d: %s\n", type,
                 frame.status().ToString().c_str());
    return -1;
  }
  int got = static_cast<int>(ddv::handoff::TypeOf(frame->frame));
  if (got != type) {
    std::fprintf(stderr, "expected frame type %d, got %d\n", type, got);
    return -1;
  }
  return 0;
}

void fake_master_close(fake_master* m) { m->master.CloseChannel(); }

}  // extern "C"
