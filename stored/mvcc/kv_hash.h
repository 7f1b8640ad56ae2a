// etcd's HashKV (mvcc kvstore HashByRev, etcd 3.4/3.5) over a rusd read view, and rusd's
// own whole-state hash (Maintenance.Hash). Internal to rusd_mvcc; KvStore::HashKv and
// KvStore::Hash (kv_store.h) take the snapshot and call these.
//
// etcd's HashKV is a CRC-32C (Castagnoli) fed, in order, with the bucket name "key" and,
// for every record of its `key` bucket in revision order that it counts, the record's
// bbolt key and value:
//   key   = main (8, BE) '_' sub (8, BE), plus 't' for a tombstone (17 or 18 bytes)
//   value = mvccpb.KeyValue marshaled (fields in number order, zero fields omitted); a
//           tombstone's KeyValue holds only the key.
// The records counted at revision R with compact revision C:
//   - every record with C < main <= R;
//   - of the records at or below C, those etcd's compaction keeps (per key, its newest
//     record <= C, when that is a put), each only if it is still the key's newest record
//     <= R (etcd's kvindex.Keep(R)) -- or all of them when no key is live at R (etcd
//     skips the Keep filter when Keep(R) is empty).
// rusd derives these from its history/revlog families, whatever its purger has or has not
// deleted yet, so the value does not depend on how far a compaction's purge got.
//
// Pure functions over a view: any thread, one view per call.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/status.h"

namespace rusd::stored {

class StoreView;

// etcd's HashByRev hash at `revision` (already checked: revision <= current, and revision
// > compacted unless it is the current revision; a negative revision hashes no record, as
// etcd's) with compact revision `compacted` (-1: never compacted).
Result<uint32_t> ComputeHashKv(StoreView& view, int64_t revision, int64_t compacted);

// rusd's Maintenance.Hash: the HashKV stream at `current` continued over the persisted
// lease records. Equal on members with equal applied state; NOT etcd's value (etcd hashes
// its whole bbolt file, which rusd does not have).
Result<uint32_t> ComputeStateHash(StoreView& view, int64_t current, int64_t compacted);

}  // namespace rusd::stored
