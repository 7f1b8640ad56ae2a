// The on-disk format of raftd's write-ahead log: the single place it is defined.
//
// Directory: <data-dir>/member/wal/ holds segment files named
//     <sequence:016x>-<first index:016x>.wal
// `sequence` counts segments from 0; `first index` is the index the first entry appended
// to the segment was expected to have (previous segment's last index + 1). Other files are
// ignored (a "*.wal.tmp" is a segment whose creation a crash interrupted). Each segment is
// preallocated (fallocate) to WalOptions::segment_bytes, so appends never change the file
// size; the unwritten rest reads as zeros. The writer also writes real zeros about 1 MiB
// ahead of its records, so that most fdatasyncs need not convert unwritten extents (an
// extra metadata I/O on ext4).
//
// A segment is a sequence of records, each starting at an offset that is a multiple of 8:
//
//   0        4        8      9        12       16                    16+length  (pad to 8)
//   +--------+--------+------+--------+--------+-----------------------+---------+
//   | crc32c | length | type | 0 0 0  | group  | payload (length bytes)| 0 .. 0  |
//   +--------+--------+------+--------+--------+-----------------------+---------+
//   crc32c  CRC-32C of bytes [4, 16 + length): header fields after it plus the payload.
//   length  payload bytes.
//   type    RecordType below; 0 never starts a record (zeros mark the unused tail).
//   group   sync-group number: all records written between two fdatasyncs share it; it
//           grows by one after each fdatasync (mod 2^32). Recovery uses it to tell a torn
//           tail from corruption (below).
// All integers are little-endian.
//
// Payloads:
//   kSegmentHeader  magic u64 "RUSDWAL1" | version u32 | flags u32 | sequence u64 |
//                   prev_index u64 | prev_term u64        (40 bytes; always the first record)
//                   flags bit 0 (kSegmentRestartsLog): the log restarts here at
//                   (prev_index, prev_term), a snapshot a follower installed; whatever
//                   earlier segments hold is superseded (they are deleted right after).
//   kHardState      term u64 | vote u64 | commit u64      (24 bytes; the second record of
//                   every segment, and again whenever it changes)
//   kEntry          index u64 | term u64 | entry type u8 | 0 x7 | data   (24 + data bytes)
//
// Replay: entries in file order; an entry whose index is <= the last one seen replaces
// the log from that index on (a new leader overwrote an uncommitted suffix). The last
// kHardState record wins.
//
// Crash recovery: writes happen in groups ended by one fdatasync. Only the last segment
// can hold records of a group that was never synced. When a record of the last segment is
// unreadable (zeros, bad type/length, bad crc), recovery looks for any valid record after
// it: none, or only records of the same or the next group, means a torn tail (dropped);
// a valid record of a later group means a record that was once synced went bad:
// corruption, refused with the file name and offset. In other segments any unreadable
// record before the zero tail is corruption.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace rusd::wal {

inline constexpr uint64_t kSegmentMagic = 0x314C415744535552ull;  // "RUSDWAL1" little-endian
inline constexpr uint32_t kFormatVersion = 1;
inline constexpr size_t kRecordHeaderSize = 16;
inline constexpr size_t kRecordAlign = 8;
inline constexpr size_t kSegmentHeaderPayload = 40;
inline constexpr size_t kHardStatePayload = 24;
inline constexpr size_t kEntryPayloadPrefix = 24;
// Larger lengths are garbage, not records (entries are capped far below by
// --max-request-bytes).
inline constexpr uint32_t kMaxRecordPayload = 256u << 20;
inline constexpr uint64_t kDefaultSegmentBytes = 64ull << 20;
inline constexpr uint32_t kSegmentRestartsLog = 1;

enum class RecordType : uint8_t {
  kSegmentHeader = 1,
  kHardState = 2,
  kEntry = 3,
};

// The crc field is the record's first kRecordCrcSize bytes; it covers what follows it up to
// the end of the payload.
inline constexpr size_t kRecordCrcSize = 4;
inline constexpr size_t RecordCrcCoveredBytes(size_t payload) {
  return kRecordHeaderSize - kRecordCrcSize + payload;
}

inline constexpr size_t AlignedRecordSize(size_t payload) {
  return (kRecordHeaderSize + payload + kRecordAlign - 1) & ~(kRecordAlign - 1);
}

inline void PutU32(char* p, uint32_t v) { std::memcpy(p, &v, 4); }
inline void PutU64(char* p, uint64_t v) { std::memcpy(p, &v, 8); }
// Appends v to *out, little-endian (also the integers of raftd's snapshot point file and
// snapshot streams).
inline void AppendU32(std::string* out, uint32_t v) {
  char b[4];
  PutU32(b, v);
  out->append(b, 4);
}
inline void AppendU64(std::string* out, uint64_t v) {
  char b[8];
  PutU64(b, v);
  out->append(b, 8);
}
inline uint32_t GetU32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline uint64_t GetU64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// Appends one record (header, payload = prefix + data, zero padding) to `out`.
void AppendRecord(std::string* out, RecordType type, uint32_t group, std::string_view prefix,
                  std::string_view data = {});

// One record as found in a segment; `payload` points into the segment's bytes.
struct RecordView {
  RecordType type;
  uint32_t group;
  const char* payload;
  uint32_t length;
  size_t size;  // bytes from this record's start to the next record's
};
enum class DecodeOutcome {
  kRecord,  // *out holds a valid record
  kZero,    // a zero header: the unused tail of a segment (or a hole)
  kBad,     // anything else; *reason says what
};
// Decodes the record at p[0, avail).
DecodeOutcome DecodeRecord(const char* p, size_t avail, RecordView* out, const char** reason);
// DecodeRecord without the crc check: every check of the header fields alone. For callers
// that check the crc of bytes [kRecordCrcSize, kRecordCrcSize + RecordCrcCoveredBytes(length))
// faster themselves (recovery's scan past a bad record, raftd/wal/crc32c_ranges.h).
DecodeOutcome DecodeRecordHeader(const char* p, size_t avail, RecordView* out,
                                 const char** reason);

// "<sequence:016x>-<first index:016x>.wal"
std::string SegmentFileName(uint64_t sequence, uint64_t first_index);
// Parses a segment file name; false for anything else.
bool ParseSegmentFileName(std::string_view name, uint64_t* sequence, uint64_t* first_index);

}  // namespace rusd::wal
