#include "frontend/kv_service.h"

#include <google/protobuf/arena.h>
#include <grpcpp/grpcpp.h>

#include <string>
#include <vector>

#include "etcd/etcdserverpb/rpc.grpc.pb.h"
#include "frontend/etcd_errors.h"
#include "frontend/grpc_status.h"
#include "frontend/request_validation.h"
#include "frontend/ring_client.h"

namespace rusd::frontend {
namespace {

// rusd.internal.Command field tags (proto/rusd/internal.proto).
constexpr char kTagRequestId = 0x08;       // 1, varint
constexpr char kTagOriginMember = 0x10;    // 2, varint
constexpr char kTagPut = 0x52;             // 10, bytes
constexpr char kTagDeleteRange = 0x5a;     // 11, bytes
constexpr char kTagTxn = 0x62;             // 12, bytes
constexpr char kTagCompaction = 0x6a;      // 13, bytes

void AppendVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// Appends the bytes of `buffer` to `out`. False if gRPC cannot give them to us.
bool AppendByteBuffer(const grpc::ByteBuffer& buffer, std::string* out) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return false;
  for (const grpc::Slice& s : slices) {
    out->append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return true;
}

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

grpc::Status Unparsable() {
  // What grpc-go answers for a request it cannot unmarshal.
  return grpc::Status(grpc::StatusCode::INTERNAL, "grpc: error unmarshalling request");
}

// Completes a unary call from a ring reply.
RequestCallback Completion(grpc::ServerUnaryReactor* reactor, grpc::ByteBuffer* response) {
  return [reactor, response](const Status& st, std::string&& payload) {
    if (st.ok()) SetResponse(std::move(payload), response);
    reactor->Finish(ToGrpcStatus(st));
  };
}

// A small stack block for parsing requests: typical requests parse with no heap allocation.
class RequestArena {
 public:
  RequestArena() : arena_(Options(block_)) {}
  google::protobuf::Arena* get() { return &arena_; }

 private:
  static google::protobuf::ArenaOptions Options(char* block) {
    google::protobuf::ArenaOptions o;
    o.initial_block = block;
    o.initial_block_size = kBlockBytes;
    return o;
  }
  static constexpr size_t kBlockBytes = 2048;
  alignas(16) char block_[kBlockBytes];
  google::protobuf::Arena arena_;
};

using KvBase = etcdserverpb::KV::WithRawCallbackMethod_Range<
    etcdserverpb::KV::WithRawCallbackMethod_Put<etcdserverpb::KV::WithRawCallbackMethod_DeleteRange<
        etcdserverpb::KV::WithRawCallbackMethod_Txn<
            etcdserverpb::KV::WithRawCallbackMethod_Compact<etcdserverpb::KV::Service>>>>>;

class KvService final : public KvBase {
 public:
  KvService(RingClient& ring, const KvServiceOptions& options) : ring_(ring), options_(options) {}

  grpc::ServerUnaryReactor* Range(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                  grpc::ByteBuffer* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    std::string bytes;
    bytes.reserve(req->Length());
    RequestArena arena;
    auto* r = google::protobuf::Arena::CreateMessage<etcdserverpb::RangeRequest>(arena.get());
    if (!AppendByteBuffer(*req, &bytes) || !r->ParseFromString(bytes)) {
      reactor->Finish(Unparsable());
      return reactor;
    }
    Status st = CheckRangeRequest(*r);
    if (!st.ok()) {
      reactor->Finish(ToGrpcStatus(st));
      return reactor;
    }
    ring_.Read(std::move(bytes), !r->serializable(), Completion(reactor, resp));
    return reactor;
  }

  grpc::ServerUnaryReactor* Put(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                grpc::ByteBuffer* resp) override {
    return Propose<etcdserverpb::PutRequest>(
        ctx, req, resp, kTagPut, [](const etcdserverpb::PutRequest& r) { return CheckPutRequest(r); });
  }

  grpc::ServerUnaryReactor* DeleteRange(grpc::CallbackServerContext* ctx,
                                        const grpc::ByteBuffer* req,
                                        grpc::ByteBuffer* resp) override {
    return Propose<etcdserverpb::DeleteRangeRequest>(
        ctx, req, resp, kTagDeleteRange,
        [](const etcdserverpb::DeleteRangeRequest& r) { return CheckDeleteRequest(r); });
  }

  grpc::ServerUnaryReactor* Txn(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                grpc::ByteBuffer* resp) override {
    const uint32_t max_ops = options_.max_txn_ops;
    return Propose<etcdserverpb::TxnRequest>(
        ctx, req, resp, kTagTxn,
        [max_ops](const etcdserverpb::TxnRequest& r) { return CheckTxnRequest(r, max_ops); });
  }

  grpc::ServerUnaryReactor* Compact(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                    grpc::ByteBuffer* resp) override {
    return Propose<etcdserverpb::CompactionRequest>(
        ctx, req, resp, kTagCompaction,
        [](const etcdserverpb::CompactionRequest&) { return Status::Ok(); });
  }

 private:
  // Builds Command{request_id, origin_member_id, <op> = request bytes} around the request
  // bytes as they arrived, validates the parsed request, and proposes it.
  template <typename Request, typename Check>
  grpc::ServerUnaryReactor* Propose(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                    grpc::ByteBuffer* resp, char op_tag, Check check) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    const uint64_t id = ring_.NextRequestId();
    const size_t len = req->Length();
    std::string command;
    command.reserve(len + 32);
    command.push_back(kTagRequestId);
    AppendVarint(&command, id);
    if (options_.member_id != 0) {
      command.push_back(kTagOriginMember);
      AppendVarint(&command, options_.member_id);
    }
    command.push_back(op_tag);
    AppendVarint(&command, len);
    const size_t offset = command.size();
    RequestArena arena;
    auto* r = google::protobuf::Arena::CreateMessage<Request>(arena.get());
    if (!AppendByteBuffer(*req, &command) || command.size() != offset + len ||
        !r->ParseFromArray(command.data() + offset, static_cast<int>(len))) {
      reactor->Finish(Unparsable());
      return reactor;
    }
    Status st = check(*r);
    if (st.ok() && command.size() > options_.max_request_bytes) {
      st = etcd_errors::RequestTooLarge();
    }
    if (!st.ok()) {
      reactor->Finish(ToGrpcStatus(st));
      return reactor;
    }
    ring_.Propose(id, command, Completion(reactor, resp));
    return reactor;
  }

  RingClient& ring_;
  const KvServiceOptions options_;
};

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
                 resp->set_raftterm(term);
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
