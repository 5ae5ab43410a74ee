// Fuzz target for SniffProxyHeader: besides "no crash", checks the promises
// the master's peek loop relies on: a verdict never changes as more bytes
// arrive, and a found header's length is exact; and what the master passes
// on to workers: a found header's TLVs lie inside it, parse again the same
// way, and every decoded field is a view into them.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "absl/strings/string_view.h"
#include "src/sniff/proxy_protocol.h"

namespace {

using ddv::sniff::ParseProxyTlvs;
using ddv::sniff::ProxyHeader;
using ddv::sniff::ProxyTlvs;
using ddv::sniff::SniffProxyHeader;
using ddv::sniff::SniffStatus;

void Check(bool condition) {
  if (!condition) std::abort();
}

// `part` is empty or lies inside `whole`.
bool Within(absl::string_view part, absl::string_view whole) {
  return part.empty() || (part.data() >= whole.data() &&
                          part.data() + part.size() <=
                              whole.data() + whole.size());
}

void CheckTlvs(absl::string_view input, const ProxyHeader& header) {
  Check(Within(header.tlvs, input.substr(0, header.header_length)));
  if (header.version == 1) Check(header.tlvs.empty());
  const ProxyTlvs& t = header.tlv;
  for (absl::string_view field :
       {t.alpn, t.authority, t.unique_id, t.netns, t.ssl_version, t.ssl_cn,
        t.ssl_cipher, t.ssl_sig_alg, t.ssl_key_alg}) {
    Check(Within(field, header.tlvs));
  }
  Check(t.unique_id.size() <= ddv::sniff::kPp2MaxUniqueIdLength);
  ProxyTlvs again;
  Check(ParseProxyTlvs(header.tlvs, &again) == nullptr);
  Check(again.alpn == t.alpn && again.authority == t.authority &&
        again.unique_id == t.unique_id && again.has_ssl == t.has_ssl &&
        again.ssl_cn == t.ssl_cn && again.has_crc32c == t.has_crc32c);
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
      CheckTlvs(input, header);
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
