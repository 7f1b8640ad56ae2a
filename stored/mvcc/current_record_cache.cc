#include "stored/mvcc/current_record_cache.h"

namespace rusd::stored {

const std::string* CurrentRecordCache::Find(std::string_view key) const {
  auto found = index_.find(key);
  return found == index_.end() ? nullptr : &found->second->record;
}

void CurrentRecordCache::Set(std::string_view key, std::string_view record) {
  auto found = index_.find(key);
  if (key.size() + record.size() > capacity_ / 256) {
    if (found != index_.end()) Remove(found->second);
    return;
  }
  if (found != index_.end()) {
    auto it = found->second;
    bytes_ -= Charge(*it);
    it->record.assign(record);  // reuses the string's buffer when it fits
    bytes_ += Charge(*it);
    lru_.splice(lru_.begin(), lru_, it);
  } else {
    lru_.push_front(Entry{std::string(key), std::string(record)});
    index_.emplace(lru_.front().key, lru_.begin());
    bytes_ += Charge(lru_.front());
  }
  while (bytes_ > capacity_ && !lru_.empty()) Remove(std::prev(lru_.end()));
}

void CurrentRecordCache::Erase(std::string_view key) {
  auto found = index_.find(key);
  if (found != index_.end()) Remove(found->second);
}

void CurrentRecordCache::Clear() {
  index_.clear();
  lru_.clear();
  bytes_ = 0;
}

void CurrentRecordCache::Remove(std::list<Entry>::iterator it) {
  bytes_ -= Charge(*it);
  index_.erase(std::string_view(it->key));
  lru_.erase(it);
}

}  // namespace rusd::stored
