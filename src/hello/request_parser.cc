// RFC 9112 request-head parsing for ddv_hello: strict where leniency lets a
// request be read two ways (request smuggling), lenient where the RFC allows
// it (bare LF line ends, empty lines before the request line).
#include "src/hello/request_parser.h"

#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"

namespace ddv {
namespace hello {
namespace {

// RFC 9110 §5.6.2 tchar.
bool IsTokenChar(unsigned char c) {
  return absl::ascii_isalnum(c) ||
         (c != 0 && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr);
}

bool IsToken(absl::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (!IsTokenChar(c)) return false;
  }
  return true;
}

// RFC 9110 §5.5 field-vchar / SP / HTAB; obs-text is allowed, CTLs are not
// (a bare CR or a NUL in a header is a classic smuggling vector).
bool IsFieldValue(absl::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 && c != '\t') return false;
    if (c == 0x7f) return false;
  }
  return true;
}

absl::string_view TrimOws(absl::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

// Splits off the next line of `*rest` (without its CRLF or LF).
absl::string_view NextLine(absl::string_view* rest) {
  size_t nl = rest->find('\n');
  absl::string_view line = rest->substr(0, nl);
  rest->remove_prefix(nl == absl::string_view::npos ? rest->size() : nl + 1);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

// Content-Length = 1*DIGIT (RFC 9110 §8.6). Caps far above any real body
// but low enough that the arithmetic cannot overflow.
bool ParseContentLength(absl::string_view s, uint64_t* out) {
  return ParseDecimal(s, 18, out);
}

// Finds the end of the head (one past the LF of the empty line) at or after
// `*scan_from`; returns 0 when it is not in `data` yet and moves `*scan_from`
// to where the next search must restart.
size_t FindHeadEnd(absl::string_view data, size_t* scan_from) {
  size_t i = *scan_from;
  const char* base = data.data();
  while (i < data.size()) {
    const void* hit = std::memchr(base + i, '\n', data.size() - i);
    if (hit == nullptr) {
      i = data.size();
      break;
    }
    size_t nl = static_cast<const char*>(hit) - base;
    // The LF ends the head when the next line is empty: LF or CR LF.
    if (nl + 1 >= data.size()) {
      i = nl;
      break;
    }
    if (data[nl + 1] == '\n') return nl + 2;
    if (data[nl + 1] == '\r') {
      if (nl + 2 >= data.size()) {
        i = nl;
        break;
      }
      if (data[nl + 2] == '\n') return nl + 3;
    }
    i = nl + 1;
  }
  *scan_from = i;
  return 0;
}

}  // namespace

bool ParseDecimal(absl::string_view digits, size_t max_digits,
                  uint64_t* value) {
  if (digits.empty() || digits.size() > max_digits) return false;
  uint64_t result = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return false;
    result = result * 10 + static_cast<uint64_t>(c - '0');
  }
  *value = result;
  return true;
}

ParseStatus ParseRequestHead(absl::string_view data, size_t max_head_bytes,
                             size_t* scan_from, RequestHead* head) {
  // RFC 9112 §2.2: ignore empty lines received before the request-line.
  size_t start = 0;
  while (start < data.size()) {
    if (data[start] == '\n') {
      ++start;
    } else if (data[start] == '\r') {
      if (start + 1 == data.size()) break;
      if (data[start + 1] != '\n') return ParseStatus::kBadRequest;
      start += 2;
    } else {
      break;
    }
  }
  if (start >= max_head_bytes) return ParseStatus::kHeadTooLarge;
  if (start == data.size() ||
      (data[start] == '\r' && start + 1 == data.size())) {
    return ParseStatus::kNeedMore;
  }
  if (*scan_from < start) *scan_from = start;

  // Never look further than the cap: a 1 MiB pipelined burst must not cost a
  // 1 MiB scan per request.
  absl::string_view window = data.substr(0, max_head_bytes);
  size_t end = FindHeadEnd(window, scan_from);
  if (end == 0) {
    return data.size() >= max_head_bytes ? ParseStatus::kHeadTooLarge
                                         : ParseStatus::kNeedMore;
  }

  absl::string_view rest = data.substr(start, end - start);
  *head = RequestHead();
  head->size = end;

  // request-line = method SP request-target SP HTTP-version (RFC 9112 §3).
  absl::string_view line = NextLine(&rest);
  size_t sp1 = line.find(' ');
  if (sp1 == absl::string_view::npos) return ParseStatus::kBadRequest;
  head->method = line.substr(0, sp1);
  if (!IsToken(head->method)) return ParseStatus::kBadRequest;
  size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == absl::string_view::npos) return ParseStatus::kBadRequest;
  head->target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (head->target.empty()) return ParseStatus::kBadRequest;
  for (unsigned char c : head->target) {
    if (c <= 0x20 || c >= 0x7f) return ParseStatus::kBadRequest;
  }
  absl::string_view version = line.substr(sp2 + 1);
  if (version.size() != 8 || !absl::StartsWith(version, "HTTP/1.") ||
      !absl::ascii_isdigit(static_cast<unsigned char>(version[7]))) {
    return ParseStatus::kBadRequest;
  }
  head->minor_version = version[7] - '0';

  bool saw_close = false;
  bool saw_keep_alive = false;
  bool saw_content_length = false;
  bool saw_transfer_encoding = false;
  bool chunked_is_last = false;
  for (;;) {
    line = NextLine(&rest);
    if (line.empty()) break;  // the empty line that ends the head
    // RFC 9112 §5.2: obsolete line folding is rejected with 400.
    if (line.front() == ' ' || line.front() == '\t') {
      return ParseStatus::kBadRequest;
    }
    size_t colon = line.find(':');
    if (colon == absl::string_view::npos) return ParseStatus::kBadRequest;
    // RFC 9112 §5.1: no whitespace between name and colon; IsToken rejects it.
    absl::string_view name = line.substr(0, colon);
    if (!IsToken(name)) return ParseStatus::kBadRequest;
    absl::string_view value = TrimOws(line.substr(colon + 1));
    if (!IsFieldValue(value)) return ParseStatus::kBadRequest;

    switch (name.size()) {
      case 4:
        if (absl::EqualsIgnoreCase(name, "host")) {
          // RFC 9112 §3.2: more than one Host is a 400.
          if (head->has_host) return ParseStatus::kBadRequest;
          head->has_host = true;
          head->host = value;
        }
        break;
      case 6:
        if (absl::EqualsIgnoreCase(name, "expect") &&
            absl::EqualsIgnoreCase(value, "100-continue")) {
          head->expect_continue = true;
        }
        break;
      case 10:
        if (absl::EqualsIgnoreCase(name, "connection")) {
          for (absl::string_view token = value; !token.empty();) {
            size_t comma = token.find(',');
            absl::string_view option = TrimOws(token.substr(0, comma));
            if (absl::EqualsIgnoreCase(option, "close")) saw_close = true;
            if (absl::EqualsIgnoreCase(option, "keep-alive")) {
              saw_keep_alive = true;
            }
            if (comma == absl::string_view::npos) break;
            token.remove_prefix(comma + 1);
          }
        }
        break;
      case 14:
        if (absl::EqualsIgnoreCase(name, "content-length")) {
          uint64_t length = 0;
          if (!ParseContentLength(value, &length)) {
            return ParseStatus::kBadRequest;
          }
          // RFC 9112 §6.3: differing lengths mean the framing is unknown.
          if (saw_content_length && length != head->content_length) {
            return ParseStatus::kBadRequest;
          }
          saw_content_length = true;
          head->content_length = length;
        }
        break;
      case 17:
        if (absl::EqualsIgnoreCase(name, "transfer-encoding")) {
          saw_transfer_encoding = true;
          // Only the final coding decides the framing (RFC 9112 §6.3).
          size_t comma = value.rfind(',');
          absl::string_view last = TrimOws(comma == absl::string_view::npos
                                               ? value
                                               : value.substr(comma + 1));
          chunked_is_last = absl::EqualsIgnoreCase(last, "chunked");
        }
        break;
      default:
        break;
    }
  }

  if (head->minor_version >= 1 && !head->has_host) {
    return ParseStatus::kBadRequest;  // RFC 9112 §3.2
  }
  if (saw_transfer_encoding) {
    // RFC 9112 §6.1 (TE in HTTP/1.0 is faulty framing) and §6.3 (a request
    // whose final coding is not chunked, or with both TE and Content-Length,
    // cannot be delimited safely): reject rather than guess.
    if (head->minor_version == 0 || saw_content_length || !chunked_is_last) {
      return ParseStatus::kBadRequest;
    }
    head->framing = BodyFraming::kChunked;
  } else if (saw_content_length && head->content_length > 0) {
    head->framing = BodyFraming::kContentLength;
  }
  head->keep_alive =
      head->minor_version >= 1 ? !saw_close : saw_keep_alive && !saw_close;
  return ParseStatus::kComplete;
}

ChunkedBodySkipper::Status ChunkedBodySkipper::Feed(absl::string_view data,
                                                    size_t* consumed) {
  // Chunk extensions and trailer lines are ignored but must not be endless.
  constexpr size_t kMaxLineBytes = 4096;
  size_t i = 0;
  while (i < data.size()) {
    char c = data[i];
    switch (state_) {
      case State::kSize: {
        int digit = -1;
        if (c >= '0' && c <= '9') digit = c - '0';
        if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
        if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
        if (digit >= 0) {
          if (remaining_ >> 56 != 0) return Status::kBad;  // would overflow
          remaining_ = remaining_ * 16 + static_cast<uint64_t>(digit);
          saw_digit_ = true;
          ++i;
          break;
        }
        if (!saw_digit_) return Status::kBad;
        if (c == ';' || c == ' ' || c == '\t') {
          state_ = State::kExtension;
          line_bytes_ = 0;
        } else if (c == '\r') {
          state_ = State::kSizeLf;
        } else if (c == '\n') {
          state_ = remaining_ == 0 ? State::kTrailerStart : State::kData;
        } else {
          return Status::kBad;
        }
        ++i;
        break;
      }
      case State::kExtension:
        if (c == '\r') {
          state_ = State::kSizeLf;
        } else if (c == '\n') {
          state_ = remaining_ == 0 ? State::kTrailerStart : State::kData;
        } else if (++line_bytes_ > kMaxLineBytes) {
          return Status::kBad;
        }
        ++i;
        break;
      case State::kSizeLf:
        if (c != '\n') return Status::kBad;
        state_ = remaining_ == 0 ? State::kTrailerStart : State::kData;
        ++i;
        break;
      case State::kData: {
        uint64_t available = data.size() - i;
        uint64_t take = available < remaining_ ? available : remaining_;
        i += static_cast<size_t>(take);
        remaining_ -= take;
        if (remaining_ == 0) state_ = State::kDataCr;
        break;
      }
      case State::kDataCr:
        if (c == '\r') {
          state_ = State::kDataLf;
        } else if (c == '\n') {
          state_ = State::kSize;
          saw_digit_ = false;
        } else {
          return Status::kBad;
        }
        ++i;
        break;
      case State::kDataLf:
        if (c != '\n') return Status::kBad;
        state_ = State::kSize;
        saw_digit_ = false;
        ++i;
        break;
      case State::kTrailerStart:
        ++i;
        if (c == '\n') {
          *consumed = i;
          Reset();
          return Status::kDone;
        }
        if (c == '\r') {
          state_ = State::kFinalLf;
        } else {
          state_ = State::kTrailerLine;
          line_bytes_ = 1;
        }
        break;
      case State::kTrailerLine:
        ++i;
        if (c == '\n') {
          state_ = State::kTrailerStart;
        } else if (++line_bytes_ > kMaxLineBytes) {
          return Status::kBad;
        }
        break;
      case State::kFinalLf:
        if (c != '\n') return Status::kBad;
        *consumed = i + 1;
        Reset();
        return Status::kDone;
    }
  }
  *consumed = i;
  return Status::kNeedMore;
}

}  // namespace hello
}  // namespace ddv
