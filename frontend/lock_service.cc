#include "frontend/lock_service.h"

#include <grpcpp/grpcpp.h>

#include <cinttypes>
#include <cstdio>

#include "etcd/v3lockpb/v3lock.grpc.pb.h"
#include "frontend/grpc_status.h"
#include "frontend/lock_kv.h"

namespace rusd::frontend {
namespace {

using std::chrono::milliseconds;

// concurrency.NewSession's default TTL.
constexpr int64_t kSessionTtl = 60;
constexpr milliseconds kPoll{20};

Status TooManyRequests() { return Status::ResourceExhausted("etcdserver: too many requests"); }

std::string HexLease(int64_t lease) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%" PRIx64, static_cast<uint64_t>(lease));
  return buf;
}

class LockService final : public v3lockpb::Lock::CallbackService {
 public:
  explicit LockService(KvDispatcher& kv) : kv_(kv) {}

  grpc::ServerUnaryReactor* Lock(grpc::CallbackServerContext* ctx, const v3lockpb::LockRequest* req,
                                 v3lockpb::LockResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    if (!threads_.Run([this, ctx, req, resp, reactor] {
          reactor->Finish(ToGrpcStatus(DoLock(ctx, *req, resp)));
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
          auto del = kv_.Delete(req->key());
          if (del.ok()) *resp->mutable_header() = del->header();
          reactor->Finish(ToGrpcStatus(del.status()));
        })) {
      reactor->Finish(ToGrpcStatus(TooManyRequests()));
    }
    return reactor;
  }

 private:
  // concurrency.Mutex.Lock (client/v3/concurrency/mutex.go).
  Status DoLock(grpc::CallbackServerContext* ctx, const v3lockpb::LockRequest& req,
                v3lockpb::LockResponse* resp) {
    int64_t lease = req.lease();
    if (lease == 0) {
      auto granted = kv_.GrantLease(kSessionTtl);
      if (!granted.ok()) return granted.status();
      lease = *granted;
    }
    const std::string prefix = req.name() + "/";
    const std::string my_key = prefix + HexLease(lease);
    etcdserverpb::TxnRequest txn;
    auto* cmp = txn.add_compare();
    cmp->set_key(my_key);
    cmp->set_target(etcdserverpb::Compare::CREATE);
    cmp->set_result(etcdserverpb::Compare::EQUAL);
    cmp->set_create_revision(0);
    auto* put = txn.add_success()->mutable_request_put();
    put->set_key(my_key);
    put->set_lease(lease);
    etcdserverpb::RangeRequest owner;
    owner.set_key(prefix);
    owner.set_range_end(PrefixRangeEnd(prefix));
    owner.set_sort_target(etcdserverpb::RangeRequest::CREATE);
    owner.set_sort_order(etcdserverpb::RangeRequest::ASCEND);
    owner.set_limit(1);
    *txn.add_success()->mutable_request_range() = owner;
    txn.add_failure()->mutable_request_range()->set_key(my_key);
    *txn.add_failure()->mutable_request_range() = owner;
    auto result = kv_.Txn(txn);
    if (!result.ok()) return result.status();
    int64_t my_rev = result->header().revision();
    if (!result->succeeded()) {
      my_rev = result->responses(0).response_range().kvs(0).create_revision();
    }
    const auto& owners = result->responses(1).response_range().kvs();
    resp->set_key(my_key);
    if (owners.empty() || owners[0].create_revision() == my_rev) {
      *resp->mutable_header() = result->header();
      return Status::Ok();
    }
    auto header = kv_.WaitDeletes(prefix, my_rev - 1, [ctx] { return ctx->IsCancelled(); }, kPoll);
    if (!header.ok()) {
      (void)kv_.Delete(my_key);  // etcd: release the lock key if the wait failed
      return header.status();
    }
    *resp->mutable_header() = *header;
    return Status::Ok();
  }

  BlockingKv kv_;
  CallThreads threads_;  // last: joined before kv_ goes
};

}  // namespace

std::unique_ptr<grpc::Service> MakeLockService(KvDispatcher& kv) {
  return std::make_unique<LockService>(kv);
}

}  // namespace rusd::frontend
