// A minimal blocking HTTP/1.1 client for ddv_hello's tests: raw sockets, so
// tests control exactly which bytes go out and when (pipelining, garbage,
// oversized heads). Every read is bounded by a receive timeout.
#ifndef DDV_TESTS_HELLO_HTTP_CLIENT_H_
#define DDV_TESTS_HELLO_HTTP_CLIENT_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "src/base/unique_fd.h"

namespace ddv {
namespace hello {
namespace testing {

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

class HttpClient {
 public:
  // Connects to 127.0.0.1:port; reads time out after `timeout`.
  static absl::StatusOr<HttpClient> Connect(
      int port, absl::Duration timeout = absl::Seconds(5));
  // Wraps an already-connected socket.
  explicit HttpClient(UniqueFd fd, absl::Duration timeout = absl::Seconds(5));

  int fd() const { return fd_.get(); }
  absl::Status Send(absl::string_view bytes);
  // Reads one response (head and Content-Length body). `head_only` for the
  // answer to a HEAD request, whose Content-Length has no body behind it.
  absl::StatusOr<HttpResponse> Read(bool head_only = false);
  // True when the server closes the connection (EOF or reset) with no
  // further bytes before the timeout.
  bool WaitForClose();
  // "ip:port" of this end, as the server's peer= should show it.
  std::string LocalAddress() const;

 private:
  absl::Status Fill();  // reads more into buffer_

  UniqueFd fd_;
  std::string buffer_;
};

// Sends "GET <target> HTTP/1.1" with Host `host` and reads the answer.
absl::StatusOr<HttpResponse> Get(HttpClient& client, absl::string_view target,
                                 absl::string_view host = "test.local");

}  // namespace testing
}  // namespace hello
}  // namespace ddv

#endif  // DDV_TESTS_HELLO_HTTP_CLIENT_H_
