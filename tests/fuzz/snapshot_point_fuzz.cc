// Fuzz target: raftd's snapshot point file (raftd/snapshot/snapshot_point.h) as a crash or
// a bad disk may leave it, and its merge with a recovered WAL.
//
// The first byte's bit 0 asks the harness to replace the file's last 4 bytes with the
// correct CRC-32C (libFuzzer cannot forge one), so the parsing after the checksum is
// explored. The next 16 bytes (when present) give the recovered WAL's prev_index and the
// number of its entries (capped) to merge with.
//
// Invariants: a damaged file is an error with a message; a file that reads back is
// written back byte for byte the same; MergeSnapshotPoint never reads outside the log.
#include <cstdint>
#include <string>
#include <string_view>

#include "raftd/snapshot/snapshot_point.h"
#include "common/crc32c.h"
#include "raftd/wal/wal_format.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static rusd::fuzz::ScratchDir scratch;
  if (size < 17) return 0;
  const bool fix_crc = (data[0] & 1) != 0;
  const uint64_t wal_prev = rusd::wal::GetU64(reinterpret_cast<const char*>(data) + 1);
  const uint64_t wal_count = rusd::wal::GetU64(reinterpret_cast<const char*>(data) + 9) % 64;
  std::string file(reinterpret_cast<const char*>(data) + 17, size - 17);
  if (fix_crc && file.size() >= 4) {
    rusd::wal::PutU32(file.data() + file.size() - 4,
                      rusd::Crc32c(file.data(), file.size() - 4));
  }
  scratch.Clear();
  const std::string dir = scratch.path() + "/snap";
  rusd::fuzz::WriteFile(dir + "/" + rusd::raftd::kSnapshotPointFile, file);

  auto point = rusd::raftd::ReadSnapshotPoint(dir);
  if (!point.ok()) {
    RUSD_FUZZ_CHECK(!point.status().message().empty());
    return 0;
  }
  RUSD_FUZZ_CHECK(point->has_value());
  const std::string again_dir = scratch.path() + "/again";
  RUSD_FUZZ_CHECK(rusd::raftd::WriteSnapshotPoint(again_dir, **point).ok());
  auto again = rusd::raftd::ReadSnapshotPoint(again_dir);
  RUSD_FUZZ_CHECK(again.ok() && again->has_value() && **again == **point);

  if (wal_prev > UINT64_MAX - wal_count) return 0;  // a WAL never holds such indexes
  rusd::wal::WalRecovery wal;
  wal.prev_index = wal_prev;
  for (uint64_t i = 0; i < wal_count; ++i) {
    rusd::raft::Entry e;
    e.index = wal_prev + 1 + i;
    e.term = i / 4 + 1;
    wal.entries.push_back(e);
  }
  auto merged = rusd::raftd::MergeSnapshotPoint(std::move(wal), *point);
  RUSD_FUZZ_CHECK(merged.state.prev_index >= wal_prev || merged.state.prev_index == 0 ||
                  (*point)->index == 0);
  return 0;
}
