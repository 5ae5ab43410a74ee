// HttpResponder: request heads are parsed in place (request_parser.h), the
// answer to each is appended to one output string, so all the answers to a
// read's pipelined requests leave in one send. The common 200 is cached per
// connection and copied, not rebuilt, while Host and Connection stay the same.
#include "src/hello/http_responder.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "src/route/host_check.h"

namespace ddv {
namespace hello {
namespace {

// GET /bytes/N: N is capped so a typo cannot ask for a petabyte.
constexpr uint64_t kMaxBytesResponse = uint64_t{1} << 30;
// /bytes/N bodies are sent from one shared read-only block, chunk by chunk.
constexpr size_t kFillerBytes = 256 * 1024;

const char* Filler() {
  static const char* const filler = [] {
    static char block[kFillerBytes];
    for (size_t i = 0; i < kFillerBytes; ++i) {
      // 64-byte lines, so a curl of /bytes/N to a terminal stays readable.
      block[i] = i % 64 == 63 ? '\n' : static_cast<char>('a' + i % 64 % 26);
    }
    return block;
  }();
  return filler;
}

// N of /bytes/N: 1 to 10 decimal digits, at most kMaxBytesResponse.
bool ParseByteCount(absl::string_view text, uint64_t* count) {
  uint64_t value = 0;
  if (!ParseDecimal(text, 10, &value) || value > kMaxBytesResponse) {
    return false;
  }
  *count = value;
  return true;
}

absl::string_view OrDash(absl::string_view s) { return s.empty() ? "-" : s; }

}  // namespace

absl::string_view HttpResponder::StreamBlock() {
  return absl::string_view(Filler(), kFillerBytes);
}

absl::string_view HttpResponder::NextStreamChunk(size_t max) const {
  const size_t at = static_cast<size_t>(stream_sent_ % kFillerBytes);
  const uint64_t size =
      std::min<uint64_t>({stream_remaining_, kFillerBytes - at, max});
  return StreamBlock().substr(at, static_cast<size_t>(size));
}

void HttpResponder::Reset(ConnectionInfo info, int peer_fd) {
  peer_fd_ = peer_fd;
  requests_ = 0;
  close_after_flush_ = must_linger_ = false;
  body_remaining_ = 0;
  body_chunked_ = false;
  chunked_.Reset();
  scan_from_ = 0;
  in_.clear();
  output_.clear();
  stream_remaining_ = 0;
  stream_sent_ = 0;
  info_ = std::move(info);
  identity_ready_ = false;
  cache_valid_ = false;
  host_allowed_valid_ = false;
  ShrinkIfHuge(&in_);
  ShrinkIfHuge(&output_);
}

void HttpResponder::Release() {
  info_ = ConnectionInfo();
  peer_fd_ = -1;
}

// The common case: parse straight out of the caller's buffer (the recv
// buffer or the decrypted record) and copy only an incomplete tail.
void HttpResponder::FeedInPlace(absl::string_view data) {
  size_t used = Process(data);
  if (used < data.size() && !close_after_flush_) {
    in_.append(data.data() + used, data.size() - used);
  }
}

void HttpResponder::ParseKept() {
  size_t used = Process(in_);
  in_.erase(0, used);
}

void HttpResponder::ClearOutput() {
  output_.clear();
  ShrinkIfHuge(&output_);
}

void HttpResponder::CloseAfterFlush(bool must_linger) {
  close_after_flush_ = true;
  if (must_linger) must_linger_ = true;
}

void HttpResponder::SetNegotiated(absl::string_view sni,
                                  absl::string_view alpn) {
  info_.sni.assign(sni.data(), sni.size());
  info_.alpn.assign(alpn.data(), alpn.size());
  identity_ready_ = false;
  cache_valid_ = false;
}

size_t HttpResponder::Process(absl::string_view data) {
  size_t pos = 0;
  while (pos < data.size() && !close_after_flush_ && !Backlogged()) {
    absl::string_view rest = data.substr(pos);
    if (body_remaining_ > 0) {
      size_t take =
          static_cast<size_t>(std::min<uint64_t>(body_remaining_, rest.size()));
      body_remaining_ -= take;
      pos += take;
      continue;
    }
    if (body_chunked_) {
      size_t used = 0;
      switch (chunked_.Feed(rest, &used)) {
        case ChunkedBodySkipper::Status::kNeedMore:
          break;
        case ChunkedBodySkipper::Status::kDone:
          body_chunked_ = false;
          break;
        case ChunkedBodySkipper::Status::kBad:
          // The request was answered already; with its end unknown the
          // stream cannot be read further.
          body_chunked_ = false;
          CloseAfterFlush(/*must_linger=*/true);
          return data.size();
      }
      pos += used;
      continue;
    }
    RequestHead head;
    switch (ParseRequestHead(rest, context_->max_head_bytes, &scan_from_,
                             &head)) {
      case ParseStatus::kNeedMore:
        return pos;
      case ParseStatus::kBadRequest:
        ++context_->stats->bad_requests;
        AppendError("400 Bad Request", "bad request\n",
                    ConnectionHeader::kClose);
        CloseAfterFlush(/*must_linger=*/true);
        return data.size();
      case ParseStatus::kHeadTooLarge:
        ++context_->stats->heads_too_large;
        AppendError("431 Request Header Fields Too Large",
                    "request head too large\n", ConnectionHeader::kClose);
        CloseAfterFlush(/*must_linger=*/true);
        return data.size();
      case ParseStatus::kComplete:
        break;
    }
    scan_from_ = 0;
    pos += head.size;
    Respond(head);
    if (head.framing == BodyFraming::kContentLength) {
      body_remaining_ = head.content_length;
    } else if (head.framing == BodyFraming::kChunked) {
      body_chunked_ = true;
    }
  }
  return pos;
}

bool HttpResponder::HostAllowed(const RequestHead& request) {
  HostGate* gate = context_->host_gate;
  if (gate == nullptr || info_.listener_key == kUncheckedListener) {
    return true;
  }
  // An absolute-form target names its own authority: never cached.
  const bool origin_form =
      !request.target.empty() && request.target.front() == '/';
  if (origin_form && host_allowed_valid_ &&
      host_allowed_generation_ == gate->generation() &&
      host_allowed_ == request.host) {
    return true;
  }
  // The connection's first request was routed by its name: that name is
  // its site's, whatever view came since (a reload moving it while the
  // request was unread). Later ones are checked against the view.
  if (requests_ == 1 &&
      route::NamesRoutedHost(request.target, request.host, info_.host)) {
    return true;
  }
  switch (gate->Check(info_.listener_key, request.target, request.host)) {
    case route::HostVerdict::kAllowed:
      if (origin_form) {
        host_allowed_.assign(request.host.data(), request.host.size());
        host_allowed_generation_ = gate->generation();
        host_allowed_valid_ = true;
      }
      return true;
    case route::HostVerdict::kMisdirected:
      // RFC 9110 §15.5.20: the client retries on a new connection, which
      // the master routes by this host. Nothing after it on this one is
      // answered: pipelined requests were sent for the wrong site too.
      ++context_->stats->misdirected_requests;
      AppendError("421 Misdirected Request",
                  "misdirected request: this connection's site does not "
                  "serve that host\n",
                  ConnectionHeader::kClose);
      CloseAfterFlush(/*must_linger=*/true);
      return false;
    case route::HostVerdict::kInvalid:
      ++context_->stats->bad_requests;
      AppendError("400 Bad Request", "bad request: invalid host\n",
                  ConnectionHeader::kClose);
      CloseAfterFlush(/*must_linger=*/true);
      return false;
  }
  return true;
}

void HttpResponder::Respond(const RequestHead& request) {
  ++context_->stats->requests;
  ++requests_;
  if (!HostAllowed(request)) return;
  const bool keep_alive = request.keep_alive && !context_->draining;
  ConnectionHeader header = ConnectionHeader::kNone;
  if (!keep_alive) {
    header = ConnectionHeader::kClose;
    close_after_flush_ = true;
  } else if (request.minor_version == 0) {
    header = ConnectionHeader::kKeepAlive;  // HTTP/1.0 needs it said
  }
  // RFC 9110 §10.1.1: a client waiting for 100 Continue would otherwise sit
  // out its timeout before sending the body we still have to skip.
  if (request.expect_continue && request.minor_version >= 1 &&
      request.framing != BodyFraming::kNone) {
    output_.append("HTTP/1.1 100 Continue\r\n\r\n");
  }
  const bool head_only = request.method == "HEAD";
  absl::string_view path = request.target.substr(0, request.target.find('?'));
  if (absl::StartsWith(path, "/bytes/")) {
    uint64_t count = 0;
    if (!ParseByteCount(path.substr(7), &count)) {
      AppendError("400 Bad Request", "/bytes/N wants N from 0 to 1073741824\n",
                  header);
      return;
    }
    absl::StrAppend(&output_,
                    "HTTP/1.1 200 OK\r\n"
                    "Content-Type: application/octet-stream\r\n"
                    "Content-Length: ",
                    count, "\r\n", HeaderLine(header), "\r\n");
    if (!head_only) {
      stream_remaining_ = count;
      stream_sent_ = 0;
    }
    return;
  }
  if (path == "/proxy") {
    AppendProxy(header, head_only);
    return;
  }
  AppendHello(request.host.empty() ? absl::string_view("-") : request.host,
              header, head_only);
}

void HttpResponder::AppendProxy(ConnectionHeader connection_header,
                                bool head_only) {
  const absl::string_view body =
      info_.proxy.empty() ? absl::string_view("proxy=0\n") : info_.proxy;
  absl::StrAppend(&output_,
                  "HTTP/1.1 200 OK\r\n"
                  "Content-Type: text/plain\r\n"
                  "Content-Length: ",
                  body.size(), "\r\n", HeaderLine(connection_header), "\r\n");
  if (!head_only) output_.append(body.data(), body.size());
}

const char* HttpResponder::HeaderLine(ConnectionHeader header) {
  switch (header) {
    case ConnectionHeader::kNone:
      return "";
    case ConnectionHeader::kClose:
      return "Connection: close\r\n";
    case ConnectionHeader::kKeepAlive:
      return "Connection: keep-alive\r\n";
  }
  return "";
}

void HttpResponder::BuildIdentity() {
  std::string peer = info_.peer.empty() ? PeerOf(peer_fd_) : info_.peer;
  body_prefix_ =
      absl::StrCat("site=", OrDash(info_.site_id), " worker=",
                   info_.worker_index, " pid=", context_->pid, " host=");
  body_suffix_ =
      absl::StrCat(" sni=", OrDash(info_.sni), " alpn=", OrDash(info_.alpn),
                   " tls=", info_.tls ? 1 : 0, " peer=", peer, "\n");
  identity_ready_ = true;
}

void HttpResponder::AppendHello(absl::string_view host,
                                ConnectionHeader connection_header,
                                bool head_only) {
  if (cache_valid_ && cached_header_ == connection_header &&
      cached_head_only_ == head_only && cached_host_ == host) {
    output_.append(cached_response_);
    return;
  }
  if (!identity_ready_) BuildIdentity();
  std::string& response = cached_response_;
  response.clear();
  size_t body_size = body_prefix_.size() + host.size() + body_suffix_.size();
  absl::StrAppend(&response,
                  "HTTP/1.1 200 OK\r\n"
                  "Content-Type: text/plain\r\n"
                  "Content-Length: ",
                  body_size, "\r\n", HeaderLine(connection_header), "\r\n");
  if (!head_only) absl::StrAppend(&response, body_prefix_, host, body_suffix_);
  cached_host_.assign(host.data(), host.size());
  cached_header_ = connection_header;
  cached_head_only_ = head_only;
  cache_valid_ = true;
  output_.append(response);
}

void HttpResponder::AppendError(absl::string_view status,
                                absl::string_view body,
                                ConnectionHeader connection_header) {
  absl::StrAppend(
      &output_, "HTTP/1.1 ", status,
      "\r\nContent-Type: text/plain\r\nContent-Length: ", body.size(), "\r\n",
      HeaderLine(connection_header), "\r\n", body);
}

}  // namespace hello
}  // namespace ddv
