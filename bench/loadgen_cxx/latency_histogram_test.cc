#include "bench/loadgen_cxx/latency_histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

namespace rusd::loadgen {
namespace {

TEST(LatencyHistogram, EmptyHasZeroPercentiles) {
  LatencyHistogram h;
  EXPECT_EQ(h.Percentile(0.5), 0u);
  EXPECT_EQ(h.Percentile(0.99), 0u);
}

TEST(LatencyHistogram, BucketsCoverEveryValueOnceWithinTwoPercent) {
  for (uint64_t v :
       {uint64_t{0}, uint64_t{1}, uint64_t{127}, uint64_t{128}, uint64_t{129}, uint64_t{255},
        uint64_t{256}, uint64_t{1000}, uint64_t{123456789}, uint64_t{1} << 40, ~uint64_t{0}}) {
    const int b = LatencyHistogram::BucketOf(v);
    ASSERT_GE(b, 0);
    ASSERT_LT(b, LatencyHistogram::kBuckets);
    EXPECT_LE(LatencyHistogram::BucketLow(b), v) << v;
    EXPECT_GE(LatencyHistogram::BucketHigh(b), v) << v;
    EXPECT_LE(LatencyHistogram::BucketHigh(b) - LatencyHistogram::BucketLow(b),
              LatencyHistogram::BucketLow(b) / 64 + 1)
        << v;
  }
  // Adjacent buckets tile the number line.
  for (int b = 0; b + 1 < LatencyHistogram::kBuckets - 1; ++b) {
    ASSERT_EQ(LatencyHistogram::BucketHigh(b) + 1, LatencyHistogram::BucketLow(b + 1)) << b;
  }
}

TEST(LatencyHistogram, SmallValuesAreExact) {
  LatencyHistogram h;
  for (uint64_t v = 1; v <= 100; ++v) h.Record(v);
  // Go's nearest rank: index int(0.5*100+0.5) = 50 -> the 51st value; int(99.5) = 99 -> 100.
  EXPECT_EQ(h.Percentile(0.5), 51u);
  EXPECT_EQ(h.Percentile(0.99), 100u);
  EXPECT_EQ(h.Percentile(1.0), 100u);
  EXPECT_EQ(h.Percentile(0.0), 1u);
}

TEST(LatencyHistogram, PercentilesMatchSortedSamplesWithinBucketWidth) {
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> dist(13.0, 1.0);  // ~0.4 ms median, long tail
  std::vector<uint64_t> samples;
  LatencyHistogram a, b;
  for (int i = 0; i < 100000; ++i) {
    auto v = static_cast<uint64_t>(dist(rng));
    samples.push_back(v);
    (i % 2 ? a : b).Record(v);
  }
  a.Merge(b);
  ASSERT_EQ(a.count(), samples.size());
  std::sort(samples.begin(), samples.end());
  for (double q : {0.5, 0.9, 0.99, 0.999}) {
    auto idx = static_cast<size_t>(q * static_cast<double>(samples.size()) + 0.5);
    const double want = static_cast<double>(samples[std::min(idx, samples.size() - 1)]);
    const double got = static_cast<double>(a.Percentile(q));
    EXPECT_NEAR(got, want, want / 64) << "q=" << q;
  }
}

TEST(LatencyHistogram, OneOutlierMovesOnlyTheTail) {
  LatencyHistogram h;
  for (int i = 0; i < 999; ++i) h.Record(1'000'000);  // 1 ms
  h.Record(1'000'000'000);                            // 1 s
  EXPECT_NEAR(static_cast<double>(h.Percentile(0.99)), 1e6, 1e6 / 64);
  EXPECT_NEAR(static_cast<double>(h.Percentile(1.0)), 1e9, 1e9 / 64);
}

}  // namespace
}  // namespace rusd::loadgen
