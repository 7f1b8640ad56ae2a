// Counts one gRPC call into etcd's go-grpc-prometheus series of its method (the slot in
// ipc::MetricsArea::grpc): grpc_server_started_total when made, msg_received/msg_sent,
// etcd_network_client_grpc_sent_bytes_total, and at the status grpc_server_handled_total
// (per code) and grpc_server_handling_seconds (from construction to the status).
//
// Used by the metrics interceptor for most services, and directly by services that count
// their own calls (KV: an interceptor costs every call of every method it sees ~10% of the
// frontend's CPU per put, so the hot path skips it; see metrics_interceptor.h).
//
// Cost: one clock read at construction and one at Handled, relaxed atomic adds. Copyable
// (it rides in a completion callback); not thread-safe, but a call's events are ordered.
#pragma once

#include <chrono>
#include <cstddef>

#include "ipc/metrics_area.h"

namespace rusd::frontend {

class GrpcCallMetrics {
 public:
  GrpcCallMetrics(ipc::MetricsArea& metrics, ipc::GrpcMethodStats& method)
      : metrics_(&metrics), method_(&method), start_(std::chrono::steady_clock::now()) {
    method.started.fetch_add(1, std::memory_order_relaxed);
  }

  void Received() { method_->msg_received.fetch_add(1, std::memory_order_relaxed); }

  // One response message of `bytes` serialized bytes.
  void Sent(size_t bytes) {
    method_->msg_sent.fetch_add(1, std::memory_order_relaxed);
    metrics_->Add(ipc::Metric::kGrpcSentBytes, bytes);
  }

  // The call's status code (a grpc::StatusCode value).
  void Handled(int code) {
    method_->handled[code >= 0 && code < ipc::kGrpcCodes ? code : 2].fetch_add(
        1, std::memory_order_relaxed);  // 2 = Unknown
    method_->ObserveHandling(static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                             start_)
            .count()));
  }

 private:
  ipc::MetricsArea* metrics_;
  ipc::GrpcMethodStats* method_;
  std::chrono::steady_clock::time_point start_;  // the call's start
};

}  // namespace rusd::frontend
