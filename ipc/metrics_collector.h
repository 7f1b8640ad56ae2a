// SegmentCollector: a prometheus-cpp Collectable that turns the segment's metrics area (and
// its rings, component slots and the processes they name) into metric families, with
// etcd 3.5's names, types, labels and buckets plus rusd's own rusd_* families. The
// supervisor registers it with its Exposer on --listen-metrics-urls; the frontend renders it
// with TextSerializer on the client port's /metrics. Both see the same segment, so both
// answer the same. docs/metrics.md lists every family.
//
// Thread safety: Collect may run on any thread, concurrently; it only reads the segment
// (relaxed loads) and /proc.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <string>
#include <vector>

namespace rusd::ipc {

class Segment;

struct MetricsCollectorOptions {
  std::string server_version;  // etcd_server_version's label, e.g. "3.5.17"
};

class SegmentCollector final : public prometheus::Collectable {
 public:
  // `segment` must outlive the collector.
  SegmentCollector(Segment& segment, MetricsCollectorOptions options);
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  Segment& segment_;
  const MetricsCollectorOptions options_;
};

// The text exposition format (version 0.0.4) of `families`: what /metrics answers.
std::string RenderMetricsText(const std::vector<prometheus::MetricFamily>& families);
// Its Content-Type.
inline constexpr char kMetricsContentType[] = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace rusd::ipc
