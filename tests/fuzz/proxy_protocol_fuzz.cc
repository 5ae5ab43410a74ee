// Fuzz target for SniffProxyHeader: besides "no crash", checks the promises
// the master's peek loop relies on: a verdict never changes as more bytes
// arrive, and a found header's length is exact.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "absl/strings/string_view.h"
#include "src/sniff/proxy_protocol.h"

namespace {

using ddv::sniff::ProxyHeader;
using ddv::sniff::SniffProxyHeader;
using ddv::sniff::SniffStatus;

void Check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view input(reinterpret_cast<const char*>(data), size);
  ProxyHeader header;
  const SniffStatus status = SniffProxyHeader(input, &header);
  Check(status != SniffStatus::kTooLarge);

  switch (status) {
    case SniffStatus::kFound: {
      Check(header.version == 1 || header.version == 2);
      Check(header.header_length > 0 && header.header_length <= size);
      Check(header.reason == nullptr);
      if (header.local) {
        Check(header.family == AF_UNSPEC);
      } else {
        Check(header.family == AF_INET || header.family == AF_INET6);
        Check(header.source.ss_family == header.family);
        Check(header.destination.ss_family == header.family);
      }
      // The header alone is enough, and one byte less is not.
      ProxyHeader exact;
      Check(SniffProxyHeader(input.substr(0, header.header_length), &exact) ==
            SniffStatus::kFound);
      Check(exact.header_length == header.header_length);
      Check(SniffProxyHeader(input.substr(0, header.header_length - 1),
                             &exact) == SniffStatus::kNeedMore);
      break;
    }
    case SniffStatus::kNeedMore:
      Check(header.reason == nullptr);
      if (header.header_length != 0) Check(header.header_length > size);
      break;
    case SniffStatus::kNotThisProtocol:
    case SniffStatus::kMalformed:
      Check(header.reason != nullptr);
      Check(header.header_length == 0);
      break;
    case SniffStatus::kTooLarge:
      break;
  }

  // A refusal is final: one more byte cannot turn it into anything else.
  if (size > 0) {
    ProxyHeader shorter;
    const SniffStatus before = SniffProxyHeader(input.substr(0, size - 1),
                                                &shorter);
    if (before == SniffStatus::kMalformed ||
        before == SniffStatus::kNotThisProtocol) {
      Check(status == before);
    }
    if (before == SniffStatus::kFound) {
      Check(status == SniffStatus::kFound);
      Check(header.header_length == shorter.header_length);
    }
  }
  return 0;
}
