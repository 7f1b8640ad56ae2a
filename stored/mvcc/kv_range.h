// Reading keys at a revision and etcd's Range semantics, internal to rusd_mvcc. Used by
// KvStore::Range (snapshot view), by Range/compare/delete inside applied requests (batch
// view). Callers own the view; these functions keep no state.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "stored/mvcc/store_view.h"

namespace etcdserverpb {
class RangeRequest;
class RangeResponse;
}  // namespace etcdserverpb
namespace mvccpb {
class KeyValue;
}

namespace rusd::stored {

// etcd's [key, range_end): empty range_end = the single key; "\0" = every key >= key
// (etcd's mkGteRange); otherwise keys in [key, range_end) (empty when range_end <= key).
struct KeySpan {
  enum class Kind { kSingle, kRange, kFrom };
  Kind kind = Kind::kSingle;
  std::string begin;
  std::string end;  // kRange only

  static KeySpan FromRequest(std::string_view key, std::string_view range_end);
  bool Contains(std::string_view key) const;
  // True when `key` (>= begin) lies past the span, so a forward scan can stop.
  bool IsPast(std::string_view key) const;
};

// The revisions a read checks against: etcd's currentRev and compactMainRev (-1 = never).
struct RevisionBounds {
  int64_t current = 1;
  int64_t compacted = -1;
};

// Called with a key and its serialized KeyValue (key field empty); return false to stop.
using LiveKeyVisitor = std::function<bool(std::string_view key, std::string_view kv_bytes)>;

// Visits, in ascending key order, every key of `span` that is live at revision `rev`.
// `at_current`: rev is the view's newest revision, so the kv family answers directly;
// otherwise the history family does. Returns Internal on a malformed record.
Status ForEachLiveKey(StoreView& view, const KeySpan& span, int64_t rev, bool at_current,
                      const LiveKeyVisitor& visit);

// Parses a stored KeyValue and sets its key.
bool ParseKeyValue(std::string_view key, std::string_view kv_bytes, mvccpb::KeyValue* out);

// etcd 3.5's applierV3backend.Range over mvcc rangeKeys: revision checks, limit (+1 for
// `more`), count of all matching keys, min/max mod/create filters (applied after the limit
// fetch, as etcd does), sort (etcd's default-ASCEND quirk), keys_only, count_only.
// Fills `response` except the header's cluster/member/term (header.revision = current).
Status ExecuteRange(StoreView& view, const etcdserverpb::RangeRequest& request,
                    const RevisionBounds& revisions, etcdserverpb::RangeResponse* response);

}  // namespace rusd::stored
