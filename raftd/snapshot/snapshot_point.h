// The snapshot point raftd persists: where its log starts (index and term of the last entry
// a snapshot covers) and the configuration in force there. Membership lives in raftd, so a
// restart after compaction needs this file to know the voters as of its log start.
//
// File <data-dir>/member/snap/raft-snapshot-point, replaced atomically (write a .tmp, fsync,
// rename, fsync the directory). Format (little-endian):
//   magic u64 "RUSDSNP2" | index u64 | term u64 | n_voters u32 | n_voters x u64 |
//   n_learners u32 | n_learners x u64 | members_len u32 | members bytes |
//   crc32c u32 of every byte before it
// `members` is the member list (names, peer URLs, learner flags) as of the point, a
// serialized rusd.internal.MemberListFile: the conf-change entries that built it are
// compacted away, so a snapshot sent from here carries it. Version 1 files ("RUSDSNP1",
// no members field) are still read, with no members.
//
// Recovery: the WAL may start before the point (segments are trimmed whole), end before it
// (a follower crashed between persisting an installed snapshot's point and restarting its
// WAL), or restart exactly at it. MergeSnapshotPoint makes one recovered log of the two.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "raftd/raft/raft_node.h"
#include "raftd/wal/wal_reader.h"

namespace rusd::raftd {

inline constexpr char kSnapshotPointFile[] = "raft-snapshot-point";

Status WriteSnapshotPoint(const std::string& snap_dir, const raft::SnapshotMeta& meta,
                          std::string_view members = {});
// nullopt when there is no file (no snapshot yet); DataLoss for a damaged one. `members`
// (if given) gets the member list stored with the point (empty if none).
Result<std::optional<raft::SnapshotMeta>> ReadSnapshotPoint(const std::string& snap_dir,
                                                            std::string* members = nullptr);

struct MergedRecovery {
  raft::RecoveredState state;
  // The WAL does not continue the snapshot point (it ends before it or disagrees on its
  // term): the caller must restart the WAL at the point (WalWriter::ResetTo) before use.
  bool wal_needs_reset = false;
};
// The log to start from, given the WAL's recovery and the persisted snapshot point.
MergedRecovery MergeSnapshotPoint(wal::WalRecovery wal,
                                  const std::optional<raft::SnapshotMeta>& point);

}  // namespace rusd::raftd
