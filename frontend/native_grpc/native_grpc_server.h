// NativeGrpcServer: rusd's own gRPC server for client connections (--experimental-native-grpc),
// in place of gRPC C++ for the connections the ClientListener hands it. Why: under put load
// gRPC C++ 1.51 and the kernel work it causes (poller hand-offs between its threads, a
// sendmsg per finished call) were ~95 % of the frontend's CPU per call (frontend/README.md,
// "CPU per unary call").
//
// What it serves: etcd's KV (Range, Put, DeleteRange, Txn, Compact) through the same
// KvDispatcher as kv_service.cc, so the same validation, errors and texts; the same
// go-grpc-prometheus counters (grpc_call_metrics.h) and received bytes. Every other method
// (Watch, Lease, Cluster, Maintenance, Lock, Election, LeaseForward) is forwarded in process
// to the gRPC C++ server given as `forward_to` (forwarded_call.h: metadata, deadline,
// streaming both ways, status, cancellation); without it, they answer UNIMPLEMENTED
// "rusd: <method> is not served by the native gRPC server yet".
// The gRPC/HTTP/2 layer is GrpcH2Session (grpc_h2_session.h).
//
// Threads and I/O:
// - One epoll thread reads every connection (non-blocking sockets): feeds the bytes to the
//   connection's session under the connection's mutex, writes what the session produced
//   (SETTINGS/PING acks, WINDOW_UPDATEs, more of a large response), then submits the
//   complete requests with the mutex released (a request that fails validation completes
//   inline on this thread and takes the mutex itself).
// - Completions run on the RingClient's reply thread: the answer is appended to the session
//   and the connection is flushed once at the end of the reply thread's batch
//   (ReplyBatchHook via `NativeGrpcBatchFlush`), so a batch of answers leaves in one write
//   per connection. Completions on any other thread flush at once.
// - A write that would block keeps the rest buffered (at most ~1 MiB beyond what the
//   client's flow-control windows let nghttp2 release) and arms EPOLLOUT.
// - Failures: a connection whose session or epoll registration fails is closed; if epoll_wait
//   itself fails, the error is logged, every connection is closed and new ones are refused.
// - Forwarded calls run on gRPC's callback threads: each response message is appended to
//   the session and flushed at once; a stream whose send queue is above kForwardQueueLimit
//   stops reading from gRPC C++ until the epoll thread, after flushing the connection,
//   finds it drained.
// - Shutdown: GOAWAY on every connection, what is buffered is written (best effort), then the
//   sockets are closed and the forwarded calls cancelled (waited for, up to 2 s). Late
//   completions are dropped.
#pragma once

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/server.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "frontend/kv_dispatcher.h"
#include "frontend/native_grpc/grpc_h2_session.h"
#include "frontend/ring_client.h"

namespace rusd::ipc {
struct MetricsArea;
struct GrpcMethodStats;
}

namespace rusd::frontend::native_grpc {

class NativeConnection;
class ForwardedCalls;

// The connections that got answers during the reply thread's current batch; flushed at
// its end. Create it before the RingClient (RingClientOptions::batch_hook).
// Thread safety: Defer and ReplyBatchEnd on the reply thread only.
class NativeGrpcBatchFlush final : public ReplyBatchHook {
 public:
  void Defer(std::shared_ptr<NativeConnection> connection);
  void ReplyBatchEnd() override;

 private:
  std::vector<std::shared_ptr<NativeConnection>> pending_;
};

struct NativeGrpcServerOptions {
  // gRPC's receive limit (main.cc: max-request-bytes + 512 KiB, as etcd).
  size_t max_receive_message_bytes = 4 << 20;
  // etcd_network_client_grpc_received_bytes_total (may be null).
  std::atomic<uint64_t>* received_bytes = nullptr;
  // Where KV calls are counted (may be null), as KvServiceOptions::grpc_metrics.
  ipc::MetricsArea* grpc_metrics = nullptr;
  // The started gRPC C++ server every other method is forwarded to (null: refused); it must
  // be shut down after this server.
  grpc::Server* forward_to = nullptr;
};

class NativeGrpcServer {
 public:
  // `kv` and `batch_flush` (the one passed to kv's RingClient) must outlive Shutdown().
  NativeGrpcServer(const KvDispatcher& kv, NativeGrpcBatchFlush& batch_flush,
                   const NativeGrpcServerOptions& options);
  ~NativeGrpcServer();
  NativeGrpcServer(const NativeGrpcServer&) = delete;
  NativeGrpcServer& operator=(const NativeGrpcServer&) = delete;

  // Starts the epoll thread.
  Status Start();
  // Takes over the connected socket `fd` (its HTTP/2 preface not yet read). Any thread.
  void Adopt(int fd);
  // GOAWAY, flush, close every connection; stops the epoll thread. Call after the
  // ClientListener stopped (no more Adopt) and after RingClient::Stop (every pending call
  // answered). Idempotent; the destructor calls it.
  void Shutdown();

  size_t connections() const;  // open connections (tests)

 private:
  void Run();
  void ServeReadable(const std::shared_ptr<NativeConnection>& c, bool readable, bool writable);
  void Dispatch(const std::shared_ptr<NativeConnection>& c, GrpcRequest&& request);
  void DispatchStream(const std::shared_ptr<NativeConnection>& c, GrpcRequest&& event);
  void Close(const std::shared_ptr<NativeConnection>& c);
  // Cancels the connection's forwarded calls (without its mutex held).
  static void CancelForwarded(const std::shared_ptr<NativeConnection>& c);

  const KvDispatcher& kv_;
  NativeGrpcBatchFlush& batch_flush_;
  const NativeGrpcServerOptions options_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: Shutdown wakes the epoll thread
  std::atomic<bool> stop_{false};
  std::atomic<bool> broken_{false};  // epoll_wait failed: no connection is served any more
  std::thread thread_;
  std::vector<GrpcRequest> ready_;  // requests read in one ServeReadable (epoll thread only)
  mutable std::mutex mu_;
  std::unordered_map<int, std::shared_ptr<NativeConnection>> connections_;  // by fd, under mu_
  ipc::GrpcMethodStats* method_stats_[5] = {};  // per KvMethod (with grpc_metrics)
  std::unique_ptr<grpc::GenericStub> stub_;       // with forward_to: its in-process channel
  std::shared_ptr<ForwardedCalls> forwarded_;
};

}  // namespace rusd::frontend::native_grpc
