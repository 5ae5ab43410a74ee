// libFuzzer target for SniffTlsClientHello. Besides not crashing, it checks
// the promises callers rely on: a decision made on a prefix stands, bytes
// past max_bytes change nothing, bytes_needed never overshoots a hello that
// completes, and a found SNI is in normal form.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "absl/strings/string_view.h"
#include "src/sniff/host_name.h"
#include "src/sniff/tls_sniffer.h"

namespace {

using ddv::sniff::ClientHelloInfo;
using ddv::sniff::SniffStatus;

void Check(bool ok) {
  if (!ok) std::abort();
}

void CheckInfo(SniffStatus status, const ClientHelloInfo& info) {
  Check(info.alpn_count <= ddv::sniff::kMaxAlpnProtocols);
  Check(info.alpn_count <= info.alpn_total);
  Check(info.supported_versions_count <= ddv::sniff::kMaxSupportedVersions);
  Check(info.supported_versions_count <= info.supported_versions_total);
  if (status == SniffStatus::kFound) {
    Check(info.reason == nullptr);
    for (size_t i = 0; i < info.alpn_count; ++i) {
      Check(!info.alpn(i).empty());
      Check(info.OffersAlpn(info.alpn(i)));
    }
    if (!info.sni.empty()) {
      ddv::sniff::HostName again;
      Check(ddv::sniff::NormalizeHost(info.sni.view(),
                                      ddv::sniff::HostSyntax::kTlsSni,
                                      &again) == nullptr);
      Check(again.view() == info.sni.view());
    }
    if (info.sslv2) Check(info.sni.empty() && info.alpn_total == 0);
  } else {
    // No half answers.
    Check(info.sni.empty() && info.alpn_count == 0);
    if (status == SniffStatus::kNeedMore) {
      Check(info.reason == nullptr);
    } else {
      Check(info.reason != nullptr);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  // Heap, not stack: ClientHelloInfo is ~4.5 KiB and three are needed.
  static auto* full = new ClientHelloInfo;
  static auto* half = new ClientHelloInfo;
  static auto* capped = new ClientHelloInfo;

  const SniffStatus full_status = SniffTlsClientHello(input, size, full);
  CheckInfo(full_status, *full);
  if (full_status == SniffStatus::kNeedMore) Check(full->bytes_needed > size);

  // A prefix's decision is final: the whole input must agree with it.
  const absl::string_view prefix = input.substr(0, size / 2);
  const SniffStatus half_status = SniffTlsClientHello(prefix, size, half);
  CheckInfo(half_status, *half);
  if (half_status == SniffStatus::kNeedMore) {
    Check(half->bytes_needed > prefix.size());
    if (full_status == SniffStatus::kFound) {
      Check(half->bytes_needed <= size);
    }
  } else if (half_status == SniffStatus::kTooLarge) {
    // Answered as soon as the lengths show the hello cannot fit; more
    // bytes may still show it broken or foreign, but never make it found.
    Check(full_status != SniffStatus::kFound &&
          full_status != SniffStatus::kNeedMore);
  } else {
    Check(half_status == full_status);
    if (half_status == SniffStatus::kFound) {
      Check(half->sni.view() == full->sni.view());
      Check(half->alpn_total == full->alpn_total);
      Check(half->ech == full->ech);
    }
  }

  // Bytes past max_bytes are ignored: capping the input or passing it whole
  // with the same cap gives the same answer.
  const SniffStatus capped_status =
      SniffTlsClientHello(input, prefix.size(), capped);
  CheckInfo(capped_status, *capped);
  if (half_status == SniffStatus::kNeedMore) {
    Check(capped_status == SniffStatus::kTooLarge);
  } else {
    Check(capped_status == half_status);
    Check(capped->sni.view() == half->sni.view());
  }
  return 0;
}
