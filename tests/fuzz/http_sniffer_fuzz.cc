// Fuzzes SniffHttpRequest and checks the promises the master relies on: a
// decision never changes with more bytes, the cap only turns "need more" into
// "too large", and a found host is already in normal form.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "absl/strings/string_view.h"
#include "src/sniff/host_name.h"
#include "src/sniff/http_sniffer.h"
#include "src/sniff/sniff_status.h"
#include "tests/fuzz/fuzz_check.h"

namespace ddv {
namespace sniff {
namespace {

constexpr size_t kNoCap = std::numeric_limits<size_t>::max();

struct Answer {
  SniffStatus status;
  HttpRequestInfo info;
};

Answer Sniff(absl::string_view input, size_t max_bytes) {
  Answer a;
  a.status = SniffHttpRequest(input, max_bytes, &a.info);
  const HttpRequestInfo& info = a.info;
  bool needs_reason = a.status == SniffStatus::kMalformed ||
                      a.status == SniffStatus::kNotThisProtocol ||
                      a.status == SniffStatus::kTooLarge;
  FUZZ_CHECK(needs_reason == (info.reason != nullptr));
  if (a.status == SniffStatus::kFound) {
    FUZZ_CHECK(info.head_length > 0);
    FUZZ_CHECK(info.head_length <= input.size());
    FUZZ_CHECK(info.head_length <= max_bytes);
    FUZZ_CHECK(info.minor_version >= 0 && info.minor_version <= 9);
    FUZZ_CHECK(!(info.http2_preface && info.absolute_form));
    FUZZ_CHECK(!info.http2_preface || info.host.empty());
    FUZZ_CHECK(!info.absolute_form || !info.host.empty());
    if (!info.host.empty()) {
      // The normal form is a fixed point of NormalizeHost.
      HostName again;
      FUZZ_CHECK(NormalizeHost(info.host.view(), HostSyntax::kHttpHost,
                               &again) == nullptr);
      FUZZ_CHECK(again.view() == info.host.view());
    }
  } else {
    FUZZ_CHECK(info.host.empty());
    FUZZ_CHECK(info.head_length == 0);
  }
  return a;
}

bool Same(const Answer& a, const Answer& b) {
  return a.status == b.status && a.info.host.view() == b.info.host.view() &&
         a.info.head_length == b.info.head_length &&
         a.info.absolute_form == b.info.absolute_form &&
         a.info.http2_preface == b.info.http2_preface;
}

// Sniffing `input` with cap `cap` must equal sniffing its first `cap` bytes
// uncapped, except that "need more" at the cap becomes "too large".
void CheckCap(absl::string_view input, const Answer& full, size_t cap) {
  Answer capped = Sniff(input, cap);
  if (input.size() < cap) {
    FUZZ_CHECK(Same(capped, full));
    return;
  }
  Answer within = Sniff(input.substr(0, cap), kNoCap);
  if (within.status == SniffStatus::kNeedMore) {
    FUZZ_CHECK(capped.status == SniffStatus::kTooLarge);
  } else {
    FUZZ_CHECK(Same(capped, within));
  }
}

}  // namespace
}  // namespace sniff
}  // namespace ddv

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using ddv::sniff::Answer;
  using ddv::sniff::kNoCap;
  using ddv::sniff::Same;
  using ddv::sniff::Sniff;
  using ddv::sniff::SniffStatus;
  absl::string_view input(reinterpret_cast<const char*>(data), size);

  Answer full = Sniff(input, kNoCap);
  FUZZ_CHECK(full.status != SniffStatus::kTooLarge);

  if (full.status == SniffStatus::kFound) {
    // The head alone gives the same answer; one byte less is never enough.
    size_t head = full.info.head_length;
    FUZZ_CHECK(Same(Sniff(input.substr(0, head), kNoCap), full));
    FUZZ_CHECK(Sniff(input.substr(0, head - 1), kNoCap).status ==
               SniffStatus::kNeedMore);
  }

  // Monotonic: a shorter prefix either waits or already gives the final
  // answer (this is what "peek again with more bytes" relies on). Every
  // prefix of short inputs, a spread of cut points in long ones.
  size_t step = size <= 512 ? 1 : size / 64;
  for (size_t k = 0; k < size; k += step) {
    Answer part = Sniff(input.substr(0, k), kNoCap);
    if (part.status != SniffStatus::kNeedMore) {
      FUZZ_CHECK(Same(part, full));
    }
    if (full.status == SniffStatus::kFound && k < full.info.head_length) {
      FUZZ_CHECK(part.status == SniffStatus::kNeedMore);
    }
  }

  // Caps: none, tiny, half the input, the default 16 KiB peek cap.
  ddv::sniff::CheckCap(input, full, 0);
  ddv::sniff::CheckCap(input, full, 1);
  ddv::sniff::CheckCap(input, full, size / 2);
  ddv::sniff::CheckCap(input, full, size);
  ddv::sniff::CheckCap(input, full, 16384);
  return 0;
}
