#include "frontend/metrics_interceptor.h"

#include <grpcpp/support/byte_buffer.h>

#include <string>
#include <utility>
#include <vector>

#include "frontend/grpc_call_metrics.h"
#include "ipc/metrics_area.h"
#include "ipc/metrics_grpc_methods.h"

namespace rusd::frontend {
namespace {

using grpc::experimental::InterceptionHookPoints;

class GrpcMetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit GrpcMetricsInterceptor(GrpcCallMetrics call) : call_(call) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* batch) override {
    if (batch->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE)) {
      call_.Received();
    }
    if (batch->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_MESSAGE)) {
      // Serializing here costs nothing extra: gRPC sends the buffer this returns.
      grpc::ByteBuffer* bytes = batch->GetSerializedSendMessage();
      call_.Sent(bytes != nullptr ? bytes->Length() : 0);
    }
    if (batch->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      call_.Handled(static_cast<int>(batch->GetSendStatus().error_code()));
    }
    batch->Proceed();
  }

 private:
  GrpcCallMetrics call_;
};

class GrpcMetricsFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  GrpcMetricsFactory(ipc::MetricsArea& metrics, std::vector<std::string> self_counted)
      : metrics_(metrics), self_counted_(std::move(self_counted)) {}

  // Called once per call as it starts: that is etcd's grpc_server_started_total. Returning
  // no interceptor leaves the call without any interceptor work (gRPC skips its hooks).
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    const std::string_view method(info->method());
    for (const std::string& name : self_counted_) {
      // "/svc/": every method of the service; "/svc/Method": that method alone.
      const bool whole_service = name.back() == '/';
      if (whole_service ? method.substr(0, name.size()) == name : method == name) return nullptr;
    }
    GrpcCallMetrics call(metrics_, metrics_.grpc[ipc::GrpcMethodSlot(method)]);
    return new GrpcMetricsInterceptor(call);  // gRPC owns and deletes it
  }

 private:
  ipc::MetricsArea& metrics_;
  const std::vector<std::string> self_counted_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeGrpcMetricsInterceptor(
    ipc::MetricsArea& metrics, std::vector<std::string> self_counted_services) {
  std::vector<std::string> prefixes;
  for (const std::string& s : self_counted_services) {
    prefixes.push_back(s.find('/') == std::string::npos ? "/" + s + "/" : "/" + s);
  }
  return std::make_unique<GrpcMetricsFactory>(metrics, std::move(prefixes));
}

}  // namespace rusd::frontend
