// The gRPC server interceptor that counts etcd's go-grpc-prometheus metrics into the
// segment: grpc_server_started_total, grpc_server_handled_total (per method and code),
// grpc_server_msg_received/sent_total, grpc_server_handling_seconds (from the interceptor's
// creation to the status) and etcd_network_client_grpc_sent_bytes_total.
// (Received bytes are counted where the request bytes are at hand: kv_service.cc.)
//
// Cost per call: one method lookup and two clock reads (vDSO), relaxed atomic adds — plus
// gRPC's own interceptor machinery on every batch of the call, which is the larger part
// (measured ~4 us of frontend CPU per put). Services on the hot path therefore count their
// own calls with GrpcCallMetrics (grpc_call_metrics.h) and are named in
// `self_counted_services`: a service ("etcdserverpb.KV") or one method of one
// ("etcdserverpb.Lease/LeaseKeepAlive"). The factory makes no interceptor for their calls,
// so gRPC skips the hooks for them entirely.
// Thread safety: gRPC creates one interceptor per call; the factory is shared and immutable.
#pragma once

#include <grpcpp/support/server_interceptor.h>

#include <memory>
#include <string>
#include <vector>

namespace rusd::ipc {
struct MetricsArea;
}

namespace rusd::frontend {

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeGrpcMetricsInterceptor(
    ipc::MetricsArea& metrics, std::vector<std::string> self_counted_services = {});

}  // namespace rusd::frontend
