// LatencyHistogram: per-request latencies of one load-generator thread, in log-linear
// buckets (HdrHistogram's layout, 2 significant digits), so that recording is O(1) and
// allocation-free on the request path and a cell's percentiles do not need every sample.
//
// Buckets: values below 2^kSubBits ns are exact; above, each power of two [2^e, 2^(e+1)) is
// split into 2^(kSubBits-1) equal buckets, so any recorded value lies within 1/64 (1.6 %)
// of its bucket's lower bound. Percentile() answers with the bucket's midpoint.
//
// Percentile uses the Go loadgen's nearest-rank definition (cell.go: index q*n + 0.5 into the
// sorted samples), so the two loadgens report the same p50/p99 for the same samples up to
// the bucket width.
//
// Not thread-safe: one histogram per thread, Merge() them after the threads are done.
#pragma once

#include <array>
#include <cstdint>

namespace rusd::loadgen {

class LatencyHistogram {
 public:
  static constexpr int kSubBits = 7;  // 2^7 = 128 exact values, then 64 buckets per octave
  static constexpr int kBucketsPerOctave = 1 << (kSubBits - 1);
  static constexpr int kBuckets = (64 - kSubBits + 1) * kBucketsPerOctave + kBucketsPerOctave;

  void Record(uint64_t nanos) {
    ++counts_[BucketOf(nanos)];
    ++count_;
  }
  void Merge(const LatencyHistogram& other);
  uint64_t count() const { return count_; }

  // The q-quantile (0 <= q <= 1) in nanoseconds, nearest rank; 0 when empty.
  uint64_t Percentile(double q) const;

  // Exposed for tests: the bucket of a value and the range of values a bucket holds.
  static int BucketOf(uint64_t v);
  static uint64_t BucketLow(int bucket);
  static uint64_t BucketHigh(int bucket);  // inclusive

 private:
  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0;
};

}  // namespace rusd::loadgen
