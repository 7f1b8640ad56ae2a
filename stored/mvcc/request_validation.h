// The checks etcd's gRPC layer makes on KV requests before proposing them (etcd 3.5
// api/v3rpc/key.go: checkRangeRequest, checkPutRequest, checkDeleteRequest). The frontend
// calls them before proposing so clients get etcd's InvalidArgument without a Raft round
// trip; KvStore repeats the Put checks at apply for entries that skipped them.
// Pure functions: no I/O, any thread.
#pragma once

#include "common/status.h"

namespace etcdserverpb {
class RangeRequest;
class PutRequest;
class DeleteRangeRequest;
}  // namespace etcdserverpb

namespace rusd::stored {

// Empty key -> "etcdserver: key is not provided".
Status ValidateRangeRequest(const etcdserverpb::RangeRequest& request);
// Empty key; ignore_value with a value -> "etcdserver: value is provided"; ignore_lease
// with a lease -> "etcdserver: lease is provided".
Status ValidatePutRequest(const etcdserverpb::PutRequest& request);
// Empty key.
Status ValidateDeleteRangeRequest(const etcdserverpb::DeleteRangeRequest& request);

}  // namespace rusd::stored
