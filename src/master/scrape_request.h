// The HTTP/1.1 the metrics address speaks, as pure functions: what a
// request head asks for (ParseScrapeRequest) and the whole answer
// (FormatScrapeResponse). GET and HEAD of /metrics and /healthz, one
// request per connection (Connection: close), a head of at most
// kMaxScrapeRequestBytes. Everything else gets the status RFC 9110 gives
// it: 400, 404, 405 (with Allow), 431, 505.
#ifndef DDV_SRC_MASTER_SCRAPE_REQUEST_H_
#define DDV_SRC_MASTER_SCRAPE_REQUEST_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace ddv {
namespace master {

// A request head (request line and fields) larger than this gets 431.
inline constexpr size_t kMaxScrapeRequestBytes = 8192;

enum class ScrapeTarget : uint8_t { kMetrics, kHealthz };

struct ScrapeRequest {
  // 0: serve `target` (HEAD: without the body); else the error status.
  int status = 0;
  bool head = false;
  ScrapeTarget target = ScrapeTarget::kMetrics;
  absl::string_view why;  // for an error: the body's one line
};

enum class ScrapeParse : uint8_t {
  kNeedMore,  // no blank line yet, and room for more
  kDone,      // *request says what to answer
};

// `bytes`: everything read so far. A head not ended within
// kMaxScrapeRequestBytes is kDone with 431.
ScrapeParse ParseScrapeRequest(absl::string_view bytes, ScrapeRequest* request);

// The answer: status line, Content-Type, Content-Length (of `body`, also
// for HEAD, which sends no body), Connection: close, Allow for 405,
// Cache-Control: no-store.
std::string FormatScrapeResponse(int status, absl::string_view content_type,
                                 absl::string_view body, bool head);

// An error answer: text/plain, `why` and a newline as its body.
std::string FormatScrapeError(int status, absl::string_view why, bool head);

// The content type of /metrics (the text exposition format 0.0.4).
inline constexpr absl::string_view kMetricsContentType =
    "text/plain; version=0.0.4; charset=utf-8";

}  // namespace master
}  // namespace ddv

#endif  // DDV_SRC_MASTER_SCRAPE_REQUEST_H_
