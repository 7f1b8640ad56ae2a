// One etcd write txn per command. Each request is etcd's storeTxnWrite: its writes share
// main revision current+1 with sub-revisions 0,1,2..., and the revision advances only if
// it changed something. Reads go through the pending batch (BatchView), so later requests
// of a batch see earlier ones, as if etcd had applied them one by one.
#include "stored/mvcc/apply_command.h"

#include <algorithm>
#include <string_view>

#include "etcd/etcdserverpb/rpc.pb.h"
#include "etcd/mvccpb/kv.pb.h"
#include "rusd/internal.pb.h"
#include "rusd/lease.pb.h"
#include "stored/mvcc/kv_errors.h"
#include "stored/mvcc/lease_records.h"
#include "stored/mvcc/kv_range.h"
#include "stored/mvcc/request_validation.h"
#include "stored/mvcc/storage_format.h"
#include "stored/mvcc/txn_validation.h"

namespace rusd::stored {

void FillHeader(etcdserverpb::ResponseHeader* h, const KvStoreOptions& o, uint64_t term) {
  h->set_cluster_id(o.cluster_id);
  h->set_member_id(o.member_id);
  h->set_raft_term(term);
}

Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return Status::Ok();
  return Status::IoError("mvcc: " + std::string(what) + ": " + s.ToString());
}


namespace {

// etcd's storeTxnWrite: the writes of one request at main revision begin+1.
class WriteTxn {
 public:
  explicit WriteTxn(ApplyState& state) : s_(state), begin_(state.revision) {}

  int64_t begin_revision() const { return begin_; }
  // The revision reads inside the request see (etcd: beginRev, +1 once it wrote).
  int64_t read_revision() const { return begin_ + (changes_ > 0 ? 1 : 0); }
  int64_t changes() const { return changes_; }
  RevisionBounds bounds() const { return {read_revision(), s_.compacted}; }
  StoreView& view() { return s_.view; }

  // The current KeyValue of `key` as the request sees it; false if absent.
  // The record cache first (it holds what the view would return); a record read from
  // the view is cached.
  Result<bool> GetCurrent(const std::string& key, mvccpb::KeyValue* kv) {
    if (const std::string* cached = s_.records->Find(key); cached != nullptr) {
      if (!ParseKeyValue(key, *cached, kv)) return Status::Internal("mvcc: malformed kv record");
      return true;
    }
    std::string& bytes = s_.read_buffer;
    rocksdb::Status st = s_.view.Get(s_.families.kv, key, &bytes);
    if (st.IsNotFound()) return false;
    RUSD_RETURN_IF_ERROR(FromRocks(st, "get"));
    if (!ParseKeyValue(key, bytes, kv)) return Status::Internal("mvcc: malformed kv record");
    s_.records->Put(key, bytes);
    return true;
  }

  Status Put(const std::string& key, const std::string& value, int64_t lease) {
    const int64_t rev = begin_ + 1;
    mvccpb::KeyValue prev;
    auto found = GetCurrent(key, &prev);
    if (!found.ok()) return found.status();
    mvccpb::KeyValue kv;  // stored without its key
    kv.set_create_revision(*found ? prev.create_revision() : rev);
    kv.set_mod_revision(rev);
    kv.set_version(*found ? prev.version() + 1 : 1);
    kv.set_lease(lease);
    kv.set_value(value);
    // Serialized once, behind the history record's mark: the kv record is the same bytes
    // without it (one allocation and copy of the value fewer per put).
    std::string& history_value = s_.history_value;
    history_value.assign(1, format::kPutMark);
    kv.AppendToString(&history_value);
    const rocksdb::Slice bytes(history_value.data() + 1, history_value.size() - 1);
    RUSD_RETURN_IF_ERROR(FromRocks(s_.PutKv(key, bytes), "batch"));
    if (!*found) RUSD_RETURN_IF_ERROR(FromRocks(s_.batch.Put(s_.families.keys, key, ""), "batch"));
    // The key moves between leases (etcd's Detach of the old lease, Attach to the new).
    const int64_t old_lease = *found ? prev.lease() : 0;
    if (old_lease != lease) {
      if (old_lease != 0) {
        RUSD_RETURN_IF_ERROR(FromRocks(
            s_.batch.Delete(s_.families.meta, lease_records::AttachmentKey(old_lease, key)), "batch"));
      }
      if (lease != 0) {
        RUSD_RETURN_IF_ERROR(FromRocks(
            s_.batch.Put(s_.families.meta, lease_records::AttachmentKey(lease, key), ""), "batch"));
      }
    }
    RUSD_RETURN_IF_ERROR(FromRocks(
        s_.PutHistory(format::HistoryKeyInto(&s_.history_key, key, rev, changes_), history_value),
        "batch"));
    RUSD_RETURN_IF_ERROR(FromRocks(
        s_.PutRevlog(format::EncodeRevisionBytes(rev, changes_), format::kPutMark, key),
        "batch"));
    ++changes_;
    mvccpb::Event& ev = s_.events->emplace_back();
    ev.set_type(mvccpb::Event::PUT);
    *ev.mutable_kv() = std::move(kv);
    ev.mutable_kv()->set_key(key);
    if (*found) *ev.mutable_prev_kv() = std::move(prev);
    return Status::Ok();
  }

  // Every live key of the span, as the request currently sees it.
  Status Collect(const KeySpan& span, std::vector<mvccpb::KeyValue>* out) {
    bool bad = false;
    RUSD_RETURN_IF_ERROR(ForEachLiveKey(s_.view, span, read_revision(), /*at_current=*/true,
                                        [&](std::string_view key, std::string_view bytes) {
                                          out->emplace_back();
                                          bad = !ParseKeyValue(key, bytes, &out->back());
                                          return !bad;
                                        }));
    if (bad) return Status::Internal("mvcc: malformed kv record");
    return Status::Ok();
  }

  // Deletes every live key of the span; returns how many.
  Result<int64_t> DeleteRange(const KeySpan& span, std::vector<mvccpb::KeyValue>* prev_kvs) {
    std::vector<mvccpb::KeyValue> victims;
    RUSD_RETURN_IF_ERROR(Collect(span, &victims));
    const int64_t rev = begin_ + 1;
    for (auto& prev : victims) {
      const std::string& key = prev.key();
      RUSD_RETURN_IF_ERROR(FromRocks(s_.DeleteKv(key), "batch"));
      RUSD_RETURN_IF_ERROR(FromRocks(s_.batch.Delete(s_.families.keys, key), "batch"));
      if (prev.lease() != 0) {
        RUSD_RETURN_IF_ERROR(FromRocks(
            s_.batch.Delete(s_.families.meta, lease_records::AttachmentKey(prev.lease(), key)),
            "batch"));
      }
      RUSD_RETURN_IF_ERROR(
          FromRocks(s_.PutHistory(format::HistoryKeyInto(&s_.history_key, key, rev, changes_),
                                  rocksdb::Slice(&format::kTombstoneMark, 1)),
                    "batch"));
      RUSD_RETURN_IF_ERROR(FromRocks(
          s_.PutRevlog(format::EncodeRevisionBytes(rev, changes_), format::kTombstoneMark, key),
          "batch"));
      ++changes_;
      mvccpb::Event& ev = s_.events->emplace_back();
      ev.set_type(mvccpb::Event::DELETE);
      ev.mutable_kv()->set_key(key);
      ev.mutable_kv()->set_mod_revision(rev);
      if (prev_kvs != nullptr) prev_kvs->push_back(prev);
      *ev.mutable_prev_kv() = std::move(prev);
    }
    return static_cast<int64_t>(victims.size());
  }

  // Ends the request: the store's revision advances only if something changed.
  void Commit() {
    if (changes_ > 0) s_.revision = begin_ + 1;
  }

 private:
  ApplyState& s_;
  const int64_t begin_;
  int64_t changes_ = 0;
};

// ---- Txn (etcd 3.5 etcdserver/apply.go: compareToPath, checkRequests, applyTxn) ----

int CompareInt(int64_t a, int64_t b) { return a < b ? -1 : (a > b ? 1 : 0); }

bool CompareKv(const etcdserverpb::Compare& c, const mvccpb::KeyValue& kv) {
  using C = etcdserverpb::Compare;
  int result = 0;
  switch (c.target()) {
    case C::VALUE: {
      // A missing target value compares as the empty string.
      const std::string& want = c.target_union_case() == C::kValue ? c.value() : std::string();
      int cmp = kv.value().compare(want);
      result = cmp < 0 ? -1 : (cmp > 0 ? 1 : 0);
      break;
    }
    case C::CREATE:
      result = CompareInt(kv.create_revision(),
                          c.target_union_case() == C::kCreateRevision ? c.create_revision() : 0);
      break;
    case C::MOD:
      result = CompareInt(kv.mod_revision(),
                          c.target_union_case() == C::kModRevision ? c.mod_revision() : 0);
      break;
    case C::VERSION:
      result = CompareInt(kv.version(), c.target_union_case() == C::kVersion ? c.version() : 0);
      break;
    case C::LEASE:
      result = CompareInt(kv.lease(), c.target_union_case() == C::kLease ? c.lease() : 0);
      break;
    default:
      break;
  }
  switch (c.result()) {
    case C::EQUAL:
      return result == 0;
    case C::NOT_EQUAL:
      return result != 0;
    case C::GREATER:
      return result > 0;
    case C::LESS:
      return result < 0;
    default:
      return true;
  }
}

Result<bool> ApplyCompare(WriteTxn& txn, const etcdserverpb::Compare& c) {
  std::vector<mvccpb::KeyValue> kvs;
  RUSD_RETURN_IF_ERROR(txn.Collect(KeySpan::FromRequest(c.key(), c.range_end()), &kvs));
  if (kvs.empty()) {
    // etcd: comparing the value of a missing key always fails; other targets compare
    // against a zero KeyValue.
    if (c.target() == etcdserverpb::Compare::VALUE) return false;
    return CompareKv(c, mvccpb::KeyValue());
  }
  for (const auto& kv : kvs) {
    if (!CompareKv(c, kv)) return false;
  }
  return true;
}

using Ops = google::protobuf::RepeatedPtrField<etcdserverpb::RequestOp>;

// etcd's lessor.Lookup check before a put attaches a key: "requested lease not found".
Status CheckLeaseExists(StoreView& view, int64_t lease) {
  if (lease == 0) return Status::Ok();
  internal::LeaseRecord record;
  auto found = lease_records::Get(view, lease, &record);
  if (!found.ok()) return found.status();
  if (!*found) return kv_errors::LeaseNotFound();
  return Status::Ok();
}

// etcd's compareToPath: the branch taken by this txn and (pre-order) by each nested txn on
// the taken branch; all compares see the state before the txn writes.
Status ComputePath(WriteTxn& txn, const etcdserverpb::TxnRequest& t, std::vector<bool>* path) {
  bool ok = true;
  for (const auto& c : t.compare()) {
    auto r = ApplyCompare(txn, c);
    if (!r.ok()) return r.status();
    if (!*r) {
      ok = false;
      break;
    }
  }
  path->push_back(ok);
  for (const auto& op : ok ? t.success() : t.failure()) {
    if (op.request_case() == etcdserverpb::RequestOp::kRequestTxn) {
      RUSD_RETURN_IF_ERROR(ComputePath(txn, op.request_txn(), path));
    }
  }
  return Status::Ok();
}

// etcd's checkRequests with checkRequestPut and checkRequestRange, before any write.
Status CheckTxnOps(WriteTxn& txn, const etcdserverpb::TxnRequest& t, const std::vector<bool>& path,
                   size_t* pos) {
  const bool branch = path[(*pos)++];
  for (const auto& op : branch ? t.success() : t.failure()) {
    switch (op.request_case()) {
      case etcdserverpb::RequestOp::kRequestTxn:
        RUSD_RETURN_IF_ERROR(CheckTxnOps(txn, op.request_txn(), path, pos));
        break;
      case etcdserverpb::RequestOp::kRequestPut: {
        const auto& p = op.request_put();
        if (p.ignore_value() || p.ignore_lease()) {
          mvccpb::KeyValue kv;
          auto found = txn.GetCurrent(p.key(), &kv);
          if (!found.ok()) return found.status();
          if (!*found) return kv_errors::KeyNotFound();
        }
        RUSD_RETURN_IF_ERROR(CheckLeaseExists(txn.view(), p.lease()));
        break;
      }
      case etcdserverpb::RequestOp::kRequestRange: {
        const int64_t rev = op.request_range().revision();
        if (rev == 0) break;
        if (rev > txn.begin_revision()) return kv_errors::FutureRevision();
        if (rev < txn.bounds().compacted) return kv_errors::Compacted();
        break;
      }
      default:
        break;
    }
  }
  return Status::Ok();
}

Status ApplyPutOp(WriteTxn& txn, const etcdserverpb::PutRequest& p, etcdserverpb::PutResponse* resp) {
  // The request's own value unless ignore_value keeps the current one (no copy per put).
  const std::string* value = &p.value();
  std::string kept_value;
  int64_t lease = p.lease();
  if (p.ignore_value() || p.ignore_lease() || p.prev_kv()) {
    mvccpb::KeyValue prev;
    auto found = txn.GetCurrent(p.key(), &prev);
    if (!found.ok()) return found.status();
    if ((p.ignore_value() || p.ignore_lease()) && !*found) return kv_errors::KeyNotFound();
    if (p.ignore_value()) {
      kept_value = prev.value();
      value = &kept_value;
    }
    if (p.ignore_lease()) lease = prev.lease();
    if (p.prev_kv() && *found) *resp->mutable_prev_kv() = std::move(prev);
  }
  RUSD_RETURN_IF_ERROR(txn.Put(p.key(), *value, lease));
  resp->mutable_header()->set_revision(txn.begin_revision() + 1);
  return Status::Ok();
}

Status ApplyDeleteOp(WriteTxn& txn, const etcdserverpb::DeleteRangeRequest& d,
                     etcdserverpb::DeleteRangeResponse* resp) {
  std::vector<mvccpb::KeyValue> prev;
  auto deleted = txn.DeleteRange(KeySpan::FromRequest(d.key(), d.range_end()),
                                 d.prev_kv() ? &prev : nullptr);
  if (!deleted.ok()) return deleted.status();
  resp->set_deleted(*deleted);
  for (auto& kv : prev) *resp->add_prev_kvs() = std::move(kv);
  // etcd: the revision of the write if the txn changed anything so far, else the old one.
  resp->mutable_header()->set_revision(txn.changes() > 0 ? txn.begin_revision() + 1
                                                         : txn.begin_revision());
  return Status::Ok();
}

Status ExecuteTxnOps(WriteTxn& txn, const etcdserverpb::TxnRequest& t, const std::vector<bool>& path,
                     size_t* pos, etcdserverpb::TxnResponse* resp) {
  const bool branch = path[(*pos)++];
  resp->set_succeeded(branch);
  resp->mutable_header();  // etcd leaves nested txn headers empty but present
  for (const auto& op : branch ? t.success() : t.failure()) {
    etcdserverpb::ResponseOp* out = resp->add_responses();
    switch (op.request_case()) {
      case etcdserverpb::RequestOp::kRequestRange:
        RUSD_RETURN_IF_ERROR(
            ExecuteRange(txn.view(), op.request_range(), txn.bounds(), out->mutable_response_range()));
        break;
      case etcdserverpb::RequestOp::kRequestPut:
        RUSD_RETURN_IF_ERROR(ApplyPutOp(txn, op.request_put(), out->mutable_response_put()));
        break;
      case etcdserverpb::RequestOp::kRequestDeleteRange:
        RUSD_RETURN_IF_ERROR(
            ApplyDeleteOp(txn, op.request_delete_range(), out->mutable_response_delete_range()));
        break;
      case etcdserverpb::RequestOp::kRequestTxn:
        RUSD_RETURN_IF_ERROR(
            ExecuteTxnOps(txn, op.request_txn(), path, pos, out->mutable_response_txn()));
        break;
      default:
        break;  // etcd: an empty op yields an empty ResponseOp
    }
  }
  return Status::Ok();
}

// ---- Leases (etcd 3.5 lease/lessor.go Grant, Revoke, Checkpoint) ----

// etcd's MaxLeaseTTL.
constexpr int64_t kMaxLeaseTtl = 9000000000;

Result<std::string> ApplyLeaseGrant(ApplyState& state, const etcdserverpb::LeaseGrantRequest& r,
                                    const KvStoreOptions& options, uint64_t term) {
  // The frontend always picks an ID; 0 reaching here is etcd's "lease not found" from Grant.
  if (r.id() == 0) return kv_errors::LeaseNotFound();
  if (r.ttl() > kMaxLeaseTtl) return kv_errors::LeaseTtlTooLarge();
  internal::LeaseRecord record;
  auto found = lease_records::Get(state.view, r.id(), &record);
  if (!found.ok()) return found.status();
  if (*found) return kv_errors::LeaseExists();
  record.set_id(r.id());
  record.set_ttl(std::max(r.ttl(), state.min_lease_ttl));
  RUSD_RETURN_IF_ERROR(FromRocks(state.batch.Put(state.families.meta,
                                                 lease_records::LeaseKey(r.id()),
                                                 record.SerializeAsString()),
                                 "batch"));
  state.lease_changes->push_back(
      LeaseChange{LeaseChange::Kind::kGranted, record.id(), record.ttl(), 0});
  etcdserverpb::LeaseGrantResponse resp;
  resp.set_id(record.id());
  resp.set_ttl(record.ttl());
  resp.mutable_header()->set_revision(state.revision);
  FillHeader(resp.mutable_header(), options, term);
  return resp.SerializeAsString();
}

// Deletes every attached key in ONE revision (etcd: one txn, keys sorted), then the lease.
Result<std::string> ApplyLeaseRevoke(ApplyState& state, const etcdserverpb::LeaseRevokeRequest& r,
                                     const KvStoreOptions& options, uint64_t term) {
  internal::LeaseRecord record;
  auto found = lease_records::Get(state.view, r.id(), &record);
  if (!found.ok()) return found.status();
  if (!*found) return kv_errors::LeaseNotFound();
  std::vector<std::string> keys;
  RUSD_RETURN_IF_ERROR(lease_records::AttachedKeys(state.view, r.id(), &keys));
  WriteTxn txn(state);
  for (const std::string& key : keys) {
    auto deleted = txn.DeleteRange(KeySpan::FromRequest(key, ""), nullptr);
    if (!deleted.ok()) return deleted.status();
    if (*deleted == 0) {
      // An attachment without its key (cannot happen unless the store was damaged): drop it.
      RUSD_RETURN_IF_ERROR(FromRocks(
          state.batch.Delete(state.families.meta, lease_records::AttachmentKey(r.id(), key)),
          "batch"));
    }
  }
  txn.Commit();
  RUSD_RETURN_IF_ERROR(
      FromRocks(state.batch.Delete(state.families.meta, lease_records::LeaseKey(r.id())), "batch"));
  state.lease_changes->push_back(LeaseChange{LeaseChange::Kind::kRevoked, r.id(), 0, 0});
  etcdserverpb::LeaseRevokeResponse resp;
  resp.mutable_header()->set_revision(state.revision);
  FillHeader(resp.mutable_header(), options, term);
  return resp.SerializeAsString();
}

// Records each lease's remaining TTL (persisted, as etcd 3.6 does), so a new leader does
// not restart a long lease from its full TTL. Unknown leases are skipped, as etcd does.
Result<std::string> ApplyLeaseCheckpoint(ApplyState& state,
                                         const etcdserverpb::LeaseCheckpointRequest& r,
                                         const KvStoreOptions& options, uint64_t term) {
  for (const auto& cp : r.checkpoints()) {
    internal::LeaseRecord record;
    auto found = lease_records::Get(state.view, cp.id(), &record);
    if (!found.ok()) return found.status();
    if (!*found) continue;
    record.set_remaining_ttl(cp.remaining_ttl());
    RUSD_RETURN_IF_ERROR(FromRocks(state.batch.Put(state.families.meta,
                                                   lease_records::LeaseKey(cp.id()),
                                                   record.SerializeAsString()),
                                   "batch"));
    state.lease_changes->push_back(
        LeaseChange{LeaseChange::Kind::kCheckpointed, cp.id(), record.ttl(), cp.remaining_ttl()});
  }
  etcdserverpb::LeaseCheckpointResponse resp;
  resp.mutable_header()->set_revision(state.revision);
  FillHeader(resp.mutable_header(), options, term);
  return resp.SerializeAsString();
}

}  // namespace

// Applies one command inside `state`; on success returns the serialized response.
// Request errors (etcd's InvalidArgument/OutOfRange...) leave partial writes in the batch:
// the caller rolls back to its save point.
Result<std::string> ApplyCommand(ApplyState& state, const internal::Command& cmd,
                                 const KvStoreOptions& options, uint64_t term) {
  switch (cmd.op_case()) {
    case internal::Command::kPut: {
      // etcd checks these at its API layer; repeated here so the store never applies an
      // invalid Put that bypassed the frontend.
      RUSD_RETURN_IF_ERROR(ValidatePutRequest(cmd.put()));
      // etcd checks the lease before the ignore_* checks for a plain put.
      RUSD_RETURN_IF_ERROR(CheckLeaseExists(state.view, cmd.put().lease()));
      WriteTxn txn(state);
      etcdserverpb::PutResponse resp;
      RUSD_RETURN_IF_ERROR(ApplyPutOp(txn, cmd.put(), &resp));
      txn.Commit();
      FillHeader(resp.mutable_header(), options, term);
      return resp.SerializeAsString();
    }
    case internal::Command::kDeleteRange: {
      RUSD_RETURN_IF_ERROR(ValidateDeleteRangeRequest(cmd.delete_range()));
      WriteTxn txn(state);
      etcdserverpb::DeleteRangeResponse resp;
      RUSD_RETURN_IF_ERROR(ApplyDeleteOp(txn, cmd.delete_range(), &resp));
      txn.Commit();
      FillHeader(resp.mutable_header(), options, term);
      return resp.SerializeAsString();
    }
    case internal::Command::kTxn: {
      const auto& t = cmd.txn();
      RUSD_RETURN_IF_ERROR(ValidateTxnRequest(t));
      WriteTxn txn(state);
      std::vector<bool> path;
      RUSD_RETURN_IF_ERROR(ComputePath(txn, t, &path));
      size_t pos = 0;
      RUSD_RETURN_IF_ERROR(CheckTxnOps(txn, t, path, &pos));
      etcdserverpb::TxnResponse resp;
      pos = 0;
      RUSD_RETURN_IF_ERROR(ExecuteTxnOps(txn, t, path, &pos, &resp));
      resp.mutable_header()->set_revision(txn.read_revision());
      txn.Commit();
      FillHeader(resp.mutable_header(), options, term);
      return resp.SerializeAsString();
    }
    case internal::Command::kCompaction: {
      // etcd's updateCompactRev: at or below the last compaction first, then the future.
      const int64_t rev = cmd.compaction().revision();
      if (rev <= state.compacted) return kv_errors::Compacted();
      if (rev > state.revision) return kv_errors::FutureRevision();
      state.compacted = rev;
      state.compaction_scheduled = true;
      RUSD_RETURN_IF_ERROR(FromRocks(
          state.batch.Put(state.families.meta, format::kMetaCompactRevision,
                          format::EncodeU64(static_cast<uint64_t>(rev))),
          "batch"));
      etcdserverpb::CompactionResponse resp;
      resp.mutable_header()->set_revision(state.revision);
      FillHeader(resp.mutable_header(), options, term);
      return resp.SerializeAsString();
    }
    case internal::Command::kLeaseGrant:
      return ApplyLeaseGrant(state, cmd.lease_grant(), options, term);
    case internal::Command::kLeaseRevoke:
      return ApplyLeaseRevoke(state, cmd.lease_revoke(), options, term);
    case internal::Command::kLeaseCheckpoint:
      return ApplyLeaseCheckpoint(state, cmd.lease_checkpoint(), options, term);
    default:
      return Status::InvalidArgument("mvcc: command without an operation");
  }
}

}  // namespace rusd::stored
