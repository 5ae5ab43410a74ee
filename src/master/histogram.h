// Histogram: a Prometheus histogram with fixed buckets, cheap enough for the
// master's hot path. Observing is a scan of at most kMaxBuckets integer
// bounds and three increments: no allocation, no lock, no clock (the caller
// passes a value it already has). Buckets are the non-cumulative counts;
// the cumulative `le` series is made when rendered (docs/metrics.md).
#ifndef DDV_SRC_MASTER_HISTOGRAM_H_
#define DDV_SRC_MASTER_HISTOGRAM_H_

#include <array>
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace ddv {
namespace master {

// One bucket's upper bound: the integer the hot path compares with, and its
// `le` label as rendered (in the metric's base unit, e.g. seconds).
struct HistogramBound {
  int64_t value;
  absl::string_view le;
};

// The bounds of ddv_handoff_latency_seconds (nanoseconds observed, seconds
// shown): 25 µs to 10 s.
absl::Span<const HistogramBound> LatencyBounds();
// The bounds of ddv_peek_bytes: 64 bytes to 1 MiB (max_peek_bytes' cap),
// doubling.
absl::Span<const HistogramBound> PeekBytesBounds();

class Histogram {
 public:
  static constexpr size_t kMaxBuckets = 24;  // +Inf included

  // `bounds`: ascending, at most kMaxBuckets - 1, static storage.
  explicit Histogram(absl::Span<const HistogramBound> bounds);

  void Observe(int64_t value) {
    size_t i = 0;
    while (i < bounds_.size() && value > bounds_[i].value) ++i;
    ++buckets_[i];
    ++count_;
    sum_ += value;
  }

  // Adds `other`'s counts (same bounds): listeners that share a name.
  void Merge(const Histogram& other);

  absl::Span<const HistogramBound> bounds() const { return bounds_; }
  // Observations in bucket i alone (i == bounds().size() is +Inf's).
  uint64_t bucket(size_t i) const { return buckets_[i]; }
  uint64_t count() const { return count_; }
  int64_t sum() const { return sum_; }

 private:
  absl::Span<const HistogramBound> bounds_;
  std::array<uint64_t, kMaxBuckets> buckets_{};
  uint64_t count_ = 0;
  int64_t sum_ = 0;
};

}  // namespace master
}  // namespace ddv

#endif  // DDV_SRC_MASTER_HISTOGRAM_H_
