// Fuzzes the log writer's pure pieces with one input:
//  - DecodeMessage (the link from the masters, the park): no crash, and
//    what decodes re-encodes to exactly the same bytes (no slack), with no
//    more fds than a message may carry;
//  - LineBuffer, fed the input in fuzzer-chosen pieces: only whole lines
//    come out, none longer than the capacity, and nothing but the added
//    newlines differs from the input;
//  - PlanWrite on the input as a queue of lines: a plan writes whole lines
//    and keeps the file within log_max_bytes, save one long line alone.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "src/logwriter/fd_passing.h"
#include "src/logwriter/line_buffer.h"
#include "src/logwriter/rotation.h"
#include "src/logwriter/wire.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using namespace ddv::logwriter;  // NOLINT: a fuzz target's local scope

void CheckWire(absl::string_view data) {
  absl::StatusOr<Message> m = DecodeMessage(data);
  if (!m.ok()) return;
  FUZZ_CHECK(FdCount(*m) <= kMaxFdsPerMessage);
  absl::StatusOr<std::string> again = EncodeMessage(*m);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(*again == data);
}

std::string WithoutNewlines(absl::string_view s) {
  std::string out;
  for (char c : s) {
    if (c != '\n') out.push_back(c);
  }
  return out;
}

void CheckLines(absl::string_view data) {
  if (data.empty()) return;
  const size_t kCapacity = 64;
  LineBuffer buffer(kCapacity, 8);
  // The first byte picks the read size, as a pipe read could cut anywhere.
  const size_t piece = 1 + static_cast<uint8_t>(data[0]) % 80;
  absl::string_view rest = data.substr(1);
  std::string out;
  while (!rest.empty()) {
    const size_t n = std::min({piece, rest.size(), buffer.space_size()});
    FUZZ_CHECK(n > 0);
    std::copy(rest.begin(), rest.begin() + n, buffer.space());
    const size_t before = out.size();
    buffer.Commit(n, &out);
    FUZZ_CHECK(out.size() == before || out.back() == '\n');
    rest.remove_prefix(n);
  }
  const bool partial = buffer.pending() > 0;
  buffer.Flush(&out);
  FUZZ_CHECK(WithoutNewlines(out) == WithoutNewlines(data.substr(1)));
  FUZZ_CHECK(out.size() ==
             data.size() - 1 + buffer.lines_cut() + (partial ? 1 : 0));
  size_t line = 0;
  for (char c : out) {
    line = c == '\n' ? 0 : line + 1;
    FUZZ_CHECK(line <= kCapacity);
  }
}

void CheckPlan(absl::string_view data) {
  if (data.size() < 2) return;
  std::string queue(data.substr(2));
  if (queue.empty() || queue.back() != '\n') queue.push_back('\n');
  const RotationPolicy policy{static_cast<uint8_t>(data[0]) * 4ull, 3};
  const uint64_t size = static_cast<uint8_t>(data[1]) * 3ull;
  const WritePlan plan = PlanWrite(queue, size, policy);
  if (plan.rotate_first) {
    FUZZ_CHECK(policy.max_bytes > 0 && size > 0);
    return;
  }
  FUZZ_CHECK(plan.bytes > 0 && plan.bytes <= queue.size());
  FUZZ_CHECK(queue[plan.bytes - 1] == '\n');
  if (policy.max_bytes > 0 && size + plan.bytes > policy.max_bytes) {
    // Only a first line too long for any file, alone in an empty one.
    FUZZ_CHECK(size == 0);
    FUZZ_CHECK(queue.find('\n') == plan.bytes - 1);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  const absl::string_view data(reinterpret_cast<const char*>(bytes), size);
  CheckWire(data);
  CheckLines(data);
  CheckPlan(data);
  return 0;
}
