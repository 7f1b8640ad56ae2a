// The segment's metrics area and its Prometheus rendering: values written through the area
// appear under etcd's names and types, histograms use etcd's buckets, labels are etcd's, and
// the metrics survive a re-open of the segment (what a component restart does).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "ipc/metrics_collector.h"
#include "ipc/metrics_grpc_methods.h"
#include "ipc/ring.h"
#include "ipc/segment.h"
#include "ipc/test_segment.h"

namespace rusd::ipc {
namespace {

using prometheus::MetricFamily;
using prometheus::MetricType;

const MetricFamily* Find(const std::vector<MetricFamily>& fams, const std::string& name) {
  for (const auto& f : fams) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

// The value of the sample of `name` whose labels include all of `labels`.
double Value(const std::vector<MetricFamily>& fams, const std::string& name,
             std::map<std::string, std::string> labels = {}) {
  const MetricFamily* f = Find(fams, name);
  if (f == nullptr) {
    ADD_FAILURE() << "no family " << name;
    return -1;
  }
  for (const auto& m : f->metric) {
    size_t matched = 0;
    for (const auto& l : m.label) {
      auto it = labels.find(l.name);
      if (it != labels.end() && it->second == l.value) ++matched;
    }
    if (matched != labels.size()) continue;
    return f->type == MetricType::Counter ? m.counter.value : m.gauge.value;
  }
  ADD_FAILURE() << "no sample of " << name << " with the given labels";
  return -1;
}

class MetricsTest : public ::testing::Test {
 protected:
  testing::ScopedSegment segment_{"metrics"};
  MetricsCollectorOptions options_{"3.5.17"};
};

TEST_F(MetricsTest, EtcdFamiliesHaveEtcdTypes) {
  ASSERT_TRUE(segment_.ok());
  SegmentCollector collector(*segment_, options_);
  auto fams = collector.Collect();
  const std::map<std::string, MetricType> want = {
      {"etcd_server_has_leader", MetricType::Gauge},
      {"etcd_server_is_leader", MetricType::Gauge},
      {"etcd_server_leader_changes_seen_total", MetricType::Counter},
      {"etcd_server_proposals_committed_total", MetricType::Gauge},
      {"etcd_server_proposals_applied_total", MetricType::Gauge},
      {"etcd_server_proposals_pending", MetricType::Gauge},
      {"etcd_server_proposals_failed_total", MetricType::Counter},
      {"etcd_server_version", MetricType::Gauge},
      {"etcd_server_id", MetricType::Gauge},
      {"etcd_server_quota_backend_bytes", MetricType::Gauge},
      {"etcd_disk_wal_fsync_duration_seconds", MetricType::Histogram},
      {"etcd_disk_backend_commit_duration_seconds", MetricType::Histogram},
      {"etcd_mvcc_db_total_size_in_bytes", MetricType::Gauge},
      {"etcd_mvcc_db_total_size_in_use_in_bytes", MetricType::Gauge},
      {"etcd_mvcc_put_total", MetricType::Counter},
      {"etcd_mvcc_delete_total", MetricType::Counter},
      {"etcd_mvcc_range_total", MetricType::Counter},
      {"etcd_mvcc_txn_total", MetricType::Counter},
      {"etcd_debugging_mvcc_keys_total", MetricType::Gauge},
      {"etcd_network_client_grpc_received_bytes_total", MetricType::Counter},
      {"etcd_network_client_grpc_sent_bytes_total", MetricType::Counter},
      {"grpc_server_started_total", MetricType::Counter},
      {"grpc_server_handled_total", MetricType::Counter},
      {"rusd_component_up", MetricType::Gauge},
      {"rusd_component_restarts_total", MetricType::Counter},
      {"rusd_component_heartbeat_age_seconds", MetricType::Gauge},
      {"rusd_ring_depth_bytes", MetricType::Gauge},
      {"rusd_ring_wakeups_total", MetricType::Counter},
      {"rusd_ring_producer_waits_total", MetricType::Counter},
      {"grpc_server_handling_seconds", MetricType::Histogram},
      {"etcd_server_read_indexes_failed_total", MetricType::Counter},
      {"etcd_debugging_mvcc_watch_stream_total", MetricType::Gauge},
      {"etcd_debugging_mvcc_watcher_total", MetricType::Gauge},
      {"etcd_debugging_mvcc_events_total", MetricType::Counter},
      {"etcd_debugging_lease_granted_total", MetricType::Counter},
      {"etcd_debugging_server_lease_expired_total", MetricType::Counter},
  };
  for (const auto& [name, type] : want) {
    const MetricFamily* f = Find(fams, name);
    ASSERT_NE(f, nullptr) << name;
    EXPECT_EQ(f->type, type) << name;
    EXPECT_FALSE(f->help.empty()) << name;
  }
  EXPECT_EQ(Value(fams, "etcd_server_version", {{"server_version", "3.5.17"}}), 1);
}

// A family whose slot nothing writes would read 0 forever and mislead whoever graphs it:
// such a family is not exported (docs/metrics.md says which and why).
TEST_F(MetricsTest, FamiliesNothingCountsAreNotExported) {
  ASSERT_TRUE(segment_.ok());
  SegmentCollector collector(*segment_, options_);
  auto fams = collector.Collect();
  EXPECT_EQ(Find(fams, "etcd_debugging_mvcc_pending_events_total"), nullptr);
  // Those that are counted now (raftd: heartbeat delays, slow read indexes).
  EXPECT_NE(Find(fams, "etcd_server_heartbeat_send_failures_total"), nullptr);
  EXPECT_NE(Find(fams, "etcd_server_slow_read_indexes_total"), nullptr);
}

TEST_F(MetricsTest, AreaValuesAppearUnderEtcdNames) {
  ASSERT_TRUE(segment_.ok());
  MetricsArea& m = segment_->metrics();
  m.Set(Metric::kHasLeader, 1);
  m.Add(Metric::kLeaderChanges);
  m.Add(Metric::kMvccPut, 5);
  m.Set(Metric::kMemberId, 0x8e9e05c52164694dull);
  segment_->counter(Counter::kRangeReads).store(3);
  segment_->counter(Counter::kAppliedIndex).store(77);
  SegmentCollector collector(*segment_, options_);
  auto fams = collector.Collect();
  EXPECT_EQ(Value(fams, "etcd_server_has_leader"), 1);
  EXPECT_EQ(Value(fams, "etcd_server_leader_changes_seen_total"), 1);
  EXPECT_EQ(Value(fams, "etcd_mvcc_put_total"), 5);
  EXPECT_EQ(Value(fams, "etcd_mvcc_range_total"), 3);
  EXPECT_EQ(Value(fams, "etcd_server_proposals_applied_total"), 77);
  EXPECT_EQ(Value(fams, "etcd_server_id", {{"server_id", "8e9e05c52164694d"}}), 1);
}

TEST_F(MetricsTest, HistogramUsesEtcdBuckets) {
  ASSERT_TRUE(segment_.ok());
  LatencyHistogram& h = segment_->metrics().histogram(Histogram::kWalFsync);
  h.Observe(500'000);         // 0.5 ms -> le 0.001
  h.Observe(1'000'000);       // exactly 1 ms -> le 0.001 (bounds are inclusive)
  h.Observe(3'000'000);       // 3 ms -> le 0.004
  h.Observe(20'000'000'000);  // 20 s -> +Inf only
  SegmentCollector collector(*segment_, options_);
  auto fams = collector.Collect();
  const MetricFamily* f = Find(fams, "etcd_disk_wal_fsync_duration_seconds");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(f->metric.size(), 1u);
  const auto& hist = f->metric[0].histogram;
  ASSERT_EQ(hist.bucket.size(), 15u);  // ExponentialBuckets(0.001, 2, 14) + +Inf
  EXPECT_DOUBLE_EQ(hist.bucket[0].upper_bound, 0.001);
  EXPECT_DOUBLE_EQ(hist.bucket[13].upper_bound, 8.192);
  EXPECT_TRUE(std::isinf(hist.bucket[14].upper_bound));
  EXPECT_EQ(hist.bucket[0].cumulative_count, 2u);
  EXPECT_EQ(hist.bucket[1].cumulative_count, 2u);
  EXPECT_EQ(hist.bucket[2].cumulative_count, 3u);
  EXPECT_EQ(hist.bucket[13].cumulative_count, 3u);
  EXPECT_EQ(hist.bucket[14].cumulative_count, 4u);
  EXPECT_EQ(hist.sample_count, 4u);
  EXPECT_NEAR(hist.sample_sum, 20.0045, 1e-9);
}

TEST_F(MetricsTest, GrpcMethodsArePreRegisteredWithEveryCode) {
  ASSERT_TRUE(segment_.ok());
  const int put = GrpcMethodSlot("/etcdserverpb.KV/Put");
  ASSERT_NE(put, kGrpcOtherMethod);
  EXPECT_EQ(GrpcMethodSlot("/etcdserverpb.KV/Nope"), kGrpcOtherMethod);
  EXPECT_EQ(GrpcMethodSlot("garbage"), kGrpcOtherMethod);
  EXPECT_EQ(GrpcMethodSlot(""), kGrpcOtherMethod);
  GrpcMethodStats& g = segment_->metrics().grpc[put];
  g.started.fetch_add(3);
  g.handled[0].fetch_add(2);
  g.handled[14].fetch_add(1);
  SegmentCollector collector(*segment_, options_);
  auto fams = collector.Collect();
  std::map<std::string, std::string> labels = {
      {"grpc_service", "etcdserverpb.KV"}, {"grpc_method", "Put"}, {"grpc_type", "unary"}};
  EXPECT_EQ(Value(fams, "grpc_server_started_total", labels), 3);
  labels["grpc_code"] = "OK";
  EXPECT_EQ(Value(fams, "grpc_server_handled_total", labels), 2);
  labels["grpc_code"] = "Unavailable";
  EXPECT_EQ(Value(fams, "grpc_server_handled_total", labels), 1);
  EXPECT_EQ(Value(fams, "grpc_server_handled_total",
                  {{"grpc_service", "etcdserverpb.Watch"},
                   {"grpc_method", "Watch"},
                   {"grpc_type", "bidi_stream"},
                   {"grpc_code", "Canceled"}}),
            0);
  // The handling histogram appears once a method was called.
  const MetricFamily* handling = Find(fams, "grpc_server_handling_seconds");
  ASSERT_NE(handling, nullptr);
  EXPECT_EQ(handling->type, MetricType::Histogram);
  EXPECT_TRUE(handling->metric.empty());
  g.ObserveHandling(3'000'000);    // 3 ms -> le 0.005
  g.ObserveHandling(700'000'000);  // 0.7 s -> le 1
  fams = collector.Collect();
  handling = Find(fams, "grpc_server_handling_seconds");
  ASSERT_EQ(handling->metric.size(), 1u);
  const auto& h = handling->metric[0].histogram;
  ASSERT_EQ(h.bucket.size(), 12u);  // prometheus.DefBuckets + +Inf
  EXPECT_DOUBLE_EQ(h.bucket[0].upper_bound, 0.005);
  EXPECT_EQ(h.bucket[0].cumulative_count, 1u);
  EXPECT_EQ(h.bucket[6].cumulative_count, 1u);  // le 0.5
  EXPECT_EQ(h.bucket[7].cumulative_count, 2u);  // le 1
  EXPECT_EQ(h.sample_count, 2u);
  const MetricFamily* handled = Find(fams, "grpc_server_handled_total");
  ASSERT_NE(handled, nullptr);
  EXPECT_EQ(handled->metric.size(), static_cast<size_t>(GrpcMethodCount() * kGrpcCodes));
}

TEST_F(MetricsTest, RingStatsCountWritesAndFullRings) {
  ASSERT_TRUE(segment_.ok());
  RingWriter writer(*segment_, RingId::kCommitted, 1);
  std::string payload(1000, 'x');
  int written = 0;
  while (writer.TryWrite(MessageType::kCommittedEntries, 1, payload).ok()) ++written;
  SegmentCollector collector(*segment_, options_);
  auto fams = collector.Collect();
  std::map<std::string, std::string> ring = {{"ring", "committed"}};
  EXPECT_EQ(Value(fams, "rusd_ring_messages_total", ring), written);
  EXPECT_EQ(Value(fams, "rusd_ring_full_total", ring), 1);
  EXPECT_GT(Value(fams, "rusd_ring_depth_bytes", ring), 1000.0 * written);
  EXPECT_EQ(Value(fams, "rusd_ring_depth_bytes", ring),
            Value(fams, "rusd_ring_written_bytes_total", ring));
  EXPECT_EQ(Value(fams, "rusd_ring_capacity_bytes", ring), 64 << 10);
}

TEST_F(MetricsTest, MetricsSurviveReopeningTheSegment) {
  ASSERT_TRUE(segment_.ok());
  segment_->metrics().Add(Metric::kMvccPut, 9);
  segment_->metrics().histogram(Histogram::kBackendCommit).Observe(2'000'000);
  // A restarted component opens the same segment and keeps counting from where it was.
  auto reopened = Segment::Open(segment_.name());
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  (*reopened)->metrics().Add(Metric::kMvccPut, 1);
  SegmentCollector collector(*segment_, options_);
  auto fams = collector.Collect();
  EXPECT_EQ(Value(fams, "etcd_mvcc_put_total"), 10);
}

TEST_F(MetricsTest, ResetLiveGaugesClearsOnlyTheReapedComponentsGauges) {
  ASSERT_TRUE(segment_.ok());
  MetricsArea& m = segment_->metrics();
  m.Set(Metric::kHasLeader, 1);
  m.Set(Metric::kIsLeader, 1);
  m.Add(Metric::kLeaderChanges);
  m.Set(Metric::kKeysTotal, 4);
  segment_->ResetLiveGauges(Component::kRaftd);
  EXPECT_EQ(m.Get(Metric::kHasLeader), 0u);
  EXPECT_EQ(m.Get(Metric::kIsLeader), 0u);
  EXPECT_EQ(m.Get(Metric::kLeaderChanges), 1u);  // counters never go back
  EXPECT_EQ(m.Get(Metric::kKeysTotal), 4u);
}

TEST_F(MetricsTest, ProcessMetricsForTheSupervisorPid) {
  ASSERT_TRUE(segment_.ok());
  segment_->metrics().Set(Metric::kSupervisorPid, static_cast<uint64_t>(getpid()));
  SegmentCollector collector(*segment_, options_);
  auto fams = collector.Collect();
  EXPECT_GT(Value(fams, "process_resident_memory_bytes", {{"component", "supervisor"}}), 1e5);
  EXPECT_GT(Value(fams, "process_open_fds", {{"component", "supervisor"}}), 2);
  EXPECT_GT(Value(fams, "process_max_fds", {{"component", "supervisor"}}), 2);
  EXPECT_GT(Value(fams, "process_start_time_seconds", {{"component", "supervisor"}}), 1.6e9);
  // No pid in a component slot: no process series for it.
  const MetricFamily* rss = Find(fams, "process_resident_memory_bytes");
  ASSERT_NE(rss, nullptr);
  EXPECT_EQ(rss->metric.size(), 1u);
}

TEST_F(MetricsTest, TextRenderingIsPrometheusExposition) {
  ASSERT_TRUE(segment_.ok());
  segment_->metrics().histogram(Histogram::kWalFsync).Observe(1'500'000);
  SegmentCollector collector(*segment_, options_);
  const std::string text = RenderMetricsText(collector.Collect());
  EXPECT_NE(text.find("# TYPE etcd_server_has_leader gauge\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE etcd_mvcc_put_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("etcd_mvcc_put_total 0\n"), std::string::npos) << text.substr(0, 2000);
  EXPECT_NE(text.find("etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.002\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("etcd_disk_wal_fsync_duration_seconds_bucket{le=\"+Inf\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("etcd_disk_wal_fsync_duration_seconds_count 1\n"), std::string::npos);
}

}  // namespace
}  // namespace rusd::ipc
