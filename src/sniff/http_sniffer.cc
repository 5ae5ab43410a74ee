// SniffHttpRequest: one strict pass over an HTTP/1.x request head (RFC 9112)
// that checks its framing and keeps only what routing needs: the host.
#include "src/sniff/http_sniffer.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>

#include "absl/strings/match.h"

namespace ddv {
namespace sniff {
namespace {

// RFC 9113 §3.4: HTTP/2 "with prior knowledge" opens with this preface.
constexpr absl::string_view kHttp2Preface("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

// RFC 9112 §2.3: HTTP-version = "HTTP" "/" DIGIT "." DIGIT, case-sensitive.
constexpr absl::string_view kVersionPrefix("HTTP/1.");
constexpr size_t kVersionLength = 8;  // "HTTP/1.1"

// Character classes, one table lookup per byte on the hot path.
enum CharClass : uint8_t {
  kToken = 1 << 0,       // RFC 9110 §5.6.2 tchar
  kMethod = 1 << 1,      // tchar without lower-case letters (RFC 9110 §9.1)
  kTarget = 1 << 2,      // visible ASCII: what a request-target may hold
  kFieldValue = 1 << 3,  // RFC 9110 §5.5 field-vchar, obs-text, SP, HTAB
};

constexpr std::array<uint8_t, 256> MakeCharClasses() {
  std::array<uint8_t, 256> table{};
  for (int c = 0; c < 256; ++c) {
    bool upper = c >= 'A' && c <= 'Z';
    bool lower = c >= 'a' && c <= 'z';
    bool digit = c >= '0' && c <= '9';
    bool symbol = false;
    for (char s : absl::string_view("!#$%&'*+-.^_`|~")) {
      if (c == s) symbol = true;
    }
    uint8_t bits = 0;
    if (upper || lower || digit || symbol) bits |= kToken;
    if (upper || digit || symbol) bits |= kMethod;
    if (c > 0x20 && c < 0x7f) bits |= kTarget;
    if ((c >= 0x20 && c != 0x7f) || c == '\t') bits |= kFieldValue;
    table[c] = bits;
  }
  return table;
}

constexpr std::array<uint8_t, 256> kCharClasses = MakeCharClasses();

bool Is(char c, CharClass cls) {
  return (kCharClasses[static_cast<unsigned char>(c)] & cls) != 0;
}
bool IsLower(char c) { return c >= 'a' && c <= 'z'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsWhitespace(char c) { return c == ' ' || c == '\t'; }  // RFC 9110 OWS

// The outcome of reading one piece of the head. kFound here means "this piece
// is complete and valid"; kNeedMore means "valid so far".
struct Verdict {
  SniffStatus status;
  const char* reason;
};

constexpr Verdict kOk{SniffStatus::kFound, nullptr};
constexpr Verdict kPartial{SniffStatus::kNeedMore, nullptr};
Verdict Malformed(const char* reason) {
  return {SniffStatus::kMalformed, reason};
}
Verdict NotHttp(const char* reason) {
  return {SniffStatus::kNotThisProtocol, reason};
}

struct RequestLine {
  absl::string_view method;
  absl::string_view target;
  int minor_version = 1;
};

// Reads the request line (RFC 9112 §3): method SP request-target SP
// HTTP-version. `line` excludes its terminator; `complete` is false while the
// terminator has not arrived, and then only the bytes present are judged, so
// a bad byte is reported as soon as it is seen and a good prefix is kPartial.
// RFC 9112 §3 allows splitting on any whitespace; we accept exactly one SP,
// since the request is re-parsed by the worker and leniency here is where
// two parsers start to disagree.
Verdict ReadRequestLine(absl::string_view line, bool complete,
                        RequestLine* out) {
  // The first byte alone tells HTTP from binary protocols (TLS starts with
  // 0x16, the PROXY v2 signature with CR LF CR LF NUL). Methods are tokens
  // (RFC 9110 §9.1); every registered method starts with a letter.
  if (line.empty()) {
    return complete ? NotHttp("empty line where a request line should be")
                    : kPartial;
  }
  if (IsLower(line[0])) return Malformed("method is not upper case");
  if (line[0] < 'A' || line[0] > 'Z') return NotHttp("not an HTTP method");

  // Method names are case-sensitive (RFC 9110 §9.1) and all standard ones
  // are upper case; a lower-case one is a broken client or not HTTP.
  size_t i = 1;
  while (i < line.size() && Is(line[i], kMethod)) ++i;
  if (i == line.size()) {
    return complete ? Malformed("request line without target") : kPartial;
  }
  if (IsLower(line[i])) return Malformed("method is not upper case");
  if (line[i] != ' ') return Malformed("bad character in method");
  out->method = line.substr(0, i);

  size_t target_start = ++i;
  while (i < line.size() && Is(line[i], kTarget)) ++i;
  if (i == line.size()) {
    return complete ? Malformed("request line without HTTP version") : kPartial;
  }
  if (line[i] != ' ') return Malformed("bad character in request target");
  if (i == target_start) return Malformed("empty request target");
  out->target = line.substr(target_start, i - target_start);

  absl::string_view version = line.substr(i + 1);
  // Compare what has arrived against "HTTP/1." DIGIT; a partial line may
  // stop anywhere inside it.
  size_t fixed = std::min(version.size(), kVersionPrefix.size());
  if (version.substr(0, fixed) != kVersionPrefix.substr(0, fixed)) {
    return Malformed("bad or unsupported HTTP version");
  }
  if (version.size() > kVersionLength) {
    return Malformed("junk after HTTP version");
  }
  if (version.size() == kVersionLength && !IsDigit(version.back())) {
    return Malformed("bad or unsupported HTTP version");
  }
  if (version.size() < kVersionLength) {
    return complete ? Malformed("bad or unsupported HTTP version") : kPartial;
  }
  if (!complete) return kPartial;
  out->minor_version = version.back() - '0';
  return kOk;
}

// The authority-form target of CONNECT (RFC 9112 §3.2.3): uri-host ":" port,
// where the port is required.
Verdict ReadAuthorityForm(absl::string_view target, HostName* host) {
  size_t colon = target.rfind(':');
  size_t bracket = target.rfind(']');
  if (colon == absl::string_view::npos || colon + 1 == target.size() ||
      (bracket != absl::string_view::npos && colon < bracket)) {
    return Malformed("CONNECT target without port");
  }
  const char* error = NormalizeHost(target, HostSyntax::kHttpHost, host);
  return error == nullptr ? kOk : Malformed(error);
}

// The absolute-form target (RFC 9112 §3.2.2): scheme "://" authority
// [path-abempty] ["?" query]. Only http and https name a host we can route.
Verdict ReadAbsoluteForm(absl::string_view target, HostName* host) {
  // RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
  size_t colon = target.find(':');
  if (colon == absl::string_view::npos || colon == 0) {
    return Malformed("bad request target");
  }
  absl::string_view scheme = target.substr(0, colon);
  if (!absl::EqualsIgnoreCase(scheme, "http") &&
      !absl::EqualsIgnoreCase(scheme, "https")) {
    return Malformed("request target scheme is not http or https");
  }
  absl::string_view rest = target.substr(colon + 1);
  if (!absl::StartsWith(rest, "//")) {
    return Malformed("absolute-form target without authority");
  }
  rest.remove_prefix(2);
  absl::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  // RFC 9110 §4.2.4: userinfo in an http(s) URI is likely phishing and a
  // recipient SHOULD treat it as an error.
  if (authority.find('@') != absl::string_view::npos) {
    return Malformed("userinfo in request target");
  }
  // An empty host is rejected here too: RFC 9110 §4.2.1 says a recipient
  // MUST reject an http URI with an empty host as invalid.
  const char* error = NormalizeHost(authority, HostSyntax::kHttpHost, host);
  return error == nullptr ? kOk : Malformed(error);
}

// Classifies the request target (RFC 9112 §3.2) and, when it carries an
// authority, normalises that into `host` and sets `*has_authority`.
Verdict ReadTarget(const RequestLine& line, HostName* host,
                   bool* has_authority) {
  *has_authority = false;
  absl::string_view target = line.target;
  if (line.method == "CONNECT") {
    *has_authority = true;
    return ReadAuthorityForm(target, host);
  }
  if (target[0] == '/') return kOk;  // origin-form: the host is in Host
  if (target == "*") {
    // RFC 9112 §3.2.4: asterisk-form is only used with OPTIONS.
    return line.method == "OPTIONS"
               ? kOk
               : Malformed("asterisk-form target without OPTIONS");
  }
  *has_authority = true;
  return ReadAbsoluteForm(target, host);
}

// Returns the line that starts at `pos` without its terminator, and in
// `*next` the offset after its LF, or npos if no LF has arrived yet.
// RFC 9112 §2.2: a recipient MAY take a bare LF as a line terminator and
// ignore a CR before it; any other CR is caught later as a bad character.
absl::string_view LineAt(absl::string_view data, size_t pos, size_t* next) {
  const char* start = data.data() + pos;
  const void* lf = std::memchr(start, '\n', data.size() - pos);
  if (lf == nullptr) {
    *next = absl::string_view::npos;
    return data.substr(pos);
  }
  size_t length = static_cast<const char*>(lf) - start;
  *next = pos + length + 1;
  if (length > 0 && start[length - 1] == '\r') --length;
  return absl::string_view(start, length);
}

// True if every byte of `value` is a field-vchar, obs-text, SP or HTAB (RFC
// 9110 §5.5), i.e. no CTL other than HTAB and no DEL. Values are most of a
// head's bytes, so this tests eight at a time and only looks at single bytes
// in a word that holds a suspect.
bool IsFieldValue(absl::string_view value) {
  constexpr uint64_t kOnes = 0x0101010101010101u;
  constexpr uint64_t kHighBits = 0x8080808080808080u;
  size_t i = 0;
  for (; i + 8 <= value.size(); i += 8) {
    uint64_t word;
    std::memcpy(&word, value.data() + i, 8);
    // A high bit survives where a byte is below 0x20 (the classic
    // "has less than" trick; bytes >= 0x80 never match), or equals 0x7f.
    uint64_t ctl = (word - kOnes * 0x20) & ~word & kHighBits;
    uint64_t del_xor = word ^ (kOnes * 0x7f);
    uint64_t del = (del_xor - kOnes) & ~del_xor & kHighBits;
    if ((ctl | del) != 0) break;
  }
  for (; i < value.size(); ++i) {
    if (!Is(value[i], kFieldValue)) return false;
  }
  return true;
}

bool IsHostName(absl::string_view name) {
  return name.size() == 4 && absl::EqualsIgnoreCase(name, "host");
}

// Reads the head from `data` (already cut to the byte cap). kNeedMore means
// no decision could be made from these bytes.
Verdict ReadHead(absl::string_view data, HttpRequestInfo* info) {
  if (data.empty()) return kPartial;

  // RFC 9113 §3.4: the prior-knowledge preface. Any prefix of it is also a
  // prefix of "PRI ..." so waiting is right either way.
  if (absl::StartsWith(data, kHttp2Preface)) {
    info->http2_preface = true;
    info->head_length = kHttp2Preface.size();
    return kOk;
  }
  if (absl::StartsWith(kHttp2Preface, data)) return kPartial;

  // RFC 9112 §2.2: a server SHOULD ignore at least one empty line received
  // before the request line. We ignore exactly one: more is not HTTP (the
  // PROXY v2 signature starts with two).
  size_t pos = 0;
  if (data[0] == '\n') {
    pos = 1;
  } else if (data[0] == '\r') {
    if (data.size() == 1) return kPartial;
    if (data[1] != '\n') return NotHttp("bare CR before the request line");
    pos = 2;
  }
  if (pos == data.size()) return kPartial;

  size_t next;
  absl::string_view line = LineAt(data, pos, &next);
  RequestLine request_line;
  if (next == absl::string_view::npos) {
    // A CR at the very end may be the first half of CRLF.
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    Verdict v = ReadRequestLine(line, /*complete=*/false, &request_line);
    return v.status == SniffStatus::kFound ? kPartial : v;
  }
  Verdict v = ReadRequestLine(line, /*complete=*/true, &request_line);
  if (v.status != SniffStatus::kFound) return v;
  info->minor_version = request_line.minor_version;

  bool has_authority;
  v = ReadTarget(request_line, &info->host, &has_authority);
  if (v.status != SniffStatus::kFound) return v;

  // When the target names the host, the Host field is still checked (RFC
  // 9112 §3.2 requires a valid, single one) but ignored (§3.2.2): it is
  // normalised into `scratch`, which is then dropped.
  HostName scratch;
  HostName* field_host = has_authority ? &scratch : &info->host;
  bool seen_host = false;
  for (pos = next;; pos = next) {
    line = LineAt(data, pos, &next);
    if (next == absl::string_view::npos) return kPartial;

    if (line.empty()) {
      // RFC 9112 §3.2: a server MUST respond 400 to an HTTP/1.1 request
      // without Host, even when the target is absolute. HTTP/1.0 has no
      // such rule: it routes with no name (or the target's).
      if (!seen_host && info->minor_version >= 1) {
        return Malformed("HTTP/1.1 request without Host");
      }
      info->absolute_form = has_authority;
      info->head_length = next;
      return kOk;
    }

    // RFC 9112 §5.2: a server MUST reject obs-fold (a line starting with
    // whitespace) or unfold it; we reject. The same shape right after the
    // request line is the §2.2 "whitespace before the first field" case,
    // also rejected.
    if (IsWhitespace(line[0])) {
      return Malformed("field line starts with whitespace (obs-fold)");
    }

    // field-line = field-name ":" OWS field-value OWS (RFC 9112 §5).
    size_t colon = 0;
    while (colon < line.size() && Is(line[colon], kToken)) ++colon;
    if (colon == line.size()) return Malformed("field line without colon");
    if (line[colon] != ':') {
      // RFC 9112 §5.1: a server MUST reject whitespace between the field
      // name and the colon with 400.
      if (!IsWhitespace(line[colon])) {
        return Malformed("bad character in field name");
      }
      return line.find(':', colon) == absl::string_view::npos
                 ? Malformed("field line without colon")
                 : Malformed("whitespace between field name and colon");
    }
    if (colon == 0) return Malformed("empty field name");

    absl::string_view value = line.substr(colon + 1);
    // RFC 9110 §5.5: CR, LF and NUL in a value are dangerous and MUST be
    // rejected (or replaced); other CTLs are outside the grammar. A bare CR
    // is also RFC 9112 §2.2's "invalid element".
    if (!IsFieldValue(value)) return Malformed("bad character in field value");
    // Only a field named exactly "Host" counts; X-Forwarded-Host, X-Host or
    // "Host:" text inside another value are client-controlled noise.
    if (!IsHostName(line.substr(0, colon))) continue;

    // RFC 9112 §3.2: more than one Host field line MUST get 400.
    if (seen_host) return Malformed("duplicate Host");
    seen_host = true;
    while (!value.empty() && IsWhitespace(value.front()))
      value.remove_prefix(1);
    while (!value.empty() && IsWhitespace(value.back())) value.remove_suffix(1);
    // RFC 9112 §3.2: a client MUST send an empty Host when the target URI
    // has no authority, so an empty value is valid: found, with no name
    // (routed like HTTP/1.0 without Host: listener default, then default
    // site). With an authority in the target, the target's host is used.
    if (value.empty()) continue;
    // RFC 9112 §3.2: a Host with an invalid value MUST get 400.
    const char* error = NormalizeHost(value, HostSyntax::kHttpHost, field_host);
    if (error != nullptr) return Malformed(error);
  }
}

}  // namespace

SniffStatus SniffHttpRequest(absl::string_view prefix, size_t max_bytes,
                             HttpRequestInfo* info) {
  info->host.Clear();
  info->http2_preface = false;
  info->absolute_form = false;
  info->minor_version = 1;
  info->head_length = 0;
  info->reason = nullptr;

  Verdict v = ReadHead(prefix.substr(0, max_bytes), info);
  if (v.status == SniffStatus::kNeedMore && prefix.size() >= max_bytes) {
    v = {SniffStatus::kTooLarge, "no complete request head within the cap"};
  }
  if (v.status != SniffStatus::kFound) {
    // Never hand out a host read from a head that was not accepted whole.
    info->host.Clear();
    info->http2_preface = false;
    info->absolute_form = false;
    info->head_length = 0;
  }
  info->reason = v.reason;
  return v.status;
}

}  // namespace sniff
}  // namespace ddv
