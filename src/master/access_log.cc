// AccessLogs: line formatting (hand-rolled appends: it runs once per logged
// connection) and the files' buffers, writes and reopens.
#include "src/master/access_log.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "src/base/errno_status.h"

namespace ddv {
namespace master {
namespace {

constexpr char kHex[] = "0123456789abcdef";

// The length of the UTF-8 sequence starting at s[i], or 0 if it is not a
// valid one (RFC 3629: no overlongs, no surrogates, at most U+10FFFF).
size_t Utf8Length(absl::string_view s, size_t i) {
  const unsigned char c = s[i];
  if (c < 0x80) return 1;
  size_t n;
  unsigned char lo = 0x80, hi = 0xbf;
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    const unsigned char d = s[i + k];
    if (d < (k == 1 ? lo : 0x80) || d > (k == 1 ? hi : 0xbf)) return 0;
  }
  return n;
}

// The characters of a quoted string, escaped the way JSON (and logfmt,
// which follows Go's quoting) reads them.
void AppendEscaped(absl::string_view s, std::string* out) {
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = s[i];
    if (c >= 0x80) {
      const size_t n = Utf8Length(s, i);
      if (n == 0) {
        out->append("\xef\xbf\xbd");  // U+FFFD
        ++i;
      } else {
        out->append(s.data() + i, n);
        i += n;
      }
      continue;
    }
    ++i;
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out->append("\\u00");
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 15]);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
}

void AppendJsonString(absl::string_view s, std::string* out) {
  out->push_back('"');
  AppendEscaped(s, out);
  out->push_back('"');
}

// logfmt: bare when the value is plain, quoted otherwise.
void AppendLogfmtValue(absl::string_view s, std::string* out) {
  bool plain = !s.empty();
  for (unsigned char c : s) {
    if (c <= 0x20 || c == '=' || c == '"' || c == '\\' || c >= 0x7f) {
      plain = false;
      break;
    }
  }
  if (plain) {
    out->append(s.data(), s.size());
    return;
  }
  AppendJsonString(s, out);
}

// "192.0.2.1:80", "[2001:db8::1]:443"; empty when not an IP address.
void AppendAddress(const sockaddr_storage& address, std::string* out) {
  char ip[INET6_ADDRSTRLEN];
  if (address.ss_family == AF_INET) {
    const auto& a = reinterpret_cast<const sockaddr_in&>(address);
    if (inet_ntop(AF_INET, &a.sin_addr, ip, sizeof(ip)) == nullptr) return;
    absl::StrAppend(out, ip, ":", ntohs(a.sin_port));
  } else if (address.ss_family == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(address);
    if (inet_ntop(AF_INET6, &a.sin6_addr, ip, sizeof(ip)) == nullptr) return;
    absl::StrAppend(out, "[", ip, "]:", ntohs(a.sin6_port));
  }
}

// RFC 3339, UTC, microseconds: 2025-06-01T12:00:00.000123Z. The date and
// time of day change once a second; only they go through gmtime_r.
void AppendTime(int64_t unix_ns, std::string* out) {
  static thread_local int64_t cached_second = -1;
  static thread_local char cached[24];
  const int64_t second = unix_ns / 1000000000;
  if (second != cached_second) {
    const time_t t = static_cast<time_t>(second);
    tm parts{};
    gmtime_r(&t, &parts);
    strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S", &parts);
    cached_second = second;
  }
  int64_t us = (unix_ns % 1000000000) / 1000;
  char micros[8] = {'.', '0', '0', '0', '0', '0', '0', 'Z'};
  for (int i = 6; i >= 1; --i) {
    micros[i] = static_cast<char>('0' + us % 10);
    us /= 10;
  }
  out->append(cached);
  out->append(micros, sizeof(micros));
}

}  // namespace

void FormatAccessLogLine(config::AccessLogFormat format,
                         const AccessLogEntry& e, std::string* out) {
  std::string peer, proxy_peer;
  if (e.peer != nullptr) AppendAddress(*e.peer, &peer);
  if (e.proxy_peer != nullptr) AppendAddress(*e.proxy_peer, &proxy_peer);
  if (format == config::AccessLogFormat::kJson) {
    auto field = [out](absl::string_view key, absl::string_view value,
                       bool first = false) {
      absl::StrAppend(out, first ? "{\"" : ",\"", key, "\":");
      if (value.empty()) {
        out->append("null");
      } else {
        AppendJsonString(value, out);
      }
    };
    out->append("{\"time\":\"");
    AppendTime(e.unix_ns, out);
    out->push_back('"');
    field("listener", e.listener);
    field("peer", peer);
    field("proxy_peer", proxy_peer);
    field("host", e.host);
    field("alpn", e.alpn);
    field("site", e.site);
    if (e.worker_pid > 0) {
      absl::StrAppend(out, ",\"worker_pid\":", e.worker_pid);
    } else {
      out->append(",\"worker_pid\":null");
    }
    field("outcome", e.outcome);
    absl::StrAppend(out, ",\"us\":", e.micros, "}\n");
    return;
  }
  auto field = [out](absl::string_view key, absl::string_view value) {
    if (value.empty()) return;
    absl::StrAppend(out, " ", key, "=");
    AppendLogfmtValue(value, out);
  };
  out->append("time=");
  AppendTime(e.unix_ns, out);
  field("listener", e.listener);
  field("peer", peer);
  field("proxy_peer", proxy_peer);
  field("host", e.host);
  field("alpn", e.alpn);
  field("site", e.site);
  if (e.worker_pid > 0) absl::StrAppend(out, " worker_pid=", e.worker_pid);
  field("outcome", e.outcome);
  absl::StrAppend(out, " us=", e.micros, "\n");
}

struct AccessLogs::File {
  std::string path;
  UniqueFd fd;
  std::string pending;   // lines not yet given to a write
  std::string inflight;  // the write in flight (what is left of it)
  bool write_in_flight = false;
  int64_t last_write_ns = 0;  // when the last write was submitted
  bool reopen_pending = false;
  bool bound = false;  // some listener logs here
  // An unbound file's last lines go at once: then it closes.
  bool bound_gone() const { return !bound; }
};

AccessLogs::AccessLogs() {
  if (getrandom(&random_, sizeof(random_), GRND_NONBLOCK) !=
      static_cast<ssize_t>(sizeof(random_))) {
    random_ = static_cast<uint64_t>(time(nullptr)) * 0x9e3779b97f4a7c15ULL;
  }
  random_ |= 1;  // xorshift's state must not be 0
}
AccessLogs::~AccessLogs() = default;

absl::StatusOr<int> AccessLogs::Open(const std::string& path) {
  for (size_t i = 0; i < files_.size(); ++i) {
    if (files_[i] != nullptr && files_[i]->path == path) return i;
  }
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
                   0640));
  if (!fd) {
    return ErrnoStatus(errno, "open",
                       absl::StrCat("opening access log \"", path, "\""));
  }
  auto file = std::make_unique<File>();
  file->path = path;
  file->fd = std::move(fd);
  files_.push_back(std::move(file));
  return static_cast<int>(files_.size() - 1);
}

void AccessLogs::Bind(uint32_t listener, const config::ListenerConfig& config,
                      int file) {
  if (listener >= bindings_.size()) bindings_.resize(listener + 1);
  Binding& b = bindings_[listener];
  b.file = file;
  b.format = config.access_log_format;
  b.sample = config.access_log_sample;
  b.listener = config.name;
  if (file >= 0) files_[file]->bound = true;
}

void AccessLogs::CloseUnbound() {
  for (auto& file : files_) {
    if (file != nullptr) file->bound = false;
  }
  for (const Binding& b : bindings_) {
    if (b.file >= 0) files_[b.file]->bound = true;
  }
  for (size_t i = 0; i < files_.size(); ++i) MaybeClose(static_cast<int>(i));
}

void AccessLogs::MaybeClose(int i) {
  File* file = files_[i].get();
  if (file == nullptr || file->bound || file->write_in_flight) return;
  if (!file->pending.empty()) return;  // its last lines go first
  files_[i].reset();
}

void AccessLogs::Append(uint32_t listener, const AccessLogEntry& entry) {
  const Binding& b = bindings_[listener];
  File& file = *files_[b.file];
  if (file.pending.size() >= kMaxPendingBytes) {
    ++dropped_;
    LOG_EVERY_N(WARNING, 10000)
        << "access log \"" << file.path
        << "\" is more than 4 MiB behind; dropping lines ("
        << dropped_ << " so far)";
    return;
  }
  FormatAccessLogLine(b.format, entry, &file.pending);
  ++lines_;
}

bool AccessLogs::NextWrite(int i, int64_t now_ns, Write* write) {
  File* file = files_[i].get();
  if (file == nullptr || file->write_in_flight) return false;
  if (file->inflight.empty()) {
    // What is left of a short write goes on at once; new lines in batches.
    if (file->pending.empty()) return false;
    if (file->pending.size() < kBatchBytes &&
        now_ns - file->last_write_ns < kBatchNs && !file->bound_gone()) {
      return false;
    }
    file->inflight.swap(file->pending);
  }
  file->write_in_flight = true;
  file->last_write_ns = now_ns;
  *write = {file->fd.get(), file->inflight.data(), file->inflight.size()};
  return true;
}

void AccessLogs::OnWritten(int i, int result) {
  File* file = files_[i].get();
  if (file == nullptr) return;
  file->write_in_flight = false;
  if (result < 0) {
    // ENOSPC, EIO: these lines are lost; later ones may fare better.
    ++write_errors_;
    LOG_EVERY_N(ERROR, 100) << "write() failed on access log \"" << file->path
                            << "\": " << strerror(-result) << "; "
                            << file->inflight.size() << " bytes dropped";
    file->inflight.clear();
  } else {
    file->inflight.erase(0, static_cast<size_t>(result));
  }
  if (file->inflight.empty() && file->reopen_pending) {
    file->reopen_pending = false;
    (void)ReopenFile(*file);
  }
  if (file->inflight.empty()) MaybeClose(i);
}

absl::Status AccessLogs::ReopenFile(File& file) {
  UniqueFd fd(open(file.path.c_str(),
                   O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640));
  if (!fd) {
    // As nginx: the old file goes on receiving lines.
    ++reopen_errors_;
    absl::Status status = ErrnoStatus(
        errno, "open", absl::StrCat("reopening access log \"", file.path,
                                    "\" (its lines go on to the old file)"));
    LOG(ERROR) << status.message();
    return status;
  }
  file.fd = std::move(fd);
  return absl::OkStatus();
}

absl::Status AccessLogs::Reopen(int* reopened) {
  *reopened = 0;
  absl::Status first_error;
  for (auto& file : files_) {
    if (file == nullptr) continue;
    if (file->write_in_flight || !file->inflight.empty()) {
      file->reopen_pending = true;  // OnWritten reopens it
      ++*reopened;
      continue;
    }
    absl::Status status = ReopenFile(*file);
    if (status.ok()) {
      ++*reopened;
    } else if (first_error.ok()) {
      first_error = status;
    }
  }
  return first_error;
}

bool AccessLogs::Busy() const {
  for (const auto& file : files_) {
    if (file != nullptr && file->write_in_flight) return true;
  }
  return false;
}

void AccessLogs::FlushBlocking() {
  for (auto& file : files_) {
    if (file == nullptr || file->write_in_flight) continue;
    if (file->reopen_pending) {
      file->reopen_pending = false;
      (void)ReopenFile(*file);
    }
    file->inflight.append(file->pending);
    file->pending.clear();
    size_t done = 0;
    while (done < file->inflight.size()) {
      const ssize_t n = write(file->fd.get(), file->inflight.data() + done,
                              file->inflight.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        ++write_errors_;
        PLOG(ERROR) << "write() failed on access log \"" << file->path
                    << "\" at exit";
        break;
      }
      done += static_cast<size_t>(n);
    }
    file->inflight.clear();
  }
}

}  // namespace master
}  // namespace ddv
