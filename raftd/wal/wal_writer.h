// The appending side of raftd's WAL (format: raftd/wal/wal_format.h).
//
// Group commit is the point: the caller stages any number of entry and hard-state records,
// then Flush() writes them with one pwrite and, when asked, ONE fdatasync. Segments are
// preallocated and rolled over when a group does not fit; a new segment is written and
// synced under a temporary name and renamed into place, so a segment with a valid name
// always starts with a valid header and hard state.
//
// Errors are Internal (I/O) and leave the WAL in an unknown state: raftd treats them as
// fatal and exits (a restart recovers from what is on disk).
//
// Thread safety: none; owned by raftd's main loop.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "raftd/raft/messages.h"
#include "raftd/wal/wal_format.h"
#include "raftd/wal/wal_reader.h"

namespace rusd::wal {

struct WalOptions {
  uint64_t segment_bytes = kDefaultSegmentBytes;
};

class WalWriter {
 public:
  // Opens `dir` (created if missing) for appending after `recovered` (from ReadWal of the
  // same directory): cuts off a torn tail, or creates the first segment of a new WAL.
  static Result<std::unique_ptr<WalWriter>> Open(const std::string& dir,
                                                 const WalRecovery& recovered,
                                                 const WalOptions& options = {});
  ~WalWriter();
  WalWriter(const WalWriter&) = delete;
  WalWriter& operator=(const WalWriter&) = delete;

  // Stage records for the next Flush (no I/O). Entries may restart at or below the last
  // index written (a log overwrite); replay honours that.
  void AddEntries(std::span<const raft::Entry> entries);
  void AddHardState(const raft::HardState& hs);
  bool HasStaged() const { return !staged_.empty(); }

  // Writes the staged records; with `sync`, one fdatasync makes them (and every earlier
  // unsynced record) durable. Without it they ride along with the next synced group.
  Status Flush(bool sync);

  // Deletes whole segments all of whose entries are below `index` (never the last one).
  Status Trim(uint64_t index);

  // Restarts the log after a snapshot point (index, term) a follower installed: writes what
  // is staged, opens a new segment whose header restarts the log there (synced), then
  // deletes every older segment. A crash in between leaves the restarting segment last,
  // and recovery starts from it.
  Status ResetTo(uint64_t index, uint64_t term);

  // Index of the last entry written by Flush.
  uint64_t last_index() const { return last_index_; }
  size_t segment_count() const { return segments_.size(); }
  uint64_t fsyncs() const { return fsyncs_; }

 private:
  WalWriter(std::string dir, const WalOptions& options);
  Status CreateSegment(uint64_t sequence);
  Status SyncDir();
  Status ZeroAhead(uint64_t end);

  const std::string dir_;
  const WalOptions options_;
  std::vector<SegmentInfo> segments_;
  int fd_ = -1;          // the last segment, open for writing
  uint64_t offset_ = 0;  // end of its records
  // Bytes of the last segment from 0 that hold written data or written zeros. Above it the
  // preallocated extents are still "unwritten": a write there makes fdatasync also write
  // the inode's extent tree (a second synchronous I/O per group), so Flush zeroes ahead of
  // the records in large chunks and pays that once per chunk.
  uint64_t zeroed_ = 0;
  bool dirty_ = false;   // written without fdatasync
  uint32_t group_ = 0;   // sync group of the records being staged
  // What is written (the next segment's header needs it), and what is staged.
  uint64_t last_index_ = 0;
  uint64_t last_term_ = 0;
  raft::HardState hard_state_;
  bool staged_entries_ = false;
  uint64_t staged_last_index_ = 0;
  uint64_t staged_last_term_ = 0;
  bool staged_hs_ = false;
  raft::HardState staged_hard_state_;
  std::string staged_;  // encoded records waiting for Flush; capacity reused
  std::string zeros_;   // kZeroChunk zero bytes for ZeroAhead, allocated on first use
  uint64_t fsyncs_ = 0;
  uint32_t next_segment_flags_ = 0;  // header flags of the next segment created
};

}  // namespace rusd::wal
