// ParseScrapeRequest: RFC 9112's request line and field lines, strictly
// (single spaces, no space before a colon, no line folding), since nothing
// but a scraper or an operator's curl has any business here.
#include "src/master/scrape_request.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace ddv {
namespace master {
namespace {

// RFC 9110 §5.6.2: tchar.
bool IsTokenChar(unsigned char c) {
  if (absl::ascii_isalnum(c)) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*':
    case '+': case '-': case '.': case '^': case '_': case '`': case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

bool IsToken(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!IsTokenChar(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

ScrapeParse Error(ScrapeRequest* request, int status, absl::string_view why) {
  request->status = status;
  request->why = why;
  return ScrapeParse::kDone;
}

// The next line of `*rest` (CRLF or a bare LF ends it), without its end.
// False when no line end is there yet.
bool NextLine(absl::string_view* rest, absl::string_view* line) {
  const size_t lf = rest->find('\n');
  if (lf == absl::string_view::npos) return false;
  *line = rest->substr(0, lf);
  if (!line->empty() && line->back() == '\r') line->remove_suffix(1);
  rest->remove_prefix(lf + 1);
  return true;
}

absl::string_view StatusText(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
  }
}

}  // namespace

ScrapeParse ParseScrapeRequest(absl::string_view bytes,
                               ScrapeRequest* request) {
  *request = ScrapeRequest();
  // RFC 9112 §2.2: empty lines before the request line are ignored.
  while (absl::ConsumePrefix(&bytes, "\r\n") || absl::ConsumePrefix(&bytes, "\n")) {
  }
  // Refuse garbage (a TLS ClientHello, a binary probe) as soon as the
  // method shows it, not at the deadline.
  for (char c : bytes) {
    if (c == ' ') break;
    if (!IsTokenChar(static_cast<unsigned char>(c))) {
      return Error(request, 400, "not an HTTP request");
    }
  }
  // The head ends at the first empty line (a line end right after one).
  const size_t lf_lf = bytes.find("\n\n");
  const size_t lf_crlf = bytes.find("\n\r\n");
  size_t end = absl::string_view::npos;
  if (lf_lf != absl::string_view::npos) end = lf_lf + 2;
  if (lf_crlf != absl::string_view::npos && lf_crlf + 3 < end) {
    end = lf_crlf + 3;
  }
  if (end == absl::string_view::npos || end > kMaxScrapeRequestBytes) {
    if (bytes.size() >= kMaxScrapeRequestBytes) {
      return Error(request, 431, "request head too large");
    }
    return ScrapeParse::kNeedMore;
  }
  absl::string_view rest = bytes.substr(0, end);
  absl::string_view line;
  NextLine(&rest, &line);

  // method SP request-target SP HTTP-version
  const size_t sp1 = line.find(' ');
  const size_t sp2 =
      sp1 == absl::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == absl::string_view::npos ||
      line.find(' ', sp2 + 1) != absl::string_view::npos) {
    return Error(request, 400, "malformed request line");
  }
  const absl::string_view method = line.substr(0, sp1);
  absl::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const absl::string_view version = line.substr(sp2 + 1);
  if (!IsToken(method) || target.empty()) {
    return Error(request, 400, "malformed request line");
  }
  for (char c : target) {
    if (c <= 0x20 || c >= 0x7f) {
      return Error(request, 400, "malformed request target");
    }
  }
  if (version.size() != 8 || !absl::StartsWith(version, "HTTP/") ||
      !absl::ascii_isdigit(version[5]) || version[6] != '.' ||
      !absl::ascii_isdigit(version[7])) {
    return Error(request, 400, "malformed HTTP version");
  }
  if (version[5] != '1') {
    return Error(request, 505, "only HTTP/1.x is served here");
  }
  const bool http11 = version[7] != '0';

  // Field lines up to the empty one.
  int hosts = 0;
  while (NextLine(&rest, &line) && !line.empty()) {
    if (line.front() == ' ' || line.front() == '\t') {
      return Error(request, 400, "obsolete line folding");
    }
    const size_t colon = line.find(':');
    if (colon == absl::string_view::npos ||
        !IsToken(line.substr(0, colon))) {
      return Error(request, 400, "malformed header field");
    }
    const absl::string_view name = line.substr(0, colon);
    const absl::string_view value =
        absl::StripAsciiWhitespace(line.substr(colon + 1));
    for (char c : value) {
      if ((c < 0x20 && c != '\t') || c == 0x7f) {
        return Error(request, 400, "control character in a header field");
      }
    }
    if (absl::EqualsIgnoreCase(name, "host")) ++hosts;
    // One request per connection and nothing after it: a body would be
    // left unread (and the close would reset the connection).
    if (absl::EqualsIgnoreCase(name, "transfer-encoding") ||
        (absl::EqualsIgnoreCase(name, "content-length") && value != "0")) {
      return Error(request, 400, "a request body is not accepted");
    }
  }
  // RFC 9112 §3.2: exactly one Host in an HTTP/1.1 request.
  if ((http11 && hosts == 0) || hosts > 1) {
    return Error(request, 400, "an HTTP/1.1 request needs one Host field");
  }

  // origin-form, or absolute-form (RFC 9112 §3.2.2: a server accepts it).
  if (absl::StartsWithIgnoreCase(target, "http://") ||
      absl::StartsWithIgnoreCase(target, "https://")) {
    target.remove_prefix(target.find("//") + 2);
    const size_t slash = target.find('/');
    target = slash == absl::string_view::npos ? "/" : target.substr(slash);
  }
  const absl::string_view path = target.substr(0, target.find('?'));
  if (path == "/metrics") {
    request->target = ScrapeTarget::kMetrics;
  } else if (path == "/healthz") {
    request->target = ScrapeTarget::kHealthz;
  } else {
    return Error(request, 404, "not found: try /metrics or /healthz");
  }
  request->head = method == "HEAD";
  if (method != "GET" && !request->head) {
    return Error(request, 405, "only GET and HEAD are allowed");
  }
  return ScrapeParse::kDone;
}

std::string FormatScrapeResponse(int status, absl::string_view content_type,
                                 absl::string_view body, bool head) {
  std::string out = absl::StrCat(
      "HTTP/1.1 ", status, " ", StatusText(status),
      "\r\nContent-Type: ", content_type, "\r\nContent-Length: ", body.size(),
      "\r\nCache-Control: no-store\r\nConnection: close\r\n",
      status == 405 ? "Allow: GET, HEAD\r\n" : "", "\r\n");
  if (!head) out.append(body.data(), body.size());
  return out;
}

std::string FormatScrapeError(int status, absl::string_view why, bool head) {
  return FormatScrapeResponse(status, "text/plain; charset=utf-8",
                              absl::StrCat(why, "\n"), head);
}

}  // namespace master
}  // namespace ddv
