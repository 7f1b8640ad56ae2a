// The persisted lease state inside the MVCC store, in the `meta` column family beside the
// store's counters (storage_format.h keeps the other families):
//
//   "lease/"    id(8, BE)             -> rusd.internal.LeaseRecord {id, ttl, remaining_ttl}
//   "leasekey/" id(8, BE) | user key  -> ""   one record per key attached to the lease
//
// The attachment records make revoking a lease one prefix scan (no scan of all keys, no
// in-memory key index), and TimeToLive(keys) the same scan on a snapshot. They are written
// in the same batch as the key's own change, by the apply thread only: a put with a lease
// adds one, re-attaching moves it, a delete or revoke removes it.
//
// Pure encoders plus helpers over a StoreView; internal to rusd_mvcc.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "stored/mvcc/store_view.h"

namespace rusd::internal {
class LeaseRecord;
}

namespace rusd::stored::lease_records {

inline constexpr char kLeasePrefix[] = "lease/";
inline constexpr char kAttachmentPrefix[] = "leasekey/";

std::string LeaseKey(int64_t id);
// The prefix of every attachment of lease `id`.
std::string AttachmentPrefix(int64_t id);
std::string AttachmentKey(int64_t id, std::string_view user_key);

// Reads lease `id` through `view`; false if it does not exist.
Result<bool> Get(StoreView& view, int64_t id, internal::LeaseRecord* out);
// The keys attached to lease `id`, in key order.
Status AttachedKeys(StoreView& view, int64_t id, std::vector<std::string>* keys);
// Every lease, in id-byte order.
Status All(StoreView& view, std::vector<internal::LeaseRecord>* out);

}  // namespace rusd::stored::lease_records
