#include "frontend/election_service.h"

#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include "etcd/v3electionpb/v3election.grpc.pb.h"
#include "frontend/grpc_status.h"
#include "frontend/key_change_waiter.h"
#include "frontend/lock_kv.h"
#include "frontend/lock_ops.h"

namespace rusd::frontend {
namespace {

using std::chrono::milliseconds;

constexpr milliseconds kObservePoll{50};

Status TooManyRequests() { return Status::ResourceExhausted("etcdserver: too many requests"); }

// Observe's stream: the worker thread writes one message at a time and waits for it.
class ObserveReactor final : public grpc::ServerWriteReactor<v3electionpb::LeaderResponse> {
 public:
  // Blocks until the write completed; false if the stream is broken.
  bool Write(const v3electionpb::LeaderResponse& msg) {
    std::unique_lock lock(mu_);
    msg_ = msg;
    writing_ = true;
    lock.unlock();
    StartWrite(&msg_);
    lock.lock();
    cv_.wait(lock, [&] { return !writing_; });
    return write_ok_;
  }
  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mu_);
    writing_ = false;
    write_ok_ = ok;
    cv_.notify_all();
  }
  void OnDone() override {
    bool destroy = false;
    {
      std::lock_guard lock(mu_);
      done_ = true;
      destroy = rejected_;
      cv_.notify_all();
    }
    if (destroy) delete this;  // no worker thread owns a rejected call
  }
  // Ends a call no worker took; OnDone frees the reactor.
  void Reject(const grpc::Status& status) {
    {
      std::lock_guard lock(mu_);
      rejected_ = true;
    }
    Finish(status);
  }
  // Finishes the call and waits for gRPC to be done with the reactor, then frees it.
  void FinishAndDelete(const grpc::Status& status) {
    Finish(status);
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return done_; });
    }
    delete this;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  v3electionpb::LeaderResponse msg_;
  bool writing_ = false;
  bool write_ok_ = true;
  bool done_ = false;
  bool rejected_ = false;
};

class ElectionService final : public v3electionpb::Election::CallbackService {
 public:
  ElectionService(KvDispatcher& kv, WatchHub* hub) : kv_(kv, hub) {}

  grpc::ServerUnaryReactor* Campaign(grpc::CallbackServerContext* ctx,
                                     const v3electionpb::CampaignRequest* req,
                                     v3electionpb::CampaignResponse* resp) override {
    return RunUnary(ctx, [this, ctx, req, resp] {
      return CampaignOp(kv_, *req, resp, [ctx] { return ctx->IsCancelled(); });
    });
  }

  grpc::ServerUnaryReactor* Proclaim(grpc::CallbackServerContext* ctx,
                                     const v3electionpb::ProclaimRequest* req,
                                     v3electionpb::ProclaimResponse* resp) override {
    return RunUnary(ctx, [this, req, resp] { return ProclaimOp(kv_, *req, resp); });
  }

  grpc::ServerUnaryReactor* Leader(grpc::CallbackServerContext* ctx,
                                   const v3electionpb::LeaderRequest* req,
                                   v3electionpb::LeaderResponse* resp) override {
    return RunUnary(ctx, [this, req, resp] { return LeaderOp(kv_, *req, resp); });
  }

  grpc::ServerWriteReactor<v3electionpb::LeaderResponse>* Observe(
      grpc::CallbackServerContext* ctx, const v3electionpb::LeaderRequest* req) override {
    auto* reactor = new ObserveReactor();
    if (!threads_.Run([this, ctx, req, reactor] {
          reactor->FinishAndDelete(ToGrpcStatus(DoObserve(ctx, req->name() + "/", reactor)));
        })) {
      reactor->Reject(ToGrpcStatus(TooManyRequests()));
    }
    return reactor;
  }

  grpc::ServerUnaryReactor* Resign(grpc::CallbackServerContext* ctx,
                                   const v3electionpb::ResignRequest* req,
                                   v3electionpb::ResignResponse* resp) override {
    return RunUnary(ctx, [this, req, resp] { return ResignOp(kv_, *req, resp); });
  }

 private:
  template <typename Fn>
  grpc::ServerUnaryReactor* RunUnary(grpc::CallbackServerContext* ctx, Fn fn) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    if (!threads_.Run([reactor, fn = std::move(fn)] { reactor->Finish(ToGrpcStatus(fn())); })) {
      reactor->Finish(ToGrpcStatus(TooManyRequests()));
    }
    return reactor;
  }

  // Election.Observe: each new leader key, and each new version of it. With the watch hub
  // it re-reads the leader when the prefix changes (etcd's observe watches the prefix);
  // without, every kObservePoll.
  Status DoObserve(grpc::CallbackServerContext* ctx, const std::string& prefix,
                   ObserveReactor* stream) {
    std::string last_key;
    int64_t last_mod = -1;
    std::optional<KeyChangeWaiter> waiter;
    while (!ctx->IsCancelled()) {
      auto r = kv_.FirstCreated(prefix);
      if (!r.ok()) return r.status();
      if (r->kvs_size() > 0) {
        const auto& kv = r->kvs(0);
        if (kv.key() != last_key || kv.mod_revision() != last_mod) {
          last_key = kv.key();
          last_mod = kv.mod_revision();
          v3electionpb::LeaderResponse msg;
          *msg.mutable_header() = r->header();
          *msg.mutable_kv() = kv;
          if (!stream->Write(msg)) return Status(StatusCode::kCancelled, "context canceled");
        }
      }
      if (kv_.hub() == nullptr) {
        std::this_thread::sleep_for(kObservePoll);
        continue;
      }
      if (!waiter) {
        // From just after the first read: later changes are caught up, never missed.
        waiter.emplace(*kv_.hub());
        waiter->Watch(prefix, PrefixRangeEnd(prefix), r->header().revision() + 1,
                      /*deletes_only=*/false);
      }
      for (auto waited = milliseconds(0); waited < kWatchRecheck; waited += kCancelCheck) {
        if (waiter->Wait(kCancelCheck) || ctx->IsCancelled()) break;
      }
    }
    return Status(StatusCode::kCancelled, "context canceled");
  }

  BlockingKv kv_;
  CallThreads threads_;  // last: joined first
};

}  // namespace

std::unique_ptr<grpc::Service> MakeElectionService(KvDispatcher& kv, WatchHub* hub) {
  return std::make_unique<ElectionService>(kv, hub);
}

}  // namespace rusd::frontend
