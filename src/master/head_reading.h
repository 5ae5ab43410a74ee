// What a connection's peeked head says, read by the listener's protocol:
// the PROXY header (when the listener expects one), then the HTTP Host or
// the TLS SNI and ALPN. The primary loop and every shard read heads with
// this one function, so the two cannot drift apart; what each does with the
// answer differs (the primary routes or refuses, a shard routes or forwards
// to the primary), and so does when the sniff counters are added (the
// primary at once, a shard only for what it hands off itself).
#ifndef DDV_SRC_MASTER_HEAD_READING_H_
#define DDV_SRC_MASTER_HEAD_READING_H_

#include <array>
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "src/config/config.h"
#include "src/master/connection.h"
#include "src/master/counters.h"
#include "src/sniff/http_sniffer.h"
#include "src/sniff/tls_sniffer.h"

namespace ddv {
namespace master {

// The found / not-found pairs a decided head adds to the counters.
struct SniffFlags {
  bool proxy_header = false;
  bool host_found = false;
  bool host_absent = false;
  bool sni_found = false;
  bool sni_absent = false;
  bool alpn_found = false;
  bool alpn_absent = false;

  void AddTo(Counters& counters) const;
};

struct HeadReading {
  HeadReading() = default;
  HeadReading(const HeadReading&) = delete;
  HeadReading& operator=(const HeadReading&) = delete;

  enum class Result {
    kNeedMore,  // the head is incomplete: peek again once more came
    kRoute,     // route by `name` (and `alpn`)
    kRefuse,    // see `bad_proxy_header` and `refusal`
  };
  Result result = Result::kNeedMore;
  // kRefuse: a listener that expects PROXY got no valid header (a
  // malformed connection; the client's bytes must not be trusted) ...
  bool bad_proxy_header = false;
  // ... or else the HTTP / TLS sniffer's answer: kTooLarge, kMalformed or
  // kNotThisProtocol.
  sniff::SniffStatus refusal = sniff::SniffStatus::kFound;
  // kRoute: the Host or SNI (the connection's `host`), "" when absent and
  // for a `tcp` listener; points into the Connection.
  absl::string_view name;
  // kRoute: the ALPN protocols the ClientHello offered (views into `hello`,
  // which is why a reading is neither copied nor moved).
  std::array<absl::string_view, sniff::kMaxAlpnProtocols> offered_alpn;
  size_t alpn_count = 0;
  sniff::ClientHelloInfo hello;
  // PROXY v2 TLVs that were too long for the handoff and left out.
  size_t proxy_tlvs_dropped = 0;
  // Meaningful unless kNeedMore.
  SniffFlags flags;

  absl::Span<const absl::string_view> alpn() const {
    return absl::Span<const absl::string_view>(offered_alpn.data(),
                                               alpn_count);
  }
};

// Reads `prefix`, the bytes peeked so far from `c`, a connection accepted
// on a listener configured as `listener`, into a fresh `reading`. Heads
// larger than `max_peek_bytes` are refused as kTooLarge. It sets what the
// handoff carries: c->skip_bytes and c->proxy (the PROXY header), c->host
// and c->alpn; a kNeedMore reading may have set some of them, and the next
// read sets them again.
void ReadHead(const config::ListenerConfig& listener, absl::string_view prefix,
              uint32_t max_peek_bytes, Connection* c, HeadReading* reading);

}  // namespace master
}  // namespace ddv

#endif  // DDV_SRC_MASTER_HEAD_READING_H_
