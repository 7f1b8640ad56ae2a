#include "frontend/lock_service.h"

#include <grpcpp/grpcpp.h>

#include "etcd/v3lockpb/v3lock.grpc.pb.h"
#include "frontend/grpc_status.h"
#include "frontend/lock_kv.h"
#include "frontend/lock_ops.h"

namespace rusd::frontend {
namespace {

Status TooManyRequests() { return Status::ResourceExhausted("etcdserver: too many requests"); }

class LockService final : public v3lockpb::Lock::CallbackService {
 public:
  LockService(KvDispatcher& kv, WatchHub* hub) : kv_(kv, hub) {}

  grpc::ServerUnaryReactor* Lock(grpc::CallbackServerContext* ctx, const v3lockpb::LockRequest* req,
                                 v3lockpb::LockResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    if (!threads_.Run([this, ctx, req, resp, reactor] {
          reactor->Finish(
              ToGrpcStatus(LockOp(kv_, *req, resp, [ctx] { return ctx->IsCancelled(); })));
        })) {
      reactor->Finish(ToGrpcStatus(TooManyRequests()));
    }
    return reactor;
  }

  grpc::ServerUnaryReactor* Unlock(grpc::CallbackServerContext* ctx,
                                   const v3lockpb::UnlockRequest* req,
                                   v3lockpb::UnlockResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    if (!threads_.Run([this, req, resp, reactor] {
          reactor->Finish(ToGrpcStatus(UnlockOp(kv_, *req, resp)));
        })) {
      reactor->Finish(ToGrpcStatus(TooManyRequests()));
    }
    return reactor;
  }

 private:
  BlockingKv kv_;
  CallThreads threads_;  // last: joined before kv_ goes
};

}  // namespace

std::unique_ptr<grpc::Service> MakeLockService(KvDispatcher& kv, WatchHub* hub) {
  return std::make_unique<LockService>(kv, hub);
}

}  // namespace rusd::frontend
