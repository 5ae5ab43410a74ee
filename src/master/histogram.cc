// Histogram bounds and merging.
#include "src/master/histogram.h"

#include "glog/logging.h"

namespace ddv {
namespace master {
namespace {

// The hand-off itself takes microseconds; what moves the tail is the
// client's first bytes (the peek) and waiting for a live worker.
constexpr HistogramBound kLatencyBounds[] = {
    {25000, "2.5e-05"},        {50000, "5e-05"},
    {100000, "0.0001"},        {250000, "0.00025"},
    {500000, "0.0005"},        {1000000, "0.001"},
    {2500000, "0.0025"},       {5000000, "0.005"},
    {10000000, "0.01"},        {25000000, "0.025"},
    {50000000, "0.05"},        {100000000, "0.1"},
    {250000000, "0.25"},       {500000000, "0.5"},
    {1000000000, "1"},         {2500000000, "2.5"},
    {5000000000, "5"},         {10000000000, "10"},
};

// An HTTP head or a ClientHello: a few hundred bytes, up to max_peek_bytes.
constexpr HistogramBound kPeekBytesBounds[] = {
    {64, "64"},         {128, "128"},       {256, "256"},
    {512, "512"},       {1024, "1024"},     {2048, "2048"},
    {4096, "4096"},     {8192, "8192"},     {16384, "16384"},
    {32768, "32768"},   {65536, "65536"},   {131072, "131072"},
    {262144, "262144"}, {524288, "524288"}, {1048576, "1048576"},
};

}  // namespace

absl::Span<const HistogramBound> LatencyBounds() { return kLatencyBounds; }
absl::Span<const HistogramBound> PeekBytesBounds() { return kPeekBytesBounds; }

Histogram::Histogram(absl::Span<const HistogramBound> bounds)
    : bounds_(bounds) {
  CHECK_LT(bounds.size(), kMaxBuckets);
}

void Histogram::Merge(const Histogram& other) {
  DCHECK_EQ(other.bounds_.data(), bounds_.data());
  for (size_t i = 0; i < kMaxBuckets; ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  sum_ += other.sum_;
}

}  // namespace master
}  // namespace ddv
