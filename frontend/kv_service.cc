#include "frontend/kv_service.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <string>
#include <vector>

#include "etcd/etcdserverpb/rpc.grpc.pb.h"
#include "frontend/connection_cork.h"
#include "frontend/grpc_call_metrics.h"
#include "frontend/grpc_status.h"
#include "frontend/learner_gate.h"
#include "frontend/kv_dispatcher.h"
#include "frontend/member_change.h"
#include "frontend/ring_client.h"
#include "ipc/message_type.h"
#include "ipc/metrics_grpc_methods.h"

namespace rusd::frontend {
namespace {

// Hands `payload` to gRPC as the response without copying it when it is large.
void SetResponse(std::string&& payload, grpc::ByteBuffer* out) {
  if (payload.size() <= 4096) {
    grpc::Slice slice(payload.data(), payload.size());
    grpc::ByteBuffer(&slice, 1).Swap(out);
    return;
  }
  auto* owned = new std::string(std::move(payload));  // freed by gRPC through the slice
  grpc::Slice slice(
      owned->data(), owned->size(), [](void* p) { delete static_cast<std::string*>(p); }, owned);
  grpc::ByteBuffer(&slice, 1).Swap(out);
}

// The call's connection, for corking its reply with the others of a reply batch
// (connection_cork.h). Its socket is looked up (the call's peer "fd:N") only when a batch
// is open: most replies are not in one. A null `cork` leaves it alone.
struct CallConnection {
  ConnectionCork* cork = nullptr;
  grpc::CallbackServerContext* ctx = nullptr;  // alive until the call's Finish
  void Touch() const {
    if (cork != nullptr && cork->batch_open()) cork->Touch(ConnectionCork::ParsePeerFd(ctx->peer()));
  }
};

// Completes a unary call from a ring reply.
RequestCallback Completion(grpc::ServerUnaryReactor* reactor, grpc::ByteBuffer* response,
                           CallConnection conn) {
  return [reactor, response, conn](const Status& st, std::string&& payload) {
    if (st.ok()) SetResponse(std::move(payload), response);
    conn.Touch();
    reactor->Finish(ToGrpcStatus(st));
  };
}

// The same, counting the call's response and status as the metrics interceptor would.
RequestCallback CountedCompletion(grpc::ServerUnaryReactor* reactor, grpc::ByteBuffer* response,
                                  CallConnection conn, GrpcCallMetrics call) {
  return [reactor, response, conn, call](const Status& st, std::string&& payload) mutable {
    if (st.ok()) {
      call.Sent(payload.size());
      SetResponse(std::move(payload), response);
    }
    call.Handled(static_cast<int>(st.code()));  // rusd's codes are gRPC's (grpc_status.h)
    conn.Touch();
    reactor->Finish(ToGrpcStatus(st));
  };
}

constexpr int kKvMethods = 5;  // KvMethod's values
constexpr const char* kKvFullNames[kKvMethods] = {
    "/etcdserverpb.KV/Range", "/etcdserverpb.KV/Put", "/etcdserverpb.KV/DeleteRange",
    "/etcdserverpb.KV/Txn", "/etcdserverpb.KV/Compact"};

using KvBase = etcdserverpb::KV::WithRawCallbackMethod_Range<
    etcdserverpb::KV::WithRawCallbackMethod_Put<etcdserverpb::KV::WithRawCallbackMethod_DeleteRange<
        etcdserverpb::KV::WithRawCallbackMethod_Txn<
            etcdserverpb::KV::WithRawCallbackMethod_Compact<etcdserverpb::KV::Service>>>>>;

// KV on raw byte buffers: the request reaches the dispatcher without a copy when gRPC holds
// it in one slice (the common case), and stored's response bytes go out unchanged. With
// options.grpc_metrics it counts its calls' gRPC metrics itself, into per-method slots
// looked up once here.
class KvService final : public KvBase {
 public:
  KvService(RingClient& ring, const KvServiceOptions& options)
      : dispatcher_(ring, options),
        received_bytes_(options.received_bytes),
        metrics_(options.grpc_metrics),
        cork_(options.cork) {
    if (metrics_ == nullptr) return;
    for (int m = 0; m < kKvMethods; ++m) {
      method_stats_[m] = &metrics_->grpc[ipc::GrpcMethodSlot(kKvFullNames[m])];
    }
  }

  grpc::ServerUnaryReactor* Range(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                  grpc::ByteBuffer* resp) override {
    return Submit(KvMethod::kRange, ctx, req, resp);
  }
  grpc::ServerUnaryReactor* Put(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                grpc::ByteBuffer* resp) override {
    return Submit(KvMethod::kPut, ctx, req, resp);
  }
  grpc::ServerUnaryReactor* DeleteRange(grpc::CallbackServerContext* ctx,
                                        const grpc::ByteBuffer* req,
                                        grpc::ByteBuffer* resp) override {
    return Submit(KvMethod::kDeleteRange, ctx, req, resp);
  }
  grpc::ServerUnaryReactor* Txn(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                grpc::ByteBuffer* resp) override {
    return Submit(KvMethod::kTxn, ctx, req, resp);
  }
  grpc::ServerUnaryReactor* Compact(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                    grpc::ByteBuffer* resp) override {
    return Submit(KvMethod::kCompact, ctx, req, resp);
  }

 private:
  grpc::ServerUnaryReactor* Submit(KvMethod method, grpc::CallbackServerContext* ctx,
                                   const grpc::ByteBuffer* req, grpc::ByteBuffer* resp) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    if (received_bytes_ != nullptr) {
      received_bytes_->fetch_add(req->Length(), std::memory_order_relaxed);
    }
    const CallConnection conn{cork_, ctx};
    RequestCallback done;
    if (metrics_ != nullptr) {
      GrpcCallMetrics call(*metrics_, *method_stats_[static_cast<int>(method)]);
      call.Received();
      done = CountedCompletion(reactor, resp, conn, call);
    } else {
      done = Completion(reactor, resp, conn);
    }
    grpc::Slice single;
    if (req->TrySingleSlice(&single).ok()) {
      dispatcher_.Submit(method,
                         std::string_view(reinterpret_cast<const char*>(single.begin()),
                                          single.size()),
                         std::move(done));
      return reactor;
    }
    std::vector<grpc::Slice> slices;
    if (!req->Dump(&slices).ok()) {
      done(Status::Internal("grpc: error reading request"), std::string());
      return reactor;
    }
    std::string flat;
    flat.reserve(req->Length());
    for (const grpc::Slice& s : slices) {
      flat.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
    dispatcher_.Submit(method, flat, std::move(done));
    return reactor;
  }

  KvDispatcher dispatcher_;
  std::atomic<uint64_t>* const received_bytes_;
  ipc::MetricsArea* const metrics_;
  ConnectionCork* const cork_;
  ipc::GrpcMethodStats* method_stats_[kKvMethods] = {};
};

// Completes a unary call whose response stored built whole (kResult payload).
template <typename Response>
void FinishParsed(grpc::ServerUnaryReactor* reactor, Response* resp, const Status& st,
                  const std::string& payload) {
  if (!st.ok()) {
    reactor->Finish(ToGrpcStatus(st));
    return;
  }
  if (!resp->ParseFromString(payload)) {
    reactor->Finish(ToGrpcStatus(Status::Internal("rusd: malformed reply from the store")));
    return;
  }
  reactor->Finish(grpc::Status::OK);
}

class MaintenanceService final : public etcdserverpb::Maintenance::CallbackService {
 public:
  MaintenanceService(RingClient& ring, uint64_t member_id, uint64_t cluster_id)
      : ring_(ring), member_id_(member_id), cluster_id_(cluster_id) {}

  grpc::ServerUnaryReactor* Status(grpc::CallbackServerContext* ctx,
                                   const etcdserverpb::StatusRequest*,
                                   etcdserverpb::StatusResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    // A one-key serializable read: its header carries stored's revision and term.
    etcdserverpb::RangeRequest probe;
    probe.set_key(std::string(1, '\0'));
    probe.set_keys_only(true);
    probe.set_limit(1);
    probe.set_serializable(true);
    LeaderState leader = ring_.leader();
    ring_.Read(probe.SerializeAsString(), false,
               [this, reactor, resp, leader](const rusd::Status& st, std::string&& payload) {
                 if (!st.ok()) {
                   reactor->Finish(ToGrpcStatus(st));
                   return;
                 }
                 etcdserverpb::RangeResponse range;
                 range.ParseFromString(payload);
                 auto* h = resp->mutable_header();
                 h->set_cluster_id(cluster_id_);
                 h->set_member_id(member_id_);
                 h->set_revision(range.header().revision());
                 uint64_t term = std::max<uint64_t>(leader.term, range.header().raft_term());
                 h->set_raft_term(term);
                 resp->set_version(RUSD_ETCD_SERVER_VERSION);
                 resp->set_leader(leader.leader_id);
                 etcdserverpb::MemberListResponse members;
                 if (members.ParseFromString(ring_.member_list())) {
                   for (const auto& m : members.members()) {
                     if (m.id() == member_id_) resp->set_islearner(m.islearner());
                   }
                 }
                 resp->set_raftterm(term);
                 resp->set_raftindex(ring_.committed_index());
                 resp->set_raftappliedindex(ring_.applied_index());
                 resp->set_dbsize(static_cast<int64_t>(ring_.db_size()));
                 resp->set_dbsizeinuse(static_cast<int64_t>(ring_.db_size_in_use()));
                 reactor->Finish(grpc::Status::OK);
               });
    return reactor;
  }

  // etcd's Alarm. rusd raises no alarm (no NOSPACE quota, no corruption check yet), so a
  // list is empty and disarming finds nothing; etcd 3.4's response has no header (etcdctl
  // `alarm list -w json` prints {}). Raising one by hand is not supported.
  grpc::ServerUnaryReactor* Alarm(grpc::CallbackServerContext* ctx,
                                  const etcdserverpb::AlarmRequest* req,
                                  etcdserverpb::AlarmResponse*) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    if (RefusedOnLearner(ring_, reactor)) return reactor;
    if (req->action() == etcdserverpb::AlarmRequest::ACTIVATE) {
      reactor->Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                                   "rusd: raising an alarm is not supported"));
      return reactor;
    }
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  // etcd's Defragment rewrites its bbolt file to give freed pages back. RocksDB reclaims
  // space by its own compactions, so there is nothing to do; answered as etcd 3.4 does
  // (an empty response), so `etcdctl defrag` and scripts running it succeed.
  grpc::ServerUnaryReactor* Defragment(grpc::CallbackServerContext* ctx,
                                       const etcdserverpb::DefragmentRequest*,
                                       etcdserverpb::DefragmentResponse*) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    if (RefusedOnLearner(ring_, reactor)) return reactor;
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  // etcd's HashKV: the CRC-32C of the MVCC records up to a revision, computed as etcd 3.4/3.5
  // does (stored/mvcc/kv_hash.h), so equal histories hash equal on rusd and etcd. Served
  // locally from a store snapshot (etcd uses no ReadIndex either); refused on a learner.
  grpc::ServerUnaryReactor* HashKV(grpc::CallbackServerContext* ctx,
                                   const etcdserverpb::HashKVRequest* req,
                                   etcdserverpb::HashKVResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    if (RefusedOnLearner(ring_, reactor)) return reactor;
    ring_.ReadStore(ipc::MessageType::kHashKvRead, req->SerializeAsString(),
                    [reactor, resp](const rusd::Status& st, std::string&& payload) {
                      FinishParsed(reactor, resp, st, payload);
                    });
    return reactor;
  }

  // etcd's Hash covers its whole bbolt file, which rusd does not have: rusd answers a hash
  // of its own applied state (MVCC records and leases). Members of one rusd cluster at the
  // same revision agree; the value never equals etcd's.
  grpc::ServerUnaryReactor* Hash(grpc::CallbackServerContext* ctx,
                                 const etcdserverpb::HashRequest* req,
                                 etcdserverpb::HashResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    if (RefusedOnLearner(ring_, reactor)) return reactor;
    ring_.ReadStore(ipc::MessageType::kHashRead, req->SerializeAsString(),
                    [reactor, resp](const rusd::Status& st, std::string&& payload) {
                      FinishParsed(reactor, resp, st, payload);
                    });
    return reactor;
  }

  // etcd's MoveLeader: the leader transfers to a voter; "etcdserver: not leader" elsewhere.
  grpc::ServerUnaryReactor* MoveLeader(grpc::CallbackServerContext* ctx,
                                       const etcdserverpb::MoveLeaderRequest* req,
                                       etcdserverpb::MoveLeaderResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    if (RefusedOnLearner(ring_, reactor)) return reactor;
    RequestMoveLeader(ring_, req->targetid(), [this, reactor, resp](const rusd::Status& st) {
      if (!st.ok()) {
        reactor->Finish(ToGrpcStatus(st));
        return;
      }
      auto* h = resp->mutable_header();
      h->set_cluster_id(cluster_id_);
      h->set_member_id(member_id_);
      h->set_raft_term(ring_.leader().term);
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }

 private:
  RingClient& ring_;
  const uint64_t member_id_;
  const uint64_t cluster_id_;
};

}  // namespace

std::unique_ptr<grpc::Service> MakeKvService(RingClient& ring, const KvServiceOptions& options) {
  return std::make_unique<KvService>(ring, options);
}

std::unique_ptr<grpc::Service> MakeMaintenanceService(RingClient& ring, uint64_t member_id,
                                                      uint64_t cluster_id) {
  return std::make_unique<MaintenanceService>(ring, member_id, cluster_id);
}

}  // namespace rusd::frontend
