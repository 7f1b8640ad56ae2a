// Fuzz target: raftd's WAL recovery (raftd/wal/wal_reader.h) over segment files a crash or
// a bad disk left behind, then WalWriter::Open's torn-tail truncation.
//
// Input: up to three segments separated by kSegmentSeparator. A segment file is named after
// its header's prev_index (when it has one) so that inputs get past the file-name check.
// The first byte's bit 0 asks the harness to fix up the CRC of every record header it
// finds walking the records in order (libFuzzer cannot forge a CRC-32C), so that the
// decoding after the checksum is explored too.
//
// Invariants: ReadWal returns a value or an error with a message; a recovery's entries
// continue its prev_index without gaps; after WalWriter::Open cut the torn tail, ReadWal
// finds the same log and no torn tail (recovery is idempotent).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/crc32c.h"
#include "raftd/wal/wal_format.h"
#include "raftd/wal/wal_reader.h"
#include "raftd/wal/wal_writer.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

constexpr std::string_view kSegmentSeparator = "--SEG--\n";

void FixCrcs(std::string* seg) {
  using namespace rusd::wal;
  size_t off = 0;
  while (off + kRecordHeaderSize <= seg->size()) {
    char* p = seg->data() + off;
    const uint32_t length = GetU32(p + 4);
    if (p[8] == 0 || length > seg->size() - off - kRecordHeaderSize) break;
    PutU32(p, rusd::Crc32c(p + 4, kRecordHeaderSize - 4 + length));
    off += AlignedRecordSize(length);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static rusd::fuzz::ScratchDir scratch;
  if (size == 0) return 0;
  const bool fix_crcs = (data[0] & 1) != 0;
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::vector<std::string> segments;
  while (segments.size() < 3) {
    const size_t cut = rest.find(kSegmentSeparator);
    segments.emplace_back(rest.substr(0, cut));
    if (cut == std::string_view::npos) break;
    rest.remove_prefix(cut + kSegmentSeparator.size());
  }
  scratch.Clear();
  const std::string dir = scratch.path() + "/wal";
  for (size_t i = 0; i < segments.size(); ++i) {
    std::string& seg = segments[i];
    if (fix_crcs) FixCrcs(&seg);
    uint64_t first_index = 1;
    if (seg.size() >= rusd::wal::kRecordHeaderSize + rusd::wal::kSegmentHeaderPayload) {
      first_index = rusd::wal::GetU64(seg.data() + rusd::wal::kRecordHeaderSize + 24) + 1;
    }
    rusd::fuzz::WriteFile(dir + "/" + rusd::wal::SegmentFileName(i, first_index), seg);
  }

  auto rec = rusd::wal::ReadWal(dir);
  if (!rec.ok()) {
    RUSD_FUZZ_CHECK(!rec.status().message().empty());
    return 0;
  }
  for (size_t i = 0; i < rec->entries.size(); ++i) {
    RUSD_FUZZ_CHECK(rec->entries[i].index == rec->prev_index + 1 + i);
  }
  rusd::wal::WalOptions options;
  options.segment_bytes = 64 << 10;
  auto writer = rusd::wal::WalWriter::Open(dir, *rec, options);
  if (!writer.ok()) {
    RUSD_FUZZ_CHECK(!writer.status().message().empty());
    return 0;
  }
  writer->reset();
  auto again = rusd::wal::ReadWal(dir);
  RUSD_FUZZ_CHECK(again.ok());
  RUSD_FUZZ_CHECK(!again->torn_tail);
  RUSD_FUZZ_CHECK(again->prev_index == rec->prev_index &&
                  again->entries.size() == rec->entries.size());
  RUSD_FUZZ_CHECK(again->hard_state.term == rec->hard_state.term &&
                  again->hard_state.commit == rec->hard_state.commit);
  return 0;
}
