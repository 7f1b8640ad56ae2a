// The one path every KV request takes into the node, whichever front door it came through
// (gRPC in kv_service.cc, the JSON gateway in gateway.cc): validate as etcd's API layer does,
// then propose (Put, DeleteRange, Txn, Compact) or read (Range) through the RingClient.
//
// Writes become rusd.internal.Command{request_id, origin_member_id, <op> = request bytes}
// with the request bytes spliced in unchanged; a command over max_request_bytes fails with
// InvalidArgument "etcdserver: request is too large" (etcd measures its marshalled raft
// request the same way). A read-only Txn is proposed too (etcd 3.5 serves it locally as a
// read; the result is the same, since a txn without writes does not advance the revision).
//
// Thread safety: any thread; immutable after construction.
#pragma once

#include <atomic>
#include <cstdint>
#include <string_view>

#include "frontend/ring_client.h"

namespace rusd::ipc {
struct MetricsArea;
}

namespace rusd::frontend {

class ConnectionCork;

struct KvServiceOptions {
  uint64_t member_id = 0;
  uint64_t max_request_bytes = 1572864;
  uint32_t max_txn_ops = 128;
  // Where the KV service counts etcd_network_client_grpc_received_bytes_total (may be null).
  std::atomic<uint64_t>* received_bytes = nullptr;
  // Where the KV gRPC service counts its calls' go-grpc-prometheus series itself (may be
  // null). When set, register "etcdserverpb.KV" as self-counted with the metrics
  // interceptor (metrics_interceptor.h), or its calls are counted twice.
  ipc::MetricsArea* grpc_metrics = nullptr;
  // The connections the ring client corks per reply batch (connection_cork.h; may be null):
  // the KV gRPC service touches each call's connection before finishing it.
  ConnectionCork* cork = nullptr;
};

enum class KvMethod { kRange, kPut, kDeleteRange, kTxn, kCompact };

class KvDispatcher {
 public:
  KvDispatcher(RingClient& ring, const KvServiceOptions& options)
      : ring_(ring), options_(options) {}

  // `request` is the serialized etcdserverpb request of `method`. `done` runs exactly once:
  // with the serialized response, or with the error (InvalidArgument for a request that does
  // not parse or fails validation, etcd's texts).
  void Submit(KvMethod method, std::string_view request, RequestCallback done) const;

  RingClient& ring() const { return ring_; }

 private:
  RingClient& ring_;
  const KvServiceOptions options_;
};

}  // namespace rusd::frontend
