// KvStore on RocksDB. Layout: storage_format.h. Range semantics: kv_range.cc.
//
// Applying: one ApplyEntries call builds one WriteBatchWithIndex; every request reads
// through it (BatchView), so later requests of the batch see earlier ones, exactly as if
// etcd had applied them one by one. Each request is one etcd "write txn": its writes share
// main revision current+1 with sub-revisions 0,1,2..., and the revision advances only if
// it changed something. A request that fails is rolled back to a save point.
//
// Publishing: db->Write and the update of the in-memory revisions happen under
// publish_mu_, and readers take their snapshot together with the revisions under the same
// mutex, so a reader never sees data newer than the header revision it reports.

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <thread>
#include <filesystem>
#include <mutex>
#include <vector>

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/experimental.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/table_properties_collectors.h>
#include <rocksdb/utilities/write_batch_with_index.h>
#include <rocksdb/write_buffer_manager.h>
#include <spdlog/spdlog.h>

#include "etcd/etcdserverpb/rpc.pb.h"
#include "etcd/mvccpb/kv.pb.h"
#include "rusd/internal.pb.h"
#include "stored/mvcc/kv_errors.h"
#include "stored/mvcc/kv_range.h"
#include "stored/mvcc/kv_store.h"
#include "stored/mvcc/request_validation.h"
#include "stored/mvcc/storage_format.h"
#include "stored/mvcc/store_view.h"
#include "stored/mvcc/txn_validation.h"

namespace rusd::stored {

namespace {

Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return Status::Ok();
  return Status::IoError("mvcc: " + std::string(what) + ": " + s.ToString());
}

std::string WithMark(char mark, std::string_view body) {
  std::string out;
  out.reserve(body.size() + 1);
  out.push_back(mark);
  out.append(body);
  return out;
}

// The mutable state of one ApplyEntries call.
struct ApplyState {
  ApplyState(rocksdb::DB* db, const Families& families)
      : batch(rocksdb::BytewiseComparator(), 0, /*overwrite_key=*/true),
        view(db, &batch, families),
        families(families) {}

  rocksdb::WriteBatchWithIndex batch;
  BatchView view;
  Families families;
  int64_t revision = 1;
  int64_t compacted = -1;
  bool compaction_scheduled = false;
  std::vector<mvccpb::Event>* events = nullptr;
};

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
  Result<bool> GetCurrent(const std::string& key, mvccpb::KeyValue* kv) {
    std::string bytes;
    rocksdb::Status st = s_.view.Get(s_.families.kv, key, &bytes);
    if (st.IsNotFound()) return false;
    RUSD_RETURN_IF_ERROR(FromRocks(st, "get"));
    if (!ParseKeyValue(key, bytes, kv)) return Status::Internal("mvcc: malformed kv record");
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
    const std::string bytes = kv.SerializeAsString();
    RUSD_RETURN_IF_ERROR(FromRocks(s_.batch.Put(s_.families.kv, key, bytes), "batch"));
    if (!*found) RUSD_RETURN_IF_ERROR(FromRocks(s_.batch.Put(s_.families.keys, key, ""), "batch"));
    RUSD_RETURN_IF_ERROR(FromRocks(s_.batch.Put(s_.families.history,
                                                format::HistoryKey(key, rev, changes_),
                                                WithMark(format::kPutMark, bytes)),
                                   "batch"));
    RUSD_RETURN_IF_ERROR(FromRocks(s_.batch.Put(s_.families.revlog,
                                                format::EncodeRevision(rev, changes_),
                                                WithMark(format::kPutMark, key)),
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
      RUSD_RETURN_IF_ERROR(FromRocks(s_.batch.Delete(s_.families.kv, key), "batch"));
      RUSD_RETURN_IF_ERROR(FromRocks(s_.batch.Delete(s_.families.keys, key), "batch"));
      RUSD_RETURN_IF_ERROR(FromRocks(
          s_.batch.Put(s_.families.history, format::HistoryKey(key, rev, changes_),
                       std::string(1, format::kTombstoneMark)),
          "batch"));
      RUSD_RETURN_IF_ERROR(FromRocks(s_.batch.Put(s_.families.revlog,
                                                  format::EncodeRevision(rev, changes_),
                                                  WithMark(format::kTombstoneMark, key)),
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
  std::string value = p.value();
  int64_t lease = p.lease();
  if (p.ignore_value() || p.ignore_lease() || p.prev_kv()) {
    mvccpb::KeyValue prev;
    auto found = txn.GetCurrent(p.key(), &prev);
    if (!found.ok()) return found.status();
    if ((p.ignore_value() || p.ignore_lease()) && !*found) return kv_errors::KeyNotFound();
    if (p.ignore_value()) value = prev.value();
    if (p.ignore_lease()) lease = prev.lease();
    if (p.prev_kv() && *found) *resp->mutable_prev_kv() = std::move(prev);
  }
  RUSD_RETURN_IF_ERROR(txn.Put(p.key(), value, lease));
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

void FillHeader(etcdserverpb::ResponseHeader* h, const KvStoreOptions& o, uint64_t term) {
  h->set_cluster_id(o.cluster_id);
  h->set_member_id(o.member_id);
  h->set_raft_term(term);
}

bool IsInternal(const Status& s) {
  return s.code() == StatusCode::kInternal || s.code() == StatusCode::kDataLoss;
}

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
    default:
      return Status::InvalidArgument("mvcc: command without an operation");
  }
}

class RocksKvStore final : public KvStore {
 public:
  explicit RocksKvStore(const KvStoreOptions& options) : options_(options) {}

  ~RocksKvStore() override {
    if (db_ == nullptr) return;
    // The purger finishes the compaction it was given (it is resumable, but a clean stop
    // leaves nothing for the next start to do).
    {
      std::lock_guard<std::mutex> lock(purge_mu_);
      purge_stop_ = true;
    }
    purge_cv_.notify_all();
    if (purger_.joinable()) purger_.join();
    // Flushing at shutdown keeps the next start from replaying a large WAL.
    rocksdb::FlushOptions fo;
    fo.wait = true;
    std::vector<rocksdb::ColumnFamilyHandle*> cfs = {fam_.kv, fam_.history, fam_.revlog, fam_.meta,
                                                     fam_.keys};
    rocksdb::Status s = db_->Flush(fo, cfs);
    if (!s.ok()) spdlog::warn("mvcc: flush at close failed: {}", s.ToString());
    for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
    handles_.clear();
    s = db_->Close();
    if (!s.ok()) spdlog::warn("mvcc: close failed: {}", s.ToString());
  }

  Status OpenDb(const std::string& dir);

  Result<ApplyOutput> ApplyEntries(std::span<const internal::Entry> entries) override;
  Result<std::string> Range(const etcdserverpb::RangeRequest& request) override;
  Result<uint64_t> SyncWal() override;

  uint64_t applied_index() const override { return applied_index_.load(std::memory_order_acquire); }
  int64_t current_revision() const override { return current_rev_.load(std::memory_order_acquire); }
  int64_t compact_revision() const override { return compact_rev_.load(std::memory_order_acquire); }
  uint64_t raft_term() const override { return raft_term_.load(std::memory_order_acquire); }
  uint64_t ApproximateSizeBytes() const override;

 private:
  Result<uint64_t> ReadMeta(const char* name, uint64_t absent);
  Status PurgeCompactedHistory(int64_t target);
  void RequestPurge(int64_t target);
  void PurgeLoop();

  KvStoreOptions options_;
  std::shared_ptr<rocksdb::Cache> cache_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  Families fam_;

  // Pairs a reader's snapshot with the revisions it reports (see top of file).
  std::mutex publish_mu_;
  std::atomic<uint64_t> applied_index_{0};
  std::atomic<int64_t> current_rev_{1};
  std::atomic<int64_t> compact_rev_{-1};
  std::atomic<uint64_t> raft_term_{0};
  // History is purged on its own thread so a large compaction never stalls applying. Safe
  // beside the apply thread and readers: it deletes, in revision order, only versions no
  // read at or above the compact revision can reach (and readers use snapshots).
  std::mutex purge_mu_;
  std::condition_variable purge_cv_;
  int64_t purge_target_ = -1;  // guarded by purge_mu_
  bool purge_stop_ = false;    // guarded by purge_mu_
  std::thread purger_;
  // Purger thread only (Open before it starts): history is purged up to here.
  int64_t finished_compact_ = -1;
};

rocksdb::ColumnFamilyOptions FamilyOptions(const std::shared_ptr<rocksdb::Cache>& cache,
                                           size_t write_buffer, size_t block_size, bool bloom) {
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  table.block_size = block_size;
  table.cache_index_and_filter_blocks = true;  // bounded memory: index/filters live in the cache
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  table.format_version = 5;
  if (bloom) {
    table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    table.optimize_filters_for_memory = true;
  }
  rocksdb::ColumnFamilyOptions cf;
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  cf.write_buffer_size = write_buffer;
  cf.max_write_buffer_number = 2;
  cf.level_compaction_dynamic_level_bytes = true;
  cf.compression = rocksdb::kLZ4Compression;
  cf.max_bytes_for_level_base = 64ull << 20;
  cf.target_file_size_base = 16ull << 20;
  return cf;
}

Status RocksKvStore::OpenDb(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::IoError("mvcc: create " + dir + ": " + ec.message());

  const uint64_t budget = std::max<uint64_t>(options_.block_cache_bytes, 8ull << 20);
  cache_ = rocksdb::NewLRUCache(budget);

  rocksdb::DBOptions db;
  db.create_if_missing = true;
  db.create_missing_column_families = true;
  db.max_background_jobs = std::max(2, options_.background_threads + 1);
  db.max_subcompactions = 1;
  db.max_open_files = 512;
  db.keep_log_file_num = 2;
  db.max_log_file_size = 4ull << 20;
  db.info_log_level = rocksdb::WARN_LEVEL;
  // Memtables are charged to the same budget as the block cache.
  db.write_buffer_manager = std::make_shared<rocksdb::WriteBufferManager>(budget / 2, cache_);
  // Bounds the WAL (and so restart replay time): old WAL forces flushes of idle families.
  db.max_total_wal_size = 32ull << 20;
  db.bytes_per_sync = 1ull << 20;

  const size_t wb = std::max<size_t>(budget / 8, 2ull << 20);
  auto kv = FamilyOptions(cache_, wb, 4096, /*bloom=*/true);
  kv.optimize_filters_for_hits = false;
  auto history = FamilyOptions(cache_, wb, 16384, false);
  // Compaction leaves runs of deletes in history: compact files dense with them.
  history.table_properties_collector_factories.push_back(
      rocksdb::NewCompactOnDeletionCollectorFactory(1024, 256, 0.25));
  auto revlog = FamilyOptions(cache_, wb / 2, 16384, false);
  auto meta = FamilyOptions(cache_, 1ull << 20, 4096, false);
  auto keys = FamilyOptions(cache_, wb / 4, 4096, false);

  std::vector<rocksdb::ColumnFamilyDescriptor> descs = {
      {rocksdb::kDefaultColumnFamilyName, meta},
      {format::kKvFamily, kv},
      {format::kHistoryFamily, history},
      {format::kRevlogFamily, revlog},
      {format::kMetaFamily, meta},
      {format::kKeysFamily, keys},
  };
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db, dir, descs, &handles_, &raw);
  if (!s.ok()) return FromRocks(s, "open " + dir);
  db_.reset(raw);
  fam_ = {handles_[1], handles_[2], handles_[3], handles_[4], handles_[5]};

  auto version = ReadMeta(format::kMetaFormatVersion, 0);
  if (!version.ok()) return version.status();
  if (*version == 0) {
    rocksdb::WriteBatch wb0;
    wb0.Put(fam_.meta, format::kMetaFormatVersion, format::EncodeU64(format::kFormatVersion));
    wb0.Put(fam_.meta, format::kMetaCurrentRevision, format::EncodeU64(1));
    RUSD_RETURN_IF_ERROR(FromRocks(db_->Write(rocksdb::WriteOptions(), &wb0), "init"));
  } else if (*version != format::kFormatVersion) {
    return Status::FailedPrecondition("mvcc: unsupported store format " + std::to_string(*version));
  }
  auto applied = ReadMeta(format::kMetaAppliedIndex, 0);
  auto term = ReadMeta(format::kMetaRaftTerm, 0);
  auto rev = ReadMeta(format::kMetaCurrentRevision, 1);
  // Absent: never compacted (etcd's compactMainRev -1).
  auto compact = ReadMeta(format::kMetaCompactRevision, UINT64_MAX);
  auto finished = ReadMeta(format::kMetaFinishedCompactRevision, UINT64_MAX);
  for (const auto* r : {&applied, &term, &rev, &compact, &finished}) {
    if (!r->ok()) return r->status();
  }
  applied_index_ = *applied;
  raft_term_ = *term;
  current_rev_ = static_cast<int64_t>(*rev);
  compact_rev_ = *compact == UINT64_MAX ? -1 : static_cast<int64_t>(*compact);
  finished_compact_ = *finished == UINT64_MAX ? -1 : static_cast<int64_t>(*finished);
  purger_ = std::thread([this] { PurgeLoop(); });
  // A compaction recorded before the last stop may not have finished its purge.
  if (finished_compact_ < compact_rev_) RequestPurge(compact_rev_);
  spdlog::info("mvcc: opened {} (applied index {}, revision {}, compacted {})", dir,
               applied_index(), current_revision(), compact_revision());
  return Status::Ok();
}

Result<uint64_t> RocksKvStore::ReadMeta(const char* name, uint64_t absent) {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), fam_.meta, name, &value);
  if (s.IsNotFound()) return absent;
  RUSD_RETURN_IF_ERROR(FromRocks(s, "read meta"));
  uint64_t v = 0;
  if (!format::DecodeU64(value, &v)) return Status::DataLoss(std::string("mvcc: bad meta ") + name);
  return v;
}

Result<ApplyOutput> RocksKvStore::ApplyEntries(std::span<const internal::Entry> entries) {
  ApplyOutput out;
  uint64_t applied = applied_index();
  uint64_t term = raft_term();
  ApplyState state(db_.get(), fam_);
  state.revision = current_revision();
  state.compacted = compact_revision();
  state.events = &out.events;
  bool any = false;

  for (const auto& entry : entries) {
    if (entry.index() <= applied) continue;  // raftd re-sent it after a restart
    any = true;
    applied = entry.index();
    term = entry.term();
    if (entry.type() != internal::Entry::NORMAL) continue;
    internal::Command cmd;
    if (!cmd.ParseFromString(entry.data())) {
      // Nobody can be answered without a request id, and re-applying cannot help.
      spdlog::error("mvcc: entry {} holds no valid command; skipped", entry.index());
      continue;
    }
    state.batch.SetSavePoint();
    const size_t events_mark = out.events.size();
    const int64_t revision_mark = state.revision;
    const int64_t compacted_mark = state.compacted;
    const bool scheduled_mark = state.compaction_scheduled;
    auto result = ApplyCommand(state, cmd, options_, term);
    if (!result.ok()) {
      if (IsInternal(result.status())) return result.status();
      RUSD_RETURN_IF_ERROR(FromRocks(state.batch.RollbackToSavePoint(), "rollback"));
      out.events.resize(events_mark);
      state.revision = revision_mark;
      state.compacted = compacted_mark;
      state.compaction_scheduled = scheduled_mark;
    } else {
      RUSD_RETURN_IF_ERROR(FromRocks(state.batch.PopSavePoint(), "pop save point"));
    }
    // Only the member whose frontend waits gets a reply (0 = no waiter).
    if (cmd.request_id() == 0 ||
        (options_.member_id != 0 && cmd.origin_member_id() != options_.member_id)) {
      continue;
    }
    ApplyReply& reply = out.replies.emplace_back();
    reply.request_id = cmd.request_id();
    reply.origin_member_id = cmd.origin_member_id();
    if (result.ok()) {
      reply.response = std::move(result).value();
    } else {
      reply.ok = false;
      reply.error_code = static_cast<int>(result.status().code());
      reply.error_message = result.status().message();
    }
  }
  out.applied_index = applied;
  if (!any) return out;

  auto& b = state.batch;
  RUSD_RETURN_IF_ERROR(FromRocks(b.Put(fam_.meta, format::kMetaAppliedIndex, format::EncodeU64(applied)), "batch"));
  RUSD_RETURN_IF_ERROR(FromRocks(b.Put(fam_.meta, format::kMetaRaftTerm, format::EncodeU64(term)), "batch"));
  RUSD_RETURN_IF_ERROR(FromRocks(
      b.Put(fam_.meta, format::kMetaCurrentRevision, format::EncodeU64(static_cast<uint64_t>(state.revision))),
      "batch"));
  {
    std::lock_guard<std::mutex> lock(publish_mu_);
    rocksdb::WriteOptions wo;
    wo.sync = false;
    RUSD_RETURN_IF_ERROR(FromRocks(db_->Write(wo, b.GetWriteBatch()), "write"));
    applied_index_.store(applied, std::memory_order_release);
    raft_term_.store(term, std::memory_order_release);
    current_rev_.store(state.revision, std::memory_order_release);
    compact_rev_.store(state.compacted, std::memory_order_release);
  }
  if (state.compaction_scheduled) RequestPurge(state.compacted);
  return out;
}

void RocksKvStore::RequestPurge(int64_t target) {
  {
    std::lock_guard<std::mutex> lock(purge_mu_);
    purge_target_ = std::max(purge_target_, target);
  }
  purge_cv_.notify_all();
}

void RocksKvStore::PurgeLoop() {
  int64_t failed = -1;  // a target whose purge failed: retried only when a newer one comes
  for (;;) {
    int64_t target = -1;
    {
      std::unique_lock<std::mutex> lock(purge_mu_);
      purge_cv_.wait(lock, [&] {
        return purge_stop_ || (purge_target_ > finished_compact_ && purge_target_ > failed);
      });
      if (!(purge_target_ > finished_compact_ && purge_target_ > failed)) return;
      target = purge_target_;
    }
    Status st = PurgeCompactedHistory(target);
    if (!st.ok()) {
      spdlog::error("mvcc: purging history up to revision {} failed: {}", target, st.ToString());
      failed = target;
    }
  }
}

// Physically removes what compaction at `target` made unreachable: every version of a key
// superseded by a newer one at or below target, and a key's newest version at or below
// target if it is a tombstone. Walks the revlog from the last finished purge to target;
// resumable (finished_compact_revision is written last, deletes are idempotent).
Status RocksKvStore::PurgeCompactedHistory(int64_t target) {
  const int64_t prev_finished = finished_compact_;
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;
  std::unique_ptr<rocksdb::Iterator> rit(db_->NewIterator(ro, fam_.revlog));
  std::unique_ptr<rocksdb::Iterator> hit(db_->NewIterator(ro, fam_.history));
  rocksdb::WriteBatch wb;
  uint64_t purged = 0;
  std::string user_key;
  auto decode_main = [&](const rocksdb::Slice& k, int64_t* main) {
    int64_t sub = 0;
    return format::DecodeHistoryKey(std::string_view(k.data(), k.size()), &user_key, main, &sub);
  };
  for (rit->Seek(format::EncodeRevision(std::max<int64_t>(prev_finished + 1, 0), 0)); rit->Valid();
       rit->Next()) {
    int64_t main = 0;
    int64_t sub = 0;
    if (!format::DecodeRevision(std::string_view(rit->key().data(), rit->key().size()), &main, &sub)) {
      return Status::DataLoss("mvcc: malformed revlog key");
    }
    if (main > target) break;
    const rocksdb::Slice value = rit->value();
    if (value.empty()) return Status::DataLoss("mvcc: malformed revlog value");
    const bool tombstone = value[0] == format::kTombstoneMark;
    const std::string key(value.data() + 1, value.size() - 1);
    const std::string hk = format::HistoryKey(key, main, sub);
    const std::string prefix = format::HistoryKeyPrefix(key);

    hit->Seek(hk);
    if (!hit->Valid() || hit->key() != rocksdb::Slice(hk)) continue;  // purged before a crash
    hit->Next();
    int64_t next_main = 0;
    const bool superseded = hit->Valid() && hit->key().starts_with(prefix) &&
                            decode_main(hit->key(), &next_main) && next_main <= target;
    if (superseded || tombstone) {
      wb.Delete(fam_.history, hk);
      ++purged;
    }
    // The version an earlier compaction kept is superseded by this one.
    hit->Seek(hk);
    hit->Prev();
    int64_t prev_main = 0;
    if (hit->Valid() && hit->key().starts_with(prefix) && decode_main(hit->key(), &prev_main) &&
        prev_main <= prev_finished) {
      wb.Delete(fam_.history, hit->key());
      ++purged;
    }
    if (wb.Count() >= 4096) {
      RUSD_RETURN_IF_ERROR(FromRocks(db_->Write(rocksdb::WriteOptions(), &wb), "purge"));
      wb.Clear();
    }
  }
  RUSD_RETURN_IF_ERROR(FromRocks(rit->status(), "purge scan"));
  RUSD_RETURN_IF_ERROR(FromRocks(hit->status(), "purge scan"));
  const std::string begin = format::EncodeRevision(0, 0);
  const std::string end = format::EncodeRevision(target + 1, 0);
  wb.DeleteRange(fam_.revlog, begin, end);
  wb.Put(fam_.meta, format::kMetaFinishedCompactRevision, format::EncodeU64(static_cast<uint64_t>(target)));
  RUSD_RETURN_IF_ERROR(FromRocks(db_->Write(rocksdb::WriteOptions(), &wb), "purge"));
  finished_compact_ = target;
  // Let background compaction drop the revlog range soon (history files dense with deletes
  // are picked up by the deletion collector).
  rocksdb::Slice b(begin), e(end);
  rocksdb::Status s = rocksdb::experimental::SuggestCompactRange(db_.get(), fam_.revlog, &b, &e);
  if (!s.ok()) spdlog::warn("mvcc: suggest compact range: {}", s.ToString());
  spdlog::info("mvcc: compacted history at revision {} ({} versions removed)", target, purged);
  return Status::Ok();
}

Result<std::string> RocksKvStore::Range(const etcdserverpb::RangeRequest& request) {
  RUSD_RETURN_IF_ERROR(ValidateRangeRequest(request));
  RevisionBounds bounds;
  uint64_t term = 0;
  std::unique_ptr<SnapshotView> view;
  {
    std::lock_guard<std::mutex> lock(publish_mu_);
    view = std::make_unique<SnapshotView>(db_.get(), fam_);
    bounds.current = current_rev_.load(std::memory_order_relaxed);
    bounds.compacted = compact_rev_.load(std::memory_order_relaxed);
    term = raft_term_.load(std::memory_order_relaxed);
  }
  etcdserverpb::RangeResponse resp;
  RUSD_RETURN_IF_ERROR(ExecuteRange(*view, request, bounds, &resp));
  FillHeader(resp.mutable_header(), options_, term);
  return resp.SerializeAsString();
}

Result<uint64_t> RocksKvStore::SyncWal() {
  const uint64_t covered = applied_index();
  RUSD_RETURN_IF_ERROR(FromRocks(db_->FlushWAL(/*sync=*/true), "sync wal"));
  return covered;
}

uint64_t RocksKvStore::ApproximateSizeBytes() const {
  uint64_t total = 0;
  for (auto* cf : {fam_.kv, fam_.history, fam_.revlog, fam_.meta, fam_.keys}) {
    uint64_t v = 0;
    if (db_->GetIntProperty(cf, rocksdb::DB::Properties::kTotalSstFilesSize, &v)) total += v;
    if (db_->GetIntProperty(cf, rocksdb::DB::Properties::kSizeAllMemTables, &v)) total += v;
  }
  return total;
}

}  // namespace

Result<std::unique_ptr<KvStore>> KvStore::Open(const std::string& dir, const KvStoreOptions& options) {
  auto store = std::make_unique<RocksKvStore>(options);
  RUSD_RETURN_IF_ERROR(store->OpenDb(dir));
  return std::unique_ptr<KvStore>(std::move(store));
}

}  // namespace rusd::stored
