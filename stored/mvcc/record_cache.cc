// CLOCK over a deque of slots, indexed by an open-addressing table of (hash, slot) cells. A hit is
// one hash look-up and a bit set; an update that fits the slot's record buffer reuses it,
// and so does an insert into a full cache (the victim's buffers).
#include "stored/mvcc/record_cache.h"

#include <functional>

namespace rusd::stored {

const std::string* RecordCache::Find(std::string_view key) {
  const size_t cell = FindCell(key, Hash(key));
  if (cell == cells_.size()) return nullptr;
  Slot& s = slots_[static_cast<uint32_t>(cells_[cell]) - 1];
  s.referenced = true;
  return &s.record;
}

void RecordCache::Put(std::string_view key, std::string_view record) {
  if (capacity_ == 0) return;
  const uint32_t hash = Hash(key);
  if (const size_t cell = FindCell(key, hash); cell != cells_.size()) {
    const uint32_t slot = static_cast<uint32_t>(cells_[cell]) - 1;
    Slot& s = slots_[slot];
    if (record.size() <= s.record.capacity() && record.size() <= kMaxRecordBytes) {
      s.record.assign(record.data(), record.size());  // no allocation, same cost
      s.referenced = true;
      written_.push_back(slot);
      return;
    }
    Release(slot);
  }
  if (record.size() > kMaxRecordBytes) return;
  // The cost once stored, at least (capacities may round up; checked again after).
  const size_t need = key.size() + record.size() + kEntryOverheadBytes;
  if (need > capacity_) return;
  uint32_t slot;
  if (bytes_ + need > capacity_ && count_ > 0) {
    // Full: the CLOCK victim's slot takes the new entry, its buffers reused (records of a
    // workload are of similar sizes, so a miss neither frees nor allocates them).
    slot = ClockVictim();
    Slot& victim = slots_[slot];
    EraseCell(FindCell(victim.key, Hash(victim.key)));
    bytes_ -= Cost(victim);
  } else {
    slot = TakeFreeSlot();
  }
  Slot& s = slots_[slot];
  s.key.assign(key.data(), key.size());
  s.record.assign(record.data(), record.size());
  s.used = true;
  s.referenced = false;  // a new entry earns its bit by a second use
  InsertCell(hash, slot);
  bytes_ += Cost(s);
  written_.push_back(slot);
  // Allocators round capacities up, and a victim may be smaller than the new entry: evict
  // more if that overshot the budget, sparing the new entry for a sweep (its caller is
  // about to use it; if it goes anyway, EraseSince checks the log's slots).
  if (bytes_ > capacity_) {
    s.referenced = true;
    MakeRoom(0);
  }
}

void RecordCache::Offer(std::string_view key, std::string_view record) {
  if (bytes_ + key.size() + record.size() + kEntryOverheadBytes <= capacity_ ||
      FindCell(key, Hash(key)) != cells_.size()) {
    Put(key, record);
  }
}

void RecordCache::Erase(std::string_view key) {
  const size_t cell = FindCell(key, Hash(key));
  if (cell != cells_.size()) Release(static_cast<uint32_t>(cells_[cell]) - 1);
}

void RecordCache::Clear() {
  cells_.clear();
  mask_ = 0;
  count_ = 0;
  slots_.clear();
  free_.clear();
  written_.clear();
  bytes_ = 0;
  hand_ = 0;
}

void RecordCache::EraseSince(size_t mark) {
  for (size_t i = mark; i < written_.size(); ++i) {
    if (slots_[written_[i]].used) Release(written_[i]);
  }
  written_.resize(mark);
}

void RecordCache::Release(uint32_t slot) {
  Slot& s = slots_[slot];
  EraseCell(FindCell(s.key, Hash(s.key)));
  bytes_ -= Cost(s);
  // Freed, not kept: an idle slot must not hold memory the bound no longer counts.
  std::string().swap(s.key);
  std::string().swap(s.record);
  s.used = false;
  s.referenced = false;
  free_.push_back(slot);
}

uint32_t RecordCache::ClockVictim() {
  // At most two sweeps: the first clears every reference bit it passes.
  for (;;) {
    if (hand_ >= slots_.size()) hand_ = 0;
    Slot& s = slots_[hand_];
    const uint32_t slot = static_cast<uint32_t>(hand_++);
    if (!s.used) continue;
    if (!s.referenced) return slot;
    s.referenced = false;
  }
}

bool RecordCache::MakeRoom(size_t need) {
  if (need > capacity_) return false;
  // Two sweeps clear every reference bit, so this ends once enough is evicted or the cache
  // is empty.
  while (bytes_ + need > capacity_ && count_ > 0) Release(ClockVictim());
  return bytes_ + need <= capacity_;
}

uint32_t RecordCache::Hash(std::string_view key) {
  return static_cast<uint32_t>(std::hash<std::string_view>()(key));
}

size_t RecordCache::FindCell(std::string_view key, uint32_t hash) const {
  if (cells_.empty()) return 0;
  for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
    const uint64_t c = cells_[i];
    if (c == 0) return cells_.size();
    if (static_cast<uint32_t>(c >> 32) == hash &&
        slots_[static_cast<uint32_t>(c) - 1].key == key) {
      return i;
    }
  }
}

void RecordCache::InsertCell(uint32_t hash, uint32_t slot) {
  if (cells_.empty()) {
    // Room for every entry the bound allows (each costs at least the overhead and two
    // in-place string buffers of 15 bytes; one more transiently, see Put), at load 3/4.
    const size_t most = capacity_ / (kEntryOverheadBytes + 30) + 2;
    size_t n = 16;
    while (n < most * 4 / 3 + 1) n *= 2;
    cells_.assign(n, 0);
    mask_ = n - 1;
  }
  size_t i = hash & mask_;
  while (cells_[i] != 0) i = (i + 1) & mask_;
  cells_[i] = (static_cast<uint64_t>(hash) << 32) | (static_cast<uint64_t>(slot) + 1);
  ++count_;
}

void RecordCache::EraseCell(size_t cell) {
  // Backward shift: move later cells of the probe run into the hole unless that would put
  // one before its home cell.
  size_t hole = cell;
  for (size_t j = (hole + 1) & mask_; cells_[j] != 0; j = (j + 1) & mask_) {
    const size_t home = static_cast<uint32_t>(cells_[j] >> 32) & mask_;
    // Whether `home` lies cyclically in (hole, j]: then cell j must stay.
    const bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
    if (!stays) {
      cells_[hole] = cells_[j];
      hole = j;
    }
  }
  cells_[hole] = 0;
  --count_;
}

uint32_t RecordCache::TakeFreeSlot() {
  if (!free_.empty()) {
    const uint32_t slot = free_.back();
    free_.pop_back();
    return slot;
  }
  slots_.emplace_back();
  return static_cast<uint32_t>(slots_.size() - 1);
}

}  // namespace rusd::stored
