// SegmentMetricsPage: the client port's /metrics, the segment's metrics rendered with
// prometheus-cpp's TextSerializer (the same families the supervisor exports on
// --listen-metrics-urls, ipc/metrics_collector.h). Thread safety: any thread.
#pragma once

#include <string>

#include "frontend/http_handler.h"
#include "ipc/metrics_collector.h"

namespace rusd::frontend {

class SegmentMetricsPage final : public MetricsPage {
 public:
  SegmentMetricsPage(ipc::Segment& segment, std::string server_version)
      : collector_(segment, ipc::MetricsCollectorOptions{std::move(server_version)}) {}
  std::string ContentType() override { return ipc::kMetricsContentType; }
  std::string Render() override { return ipc::RenderMetricsText(collector_.Collect()); }

 private:
  ipc::SegmentCollector collector_;
};

}  // namespace rusd::frontend
