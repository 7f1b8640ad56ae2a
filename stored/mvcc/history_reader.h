// HistoryReader: the events of a revision interval on a key range, read from one consistent
// store view — what watch catch-up needs (docs/architecture.md, "Reads, watches and leases").
// Internal to rusd_mvcc; KvStore::ReadHistory is its public face.
//
// Events look exactly like the live ones stored publishes (and like etcd's): a put carries
// the stored KeyValue, a delete only key and mod_revision, and with `prev_kv` every event
// whose key had a previous version still in the history family carries it (a version
// compacted away is gone; etcd behaves the same).
//
// Cost: a single-key query seeks that key's history records (≈ its own versions since
// `start`); a range query walks the revlog from `start` (≈ every change since `start`), so
// catch-up never reads keys older than it needs. Thread: whichever owns the view.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "stored/mvcc/kv_range.h"
#include "stored/mvcc/store_view.h"
#include "stored/mvcc/history_query.h"

namespace rusd::stored {

// Reads `query` from `view`, whose newest revision is `bounds.current`.
Status ReadHistoryChunk(StoreView& view, const RevisionBounds& bounds, const HistoryQuery& query,
                        HistoryChunk* out);

}  // namespace rusd::stored
