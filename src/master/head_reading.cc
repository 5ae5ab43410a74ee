#include "src/master/head_reading.h"

#include "absl/strings/str_join.h"
#include "src/master/proxy_source.h"
#include "src/sniff/proxy_protocol.h"

namespace ddv {
namespace master {

void SniffFlags::AddTo(Counters& counters) const {
  counters.proxy_header_found += proxy_header;
  counters.http_host_found += host_found;
  counters.http_host_absent += host_absent;
  counters.tls_sni_found += sni_found;
  counters.tls_sni_absent += sni_absent;
  counters.tls_alpn_found += alpn_found;
  counters.tls_alpn_absent += alpn_absent;
}

namespace {

// The sniffer's answers that end the reading before a route: more bytes
// needed, or a refusal (kTooLarge, kNotThisProtocol, kMalformed). True
// when `status` is one of them, with `r` saying which.
bool EndsBeforeRoute(sniff::SniffStatus status, HeadReading& r) {
  switch (status) {
    case sniff::SniffStatus::kFound:
      return false;
    case sniff::SniffStatus::kNeedMore:
      r.result = HeadReading::Result::kNeedMore;
      return true;
    case sniff::SniffStatus::kTooLarge:
    case sniff::SniffStatus::kNotThisProtocol:
    case sniff::SniffStatus::kMalformed:
      r.result = HeadReading::Result::kRefuse;
      r.refusal = status;
      return true;
  }
  return false;
}

}  // namespace

void ReadHead(const config::ListenerConfig& listener, absl::string_view prefix,
              uint32_t max_peek_bytes, Connection* c, HeadReading* reading) {
  HeadReading& r = *reading;
  size_t offset = 0;
  if (listener.proxy_protocol) {
    sniff::ProxyHeader proxy;
    switch (sniff::SniffProxyHeader(prefix, &proxy)) {
      case sniff::SniffStatus::kNeedMore:
        r.result = HeadReading::Result::kNeedMore;
        return;
      case sniff::SniffStatus::kFound:
        r.flags.proxy_header = true;
        offset = proxy.header_length;
        c->skip_bytes = proxy.header_length;
        r.proxy_tlvs_dropped = ProxyMetadataFrom(proxy, &c->proxy);
        break;
      case sniff::SniffStatus::kNotThisProtocol:
      case sniff::SniffStatus::kMalformed:
      case sniff::SniffStatus::kTooLarge:
        // A listener that expects PROXY must not trust a client's bytes.
        r.result = HeadReading::Result::kRefuse;
        r.bad_proxy_header = true;
        return;
    }
  }
  if (listener.protocol == config::Protocol::kTcp) {
    // Peeked for the PROXY header alone: nothing after it names a site.
    r.result = HeadReading::Result::kRoute;
    return;
  }
  const absl::string_view payload = prefix.substr(offset);
  const size_t budget = max_peek_bytes > offset ? max_peek_bytes - offset : 0;

  if (listener.protocol == config::Protocol::kHttp) {
    sniff::HttpRequestInfo info;
    if (EndsBeforeRoute(sniff::SniffHttpRequest(payload, budget, &info), r)) {
      return;
    }
    if (info.host.empty()) {
      r.flags.host_absent = true;
    } else {
      r.flags.host_found = true;
    }
    c->host = info.host;
    r.name = c->host.view();
    r.result = HeadReading::Result::kRoute;
    return;
  }

  if (EndsBeforeRoute(sniff::SniffTlsClientHello(payload, budget, &r.hello),
                      r)) {
    return;
  }
  if (r.hello.sni.empty()) {
    r.flags.sni_absent = true;
  } else {
    r.flags.sni_found = true;
  }
  r.alpn_count = r.hello.alpn_count;
  for (size_t i = 0; i < r.alpn_count; ++i) {
    r.offered_alpn[i] = r.hello.alpn(i);
  }
  if (r.alpn_count == 0) {
    r.flags.alpn_absent = true;
  } else {
    r.flags.alpn_found = true;
    c->alpn = absl::StrJoin(r.alpn(), ",");
  }
  c->host = r.hello.sni;
  r.name = c->host.view();
  r.result = HeadReading::Result::kRoute;
}

}  // namespace master
}  // namespace ddv
