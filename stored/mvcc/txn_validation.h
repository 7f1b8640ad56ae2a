// The checks etcd's gRPC layer makes on a Txn before proposing it (etcd 3.5
// api/v3rpc/key.go: checkTxnRequest, then checkIntervals on success and failure): too many
// operations, empty keys in compares and ops, an empty RequestOp, and a key put twice (or
// put and deleted) in one txn ("etcdserver: duplicate key given in txn request").
// The frontend calls ValidateTxnRequest before proposing. Pure: no I/O, any thread.
#pragma once

#include <cstddef>

#include "common/status.h"

namespace etcdserverpb {
class TxnRequest;
}

namespace rusd::stored {

// etcd's --max-txn-ops default.
inline constexpr size_t kDefaultMaxTxnOps = 128;

Status ValidateTxnRequest(const etcdserverpb::TxnRequest& request,
                          size_t max_txn_ops = kDefaultMaxTxnOps);

}  // namespace rusd::stored
