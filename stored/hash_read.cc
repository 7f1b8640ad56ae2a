#include "stored/hash_read.h"

#include <string>

#include "etcd/etcdserverpb/rpc.pb.h"
#include "stored/error_reply.h"
#include "stored/mvcc/kv_store.h"
#include "stored/read_worker_pool.h"

namespace rusd::stored {

void ServeHash(KvStore& store, ReadWorkerPool& workers, ipc::MessageType type,
               uint64_t request_id, std::string_view payload) {
  const bool hash_kv = type == ipc::MessageType::kHashKvRead;
  int64_t revision = 0;
  if (hash_kv) {
    etcdserverpb::HashKVRequest request;
    if (!request.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
      workers.SendReply(
          ipc::MessageType::kError, request_id,
          EncodeErrorReply(Status::InvalidArgument("rusd-stored: malformed hash request")));
      return;
    }
    revision = request.revision();
  }
  workers.ServeTask(request_id, [&store, hash_kv, revision]() {
    Result<std::string> r = hash_kv ? store.HashKv(revision) : store.Hash();
    if (!r.ok()) {
      return ReadWorkerPool::Reply{ipc::MessageType::kError, EncodeErrorReply(r.status())};
    }
    return ReadWorkerPool::Reply{ipc::MessageType::kResult, std::move(r).value()};
  });
}

}  // namespace rusd::stored
