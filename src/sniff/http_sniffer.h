// SniffHttpRequest: finds which host an HTTP/1.x request is for, from the
// bytes peeked at the start of a connection, so the master can route it.
#ifndef DDV_SRC_SNIFF_HTTP_SNIFFER_H_
#define DDV_SRC_SNIFF_HTTP_SNIFFER_H_

#include <cstddef>

#include "absl/strings/string_view.h"
#include "src/sniff/host_name.h"
#include "src/sniff/sniff_status.h"

namespace ddv {
namespace sniff {

struct HttpRequestInfo {
  // Normalised (see host_name.h, HostSyntax::kHttpHost); empty = no name
  // (HTTP/1.0 without Host, or an empty Host value). Only set on kFound.
  HostName host;
  // The HTTP/2 prior-knowledge preface "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
  // (RFC 9113 §3.4) was found: the connection is h2c and carries no Host here.
  bool http2_preface = false;
  // The host came from the request target (absolute-form, RFC 9112 §3.2.2, or
  // CONNECT's authority-form, §3.2.3) rather than from the Host field.
  bool absolute_form = false;
  int minor_version = 1;  // HTTP/1.<minor>, once the request line is read
  // Bytes of the request head including its final empty line (and the one
  // empty line tolerated before the request line); only set on kFound.
  size_t head_length = 0;
  // Static text saying why, for kMalformed / kNotThisProtocol / kTooLarge;
  // nullptr otherwise.
  const char* reason = nullptr;
};

// Reads `prefix`, all bytes peeked so far from the start of the connection,
// and answers:
//   kFound            the whole head is present and valid; `info` says where
//                     to route (a name is only trusted once the head ends,
//                     since a later duplicate Host or obs-fold voids it);
//   kNeedMore         `prefix` is a prefix of a request that may be valid;
//   kNotThisProtocol  the first bytes cannot start an HTTP/1.x request
//                     (e.g. 0x16, a TLS record);
//   kMalformed        an HTTP request that breaks RFC 9112 (answer 400);
//   kTooLarge         no decision within the first `max_bytes` bytes
//                     (answer 431).
// Only the first `max_bytes` bytes of `prefix` are read. Once an answer other
// than kNeedMore is given, more bytes never change it. Strict on purpose: the
// worker parses the same bytes again, and any disagreement between the two
// parsers is a request-smuggling risk, so anything ambiguous is refused.
// Pure: no I/O, no logging, no allocation.
SniffStatus SniffHttpRequest(absl::string_view prefix, size_t max_bytes,
                             HttpRequestInfo* info);

}  // namespace sniff
}  // namespace ddv

#endif  // DDV_SRC_SNIFF_HTTP_SNIFFER_H_
