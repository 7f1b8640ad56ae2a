// The prefix extractor for the history family's memtable insert hints
// (ColumnFamilyOptions::memtable_insert_with_hint_prefix_extractor).
//
// A history key is HistoryKeyPrefix(user key) + 16 bytes of revision (storage_format.h),
// and a key's versions are written in increasing revision order. With one insert hint per
// user key, the memtable's skiplist resumes next to that key's previous version instead of
// searching from the top: most of a put's history insert cost. It changes no ordering and
// no stored byte: RocksDB ignores the extractor for reads, compaction and on-disk data.
#pragma once

#include <rocksdb/slice.h>
#include <rocksdb/slice_transform.h>

namespace rusd::stored {

class HistoryInsertHintPrefix final : public rocksdb::SliceTransform {
 public:
  static constexpr size_t kRevisionBytes = 16;

  const char* Name() const override { return "rusd.HistoryInsertHintPrefix"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    return rocksdb::Slice(key.data(), key.size() - kRevisionBytes);
  }
  bool InDomain(const rocksdb::Slice& key) const override { return key.size() > kRevisionBytes; }
};

}  // namespace rusd::stored
