// Snapshots of the store on disk: RocksDB checkpoints under <data-dir>/member/snap/, and
// the install of a received one in place of <data-dir>/member/store/.
//
// Layout of member/snap/ (one directory per snapshot, each a complete RocksDB checkpoint):
//   db-<index:016x>/      made here every --snapshot-count applied entries; the newest
//                         `keep` are kept (raftd streams them to followers)
//   recv-<index:016x>/    received from a leader by raftd, named in an install order
//   *.tmp/                a snapshot being written (a crash leaves it: removed at start)
// Every complete snapshot holds a marker file RUSD_SNAPSHOT ("<index> <term>\n"), written
// and synced before the directory gets its final name: a directory with a final name and
// a marker is whole.
//
// Install (stored's half of "Durability between the WAL and RocksDB" in the brief), run
// with RocksDB closed:
//   1. rename store -> store.old        (fsync member/)
//   2. rename <snapshot> -> store       (fsync member/)
//   3. remove store.old
// A crash after 1 leaves no store/: RecoverInterruptedInstall puts store.old back (the
// install did not happen; raftd sees stored's applied index below its log and re-sends the
// order). A crash after 2 leaves store.old beside the new store: it is removed. So the
// store is always either wholly the old one or wholly the snapshot.
//
// Thread safety: none; the apply thread (and main() before/after it) owns these.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace rusd::stored {

class KvStore;

inline constexpr char kSnapshotMarkerFile[] = "RUSD_SNAPSHOT";

struct SnapshotInfo {
  uint64_t index = 0;  // applied index the snapshot holds
  uint64_t term = 0;   // term of the entry at index
  std::string dir;     // absolute path
};

// Writes (and fsyncs) the marker of a complete snapshot into `dir`.
Status WriteSnapshotMarker(const std::string& dir, uint64_t index, uint64_t term);
// Reads a snapshot directory's marker; NotFound if it has none, DataLoss if unreadable.
Result<SnapshotInfo> ReadSnapshotMarker(const std::string& dir);

class SnapshotDirectory {
 public:
  // `member_dir` is <data-dir>/member; snapshots live in member_dir/snap.
  explicit SnapshotDirectory(std::string member_dir, size_t keep = 2);

  // Creates snap/ if missing, removes leftovers of interrupted writes, finds the snapshots.
  Status Load();
  // Checkpoints `store` at its applied index into snap/db-<index>, then keeps the newest
  // `keep`. AlreadyExists if a snapshot at that index exists.
  Result<SnapshotInfo> Create(KvStore& store);
  // The newest complete snapshot made here, if any.
  std::optional<SnapshotInfo> newest() const;
  // Every snapshot kept, oldest first.
  const std::vector<SnapshotInfo>& all() const { return made_; }
  const std::string& snap_dir() const { return snap_dir_; }

 private:
  Status Prune();

  std::string member_dir_;
  std::string snap_dir_;
  size_t keep_;
  std::vector<SnapshotInfo> made_;  // ascending index
};

// The steps of InstallSnapshotDir, for tests that stop it half-way (a crash).
enum class InstallStep { kOldMovedAside, kNewInPlace };

// Swaps the snapshot in `snapshot_dir` (marker index must equal `index`) in as
// member_dir/store, with RocksDB closed. `continue_after` (tests): returning false stops
// right after that step, leaving the disk as a crash there would.
Status InstallSnapshotDir(const std::string& member_dir, const std::string& snapshot_dir,
                          uint64_t index,
                          const std::function<bool(InstallStep)>& continue_after = {});

// Finishes or rolls back an install a crash interrupted (see the top of this file). Call
// before opening member_dir/store.
Status RecoverInterruptedInstall(const std::string& member_dir);

}  // namespace rusd::stored
