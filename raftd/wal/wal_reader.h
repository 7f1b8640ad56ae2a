// Recovery of raftd's WAL (format: raftd/wal/wal_format.h): reads every segment of a WAL
// directory and rebuilds the hard state and the log. Read-only: the torn tail it finds is
// cut off by WalWriter::Open, which takes the WalRecovery this returns.
//
// Errors: DataLoss naming the file and byte offset for corruption that is not a torn tail
// (a bad record in the middle of the log, a bad segment header, a gap between segments);
// Internal for I/O errors. A missing or empty directory is an empty log, not an error.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "raftd/raft/messages.h"

namespace rusd::wal {

struct SegmentInfo {
  uint64_t sequence = 0;
  uint64_t first_index = 0;
  std::string path;
};

struct WalRecovery {
  raft::HardState hard_state;
  uint64_t prev_index = 0;  // the log starts after (prev_index, prev_term)
  uint64_t prev_term = 0;
  std::vector<raft::Entry> entries;
  std::vector<SegmentInfo> segments;  // by sequence; empty for a new WAL
  uint64_t tail_offset = 0;           // end of the valid records of the last segment
  bool torn_tail = false;             // the last segment has unreadable bytes after tail_offset
  uint32_t last_group = 0;            // sync group of the last valid record
};

Result<WalRecovery> ReadWal(const std::string& dir);

}  // namespace rusd::wal
