#include "frontend/kv_dispatcher.h"

#include <google/protobuf/arena.h>

#include <string>

#include "etcd/etcdserverpb/rpc.pb.h"
#include "frontend/etcd_errors.h"
#include "stored/mvcc/request_validation.h"
#include "stored/mvcc/txn_validation.h"

namespace rusd::frontend {
namespace {

// rusd.internal.Command field tags (proto/rusd/internal.proto).
constexpr char kTagRequestId = 0x08;     // 1, varint
constexpr char kTagOriginMember = 0x10;  // 2, varint
constexpr char kTagPut = 0x52;           // 10, bytes
constexpr char kTagDeleteRange = 0x5a;   // 11, bytes
constexpr char kTagTxn = 0x62;           // 12, bytes
constexpr char kTagCompaction = 0x6a;    // 13, bytes

void AppendVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
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

Status Unparsable() {
  // What grpc-go answers (code Internal) for a request it cannot unmarshal.
  return Status::Internal("grpc: error unmarshalling request");
}

template <typename Request, typename Check>
void ProposeChecked(RingClient& ring, const KvServiceOptions& options, char op_tag,
                    std::string_view request, Check check, RequestCallback done) {
  RequestArena arena;
  auto* r = google::protobuf::Arena::CreateMessage<Request>(arena.get());
  if (!r->ParseFromArray(request.data(), static_cast<int>(request.size()))) {
    done(Unparsable(), std::string());
    return;
  }
  Status st = check(*r);
  if (!st.ok()) {
    done(st, std::string());
    return;
  }
  const uint64_t id = ring.NextRequestId();
  // A per-thread buffer: no allocation per request once it is large enough. Nothing runs
  // on this thread between building it and Propose copying it into the frame (a callback
  // that proposes again runs only after that copy, or instead of it).
  thread_local std::string command;
  command.clear();
  command.push_back(kTagRequestId);
  AppendVarint(&command, id);
  if (options.member_id != 0) {
    command.push_back(kTagOriginMember);
    AppendVarint(&command, options.member_id);
  }
  command.push_back(op_tag);
  AppendVarint(&command, request.size());
  command.append(request);
  if (command.size() > options.max_request_bytes) {
    std::string().swap(command);  // must not pin its memory in the thread for good
    done(etcd_errors::RequestTooLarge(), std::string());
    return;
  }
  ring.Propose(id, command, std::move(done));
  // A rare huge request must not pin its memory in the thread for good.
  if (command.capacity() > (1u << 20)) std::string().swap(command);
}

}  // namespace

void KvDispatcher::Submit(KvMethod method, std::string_view request, RequestCallback done) const {
  // etcd's interceptor refuses these on a learner before the request is even looked at.
  if (method != KvMethod::kRange && ring_.is_learner()) {
    done(etcd_errors::NotSupportedForLearner(), std::string());
    return;
  }
  switch (method) {
    case KvMethod::kRange: {
      RequestArena arena;
      auto* r = google::protobuf::Arena::CreateMessage<etcdserverpb::RangeRequest>(arena.get());
      if (!r->ParseFromArray(request.data(), static_cast<int>(request.size()))) {
        done(Unparsable(), std::string());
        return;
      }
      if (!r->serializable() && ring_.is_learner()) {
        done(etcd_errors::NotSupportedForLearner(), std::string());
        return;
      }
      Status st = stored::ValidateRangeRequest(*r);
      if (!st.ok()) {
        done(st, std::string());
        return;
      }
      ring_.Read(std::string(request), !r->serializable(), std::move(done));
      return;
    }
    case KvMethod::kPut:
      ProposeChecked<etcdserverpb::PutRequest>(
          ring_, options_, kTagPut, request,
          [](const etcdserverpb::PutRequest& r) { return stored::ValidatePutRequest(r); }, std::move(done));
      return;
    case KvMethod::kDeleteRange:
      ProposeChecked<etcdserverpb::DeleteRangeRequest>(
          ring_, options_, kTagDeleteRange, request,
          [](const etcdserverpb::DeleteRangeRequest& r) { return stored::ValidateDeleteRangeRequest(r); },
          std::move(done));
      return;
    case KvMethod::kTxn: {
      const uint32_t max_ops = options_.max_txn_ops;
      ProposeChecked<etcdserverpb::TxnRequest>(
          ring_, options_, kTagTxn, request,
          [max_ops](const etcdserverpb::TxnRequest& r) { return stored::ValidateTxnRequest(r, max_ops); },
          std::move(done));
      return;
    }
    case KvMethod::kCompact:
      ProposeChecked<etcdserverpb::CompactionRequest>(
          ring_, options_, kTagCompaction, request,
          [](const etcdserverpb::CompactionRequest&) { return Status::Ok(); }, std::move(done));
      return;
  }
}

}  // namespace rusd::frontend
