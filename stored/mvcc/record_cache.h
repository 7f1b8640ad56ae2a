// RecordCache: a bounded cache of current kv records (the `kv` family's value of a key, as
// stored: a serialized KeyValue without its key), owned by the apply path so that a put's
// read of the key's current record (etcd's version/create_revision bookkeeping) skips
// RocksDB's Get, which on a working set larger than the memtable costs SST block reads.
//
// What it promises:
// - Bounded by bytes: the sum of the entries' key and record capacities plus a fixed
//   per-entry overhead (slot, index cell) stays at or below `capacity_bytes`; records
//   larger than kMaxRecordBytes are never cached. Memory does NOT grow with the number of
//   keys (kv_store.h's promise: the key index lives in RocksDB); its hash index is a fixed
//   array sized from the bound (see cells_). This is a cache of the
//   recently written/read keys, not an index; a miss falls back to RocksDB.
// - Exact only if the owner keeps it so: the owner (ApplyState) writes through every kv
//   write (Put / Erase) and erases every key touched by a rolled-back request
//   (EraseSince from the request's start: ApplyState keeps one mark per request, so save
//   points must not nest), and clears it when a batch is not written. The cache itself knows nothing
//   of RocksDB.
// - Eviction is CLOCK (a reference bit per entry, a hand over the slots): a hit sets a bit,
//   allocates nothing.
// - No negative entries: a key absent from the cache may or may not exist.
//
// Threads: one (stored's apply thread). No locks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

namespace rusd::stored {

class RecordCache {
 public:
  // Records above this are not cached: a few large values must not push out many small
  // ones, and their Get is dominated by the copy anyway.
  static constexpr size_t kMaxRecordBytes = 16 << 10;
  // Accounted per entry on top of the key's and record's heap bytes: the slot and its
  // share of the index (measured order of magnitude; a bound, not exact).
  static constexpr size_t kEntryOverheadBytes = 128;

  // capacity_bytes 0 disables the cache (every Find misses, Put stores nothing).
  explicit RecordCache(size_t capacity_bytes) : capacity_(capacity_bytes) {}
  RecordCache(const RecordCache&) = delete;
  RecordCache& operator=(const RecordCache&) = delete;

  // The cached record of `key`, or nullptr. The pointer is valid until the next
  // non-const call.
  const std::string* Find(std::string_view key);

  // Sets `key`'s record (inserting, evicting others if needed). A record above
  // kMaxRecordBytes erases the key instead.
  void Put(std::string_view key, std::string_view record);

  // Sets `key`'s record if it is cached, or inserts it if that evicts nothing (a
  // write-through that does not churn: when full, keys written once, as by a bulk load,
  // would only push out others and cost look-ups; a key enters on its next read).
  void Offer(std::string_view key, std::string_view record);

  // Forgets `key` (it was deleted, or its state is unknown).
  void Erase(std::string_view key);

  // Forgets everything.
  void Clear();

  // Rollback support: Mark() returns a position in the log of slots written since the
  // last Mark/EraseSince; EraseSince(mark) empties every slot written after `mark` (maybe
  // more: erasing a cached record is always safe). Keep the log short: call
  // ForgetLog() once the writes since the mark are final.
  size_t Mark() const { return written_.size(); }
  void EraseSince(size_t mark);
  void ForgetLog() { written_.clear(); }

  size_t bytes() const { return bytes_; }
  size_t entries() const { return count_; }
  size_t capacity_bytes() const { return capacity_; }

 private:
  struct Slot {
    std::string key;  // the index's key views point here: never changed while indexed
    std::string record;
    bool used = false;
    bool referenced = false;
  };
  static size_t Cost(const Slot& s) {
    return s.key.capacity() + s.record.capacity() + kEntryOverheadBytes;
  }
  void Release(uint32_t slot);
  // The next unreferenced entry under the hand (clearing bits on the way). Needs entries.
  uint32_t ClockVictim();
  // Evicts (CLOCK) until `need` more bytes fit; false if they cannot.
  bool MakeRoom(size_t need);
  uint32_t TakeFreeSlot();

  const size_t capacity_;
  size_t bytes_ = 0;
  // A deque: slots never move (the index holds views of their keys).
  std::deque<Slot> slots_;
  std::vector<uint32_t> free_;
  // The index: open addressing, linear probing, backward-shift deletion. Each cell holds
  // the key's 32-bit hash (high half) and slot + 1 (low half; 0 = empty), so a probe
  // compares keys only on a hash match: a look-up is about two cache misses (the cell,
  // the slot's key). Sized once, on first use, for the most entries the bound allows
  // at load <= 3/4. Outside the byte bound: 8 B x a power of two >= 4/3 x capacity / 158
  // (4 MiB for the default 32 MiB).
  static uint32_t Hash(std::string_view key);
  size_t FindCell(std::string_view key, uint32_t hash) const;  // cells_.size() if absent
  void InsertCell(uint32_t hash, uint32_t slot);
  void EraseCell(size_t cell);
  std::vector<uint64_t> cells_;
  size_t mask_ = 0;
  size_t count_ = 0;
  size_t hand_ = 0;
  std::vector<uint32_t> written_;
};

}  // namespace rusd::stored
