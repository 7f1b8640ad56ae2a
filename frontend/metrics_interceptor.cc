#include "frontend/metrics_interceptor.h"

#include <grpcpp/support/byte_buffer.h>

#include <string>
#include <utility>
#include <vector>

#include "frontend/forwarded_framing.h"
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
    if (batch->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      const auto* md = batch->GetRecvInitialMetadata();
      prefixed_ = md != nullptr && AsksForPrefixedMessages(*md);
    }
    if (batch->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE)) {
      call_.Received();
    }
    if (batch->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_MESSAGE)) {
      // Serializing here costs nothing extra: gRPC sends the buffer this returns.
      grpc::ByteBuffer* bytes = batch->GetSerializedSendMessage();
      if (prefixed_ && bytes != nullptr) {
        CountPrefixed(*bytes);
      } else {
        call_.Sent(bytes != nullptr ? bytes->Length() : 0);
      }
    }
    if (batch->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      call_.Handled(static_cast<int>(batch->GetSendStatus().error_code()));
    }
    batch->Proceed();
  }

 private:
  // One message holding several responses (forwarded_framing.h): each counts as sent.
  void CountPrefixed(const grpc::ByteBuffer& bytes) {
    std::vector<grpc::Slice> slices;
    if (!bytes.Dump(&slices).ok()) return;
    std::string joined;
    std::string_view view;
    if (slices.size() == 1) {
      view = std::string_view(reinterpret_cast<const char*>(slices[0].begin()), slices[0].size());
    } else {
      for (const auto& s : slices) {
        joined.append(reinterpret_cast<const char*>(s.begin()), s.size());
      }
      view = joined;
    }
    (void)ForEachPrefixedMessage(view, [this](size_t n) { call_.Sent(n); });
  }

  GrpcCallMetrics call_;
  bool prefixed_ = false;  // the client asked for prefixed messages (forwarded_framing.h)
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
