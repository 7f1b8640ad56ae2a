// The gRPC methods an etcd 3.5 server registers, in a fixed order: the slot of a method in
// MetricsArea::grpc. The frontend's interceptor counts into the slot of the method it serves
// and the collector exports every slot with etcd's go-grpc-prometheus labels (grpc_type,
// grpc_service, grpc_method, grpc_code), so series exist at zero before the first call, as
// etcd pre-registers them.
#pragma once

#include <string_view>

#include "ipc/metrics_area.h"

namespace rusd::ipc {

struct GrpcMethodInfo {
  const char* service;  // "etcdserverpb.KV"
  const char* method;   // "Range"
  const char* type;     // "unary", "server_stream", "bidi_stream"
};

// Number of known methods; slot kGrpcOtherMethod counts calls to anything else.
int GrpcMethodCount();
inline constexpr int kGrpcOtherMethod = kGrpcMethodSlots - 1;
const GrpcMethodInfo& GrpcMethodAt(int slot);
// The slot of "/service/method" (gRPC's full method name), or kGrpcOtherMethod.
int GrpcMethodSlot(std::string_view full_method);
// gRPC's code names as Go prints them (codes.Code.String()): "OK", "Canceled", ...
const char* GrpcCodeName(int code);

}  // namespace rusd::ipc
