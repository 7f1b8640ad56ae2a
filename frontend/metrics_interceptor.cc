#include "frontend/metrics_interceptor.h"

#include <grpcpp/support/byte_buffer.h>

#include <chrono>

#include "ipc/metrics_area.h"
#include "ipc/metrics_grpc_methods.h"

namespace rusd::frontend {
namespace {

using grpc::experimental::InterceptionHookPoints;

class GrpcMetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  GrpcMetricsInterceptor(ipc::MetricsArea& metrics, ipc::GrpcMethodStats& method)
      : metrics_(metrics), method_(method), start_(std::chrono::steady_clock::now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* batch) override {
    if (batch->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE)) {
      method_.msg_received.fetch_add(1, std::memory_order_relaxed);
    }
    if (batch->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_MESSAGE)) {
      method_.msg_sent.fetch_add(1, std::memory_order_relaxed);
      // Serializing here costs nothing extra: gRPC sends the buffer this returns.
      if (grpc::ByteBuffer* bytes = batch->GetSerializedSendMessage()) {
        metrics_.Add(ipc::Metric::kGrpcSentBytes, bytes->Length());
      }
    }
    if (batch->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const int code = static_cast<int>(batch->GetSendStatus().error_code());
      method_.handled[code >= 0 && code < ipc::kGrpcCodes ? code : 2].fetch_add(
          1, std::memory_order_relaxed);  // 2 = Unknown
      method_.ObserveHandling(static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                               start_)
              .count()));
    }
    batch->Proceed();
  }

 private:
  ipc::MetricsArea& metrics_;
  ipc::GrpcMethodStats& method_;
  const std::chrono::steady_clock::time_point start_;  // the call's start
};

class GrpcMetricsFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit GrpcMetricsFactory(ipc::MetricsArea& metrics) : metrics_(metrics) {}

  // Called once per call as it starts: that is etcd's grpc_server_started_total.
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    ipc::GrpcMethodStats& method = metrics_.grpc[ipc::GrpcMethodSlot(info->method())];
    method.started.fetch_add(1, std::memory_order_relaxed);
    return new GrpcMetricsInterceptor(metrics_, method);  // gRPC owns and deletes it
  }

 private:
  ipc::MetricsArea& metrics_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeGrpcMetricsInterceptor(
    ipc::MetricsArea& metrics) {
  return std::make_unique<GrpcMetricsFactory>(metrics);
}

}  // namespace rusd::frontend
