#include "frontend/request_validation.h"

#include "etcd/etcdserverpb/rpc.pb.h"
#include "stored/mvcc/request_validation.h"
#include "stored/mvcc/txn_validation.h"

// One implementation of etcd's API-layer checks, shared with stored (which repeats some at
// apply): the frontend's names forward to stored/mvcc's pure functions.
namespace rusd::frontend {

Status CheckRangeRequest(const etcdserverpb::RangeRequest& r) {
  return stored::ValidateRangeRequest(r);
}

Status CheckPutRequest(const etcdserverpb::PutRequest& r) { return stored::ValidatePutRequest(r); }

Status CheckDeleteRequest(const etcdserverpb::DeleteRangeRequest& r) {
  return stored::ValidateDeleteRangeRequest(r);
}

Status CheckTxnRequest(const etcdserverpb::TxnRequest& r, uint32_t max_txn_ops) {
  return stored::ValidateTxnRequest(r, max_txn_ops);
}

bool IsTxnReadOnly(const etcdserverpb::TxnRequest& r) {
  using etcdserverpb::RequestOp;
  for (const auto& op : r.success()) {
    if (op.request_case() != RequestOp::kRequestRange) return false;
  }
  for (const auto& op : r.failure()) {
    if (op.request_case() != RequestOp::kRequestRange) return false;
  }
  return true;
}

}  // namespace rusd::frontend
