#include "stored/mvcc/history_reader.h"

#include <algorithm>
#include <memory>

#include "etcd/mvccpb/kv.pb.h"
#include "stored/mvcc/storage_format.h"

namespace rusd::stored {
namespace {

// A range query walks the revlog; past this many records without filling the chunk it
// stops at a revision boundary anyway, so one chunk never scans unbounded history.
constexpr uint64_t kMaxScannedPerChunk = 200000;

std::string_view View(const rocksdb::Slice& s) { return std::string_view(s.data(), s.size()); }

// Builds the event of the history record of `key` at (main, sub) whose value is `value`.
Status MakeEvent(std::string_view key, int64_t main, std::string_view value, mvccpb::Event* ev) {
  if (value.empty()) return Status::Internal("mvcc: malformed history value");
  if (value[0] == format::kTombstoneMark) {
    ev->set_type(mvccpb::Event::DELETE);
    ev->mutable_kv()->set_key(key.data(), key.size());
    ev->mutable_kv()->set_mod_revision(main);
    return Status::Ok();
  }
  ev->set_type(mvccpb::Event::PUT);
  if (!ParseKeyValue(key, value.substr(1), ev->mutable_kv())) {
    return Status::Internal("mvcc: malformed history record");
  }
  return Status::Ok();
}

// Sets ev->prev_kv from the record just before `it`'s position, if it is a put of the same
// key (`prefix` = HistoryKeyPrefix(key)). Leaves `it` invalid or elsewhere: callers re-seek.
Status AttachPrevFromIterator(rocksdb::Iterator* it, std::string_view key, std::string_view prefix,
                              mvccpb::Event* ev) {
  if (!it->Valid()) return Status::Ok();
  if (!View(it->key()).starts_with(prefix)) return Status::Ok();
  std::string_view v = View(it->value());
  if (v.empty() || v[0] != format::kPutMark) return Status::Ok();
  if (!ParseKeyValue(key, v.substr(1), ev->mutable_prev_kv())) {
    return Status::Internal("mvcc: malformed history record");
  }
  return Status::Ok();
}

class ChunkBuilder {
 public:
  ChunkBuilder(const HistoryQuery& q, HistoryChunk* out) : q_(q), out_(out) {}

  // True when a record of revision `main` may not join the chunk (a limit was reached and
  // it starts a new revision).
  bool FullBefore(int64_t main) const {
    if (out_->events.empty() || main == last_main_) return false;
    return out_->events.size() >= q_.max_events || bytes_ >= q_.max_bytes;
  }
  mvccpb::Event* Add(int64_t main) {
    last_main_ = main;
    return &out_->events.emplace_back();
  }
  void Account(const mvccpb::Event& ev) { bytes_ += ev.ByteSizeLong(); }

 private:
  const HistoryQuery& q_;
  HistoryChunk* out_;
  int64_t last_main_ = -1;
  uint64_t bytes_ = 0;
};

Status ReadSingleKey(StoreView& view, const RevisionBounds& bounds, const HistoryQuery& q,
                     const KeySpan& span, int64_t start, HistoryChunk* out) {
  const std::string& key = span.begin;
  const std::string prefix = format::HistoryKeyPrefix(key);
  std::unique_ptr<rocksdb::Iterator> it = view.NewIterator(view.families().history);
  ChunkBuilder chunk(q, out);
  it->Seek(format::HistoryKey(key, start, 0));
  // The version before `start`, for the first event's prev_kv.
  std::string prev_value;
  bool have_prev = false;
  if (q.prev_kv) {
    std::unique_ptr<rocksdb::Iterator> back = view.NewIterator(view.families().history);
    back->Seek(format::HistoryKey(key, start, 0));
    if (back->Valid()) {
      back->Prev();
    } else {
      back->SeekToLast();
    }
    if (back->Valid() && View(back->key()).starts_with(prefix)) {
      prev_value.assign(back->value().data(), back->value().size());
      have_prev = true;
    }
    if (!back->status().ok()) return Status::IoError("mvcc: " + back->status().ToString());
  }
  out->next_revision = bounds.current + 1;
  std::string user_key;
  for (; it->Valid() && View(it->key()).starts_with(prefix); it->Next()) {
    int64_t main = 0, sub = 0;
    if (!format::DecodeHistoryKey(View(it->key()), &user_key, &main, &sub)) {
      return Status::Internal("mvcc: malformed history key");
    }
    if (main > bounds.current) break;
    if (chunk.FullBefore(main)) {
      out->next_revision = main;
      break;
    }
    mvccpb::Event* ev = chunk.Add(main);
    RUSD_RETURN_IF_ERROR(MakeEvent(key, main, View(it->value()), ev));
    // etcd reads prev_kv at mod_revision - 1: nothing once that is compacted, even if the
    // purge has not removed the version yet.
    if (q.prev_kv && have_prev && main - 1 >= bounds.compacted && !prev_value.empty() &&
        prev_value[0] == format::kPutMark) {
      if (!ParseKeyValue(key, std::string_view(prev_value).substr(1), ev->mutable_prev_kv())) {
        return Status::Internal("mvcc: malformed history record");
      }
    }
    chunk.Account(*ev);
    if (q.prev_kv) {
      prev_value.assign(it->value().data(), it->value().size());
      have_prev = true;
    }
  }
  if (!it->status().ok()) return Status::IoError("mvcc: " + it->status().ToString());
  return Status::Ok();
}

// Revision `compacted` itself: its revlog records are purged, but history keeps each key's
// newest version at or below it unless a tombstone (exactly what etcd's compaction keeps),
// so its surviving puts are found by walking the range in the history family.
Status ReadCompactedRevision(StoreView& view, const KeySpan& span, int64_t compacted,
                             HistoryChunk* out) {
  std::unique_ptr<rocksdb::Iterator> it = view.NewIterator(view.families().history);
  std::string user_key;
  std::vector<std::pair<int64_t, mvccpb::Event>> found;
  for (it->Seek(format::EscapeKeyBound(span.begin)); it->Valid(); it->Next()) {
    int64_t main = 0, sub = 0;
    if (!format::DecodeHistoryKey(View(it->key()), &user_key, &main, &sub)) {
      return Status::Internal("mvcc: malformed history key");
    }
    if (span.IsPast(user_key)) break;
    if (main != compacted || !span.Contains(user_key)) continue;
    mvccpb::Event ev;
    RUSD_RETURN_IF_ERROR(MakeEvent(user_key, main, View(it->value()), &ev));
    found.emplace_back(sub, std::move(ev));
  }
  if (!it->status().ok()) return Status::IoError("mvcc: " + it->status().ToString());
  std::sort(found.begin(), found.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [sub, ev] : found) out->events.push_back(std::move(ev));
  return Status::Ok();
}

Status ReadRange(StoreView& view, const RevisionBounds& bounds, const HistoryQuery& q,
                 const KeySpan& span, int64_t start, HistoryChunk* out) {
  ChunkBuilder chunk(q, out);
  std::unique_ptr<rocksdb::Iterator> log = view.NewIterator(view.families().revlog);
  std::unique_ptr<rocksdb::Iterator> hist;
  out->next_revision = bounds.current + 1;
  uint64_t scanned = 0;
  int64_t last_main = -1;
  std::string value;
  for (log->Seek(format::EncodeRevision(start, 0)); log->Valid(); log->Next()) {
    int64_t main = 0, sub = 0;
    if (!format::DecodeRevision(View(log->key()), &main, &sub)) {
      return Status::Internal("mvcc: malformed revlog key");
    }
    if (main > bounds.current) break;
    if (main != last_main && (chunk.FullBefore(main) || scanned >= kMaxScannedPerChunk)) {
      out->next_revision = main;
      break;
    }
    last_main = main;
    ++scanned;
    std::string_view rec = View(log->value());
    if (rec.empty()) return Status::Internal("mvcc: malformed revlog value");
    std::string_view key = rec.substr(1);
    if (!span.Contains(key)) continue;
    const std::string hk = format::HistoryKey(key, main, sub);
    if (hist == nullptr) hist = view.NewIterator(view.families().history);
    hist->Seek(hk);
    if (!hist->Valid() || hist->key() != rocksdb::Slice(hk)) {
      // Purged by a compaction that raced this read's snapshot: cannot happen above the
      // compacted revision; treat as corruption rather than skip an event silently.
      return Status::Internal("mvcc: revlog record without history");
    }
    mvccpb::Event* ev = chunk.Add(main);
    RUSD_RETURN_IF_ERROR(MakeEvent(key, main, View(hist->value()), ev));
    if (q.prev_kv) {
      hist->Prev();
      RUSD_RETURN_IF_ERROR(
          AttachPrevFromIterator(hist.get(), key, format::HistoryKeyPrefix(key), ev));
    }
    chunk.Account(*ev);
  }
  if (!log->status().ok()) return Status::IoError("mvcc: " + log->status().ToString());
  return Status::Ok();
}

}  // namespace

Status ReadHistoryChunk(StoreView& view, const RevisionBounds& bounds, const HistoryQuery& query,
                        HistoryChunk* out) {
  const KeySpan span = KeySpan::FromRequest(query.key, query.range_end);
  out->events.clear();
  out->current_revision = bounds.current;
  out->compact_revision = 0;
  int64_t start = std::max<int64_t>(query.start_revision, 1);
  // etcd: a watcher whose next revision is below compactMainRev gets compact_revision.
  if (bounds.compacted > 0 && start < bounds.compacted) {
    out->compact_revision = bounds.compacted;
    out->next_revision = start;
    return Status::Ok();
  }
  if (start > bounds.current) {
    out->next_revision = start;
    return Status::Ok();
  }
  if (span.kind == KeySpan::Kind::kSingle) {
    return ReadSingleKey(view, bounds, query, span, start, out);
  }
  if (bounds.compacted > 0 && start == bounds.compacted) {
    RUSD_RETURN_IF_ERROR(ReadCompactedRevision(view, span, start, out));
    ++start;
    if (start > bounds.current) {
      out->next_revision = start;
      return Status::Ok();
    }
    HistoryChunk rest;
    RUSD_RETURN_IF_ERROR(ReadRange(view, bounds, query, span, start, &rest));
    for (auto& ev : rest.events) out->events.push_back(std::move(ev));
    out->next_revision = rest.next_revision;
    return Status::Ok();
  }
  return ReadRange(view, bounds, query, span, start, out);
}

}  // namespace rusd::stored
