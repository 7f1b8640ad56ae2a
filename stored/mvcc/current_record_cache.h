// CurrentRecordCache: the apply thread's bounded cache of committed `kv` records (the
// current KeyValue of recently written keys), so that a put's read of the key's current
// record (create revision, version, lease, prev_kv) skips RocksDB's memtable and SST
// searches. Internal to rusd_mvcc; apply thread only, no locking.
//
// Promise (kept by KvStore, not by this class): an entry always holds exactly the record
// the DB holds for its key. KvStore only fills it from writes that reached the DB, after
// the write (ApplyState::CommitToCache), and erases the keys those writes delete; the apply
// thread is the only writer of the kv family. Reads inside an apply batch look at the
// pending batch first (ApplyState::GetCurrentRecord), so they never see a cached record
// that the batch has since replaced or deleted.
//
// Bounded by `capacity_bytes` (keys + records + a per-entry overhead); the least recently
// written keys leave first. A key and record over capacity/256 bytes are not kept (32 KiB
// at the default 8 MiB), so one large value cannot push out hundreds of small ones.
#pragma once

#include <cstddef>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>

namespace rusd::stored {

class CurrentRecordCache {
 public:
  explicit CurrentRecordCache(size_t capacity_bytes) : capacity_(capacity_bytes) {}
  CurrentRecordCache(const CurrentRecordCache&) = delete;
  CurrentRecordCache& operator=(const CurrentRecordCache&) = delete;

  // The cached record of `key`, or nullptr; valid until the next Set/Erase/Clear.
  const std::string* Find(std::string_view key) const;
  // `key`'s record is now `record` (it becomes the most recently written).
  void Set(std::string_view key, std::string_view record);
  void Erase(std::string_view key);
  void Clear();

  size_t bytes() const { return bytes_; }
  size_t size() const { return index_.size(); }

 private:
  struct Entry {
    std::string key;
    std::string record;
  };
  // Charged per entry beyond its bytes: list and hash nodes, string headers.
  static constexpr size_t kEntryOverhead = 128;
  static size_t Charge(const Entry& e) { return e.key.size() + e.record.size() + kEntryOverhead; }
  void Remove(std::list<Entry>::iterator it);

  size_t capacity_;
  size_t bytes_ = 0;
  std::list<Entry> lru_;  // front: most recently written
  // Keys are views of the list nodes' keys (nodes never move).
  std::unordered_map<std::string_view, std::list<Entry>::iterator> index_;
};

}  // namespace rusd::stored
