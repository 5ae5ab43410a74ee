// Incremental HTTP/1.1 request-head parser and chunked-body skipper for
// ddv_hello. Pure functions over byte spans: no I/O, no allocation, so the
// server can parse straight out of a provided recv buffer and tests can feed
// input one byte at a time.
#ifndef DDV_SRC_HELLO_REQUEST_PARSER_H_
#define DDV_SRC_HELLO_REQUEST_PARSER_H_

#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"

namespace ddv {
namespace hello {

// "Need more" is the normal state of a stream, not an error, so the parser
// answers with an enum rather than an absl::Status (as the sniffers do).
enum class ParseStatus {
  kNeedMore,      // a prefix of a valid head; read more and call again
  kComplete,      // `RequestHead` is filled in
  kBadRequest,    // breaks RFC 9112 grammar or framing rules: answer 400
  kHeadTooLarge,  // no complete head within the cap: answer 431
};

enum class BodyFraming {
  kNone,           // no body (no Content-Length, no Transfer-Encoding)
  kContentLength,  // `content_length` bytes follow the head
  kChunked,        // RFC 9112 §7.1 chunked coding follows the head
};

// Views point into the buffer given to ParseRequestHead and are valid only as
// long as it is.
struct RequestHead {
  absl::string_view method;
  absl::string_view target;
  int minor_version = 1;  // HTTP/1.<minor_version>
  bool has_host = false;
  absl::string_view host;  // the Host field value, OWS trimmed
  bool keep_alive = true;  // version default adjusted by Connection tokens
  bool expect_continue = false;  // "Expect: 100-continue"
  BodyFraming framing = BodyFraming::kNone;
  uint64_t content_length = 0;
  size_t size = 0;  // bytes of the head, including leading empty lines and
                    // the terminating empty line
};

// 1 to `max_digits` ASCII decimal digits and nothing else (RFC 9110's
// 1*DIGIT, no sign, no spaces). `max_digits` at most 19, so the value cannot
// overflow.
bool ParseDecimal(absl::string_view digits, size_t max_digits,
                  uint64_t* value);

// Parses the request head at the start of `data`. `scan_from` carries the
// offset from which to resume looking for the end of the head between calls
// on a growing buffer (start at 0, reset to 0 after each complete head), so
// input arriving a byte at a time costs O(n), not O(n^2). Heads longer than
// `max_head_bytes` give kHeadTooLarge.
ParseStatus ParseRequestHead(absl::string_view data, size_t max_head_bytes,
                             size_t* scan_from, RequestHead* head);

// Skips (discards) a chunked request body, resumable across reads. ddv_hello
// answers every request the same way, so it never needs the body's bytes,
// only where the body ends so the next pipelined request can be parsed.
class ChunkedBodySkipper {
 public:
  enum class Status { kNeedMore, kDone, kBad };

  // Consumes a prefix of `data`; sets `*consumed` to its length. After kDone
  // the bytes past `*consumed` belong to the next request. After kBad the
  // connection must be closed (the framing is lost).
  Status Feed(absl::string_view data, size_t* consumed);

  void Reset() { *this = ChunkedBodySkipper(); }

 private:
  enum class State {
    kSize,       // chunk-size = 1*HEXDIG
    kExtension,  // chunk-ext, ignored up to the line end
    kSizeLf,     // LF after the CR that ends the chunk-size line
    kData,       // chunk-data: `remaining_` octets
    kDataCr,     // CRLF after chunk-data
    kDataLf,
    kTrailerStart,  // start of a trailer field line or of the final CRLF
    kTrailerLine,   // inside a trailer field line, ignored
    kFinalLf,       // LF of the CRLF that ends the body
  };

  State state_ = State::kSize;
  uint64_t remaining_ = 0;
  bool saw_digit_ = false;
  size_t line_bytes_ = 0;  // caps extensions and trailer lines
};

}  // namespace hello
}  // namespace ddv

#endif  // DDV_SRC_HELLO_REQUEST_PARSER_H_
