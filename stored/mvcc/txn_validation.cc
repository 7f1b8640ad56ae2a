#include "stored/mvcc/txn_validation.h"

#include <set>
#include <string>
#include <vector>

#include "etcd/etcdserverpb/rpc.pb.h"
#include "stored/mvcc/kv_errors.h"
#include "stored/mvcc/request_validation.h"

namespace rusd::stored {

namespace {

// etcd's adt.StringAffineComparable: the empty string is +infinity.
int AffineCompare(const std::string& a, const std::string& b) {
  if (a.empty()) return b.empty() ? 0 : 1;
  if (b.empty()) return -1;
  return a.compare(b) < 0 ? -1 : (a == b ? 0 : 1);
}

struct Interval {
  std::string begin;
  std::string end;  // affine: "" is +infinity
};

// Whether the point interval [key, key+"\0") overlaps any interval. Note the quirk this
// reproduces: a delete with range_end "\0" becomes [key, "\0"), which is empty under the
// affine order, so it never conflicts with a put.
bool IntersectsPoint(const std::vector<Interval>& dels, const std::string& key) {
  std::string point_end = key;
  point_end.push_back('\0');
  for (const auto& iv : dels) {
    if (AffineCompare(iv.begin, point_end) < 0 && AffineCompare(key, iv.end) < 0) return true;
  }
  return false;
}

Status CheckRequestOp(const etcdserverpb::RequestOp& op, size_t max_txn_ops);

Status CheckTxn(const etcdserverpb::TxnRequest& r, size_t max_txn_ops) {
  size_t opc = static_cast<size_t>(r.compare_size());
  opc = std::max(opc, static_cast<size_t>(r.success_size()));
  opc = std::max(opc, static_cast<size_t>(r.failure_size()));
  if (opc > max_txn_ops) return kv_errors::TooManyOps();
  for (const auto& c : r.compare()) {
    if (c.key().empty()) return kv_errors::EmptyKey();
  }
  for (const auto& op : r.success()) RUSD_RETURN_IF_ERROR(CheckRequestOp(op, max_txn_ops - opc));
  for (const auto& op : r.failure()) RUSD_RETURN_IF_ERROR(CheckRequestOp(op, max_txn_ops - opc));
  return Status::Ok();
}

Status CheckRequestOp(const etcdserverpb::RequestOp& op, size_t max_txn_ops) {
  switch (op.request_case()) {
    case etcdserverpb::RequestOp::kRequestRange:
      return ValidateRangeRequest(op.request_range());
    case etcdserverpb::RequestOp::kRequestPut:
      return ValidatePutRequest(op.request_put());
    case etcdserverpb::RequestOp::kRequestDeleteRange:
      return ValidateDeleteRangeRequest(op.request_delete_range());
    case etcdserverpb::RequestOp::kRequestTxn:
      return CheckTxn(op.request_txn(), max_txn_ops);
    default:
      // etcd: an empty op is ErrGRPCKeyNotFound.
      return kv_errors::KeyNotFound();
  }
}

using Ops = google::protobuf::RepeatedPtrField<etcdserverpb::RequestOp>;

// etcd's checkIntervals: collects the puts and deletes of one op list (with nested txns)
// and fails when a put meets another put or a delete of the same key.
Status CheckIntervals(const Ops& ops, std::set<std::string>* puts, std::vector<Interval>* dels) {
  for (const auto& op : ops) {
    if (op.request_case() != etcdserverpb::RequestOp::kRequestDeleteRange) continue;
    const auto& d = op.request_delete_range();
    if (!d.range_end().empty()) {
      dels->push_back({d.key(), d.range_end()});
    } else {
      dels->push_back({d.key(), d.key() + std::string(1, '\0')});
    }
  }
  for (const auto& op : ops) {
    if (op.request_case() != etcdserverpb::RequestOp::kRequestTxn) continue;
    std::set<std::string> puts_then, puts_else;
    std::vector<Interval> dels_then, dels_else;
    RUSD_RETURN_IF_ERROR(CheckIntervals(op.request_txn().success(), &puts_then, &dels_then));
    RUSD_RETURN_IF_ERROR(CheckIntervals(op.request_txn().failure(), &puts_else, &dels_else));
    for (const auto& k : puts_then) {
      if (puts->count(k) || IntersectsPoint(*dels, k)) return kv_errors::DuplicateKey();
      puts->insert(k);
    }
    for (const auto& k : puts_else) {
      // then/else are exclusive: the same key put in both branches is fine.
      if (puts->count(k) && !puts_then.count(k)) return kv_errors::DuplicateKey();
      if (IntersectsPoint(*dels, k)) return kv_errors::DuplicateKey();
      puts->insert(k);
    }
    dels->insert(dels->end(), dels_then.begin(), dels_then.end());
    dels->insert(dels->end(), dels_else.begin(), dels_else.end());
  }
  for (const auto& op : ops) {
    if (op.request_case() != etcdserverpb::RequestOp::kRequestPut) continue;
    const std::string& k = op.request_put().key();
    if (puts->count(k) || IntersectsPoint(*dels, k)) return kv_errors::DuplicateKey();
    puts->insert(k);
  }
  return Status::Ok();
}

}  // namespace

Status ValidateTxnRequest(const etcdserverpb::TxnRequest& request, size_t max_txn_ops) {
  RUSD_RETURN_IF_ERROR(CheckTxn(request, max_txn_ops));
  {
    std::set<std::string> puts;
    std::vector<Interval> dels;
    RUSD_RETURN_IF_ERROR(CheckIntervals(request.success(), &puts, &dels));
  }
  std::set<std::string> puts;
  std::vector<Interval> dels;
  return CheckIntervals(request.failure(), &puts, &dels);
}

}  // namespace rusd::stored
