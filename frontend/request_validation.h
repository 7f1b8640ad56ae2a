// The checks etcd's gRPC API layer (server/etcdserver/api/v3rpc/key.go) makes before a KV
// request reaches the server: same rules, same order, same error texts (etcd_errors.h).
// Pure functions of the request; callable from any thread. The checks themselves live in
// stored/mvcc/{request,txn}_validation.h (shared with stored); these names forward to them.
#pragma once

#include <cstdint>

#include "common/status.h"

namespace etcdserverpb {
class RangeRequest;
class PutRequest;
class DeleteRangeRequest;
class TxnRequest;
}  // namespace etcdserverpb

namespace rusd::frontend {

Status CheckRangeRequest(const etcdserverpb::RangeRequest& r);
Status CheckPutRequest(const etcdserverpb::PutRequest& r);
Status CheckDeleteRequest(const etcdserverpb::DeleteRangeRequest& r);

// etcd's checkTxnRequest followed by checkIntervals on the success and failure branches:
// op count against max_txn_ops (nested txns share the budget as in etcd), empty keys,
// unset request ops ("etcdserver: key not found"), and a key written twice (or written and
// deleted) in one branch ("etcdserver: duplicate key given in txn request").
Status CheckTxnRequest(const etcdserverpb::TxnRequest& r, uint32_t max_txn_ops);

// True when every op of both branches is a Range (etcd's isTxnReadonly).
bool IsTxnReadOnly(const etcdserverpb::TxnRequest& r);

}  // namespace rusd::frontend
