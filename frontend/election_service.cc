#include "frontend/election_service.h"

#include <grpcpp/grpcpp.h>

#include <cinttypes>
#include <condition_variable>
#include <cstdio>
#include <mutex>

#include "etcd/v3electionpb/v3election.grpc.pb.h"
#include "frontend/grpc_status.h"
#include "frontend/lock_kv.h"

namespace rusd::frontend {
namespace {

using std::chrono::milliseconds;
using v3electionpb::LeaderKey;

constexpr int64_t kSessionTtl = 60;  // concurrency.NewSession's default
constexpr milliseconds kWaitPoll{20};
constexpr milliseconds kObservePoll{50};

// etcd's errors, plain Go errors on the wire: gRPC code Unknown.
Status NotLeader() { return Status(StatusCode::kUnknown, "election: not leader"); }
Status NoLeader() { return Status(StatusCode::kUnknown, "election: no leader"); }
Status TooManyRequests() { return Status::ResourceExhausted("etcdserver: too many requests"); }
Status MissingLeaderKey() {
  return Status(StatusCode::kUnknown, "\"leader\" field must be provided");
}

std::string HexLease(int64_t lease) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%" PRIx64, static_cast<uint64_t>(lease));
  return buf;
}

etcdserverpb::TxnRequest IfCreatedAt(const std::string& key, int64_t rev) {
  etcdserverpb::TxnRequest txn;
  auto* cmp = txn.add_compare();
  cmp->set_key(key);
  cmp->set_target(etcdserverpb::Compare::CREATE);
  cmp->set_result(etcdserverpb::Compare::EQUAL);
  cmp->set_create_revision(rev);
  return txn;
}

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
  explicit ElectionService(KvDispatcher& kv) : kv_(kv) {}

  grpc::ServerUnaryReactor* Campaign(grpc::CallbackServerContext* ctx,
                                     const v3electionpb::CampaignRequest* req,
                                     v3electionpb::CampaignResponse* resp) override {
    return RunUnary(ctx, [this, ctx, req, resp] { return DoCampaign(ctx, *req, resp); });
  }

  grpc::ServerUnaryReactor* Proclaim(grpc::CallbackServerContext* ctx,
                                     const v3electionpb::ProclaimRequest* req,
                                     v3electionpb::ProclaimResponse* resp) override {
    return RunUnary(ctx, [this, req, resp] {
      if (!req->has_leader()) return MissingLeaderKey();
      return DoProclaim(req->leader(), req->value(), resp->mutable_header());
    });
  }

  grpc::ServerUnaryReactor* Leader(grpc::CallbackServerContext* ctx,
                                   const v3electionpb::LeaderRequest* req,
                                   v3electionpb::LeaderResponse* resp) override {
    return RunUnary(ctx, [this, req, resp] {
      auto r = kv_.FirstCreated(req->name() + "/");
      if (!r.ok()) return r.status();
      if (r->kvs_size() == 0) return NoLeader();
      *resp->mutable_header() = r->header();
      *resp->mutable_kv() = r->kvs(0);
      return Status::Ok();
    });
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
    return RunUnary(ctx, [this, req, resp] {
      if (!req->has_leader()) return MissingLeaderKey();
      auto r = kv_.Txn(ResignTxn(req->leader()));
      if (!r.ok()) return r.status();
      *resp->mutable_header() = r->header();
      return Status::Ok();
    });
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

  static etcdserverpb::TxnRequest ResignTxn(const LeaderKey& leader) {
    etcdserverpb::TxnRequest txn = IfCreatedAt(leader.key(), leader.rev());
    txn.add_success()->mutable_request_delete_range()->set_key(leader.key());
    return txn;
  }

  // Election.Proclaim: rewrite the leader key's value if it is still ours.
  Status DoProclaim(const LeaderKey& leader, const std::string& value,
                    etcdserverpb::ResponseHeader* header) {
    etcdserverpb::TxnRequest txn = IfCreatedAt(leader.key(), leader.rev());
    auto* put = txn.add_success()->mutable_request_put();
    put->set_key(leader.key());
    put->set_value(value);
    put->set_lease(leader.lease());
    auto r = kv_.Txn(txn);
    if (!r.ok()) return r.status();
    if (!r->succeeded()) return NotLeader();
    *header = r->header();
    return Status::Ok();
  }

  // Election.Campaign (client/v3/concurrency/election.go).
  Status DoCampaign(grpc::CallbackServerContext* ctx, const v3electionpb::CampaignRequest& req,
                    v3electionpb::CampaignResponse* resp) {
    int64_t lease = req.lease();
    if (lease == 0) {
      auto granted = kv_.GrantLease(kSessionTtl);
      if (!granted.ok()) return granted.status();
      lease = *granted;
    }
    const std::string prefix = req.name() + "/";
    LeaderKey leader;
    leader.set_name(req.name());
    leader.set_key(prefix + HexLease(lease));
    leader.set_lease(lease);
    etcdserverpb::TxnRequest txn = IfCreatedAt(leader.key(), 0);
    auto* put = txn.add_success()->mutable_request_put();
    put->set_key(leader.key());
    put->set_value(req.value());
    put->set_lease(lease);
    txn.add_failure()->mutable_request_range()->set_key(leader.key());
    auto r = kv_.Txn(txn);
    if (!r.ok()) return r.status();
    leader.set_rev(r->header().revision());
    if (!r->succeeded()) {
      const auto& kv = r->responses(0).response_range().kvs(0);
      leader.set_rev(kv.create_revision());
      if (kv.value() != req.value()) {
        etcdserverpb::ResponseHeader ignored;
        Status st = DoProclaim(leader, req.value(), &ignored);
        if (!st.ok()) {
          (void)kv_.Txn(ResignTxn(leader));
          return st;
        }
      }
    }
    auto waited =
        kv_.WaitDeletes(prefix, leader.rev() - 1, [ctx] { return ctx->IsCancelled(); }, kWaitPoll);
    if (!waited.ok()) {
      if (ctx->IsCancelled()) (void)kv_.Txn(ResignTxn(leader));
      return waited.status();
    }
    *resp->mutable_header() = r->header();
    *resp->mutable_leader() = std::move(leader);
    return Status::Ok();
  }

  // Election.Observe by polling: each new leader key, and each new version of it.
  Status DoObserve(grpc::CallbackServerContext* ctx, const std::string& prefix,
                   ObserveReactor* stream) {
    std::string last_key;
    int64_t last_mod = -1;
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
      std::this_thread::sleep_for(kObservePoll);
    }
    return Status(StatusCode::kCancelled, "context canceled");
  }

  BlockingKv kv_;
  CallThreads threads_;  // last: joined first
};

}  // namespace

std::unique_ptr<grpc::Service> MakeElectionService(KvDispatcher& kv) {
  return std::make_unique<ElectionService>(kv);
}

}  // namespace rusd::frontend
