// KvStore on RocksDB. Layout: storage_format.h. Range semantics: kv_range.cc.
//
// Applying: one ApplyEntries call builds one WriteBatchWithIndex and applies each command
// into it (apply_command.h). A request that fails is rolled back to a save point.
//
// Publishing: db->Write and the update of the in-memory revisions happen under
// publish_mu_, and readers take their snapshot together with the revisions under the same
// mutex, so a reader never sees data newer than the header revision it reports.

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>
#include <vector>

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/experimental.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/perf_level.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/utilities/table_properties_collectors.h>
#include <rocksdb/utilities/write_batch_with_index.h>
#include <rocksdb/write_buffer_manager.h>
#include <spdlog/spdlog.h>

#include "etcd/etcdserverpb/rpc.pb.h"
#include "etcd/mvccpb/kv.pb.h"
#include "rusd/internal.pb.h"
#include "rusd/lease.pb.h"
#include "stored/mvcc/apply_command.h"
#include "stored/mvcc/history_reader.h"
#include "stored/mvcc/kv_errors.h"
#include "stored/mvcc/kv_hash.h"
#include "stored/mvcc/kv_range.h"
#include "stored/mvcc/kv_store.h"
#include "stored/mvcc/lease_records.h"
#include "stored/mvcc/record_cache.h"
#include "stored/mvcc/request_validation.h"
#include "stored/mvcc/storage_format.h"
#include "stored/mvcc/store_view.h"

namespace rusd::stored {

namespace {

bool IsInternal(const Status& s) {
  return s.code() == StatusCode::kInternal || s.code() == StatusCode::kDataLoss;
}

class RocksKvStore final : public KvStore {
 public:
  explicit RocksKvStore(const KvStoreOptions& options)
      : options_(options), records_(options.record_cache_bytes) {}

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
  Result<uint64_t> CreateCheckpoint(const std::string& dir) override;
  Result<HistoryChunk> ReadHistory(const HistoryQuery& query) override;
  Result<std::string> HashKv(int64_t revision) override;
  Result<std::string> Hash() override;

  uint64_t applied_index() const override { return applied_index_.load(std::memory_order_acquire); }
  int64_t current_revision() const override { return current_rev_.load(std::memory_order_acquire); }
  int64_t compact_revision() const override { return compact_rev_.load(std::memory_order_acquire); }
  uint64_t raft_term() const override { return raft_term_.load(std::memory_order_acquire); }
  uint64_t ApproximateSizeBytes() const override;
  uint64_t EstimatedKeyCount() const override;
  uint64_t CountLiveKeys() const override;
  uint64_t EstimatedLiveDataBytes() const override;
  Result<std::vector<LeaseInfo>> Leases() override;
  Result<std::vector<std::string>> LeaseKeys(int64_t id) override;

 private:
  // A read's consistent picture: a RocksDB snapshot with the revisions and term published
  // with it (taken under publish_mu_, so they belong to the same applied state).
  struct PinnedState {
    std::unique_ptr<SnapshotView> view;
    RevisionBounds bounds;
    uint64_t term = 0;
  };
  PinnedState PinPublished() {
    PinnedState pinned;
    std::lock_guard<std::mutex> lock(publish_mu_);
    pinned.view = std::make_unique<SnapshotView>(db_.get(), fam_);
    pinned.bounds.current = current_rev_.load(std::memory_order_relaxed);
    pinned.bounds.compacted = compact_rev_.load(std::memory_order_relaxed);
    pinned.term = raft_term_.load(std::memory_order_relaxed);
    return pinned;
  }
  Result<uint64_t> ReadMeta(const char* name, uint64_t absent);
  Status PurgeCompactedHistory(int64_t target);
  void RequestPurge(int64_t target);
  void PurgeLoop();

  KvStoreOptions options_;
  std::shared_ptr<rocksdb::Cache> cache_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  Families fam_;

  // Apply thread only. records_ outlives apply_state_ (which points to it) and survives
  // its reset; it holds exactly what the DB holds between ApplyEntries calls.
  RecordCache records_;
  std::unique_ptr<ApplyState> apply_state_;

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
  // Every put first reads the key's current record: a memtable bloom filter lets the reads
  // of keys not written lately skip the memtables' skiplist searches.
  kv.memtable_prefix_bloom_size_ratio = 0.05;
  kv.memtable_whole_key_filtering = true;
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

// RocksDB counts into thread-local perf/IO-stat contexts by default (kEnableCount): a
// dozen TLS look-ups per Get/Put in the shared library. Nobody reads them here.
void DisablePerfCounters() { rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable); }

Result<ApplyOutput> RocksKvStore::ApplyEntries(std::span<const internal::Entry> entries) {
  DisablePerfCounters();
  ApplyOutput out;
  uint64_t applied = applied_index();
  uint64_t term = raft_term();
  // Reused across calls: a fresh WriteBatchWithIndex per call costs more than the write of
  // a one-entry batch.
  if (apply_state_ == nullptr) {
    apply_state_ = std::make_unique<ApplyState>(db_.get(), fam_, &records_);
  }
  ApplyState& state = *apply_state_;
  state.Clear();
  // The record cache follows the batch as it is built; if the batch is not written (any
  // error return), what it cached of the batch is wrong: forget everything.
  struct ForgetUnlessWritten {
    RecordCache& records;
    bool written = false;
    ~ForgetUnlessWritten() {
      if (!written) records.Clear();
    }
  } cache_guard{records_};
  state.compaction_scheduled = false;
  state.revision = current_revision();
  state.compacted = compact_revision();
  state.events = &out.events;
  state.lease_changes = &out.lease_changes;
  state.min_lease_ttl = options_.min_lease_ttl;
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
    state.SetSavePoint();
    const size_t events_mark = out.events.size();
    const size_t leases_mark = out.lease_changes.size();
    const int64_t revision_mark = state.revision;
    const int64_t compacted_mark = state.compacted;
    const bool scheduled_mark = state.compaction_scheduled;
    auto result = ApplyCommand(state, cmd, options_, term);
    if (!result.ok()) {
      if (IsInternal(result.status())) return result.status();
      RUSD_RETURN_IF_ERROR(FromRocks(state.RollbackToSavePoint(), "rollback"));
      out.events.resize(events_mark);
      out.lease_changes.resize(leases_mark);
      state.revision = revision_mark;
      state.compacted = compacted_mark;
      state.compaction_scheduled = scheduled_mark;
    } else {
      RUSD_RETURN_IF_ERROR(FromRocks(state.PopSavePoint(), "pop save point"));
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
  if (!any) {
    cache_guard.written = true;  // nothing applied, nothing cached
    return out;
  }

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
    cache_guard.written = true;
    applied_index_.store(applied, std::memory_order_release);
    raft_term_.store(term, std::memory_order_release);
    current_rev_.store(state.revision, std::memory_order_release);
    compact_rev_.store(state.compacted, std::memory_order_release);
  }
  if (state.compaction_scheduled) RequestPurge(state.compacted);
  // Do not keep the buffers of an unusually large batch alive.
  if (state.batch.GetWriteBatch()->GetDataSize() > (8u << 20)) apply_state_.reset();
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

Result<std::vector<LeaseInfo>> RocksKvStore::Leases() {
  SnapshotView view(db_.get(), fam_);
  std::vector<internal::LeaseRecord> records;
  RUSD_RETURN_IF_ERROR(lease_records::All(view, &records));
  std::vector<LeaseInfo> out;
  out.reserve(records.size());
  for (const auto& r : records) out.push_back(LeaseInfo{r.id(), r.ttl(), r.remaining_ttl()});
  return out;
}

Result<std::vector<std::string>> RocksKvStore::LeaseKeys(int64_t id) {
  SnapshotView view(db_.get(), fam_);
  std::vector<std::string> keys;
  RUSD_RETURN_IF_ERROR(lease_records::AttachedKeys(view, id, &keys));
  return keys;
}

Result<std::string> RocksKvStore::Range(const etcdserverpb::RangeRequest& request) {
  RUSD_RETURN_IF_ERROR(ValidateRangeRequest(request));
  DisablePerfCounters();
  const PinnedState pinned = PinPublished();
  etcdserverpb::RangeResponse resp;
  RUSD_RETURN_IF_ERROR(ExecuteRange(*pinned.view, request, pinned.bounds, &resp));
  FillHeader(resp.mutable_header(), options_, pinned.term);
  return resp.SerializeAsString();
}

Result<HistoryChunk> RocksKvStore::ReadHistory(const HistoryQuery& query) {
  DisablePerfCounters();
  const PinnedState pinned = PinPublished();
  HistoryChunk chunk;
  RUSD_RETURN_IF_ERROR(ReadHistoryChunk(*pinned.view, pinned.bounds, query, &chunk));
  return chunk;
}

Result<std::string> RocksKvStore::HashKv(int64_t revision) {
  DisablePerfCounters();
  const PinnedState pinned = PinPublished();
  // etcd's HashByRev checks, in this order.
  const int64_t current = pinned.bounds.current;
  const int64_t compacted = pinned.bounds.compacted;
  if (revision > 0 && revision <= compacted) return kv_errors::Compacted();
  if (revision > 0 && revision > current) return kv_errors::FutureRevision();
  if (revision == 0) revision = current;
  Result<uint32_t> hash = ComputeHashKv(*pinned.view, revision, compacted);
  if (!hash.ok()) return hash.status();
  etcdserverpb::HashKVResponse resp;
  FillHeader(resp.mutable_header(), options_, pinned.term);
  resp.mutable_header()->set_revision(current);
  resp.set_hash(*hash);
  resp.set_compact_revision(compacted);
  return resp.SerializeAsString();
}

Result<std::string> RocksKvStore::Hash() {
  DisablePerfCounters();
  const PinnedState pinned = PinPublished();
  const int64_t current = pinned.bounds.current;
  Result<uint32_t> hash = ComputeStateHash(*pinned.view, current, pinned.bounds.compacted);
  if (!hash.ok()) return hash.status();
  etcdserverpb::HashResponse resp;
  FillHeader(resp.mutable_header(), options_, pinned.term);
  resp.mutable_header()->set_revision(current);
  resp.set_hash(*hash);
  return resp.SerializeAsString();
}

Result<uint64_t> RocksKvStore::SyncWal() {
  const uint64_t covered = applied_index();
  RUSD_RETURN_IF_ERROR(FromRocks(db_->FlushWAL(/*sync=*/true), "sync wal"));
  return covered;
}

Result<uint64_t> RocksKvStore::CreateCheckpoint(const std::string& dir) {
  // The apply thread calls this, so nothing is applied while the checkpoint is taken: the
  // applied index read now is the one inside it.
  const uint64_t covered = applied_index();
  rocksdb::Checkpoint* raw = nullptr;
  RUSD_RETURN_IF_ERROR(FromRocks(rocksdb::Checkpoint::Create(db_.get(), &raw), "checkpoint"));
  std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
  // log_size_for_flush 0: always flush the memtables first, so the checkpoint needs no WAL
  // replay and its files are all durable SSTs (hard links where possible).
  RUSD_RETURN_IF_ERROR(
      FromRocks(checkpoint->CreateCheckpoint(dir, /*log_size_for_flush=*/0), "checkpoint " + dir));
  return covered;
}

uint64_t RocksKvStore::EstimatedKeyCount() const {
  uint64_t v = 0;  // the keys family holds one record per live key
  return db_->GetIntProperty(fam_.keys, rocksdb::DB::Properties::kEstimateNumKeys, &v) ? v : 0;
}

uint64_t RocksKvStore::CountLiveKeys() const {
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;  // a one-off scan must not evict the working set
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, fam_.keys));
  uint64_t n = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) ++n;
  return n;
}

uint64_t RocksKvStore::EstimatedLiveDataBytes() const {
  uint64_t total = 0;
  for (auto* cf : {fam_.kv, fam_.history, fam_.revlog, fam_.meta, fam_.keys}) {
    uint64_t v = 0;
    if (db_->GetIntProperty(cf, rocksdb::DB::Properties::kEstimateLiveDataSize, &v)) total += v;
    if (db_->GetIntProperty(cf, rocksdb::DB::Properties::kSizeAllMemTables, &v)) total += v;
  }
  return total;
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
