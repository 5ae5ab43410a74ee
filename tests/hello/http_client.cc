// HttpClient: blocking sockets with SO_RCVTIMEO, so no test can hang.
#include "tests/hello/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "src/base/errno_status.h"

namespace ddv {
namespace hello {
namespace testing {

absl::StatusOr<HttpClient> HttpClient::Connect(int port,
                                               absl::Duration timeout) {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoStatus(errno, "socket", "connecting");
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(static_cast<uint16_t>(port));
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) != 0) {
    return ErrnoStatus(errno, "connect", absl::StrCat("connecting to ", port));
  }
  return HttpClient(std::move(fd), timeout);
}

HttpClient::HttpClient(UniqueFd fd, absl::Duration timeout)
    : fd_(std::move(fd)) {
  timeval tv = absl::ToTimeval(timeout);
  setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd_.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  int one = 1;
  setsockopt(fd_.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

absl::Status HttpClient::Send(absl::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "send", "sending a request");
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status HttpClient::Fill() {
  char chunk[65536];
  for (;;) {
    ssize_t n = recv(fd_.get(), chunk, sizeof(chunk), 0);
    if (n > 0) {
      buffer_.append(chunk, static_cast<size_t>(n));
      return absl::OkStatus();
    }
    if (n == 0) return absl::UnavailableError("connection closed");
    if (errno == EINTR) continue;
    return ErrnoStatus(errno, "recv", "reading a response");
  }
}

absl::StatusOr<HttpResponse> HttpClient::Read(bool head_only) {
  size_t end;
  while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
    absl::Status status = Fill();
    if (!status.ok()) return status;
  }
  HttpResponse response;
  std::string head = buffer_.substr(0, end);
  buffer_.erase(0, end + 4);
  std::vector<std::string> lines = absl::StrSplit(head, "\r\n");
  std::vector<std::string> status_line = absl::StrSplit(lines[0], ' ');
  if (status_line.size() < 2 || status_line[0] != "HTTP/1.1" ||
      !absl::SimpleAtoi(status_line[1], &response.status)) {
    return absl::DataLossError(absl::StrCat("bad status line: ", lines[0]));
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    size_t colon = lines[i].find(':');
    if (colon == std::string::npos) {
      return absl::DataLossError(absl::StrCat("bad header: ", lines[i]));
    }
    response.headers[absl::AsciiStrToLower(lines[i].substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
  }
  // 1xx answers have no body (RFC 9110 §15.2).
  if (response.status < 200 || head_only) return response;
  size_t length = 0;
  auto it = response.headers.find("content-length");
  if (it == response.headers.end() || !absl::SimpleAtoi(it->second, &length)) {
    return absl::DataLossError("response without a Content-Length");
  }
  while (buffer_.size() < length) {
    absl::Status status = Fill();
    if (!status.ok()) return status;
  }
  response.body = buffer_.substr(0, length);
  buffer_.erase(0, length);
  return response;
}

bool HttpClient::WaitForClose() {
  if (!buffer_.empty()) return false;
  char byte;
  for (;;) {
    ssize_t n = recv(fd_.get(), &byte, 1, 0);
    if (n == 0) return true;
    if (n > 0) return false;
    if (errno == EINTR) continue;
    return errno == ECONNRESET;  // EAGAIN: the timeout passed, still open
  }
}

std::string HttpClient::LocalAddress() const {
  sockaddr_in sin{};
  socklen_t len = sizeof(sin);
  getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&sin), &len);
  char text[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &sin.sin_addr, text, sizeof(text));
  return absl::StrCat(text, ":", ntohs(sin.sin_port));
}

absl::StatusOr<HttpResponse> Get(HttpClient& client, absl::string_view target,
                                 absl::string_view host) {
  absl::Status status = client.Send(
      absl::StrCat("GET ", target, " HTTP/1.1\r\nHost: ", host, "\r\n\r\n"));
  if (!status.ok()) return status;
  return client.Read();
}

}  // namespace testing
}  // namespace hello
}  // namespace ddv
