// Prefix extractors for the memtables' insert hints
// (ColumnFamilyOptions::memtable_insert_with_hint_prefix_extractor): RocksDB keeps one
// skiplist position per prefix and inserts the next key of that prefix from there instead
// of searching from the top. They change no ordering and no stored byte: RocksDB uses them
// for memtable inserts only (not reads, flushes, compaction or files).
#pragma once

#include <rocksdb/slice.h>
#include <rocksdb/slice_transform.h>

namespace rusd::stored {

// history: a key is HistoryKeyPrefix(user key) + 16 bytes of revision (storage_format.h)
// and a key's versions arrive in revision order, so each insert lands right after the
// key's previous version.
class HistoryInsertHintPrefix final : public rocksdb::SliceTransform {
 public:
  static constexpr size_t kRevisionBytes = 16;

  const char* Name() const override { return "rusd.HistoryInsertHintPrefix"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    return rocksdb::Slice(key.data(), key.size() - kRevisionBytes);
  }
  bool InDomain(const rocksdb::Slice& key) const override { return key.size() > kRevisionBytes; }
};

// kv: a put overwrites its key, and the memtable holds the key's newer versions right
// before its older ones: one hint per key starts the search next to them.
class KvInsertHintKey final : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "rusd.KvInsertHintKey"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override { return key; }
  bool InDomain(const rocksdb::Slice&) const override { return true; }
};

}  // namespace rusd::stored
