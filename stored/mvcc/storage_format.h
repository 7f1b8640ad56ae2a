// The on-disk layout of the MVCC store in RocksDB (<data-dir>/member/store). Defined here
// once; kv_store.cc is the only writer. Pure functions, no RocksDB types: safe from any
// thread.
//
// Column families (format version 1):
//
//   kv       user key (raw bytes)            -> KeyValue (mvccpb, `key` field left empty)
//            The current value of each live key: the common read is one Get. Deleted keys
//            are absent. Bloom filter on.
//
//   keys     user key (raw bytes)            -> "" (empty)
//            The set of live keys, values elsewhere: counting the keys of a range (etcd's
//            `count`, computed even with a limit) scans a few bytes per key, not values.
//
//   history  Escape(user key) 00 01 | main(8, BE) | sub(8, BE)
//                                            -> 'p' KeyValue (key left empty) | 't'
//            Every version of every key, ordered by key then revision. 't' marks a
//            tombstone (a delete at that revision). Serves historical reads.
//
//   revlog   main(8, BE) | sub(8, BE)        -> 'p' user key | 't' user key
//            One record per change in revision order: drives compaction and watch catch-up.
//
//   meta     name (ASCII)                    -> u64 big endian
//            format_version, applied_index, raft_term, current_revision,
//            compact_revision (etcd's compactMainRev; absent = never compacted, -1),
//            finished_compact_revision (history physically purged up to here; when it is
//            below compact_revision, Open finishes the purge).
//            Also the leases: "lease/<id>" and "leasekey/<id><key>" records, whose layout
//            lease_records.h draws.
//
// Key escaping keeps byte order for arbitrary keys (0x00 included): every 0x00 byte of the
// user key becomes 00 FF, and the key ends with the terminator 00 01. The terminator sorts
// below any continuation of the key (00 FF or a byte >= 01), so Escape(a) < Escape(b) iff
// a < b, and all versions of one key are contiguous. Revisions are non-negative, so their
// big-endian encoding sorts numerically.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace rusd::stored::format {

inline constexpr uint64_t kFormatVersion = 1;

inline constexpr char kKvFamily[] = "kv";
inline constexpr char kHistoryFamily[] = "history";
inline constexpr char kRevlogFamily[] = "revlog";
inline constexpr char kMetaFamily[] = "meta";
inline constexpr char kKeysFamily[] = "keys";

inline constexpr char kMetaFormatVersion[] = "format_version";
inline constexpr char kMetaAppliedIndex[] = "applied_index";
inline constexpr char kMetaRaftTerm[] = "raft_term";
inline constexpr char kMetaCurrentRevision[] = "current_revision";
inline constexpr char kMetaCompactRevision[] = "compact_revision";
inline constexpr char kMetaFinishedCompactRevision[] = "finished_compact_revision";

// First byte of history and revlog values.
inline constexpr char kPutMark = 'p';
inline constexpr char kTombstoneMark = 't';

std::string EncodeU64(uint64_t v);
bool DecodeU64(std::string_view in, uint64_t* v);

// A revision (main, sub) as 16 bytes; the revlog key.
std::string EncodeRevision(int64_t main, int64_t sub);
// The same 16 bytes in place (the apply path writes one per change: no heap string).
struct RevisionBytes {
  char bytes[16];
  std::string_view view() const { return {bytes, sizeof(bytes)}; }
};
RevisionBytes EncodeRevisionBytes(int64_t main, int64_t sub);
bool DecodeRevision(std::string_view in, int64_t* main, int64_t* sub);

// Escaped user key WITHOUT the terminator: a lower/upper bound in the history family for
// the user key range starting/ending at `user_key`.
std::string EscapeKeyBound(std::string_view user_key);
// Escaped key WITH the terminator: the common prefix of all history records of the key.
std::string HistoryKeyPrefix(std::string_view user_key);
// Sorts after every history record of `user_key` and before those of any greater key.
std::string HistoryKeyAfter(std::string_view user_key);
std::string HistoryKey(std::string_view user_key, int64_t main, int64_t sub);
// The same key written over *out (its capacity reused); returns *out.
const std::string& HistoryKeyInto(std::string* out, std::string_view user_key, int64_t main,
                                  int64_t sub);
// Splits a history record key; false on malformed input.
bool DecodeHistoryKey(std::string_view in, std::string* user_key, int64_t* main, int64_t* sub);

}  // namespace rusd::stored::format
