#include "bench/loadgen_cxx/latency_histogram.h"

#include <bit>

namespace rusd::loadgen {

// Values < 2^kSubBits map to themselves (buckets 0..127). A larger value with its top bit at
// position t (t >= kSubBits) keeps its top kSubBits bits: shift s = t - (kSubBits - 1) and
// mantissa m = v >> s in [64, 128); bucket = 128 + (s - 1) * 64 + (m - 64).
int LatencyHistogram::BucketOf(uint64_t v) {
  if (v < (uint64_t{1} << kSubBits)) return static_cast<int>(v);
  const int top = 63 - std::countl_zero(v);
  const int shift = top - (kSubBits - 1);
  const int mantissa = static_cast<int>(v >> shift);
  return (1 << kSubBits) + (shift - 1) * kBucketsPerOctave + (mantissa - kBucketsPerOctave);
}

uint64_t LatencyHistogram::BucketLow(int bucket) {
  if (bucket < (1 << kSubBits)) return static_cast<uint64_t>(bucket);
  const int rel = bucket - (1 << kSubBits);
  const int shift = rel / kBucketsPerOctave + 1;
  const uint64_t mantissa = static_cast<uint64_t>(rel % kBucketsPerOctave + kBucketsPerOctave);
  return mantissa << shift;
}

uint64_t LatencyHistogram::BucketHigh(int bucket) {
  if (bucket < (1 << kSubBits)) return static_cast<uint64_t>(bucket);
  const int shift = (bucket - (1 << kSubBits)) / kBucketsPerOctave + 1;
  return BucketLow(bucket) + ((uint64_t{1} << shift) - 1);
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (int i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
}

uint64_t LatencyHistogram::Percentile(double q) const {
  if (count_ == 0) return 0;
  // Nearest rank as in the Go loadgen: the sample at index q*n + 0.5 (clamped) of the sorted
  // samples, i.e. the first bucket whose cumulative count exceeds that index.
  auto idx = static_cast<uint64_t>(q * static_cast<double>(count_) + 0.5);
  if (idx >= count_) idx = count_ - 1;
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen > idx) return BucketLow(i) + (BucketHigh(i) - BucketLow(i)) / 2;
  }
  return 0;  // unreachable: counts_ sum to count_
}

}  // namespace rusd::loadgen
