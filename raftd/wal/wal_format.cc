#include "raftd/wal/wal_format.h"

#include <charconv>
#include <cstdio>

#include "common/crc32c.h"

namespace rusd::wal {

void AppendRecord(std::string* out, RecordType type, uint32_t group, std::string_view prefix,
                  std::string_view data) {
  const size_t length = prefix.size() + data.size();
  const size_t start = out->size();
  out->resize(start + AlignedRecordSize(length));  // zero-fills the padding
  char* p = out->data() + start;
  PutU32(p + 4, static_cast<uint32_t>(length));
  p[8] = static_cast<char>(type);
  p[9] = p[10] = p[11] = 0;
  PutU32(p + 12, group);
  std::memcpy(p + kRecordHeaderSize, prefix.data(), prefix.size());
  if (!data.empty()) std::memcpy(p + kRecordHeaderSize + prefix.size(), data.data(), data.size());
  PutU32(p, Crc32c(p + kRecordCrcSize, RecordCrcCoveredBytes(length)));
}

DecodeOutcome DecodeRecordHeader(const char* p, size_t avail, RecordView* out,
                                 const char** reason) {
  if (avail < kRecordHeaderSize) {
    for (size_t i = 0; i < avail; ++i) {
      if (p[i] != 0) {
        *reason = "truncated record header";
        return DecodeOutcome::kBad;
      }
    }
    return DecodeOutcome::kZero;
  }
  const uint32_t length = GetU32(p + 4);
  const auto type = static_cast<uint8_t>(p[8]);
  if (type == 0) {
    bool zero = true;
    for (size_t i = 0; i < kRecordHeaderSize; ++i) zero &= (p[i] == 0);
    *reason = "bad record type 0";
    return zero ? DecodeOutcome::kZero : DecodeOutcome::kBad;
  }
  if (type > static_cast<uint8_t>(RecordType::kEntry) || p[9] != 0 || p[10] != 0 || p[11] != 0) {
    *reason = "bad record type";
    return DecodeOutcome::kBad;
  }
  if (length > kMaxRecordPayload || length > avail - kRecordHeaderSize) {
    *reason = "record length beyond the end of the segment";
    return DecodeOutcome::kBad;
  }
  const auto rtype = static_cast<RecordType>(type);
  if ((rtype == RecordType::kSegmentHeader && length != kSegmentHeaderPayload) ||
      (rtype == RecordType::kHardState && length != kHardStatePayload) ||
      (rtype == RecordType::kEntry && length < kEntryPayloadPrefix)) {
    *reason = "bad payload length for the record type";
    return DecodeOutcome::kBad;
  }
  out->type = rtype;
  out->group = GetU32(p + 12);
  out->payload = p + kRecordHeaderSize;
  out->length = length;
  out->size = std::min(AlignedRecordSize(length), avail);
  return DecodeOutcome::kRecord;
}

DecodeOutcome DecodeRecord(const char* p, size_t avail, RecordView* out, const char** reason) {
  const DecodeOutcome outcome = DecodeRecordHeader(p, avail, out, reason);
  if (outcome != DecodeOutcome::kRecord) return outcome;
  if (Crc32c(p + kRecordCrcSize, RecordCrcCoveredBytes(out->length)) != GetU32(p)) {
    *reason = "crc mismatch";
    return DecodeOutcome::kBad;
  }
  return DecodeOutcome::kRecord;
}

std::string SegmentFileName(uint64_t sequence, uint64_t first_index) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%016llx-%016llx.wal", static_cast<unsigned long long>(sequence),
                static_cast<unsigned long long>(first_index));
  return buf;
}

bool ParseSegmentFileName(std::string_view name, uint64_t* sequence, uint64_t* first_index) {
  if (name.size() != 16 + 1 + 16 + 4 || name[16] != '-' || name.substr(33) != ".wal") {
    return false;
  }
  auto hex = [](std::string_view s, uint64_t* v) {
    for (char c : s) {
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *v, 16);
    return ec == std::errc() && ptr == s.data() + s.size();
  };
  return hex(name.substr(0, 16), sequence) && hex(name.substr(17, 16), first_index);
}

}  // namespace rusd::wal
