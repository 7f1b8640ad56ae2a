#include "frontend/lock_ops.h"

#include <cinttypes>
#include <cstdio>
#include <string>

#include "etcd/v3electionpb/v3election.pb.h"
#include "etcd/v3lockpb/v3lock.pb.h"
#include "frontend/lock_kv.h"

namespace rusd::frontend {
namespace {

using std::chrono::milliseconds;
using v3electionpb::LeaderKey;

constexpr int64_t kSessionTtl = 60;  // concurrency.NewSession's default
constexpr milliseconds kWaitPoll{20};

Status NotLeader() { return Status(StatusCode::kUnknown, "election: not leader"); }
Status NoLeader() { return Status(StatusCode::kUnknown, "election: no leader"); }
Status MissingLeaderKey() {
  return Status(StatusCode::kUnknown, "\"leader\" field must be provided");
}

std::string HexLease(int64_t lease) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%" PRIx64, static_cast<uint64_t>(lease));
  return buf;
}

// The request's lease, or a fresh session lease when it is 0.
Result<int64_t> SessionLease(BlockingKv& kv, int64_t lease) {
  if (lease != 0) return lease;
  return kv.GrantLease(kSessionTtl);
}

etcdserverpb::TxnRequest IfCreatedAt(const std::string& key, int64_t rev) {
  etcdserverpb::TxnRequest txn;
  auto* cmp = txn.add_compare();
  cmp->set_key(key);
  cmp->set_target(etcdserverpb::Compare::CREATE);
  cmp->set_result(etcdserverpb::Compare::EQUAL);
  cmp->set_create_revision(rev);
  return txn;
}

etcdserverpb::TxnRequest ResignTxn(const LeaderKey& leader) {
  etcdserverpb::TxnRequest txn = IfCreatedAt(leader.key(), leader.rev());
  txn.add_success()->mutable_request_delete_range()->set_key(leader.key());
  return txn;
}

// Election.Proclaim: rewrite the leader key's value if it is still ours.
Status Proclaim(BlockingKv& kv, const LeaderKey& leader, const std::string& value,
                etcdserverpb::ResponseHeader* header) {
  etcdserverpb::TxnRequest txn = IfCreatedAt(leader.key(), leader.rev());
  auto* put = txn.add_success()->mutable_request_put();
  put->set_key(leader.key());
  put->set_value(value);
  put->set_lease(leader.lease());
  auto r = kv.Txn(txn);
  if (!r.ok()) return r.status();
  if (!r->succeeded()) return NotLeader();
  *header = r->header();
  return Status::Ok();
}

}  // namespace

// concurrency.Mutex.Lock (client/v3/concurrency/mutex.go).
Status LockOp(BlockingKv& kv, const v3lockpb::LockRequest& req, v3lockpb::LockResponse* resp,
              const Cancelled& cancelled) {
  auto lease = SessionLease(kv, req.lease());
  if (!lease.ok()) return lease.status();
  const std::string prefix = req.name() + "/";
  const std::string my_key = prefix + HexLease(*lease);
  etcdserverpb::TxnRequest txn = IfCreatedAt(my_key, 0);
  auto* put = txn.add_success()->mutable_request_put();
  put->set_key(my_key);
  put->set_lease(*lease);
  etcdserverpb::RangeRequest owner;  // WithFirstCreate
  owner.set_key(prefix);
  owner.set_range_end(PrefixRangeEnd(prefix));
  owner.set_sort_target(etcdserverpb::RangeRequest::CREATE);
  owner.set_sort_order(etcdserverpb::RangeRequest::ASCEND);
  owner.set_limit(1);
  *txn.add_success()->mutable_request_range() = owner;
  txn.add_failure()->mutable_request_range()->set_key(my_key);
  *txn.add_failure()->mutable_request_range() = owner;
  auto result = kv.Txn(txn);
  if (!result.ok()) return result.status();
  int64_t my_rev = result->header().revision();
  if (!result->succeeded()) {
    my_rev = result->responses(0).response_range().kvs(0).create_revision();
  }
  const auto& owners = result->responses(1).response_range().kvs();
  resp->set_key(my_key);
  if (owners.empty() || owners[0].create_revision() == my_rev) {
    *resp->mutable_header() = result->header();
    return Status::Ok();
  }
  auto header = kv.WaitDeletes(prefix, my_rev - 1, cancelled, kWaitPoll);
  if (!header.ok()) {
    (void)kv.Delete(my_key);  // etcd: release the lock key if the wait failed
    return header.status();
  }
  *resp->mutable_header() = *header;
  return Status::Ok();
}

Status UnlockOp(BlockingKv& kv, const v3lockpb::UnlockRequest& req,
                v3lockpb::UnlockResponse* resp) {
  auto del = kv.Delete(req.key());
  if (!del.ok()) return del.status();
  *resp->mutable_header() = del->header();
  return Status::Ok();
}

// Election.Campaign (client/v3/concurrency/election.go).
Status CampaignOp(BlockingKv& kv, const v3electionpb::CampaignRequest& req,
                  v3electionpb::CampaignResponse* resp, const Cancelled& cancelled) {
  auto lease = SessionLease(kv, req.lease());
  if (!lease.ok()) return lease.status();
  const std::string prefix = req.name() + "/";
  LeaderKey leader;
  leader.set_name(req.name());
  leader.set_key(prefix + HexLease(*lease));
  leader.set_lease(*lease);
  etcdserverpb::TxnRequest txn = IfCreatedAt(leader.key(), 0);
  auto* put = txn.add_success()->mutable_request_put();
  put->set_key(leader.key());
  put->set_value(req.value());
  put->set_lease(*lease);
  txn.add_failure()->mutable_request_range()->set_key(leader.key());
  auto r = kv.Txn(txn);
  if (!r.ok()) return r.status();
  leader.set_rev(r->header().revision());
  if (!r->succeeded()) {
    const auto& existing = r->responses(0).response_range().kvs(0);
    leader.set_rev(existing.create_revision());
    if (existing.value() != req.value()) {
      etcdserverpb::ResponseHeader ignored;
      Status st = Proclaim(kv, leader, req.value(), &ignored);
      if (!st.ok()) {
        (void)kv.Txn(ResignTxn(leader));
        return st;
      }
    }
  }
  auto waited = kv.WaitDeletes(prefix, leader.rev() - 1, cancelled, kWaitPoll);
  if (!waited.ok()) {
    if (cancelled()) (void)kv.Txn(ResignTxn(leader));
    return waited.status();
  }
  *resp->mutable_header() = r->header();
  *resp->mutable_leader() = std::move(leader);
  return Status::Ok();
}

Status ProclaimOp(BlockingKv& kv, const v3electionpb::ProclaimRequest& req,
                  v3electionpb::ProclaimResponse* resp) {
  if (!req.has_leader()) return MissingLeaderKey();
  return Proclaim(kv, req.leader(), req.value(), resp->mutable_header());
}

Status LeaderOp(BlockingKv& kv, const v3electionpb::LeaderRequest& req,
                v3electionpb::LeaderResponse* resp) {
  auto r = kv.FirstCreated(req.name() + "/");
  if (!r.ok()) return r.status();
  if (r->kvs_size() == 0) return NoLeader();
  *resp->mutable_header() = r->header();
  *resp->mutable_kv() = r->kvs(0);
  return Status::Ok();
}

Status ResignOp(BlockingKv& kv, const v3electionpb::ResignRequest& req,
                v3electionpb::ResignResponse* resp) {
  if (!req.has_leader()) return MissingLeaderKey();
  auto r = kv.Txn(ResignTxn(req.leader()));
  if (!r.ok()) return r.status();
  *resp->mutable_header() = r->header();
  return Status::Ok();
}

}  // namespace rusd::frontend
