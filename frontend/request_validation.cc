#include "frontend/request_validation.h"

#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "etcd/etcdserverpb/rpc.pb.h"
#include "frontend/etcd_errors.h"

namespace rusd::frontend {
namespace {

using etcdserverpb::RequestOp;

Status CheckRequestOp(const RequestOp& op, int64_t max_txn_ops);

Status CheckTxn(const etcdserverpb::TxnRequest& r, int64_t max_txn_ops) {
  int64_t opc = r.compare_size();
  if (opc < r.success_size()) opc = r.success_size();
  if (opc < r.failure_size()) opc = r.failure_size();
  if (opc > max_txn_ops) return etcd_errors::TooManyOps();
  for (const auto& c : r.compare()) {
    if (c.key().empty()) return etcd_errors::EmptyKey();
  }
  // As etcd: nested txns are checked against what the outer one left of the budget.
  for (const auto& op : r.success()) RUSD_RETURN_IF_ERROR(CheckRequestOp(op, max_txn_ops - opc));
  for (const auto& op : r.failure()) RUSD_RETURN_IF_ERROR(CheckRequestOp(op, max_txn_ops - opc));
  return Status::Ok();
}

Status CheckRequestOp(const RequestOp& op, int64_t max_txn_ops) {
  switch (op.request_case()) {
    case RequestOp::kRequestRange:
      return CheckRangeRequest(op.request_range());
    case RequestOp::kRequestPut:
      return CheckPutRequest(op.request_put());
    case RequestOp::kRequestDeleteRange:
      return CheckDeleteRequest(op.request_delete_range());
    case RequestOp::kRequestTxn:
      return CheckTxn(op.request_txn(), max_txn_ops);
    default:
      return etcd_errors::KeyNotFound();
  }
}

// etcd's adt.StringAffineInterval: [begin, end) where an empty end means +infinity. A
// point key k is the interval [k, k + "\x00").
struct Interval {
  std::string_view begin;
  std::string_view end;  // empty: unbounded (ignored for a point)
  bool point = false;    // [begin, begin + "\0")
};

bool ContainsPoint(const std::vector<Interval>& dels, std::string_view key) {
  for (const Interval& iv : dels) {
    if (iv.point) {
      if (iv.begin == key) return true;
    } else if (iv.begin <= key && (iv.end.empty() || key < iv.end)) {
      // [begin, end) intersects [key, key + "\0")  <=>  begin <= key < end.
      return true;
    }
  }
  return false;
}

using KeySet = std::unordered_set<std::string_view>;

// etcd's checkIntervals: the keys put and the ranges deleted by `ops` (recursing into
// nested txns), failing on a key put twice or put and deleted.
Status CheckIntervals(const google::protobuf::RepeatedPtrField<RequestOp>& ops, KeySet* puts,
                      std::vector<Interval>* dels) {
  for (const auto& op : ops) {
    if (op.request_case() != RequestOp::kRequestDeleteRange) continue;
    const auto& d = op.request_delete_range();
    if (d.range_end().empty()) {
      dels->push_back(Interval{d.key(), std::string_view(), true});
    } else {
      dels->push_back(Interval{d.key(), d.range_end(), false});
    }
  }
  for (const auto& op : ops) {
    if (op.request_case() != RequestOp::kRequestTxn) continue;
    const auto& txn = op.request_txn();
    KeySet puts_then, puts_else;
    std::vector<Interval> dels_then, dels_else;
    RUSD_RETURN_IF_ERROR(CheckIntervals(txn.success(), &puts_then, &dels_then));
    RUSD_RETURN_IF_ERROR(CheckIntervals(txn.failure(), &puts_else, &dels_else));
    for (std::string_view k : puts_then) {
      if (puts->count(k) || ContainsPoint(*dels, k)) return etcd_errors::DuplicateKey();
      puts->insert(k);
    }
    for (std::string_view k : puts_else) {
      if (puts->count(k) && !puts_then.count(k)) return etcd_errors::DuplicateKey();
      if (ContainsPoint(*dels, k)) return etcd_errors::DuplicateKey();
      puts->insert(k);
    }
    dels->insert(dels->end(), dels_then.begin(), dels_then.end());
    dels->insert(dels->end(), dels_else.begin(), dels_else.end());
  }
  for (const auto& op : ops) {
    if (op.request_case() != RequestOp::kRequestPut) continue;
    std::string_view k = op.request_put().key();
    if (puts->count(k) || ContainsPoint(*dels, k)) return etcd_errors::DuplicateKey();
    puts->insert(k);
  }
  return Status::Ok();
}

}  // namespace

Status CheckRangeRequest(const etcdserverpb::RangeRequest& r) {
  if (r.key().empty()) return etcd_errors::EmptyKey();
  return Status::Ok();
}

Status CheckPutRequest(const etcdserverpb::PutRequest& r) {
  if (r.key().empty()) return etcd_errors::EmptyKey();
  if (r.ignore_value() && !r.value().empty()) return etcd_errors::ValueProvided();
  if (r.ignore_lease() && r.lease() != 0) return etcd_errors::LeaseProvided();
  return Status::Ok();
}

Status CheckDeleteRequest(const etcdserverpb::DeleteRangeRequest& r) {
  if (r.key().empty()) return etcd_errors::EmptyKey();
  return Status::Ok();
}

Status CheckTxnRequest(const etcdserverpb::TxnRequest& r, uint32_t max_txn_ops) {
  RUSD_RETURN_IF_ERROR(CheckTxn(r, max_txn_ops));
  {
    KeySet puts;
    std::vector<Interval> dels;
    RUSD_RETURN_IF_ERROR(CheckIntervals(r.success(), &puts, &dels));
  }
  KeySet puts;
  std::vector<Interval> dels;
  return CheckIntervals(r.failure(), &puts, &dels);
}

bool IsTxnReadOnly(const etcdserverpb::TxnRequest& r) {
  for (const auto& op : r.success()) {
    if (op.request_case() != RequestOp::kRequestRange) return false;
  }
  for (const auto& op : r.failure()) {
    if (op.request_case() != RequestOp::kRequestRange) return false;
  }
  return true;
}

}  // namespace rusd::frontend
