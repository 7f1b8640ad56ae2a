// CLOCK over a deque of slots, indexed by a hash map of views of the slots' keys. A hit is
// one hash look-up and a bit set; an update that fits the slot's record buffer reuses it,
// and so does an insert into a full cache (the victim's buffers).
#include "stored/mvcc/record_cache.h"

namespace rusd::stored {

const std::string* RecordCache::Find(std::string_view key) {
  auto it = index_.find(key);
  if (it == index_.end()) return nullptr;
  Slot& s = slots_[it->second];
  s.referenced = true;
  return &s.record;
}

void RecordCache::Put(std::string_view key, std::string_view record) {
  if (capacity_ == 0) return;
  auto it = index_.find(key);
  if (it != index_.end()) {
    Slot& s = slots_[it->second];
    if (record.size() <= s.record.capacity() && record.size() <= kMaxRecordBytes) {
      s.record.assign(record.data(), record.size());  // no allocation, same cost
      s.referenced = true;
      written_.push_back(it->second);
      return;
    }
    Release(it->second);
  }
  if (record.size() > kMaxRecordBytes) return;
  // The cost once stored, at least (capacities may round up; checked again after).
  const size_t need = key.size() + record.size() + kEntryOverheadBytes;
  if (need > capacity_) return;
  uint32_t slot;
  if (bytes_ + need > capacity_ && !index_.empty()) {
    // Full: the CLOCK victim's slot takes the new entry, its buffers reused (records of a
    // workload are of similar sizes, so a miss neither frees nor allocates them).
    slot = ClockVictim();
    Slot& victim = slots_[slot];
    index_.erase(std::string_view(victim.key));
    bytes_ -= Cost(victim);
  } else {
    slot = TakeFreeSlot();
  }
  Slot& s = slots_[slot];
  s.key.assign(key.data(), key.size());
  s.record.assign(record.data(), record.size());
  s.used = true;
  s.referenced = false;  // a new entry earns its bit by a second use
  index_.emplace(std::string_view(s.key), slot);
  bytes_ += Cost(s);
  written_.push_back(slot);
  // Allocators round capacities up: evict a little more if that overshot the budget (maybe
  // the new entry itself; the log's slot is then checked at EraseSince).
  if (bytes_ > capacity_) MakeRoom(0);
}

void RecordCache::Offer(std::string_view key, std::string_view record) {
  if (bytes_ + key.size() + record.size() + kEntryOverheadBytes <= capacity_ ||
      index_.find(key) != index_.end()) {
    Put(key, record);
  }
}

void RecordCache::Erase(std::string_view key) {
  auto it = index_.find(key);
  if (it != index_.end()) Release(it->second);
}

void RecordCache::Clear() {
  index_.clear();
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
  index_.erase(std::string_view(s.key));
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
  while (bytes_ + need > capacity_ && !index_.empty()) Release(ClockVictim());
  return bytes_ + need <= capacity_;
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
