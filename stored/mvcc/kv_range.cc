#include "stored/mvcc/kv_range.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "etcd/etcdserverpb/rpc.pb.h"
#include "etcd/mvccpb/kv.pb.h"
#include "stored/mvcc/kv_errors.h"
#include "stored/mvcc/storage_format.h"

namespace rusd::stored {

namespace {

std::string_view ToView(const rocksdb::Slice& s) { return {s.data(), s.size()}; }

Status Corrupt(std::string_view what) {
  return Status::Internal("mvcc: malformed " + std::string(what) + " record");
}

Status ForEachCurrent(StoreView& view, const KeySpan& span, const LiveKeyVisitor& visit) {
  auto* cf = view.families().kv;
  if (span.kind == KeySpan::Kind::kSingle) {
    std::string value;
    rocksdb::Status s = view.Get(cf, span.begin, &value);
    if (s.IsNotFound()) return Status::Ok();
    if (!s.ok()) return Status::IoError("mvcc: read kv: " + s.ToString());
    visit(span.begin, value);
    return Status::Ok();
  }
  auto it = view.NewIterator(cf);
  for (it->Seek(span.begin); it->Valid(); it->Next()) {
    std::string_view key = ToView(it->key());
    if (span.IsPast(key)) break;
    if (!visit(key, ToView(it->value()))) break;
  }
  if (!it->status().ok()) return Status::IoError("mvcc: scan kv: " + it->status().ToString());
  return Status::Ok();
}

int64_t MainOf(const rocksdb::Slice& history_key) {
  // The last 16 bytes are main|sub; DecodeHistoryKey validated the shape of the first key.
  int64_t main = 0;
  int64_t sub = 0;
  format::DecodeRevision(std::string_view(history_key.data() + history_key.size() - 16, 16), &main,
                         &sub);
  return main;
}

// Like ForEachCurrent over a range, in descending key order.
Status ForEachCurrentReverse(StoreView& view, const KeySpan& span, const LiveKeyVisitor& visit) {
  auto it = view.NewIterator(view.families().kv);
  if (span.kind == KeySpan::Kind::kRange) {
    it->Seek(span.end);
    if (it->Valid()) {
      it->Prev();
    } else {
      it->SeekToLast();
    }
  } else {
    it->SeekToLast();
  }
  for (; it->Valid(); it->Prev()) {
    std::string_view key = ToView(it->key());
    if (key < std::string_view(span.begin)) break;
    if (!span.Contains(key)) continue;
    if (!visit(key, ToView(it->value()))) break;
  }
  if (!it->status().ok()) return Status::IoError("mvcc: scan kv: " + it->status().ToString());
  return Status::Ok();
}

// Number of live keys in the span at the view's current revision, from the keys family.
Result<int64_t> CountCurrent(StoreView& view, const KeySpan& span) {
  if (span.kind == KeySpan::Kind::kSingle) {
    std::string value;
    rocksdb::Status s = view.Get(view.families().keys, span.begin, &value);
    if (s.IsNotFound()) return int64_t{0};
    if (!s.ok()) return Status::IoError("mvcc: read keys: " + s.ToString());
    return int64_t{1};
  }
  int64_t count = 0;
  auto it = view.NewIterator(view.families().keys);
  for (it->Seek(span.begin); it->Valid(); it->Next()) {
    if (span.IsPast(ToView(it->key()))) break;
    ++count;
  }
  if (!it->status().ok()) return Status::IoError("mvcc: scan keys: " + it->status().ToString());
  return count;
}

// For each user key in the span: walk its versions forward (most keys have few) keeping
// the newest one <= rev; a key with a long history is resolved with a seek past rev and
// one step back instead. Then jump to the next user key.
Status ForEachAtRevision(StoreView& view, const KeySpan& span, int64_t rev,
                         const LiveKeyVisitor& visit) {
  constexpr int kStepsBeforeSeek = 8;
  auto it = view.NewIterator(view.families().history);
  std::string user_key;
  std::string prefix;
  std::string newest;  // value of the newest version <= rev seen so far
  int64_t main = 0;
  int64_t sub = 0;
  it->Seek(span.kind == KeySpan::Kind::kSingle ? format::HistoryKeyPrefix(span.begin)
                                               : format::EscapeKeyBound(span.begin));
  while (it->Valid()) {
    if (!format::DecodeHistoryKey(ToView(it->key()), &user_key, &main, &sub)) {
      return Corrupt("history");
    }
    if (span.kind == KeySpan::Kind::kSingle ? user_key != span.begin : span.IsPast(user_key)) {
      break;
    }
    prefix = format::HistoryKeyPrefix(user_key);
    bool found = false;
    for (int steps = 0; it->Valid() && it->key().starts_with(prefix); ++steps) {
      if (it->key().size() != prefix.size() + 16) return Corrupt("history");
      if (MainOf(it->key()) > rev) break;
      if (steps == kStepsBeforeSeek) {
        it->Seek(format::HistoryKey(user_key, rev + 1, 0));
        if (it->Valid()) {
          it->Prev();
        } else {
          it->SeekToLast();
        }
        // At least one version <= rev exists, so this is the newest of them.
        if (!it->Valid()) break;
      }
      newest.assign(it->value().data(), it->value().size());
      found = true;
      it->Next();
    }
    if (found && !newest.empty() && newest[0] == format::kPutMark) {
      if (!visit(user_key, std::string_view(newest).substr(1))) return Status::Ok();
    }
    if (span.kind == KeySpan::Kind::kSingle) break;
    if (it->Valid() && it->key().starts_with(prefix)) it->Seek(format::HistoryKeyAfter(user_key));
  }
  if (!it->status().ok()) return Status::IoError("mvcc: scan history: " + it->status().ToString());
  return Status::Ok();
}

template <typename Less>
void SortKvs(std::vector<mvccpb::KeyValue>* kvs, bool descend, Less less) {
  // Input arrives in key order; a stable sort keeps key order among equal elements.
  if (descend) {
    std::stable_sort(kvs->begin(), kvs->end(),
                     [&](const mvccpb::KeyValue& a, const mvccpb::KeyValue& b) { return less(b, a); });
  } else {
    std::stable_sort(kvs->begin(), kvs->end(), less);
  }
}

}  // namespace

KeySpan KeySpan::FromRequest(std::string_view key, std::string_view range_end) {
  KeySpan span;
  span.begin = std::string(key);
  if (range_end.empty()) {
    span.kind = Kind::kSingle;
  } else if (range_end.size() == 1 && range_end[0] == '\0') {
    span.kind = Kind::kFrom;
  } else {
    span.kind = Kind::kRange;
    span.end = std::string(range_end);
  }
  return span;
}

bool KeySpan::Contains(std::string_view key) const {
  switch (kind) {
    case Kind::kSingle:
      return key == begin;
    case Kind::kFrom:
      return key >= std::string_view(begin);
    case Kind::kRange:
      return key >= std::string_view(begin) && key < std::string_view(end);
  }
  return false;
}

bool KeySpan::IsPast(std::string_view key) const {
  switch (kind) {
    case Kind::kSingle:
      return key > std::string_view(begin);
    case Kind::kFrom:
      return false;
    case Kind::kRange:
      return key >= std::string_view(end);
  }
  return true;
}

Status ForEachLiveKey(StoreView& view, const KeySpan& span, int64_t rev, bool at_current,
                      const LiveKeyVisitor& visit) {
  if (at_current) return ForEachCurrent(view, span, visit);
  return ForEachAtRevision(view, span, rev, visit);
}

bool ParseKeyValue(std::string_view key, std::string_view kv_bytes, mvccpb::KeyValue* out) {
  if (!out->ParseFromArray(kv_bytes.data(), static_cast<int>(kv_bytes.size()))) return false;
  out->set_key(key.data(), key.size());
  return true;
}

Status ExecuteRange(StoreView& view, const etcdserverpb::RangeRequest& r,
                    const RevisionBounds& revisions, etcdserverpb::RangeResponse* response) {
  using Req = etcdserverpb::RangeRequest;
  const int64_t current = revisions.current;
  int64_t rev = r.revision();
  if (rev > current) return kv_errors::FutureRevision();
  if (rev <= 0) rev = current;
  if (rev < revisions.compacted) return kv_errors::Compacted();

  // etcd fetches everything when it must sort or filter, and one extra key for `more`.
  int64_t fetch_limit = r.limit();
  if (r.sort_order() != Req::NONE || r.min_mod_revision() != 0 || r.max_mod_revision() != 0 ||
      r.min_create_revision() != 0 || r.max_create_revision() != 0) {
    fetch_limit = 0;
  }
  const bool no_filters = r.min_mod_revision() == 0 && r.max_mod_revision() == 0 &&
                          r.min_create_revision() == 0 && r.max_create_revision() == 0;
  // Sorting by key needs no full fetch: ascending is the natural order, and descending at
  // the current revision is a reverse scan. Same keys, `more` and count as etcd's way.
  const bool by_key = no_filters && r.sort_target() == Req::KEY;
  if (by_key && r.sort_order() == Req::ASCEND) fetch_limit = r.limit();
  if (fetch_limit > 0 && fetch_limit < INT64_MAX) fetch_limit++;

  const KeySpan span = KeySpan::FromRequest(r.key(), r.range_end());
  const bool at_current = rev == current;
  const bool reverse_scan = by_key && r.sort_order() == Req::DESCEND && at_current &&
                            r.limit() > 0 && span.kind != KeySpan::Kind::kSingle;
  if (reverse_scan) fetch_limit = r.limit() < INT64_MAX ? r.limit() + 1 : r.limit();
  int64_t count = 0;
  std::vector<mvccpb::KeyValue> kvs;
  bool parse_failed = false;
  auto keep = [&](std::string_view key, std::string_view bytes) {
    kvs.emplace_back();
    if (!ParseKeyValue(key, bytes, &kvs.back())) {
      parse_failed = true;
      return false;
    }
    return true;
  };
  if (at_current && span.kind == KeySpan::Kind::kSingle && !r.count_only()) {
    // The common read: one Get on the kv family.
    RUSD_RETURN_IF_ERROR(ForEachLiveKey(view, span, rev, /*at_current=*/true, keep));
    count = static_cast<int64_t>(kvs.size());
  } else if (at_current) {
    // etcd counts every key of the range even with a limit: count from the keys family and
    // read values only as far as the fetch limit.
    auto counted = CountCurrent(view, span);
    if (!counted.ok()) return counted.status();
    count = *counted;
    if (!r.count_only() && count > 0 && reverse_scan) {
      RUSD_RETURN_IF_ERROR(ForEachCurrentReverse(view, span,
                                                 [&](std::string_view key, std::string_view bytes) {
                                                   if (!keep(key, bytes)) return false;
                                                   return static_cast<int64_t>(kvs.size()) <
                                                          fetch_limit;
                                                 }));
    } else if (!r.count_only() && count > 0) {
      RUSD_RETURN_IF_ERROR(ForEachLiveKey(view, span, rev, /*at_current=*/true,
                                          [&](std::string_view key, std::string_view bytes) {
                                            if (!keep(key, bytes)) return false;
                                            return fetch_limit <= 0 ||
                                                   static_cast<int64_t>(kvs.size()) < fetch_limit;
                                          }));
    }
  } else {
    RUSD_RETURN_IF_ERROR(ForEachLiveKey(
        view, span, rev, /*at_current=*/false, [&](std::string_view key, std::string_view bytes) {
          ++count;
          if (r.count_only()) return true;
          if (fetch_limit <= 0 || static_cast<int64_t>(kvs.size()) < fetch_limit) {
            return keep(key, bytes);
          }
          return true;
        }));
  }
  if (parse_failed) return Corrupt("KeyValue");

  auto prune = [&](auto drop) { kvs.erase(std::remove_if(kvs.begin(), kvs.end(), drop), kvs.end()); };
  if (r.max_mod_revision() != 0) {
    prune([&](const mvccpb::KeyValue& kv) { return kv.mod_revision() > r.max_mod_revision(); });
  }
  if (r.min_mod_revision() != 0) {
    prune([&](const mvccpb::KeyValue& kv) { return kv.mod_revision() < r.min_mod_revision(); });
  }
  if (r.max_create_revision() != 0) {
    prune([&](const mvccpb::KeyValue& kv) { return kv.create_revision() > r.max_create_revision(); });
  }
  if (r.min_create_revision() != 0) {
    prune([&](const mvccpb::KeyValue& kv) { return kv.create_revision() < r.min_create_revision(); });
  }

  // etcd: with sort_order NONE and a target other than KEY it sorts ascending; with KEY the
  // store's natural key order stands.
  Req::SortOrder order = r.sort_order();
  if (r.sort_target() != Req::KEY && order == Req::NONE) order = Req::ASCEND;
  if (order != Req::NONE) {
    const bool descend = order == Req::DESCEND;
    using KV = mvccpb::KeyValue;
    switch (r.sort_target()) {
      case Req::KEY:
        SortKvs(&kvs, descend, [](const KV& a, const KV& b) { return a.key() < b.key(); });
        break;
      case Req::VERSION:
        SortKvs(&kvs, descend, [](const KV& a, const KV& b) { return a.version() < b.version(); });
        break;
      case Req::CREATE:
        SortKvs(&kvs, descend,
                [](const KV& a, const KV& b) { return a.create_revision() < b.create_revision(); });
        break;
      case Req::MOD:
        SortKvs(&kvs, descend,
                [](const KV& a, const KV& b) { return a.mod_revision() < b.mod_revision(); });
        break;
      case Req::VALUE:
        SortKvs(&kvs, descend, [](const KV& a, const KV& b) { return a.value() < b.value(); });
        break;
      default:
        break;
    }
  }

  if (r.limit() > 0 && static_cast<int64_t>(kvs.size()) > r.limit()) {
    kvs.resize(static_cast<size_t>(r.limit()));
    response->set_more(true);
  }
  response->mutable_header()->set_revision(current);
  response->set_count(count);
  response->mutable_kvs()->Reserve(static_cast<int>(kvs.size()));
  for (auto& kv : kvs) {
    if (r.keys_only()) kv.clear_value();
    *response->add_kvs() = std::move(kv);
  }
  return Status::Ok();
}

}  // namespace rusd::stored
