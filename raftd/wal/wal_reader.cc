#include "raftd/wal/wal_reader.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

#include "common/crc32c.h"
#include "raftd/wal/crc32c_ranges.h"
#include "raftd/wal/wal_format.h"

namespace rusd::wal {
namespace {

std::string Errno(const std::string& what, const std::string& path) {
  return "wal: " + what + " " + path + ": " + std::strerror(errno);
}

// A read-only mapping of one segment file.
class MappedFile {
 public:
  ~MappedFile() {
    if (data_ != nullptr) munmap(const_cast<char*>(data_), size_);
  }
  Status Open(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Status::IoError(Errno("open", path));
    struct stat st {};
    if (fstat(fd, &st) != 0) {
      ::close(fd);
      return Status::IoError(Errno("stat", path));
    }
    size_ = static_cast<size_t>(st.st_size);
    if (size_ > 0) {
      void* p = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        ::close(fd);
        return Status::IoError(Errno("mmap", path));
      }
      data_ = static_cast<const char*>(p);
    }
    ::close(fd);
    return Status::Ok();
  }
  const char* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  const char* data_ = nullptr;
  size_t size_ = 0;
};

Status Corrupt(const std::string& path, size_t offset, const std::string& why) {
  return Status::DataLoss("wal: corrupt segment " + path + " at offset " +
                          std::to_string(offset) + ": " + why);
}

// Candidates whose crc covers at most this many bytes are checked by reading them; longer
// ones through Crc32cRanges, so that the scan below costs O(1) per candidate however long
// the lengths a damaged (or crafted) segment claims.
constexpr size_t kDirectCrcBytes = 256;

// Looks for valid records at 8-aligned offsets after `from`. Returns whether there is any,
// and the one whose group is furthest after `last_group` (mod 2^32). Linear in the size of
// the file: one pass to index the crcs (only if a long candidate shows up), then constant
// work per offset.
bool FindLaterRecords(const MappedFile& f, size_t from, uint32_t last_group,
                      uint32_t* max_distance, size_t* at) {
  bool found = false;
  *max_distance = 0;
  const size_t scan_from = from + kRecordAlign;
  std::optional<Crc32cRanges> crcs;  // over [scan_from, size), built on first need
  auto crc_matches = [&](size_t off, const RecordView& rv) {
    const size_t covered = RecordCrcCoveredBytes(rv.length);
    const char* begin = f.data() + off + kRecordCrcSize;
    const uint32_t want = GetU32(f.data() + off);
    if (covered <= kDirectCrcBytes) return Crc32c(begin, covered) == want;
    if (!crcs) crcs.emplace(f.data() + scan_from, f.size() - scan_from);
    const size_t rel = off + kRecordCrcSize - scan_from;
    return crcs->Of(rel, rel + covered) == want;
  };
  size_t off = scan_from;
  while (off + kRecordHeaderSize <= f.size()) {
    const char* p = f.data() + off;
    if (p[8] == 0) {  // fast path through zeros
      off += kRecordAlign;
      continue;
    }
    RecordView rv;
    const char* reason = nullptr;
    if (DecodeRecordHeader(p, f.size() - off, &rv, &reason) != DecodeOutcome::kRecord ||
        !crc_matches(off, rv)) {
      off += kRecordAlign;
      continue;
    }
    const uint32_t distance = rv.group - last_group;
    if (!found || distance > *max_distance) {
      *max_distance = distance;
      *at = off;
    }
    found = true;
    off += rv.size;
  }
  return found;
}

class Replayer {
 public:
  explicit Replayer(WalRecovery* rec) : rec_(rec) {}

  Status Segment(const SegmentInfo& seg, bool last) {
    MappedFile f;
    RUSD_RETURN_IF_ERROR(f.Open(seg.path));
    size_t off = 0;
    RecordView rv;
    const char* reason = "";
    // The header record is written and synced before the file gets its final name.
    if (DecodeRecord(f.data(), f.size(), &rv, &reason) != DecodeOutcome::kRecord ||
        rv.type != RecordType::kSegmentHeader) {
      return Corrupt(seg.path, 0, "bad segment header");
    }
    const uint64_t magic = GetU64(rv.payload);
    const uint32_t version = GetU32(rv.payload + 8);
    const uint64_t sequence = GetU64(rv.payload + 16);
    const uint64_t prev_index = GetU64(rv.payload + 24);
    const uint64_t prev_term = GetU64(rv.payload + 32);
    if (magic != kSegmentMagic) return Corrupt(seg.path, 0, "bad magic");
    if (version != kFormatVersion) {
      return Corrupt(seg.path, 0, "unsupported format version " + std::to_string(version));
    }
    if (sequence != seg.sequence || prev_index + 1 != seg.first_index) {
      return Corrupt(seg.path, 0, "segment header does not match the file name");
    }
    const uint32_t flags = GetU32(rv.payload + 12);
    if (first_ || (flags & kSegmentRestartsLog) != 0) {
      rec_->prev_index = prev_index;
      rec_->prev_term = prev_term;
      rec_->entries.clear();
      first_ = false;
    } else if (prev_index != LastIndex()) {
      return Corrupt(seg.path, 0,
                     "segment starts after index " + std::to_string(prev_index) +
                         " but the log before it ends at " + std::to_string(LastIndex()));
    }
    rec_->last_group = rv.group;
    off = rv.size;

    while (true) {
      const DecodeOutcome outcome =
          off < f.size() ? DecodeRecord(f.data() + off, f.size() - off, &rv, &reason)
                         : DecodeOutcome::kZero;
      if (outcome == DecodeOutcome::kRecord) {
        if (rv.type == RecordType::kSegmentHeader) {
          return Corrupt(seg.path, off, "segment header in the middle of a segment");
        }
        RUSD_RETURN_IF_ERROR(Apply(rv, seg.path, off));
        rec_->last_group = rv.group;
        off += rv.size;
        continue;
      }
      // End of the records: find out whether what follows is an unused tail, a torn
      // write (last segment only) or corruption.
      uint32_t distance = 0;
      size_t later_at = 0;
      const bool later =
          off < f.size() && FindLaterRecords(f, off, rec_->last_group, &distance, &later_at);
      if (last) {
        if (later && distance > 1) {
          return Corrupt(seg.path, off,
                         std::string(outcome == DecodeOutcome::kZero ? "zeroed record"
                                                                     : reason) +
                             ", followed by a synced record at offset " +
                             std::to_string(later_at));
        }
        rec_->tail_offset = off;
        rec_->torn_tail = outcome == DecodeOutcome::kBad || later;
        return Status::Ok();
      }
      if (outcome == DecodeOutcome::kBad) return Corrupt(seg.path, off, reason);
      if (later) {
        return Corrupt(seg.path, off,
                       "zeroed record followed by a record at offset " + std::to_string(later_at));
      }
      return Status::Ok();
    }
  }

  bool first() const { return first_; }

 private:
  uint64_t LastIndex() const { return rec_->prev_index + rec_->entries.size(); }

  Status Apply(const RecordView& rv, const std::string& path, size_t off) {
    if (rv.type == RecordType::kHardState) {
      rec_->hard_state.term = GetU64(rv.payload);
      rec_->hard_state.vote = GetU64(rv.payload + 8);
      rec_->hard_state.commit = GetU64(rv.payload + 16);
      return Status::Ok();
    }
    raft::Entry e;
    e.index = GetU64(rv.payload);
    e.term = GetU64(rv.payload + 8);
    const auto type = static_cast<uint8_t>(rv.payload[16]);
    if (type > static_cast<uint8_t>(raft::EntryType::kEmpty)) {
      return Corrupt(path, off, "bad entry type " + std::to_string(type));
    }
    e.type = static_cast<raft::EntryType>(type);
    if (e.index <= rec_->prev_index) {
      return Corrupt(path, off, "entry " + std::to_string(e.index) +
                                    " is at or below the log start " +
                                    std::to_string(rec_->prev_index));
    }
    if (e.index > LastIndex() + 1) {
      return Corrupt(path, off, "entry " + std::to_string(e.index) + " leaves a gap after " +
                                    std::to_string(LastIndex()));
    }
    // Raft log overwrite: a later leader replaced the suffix from e.index on.
    rec_->entries.resize(e.index - rec_->prev_index - 1);
    e.data.assign(rv.payload + kEntryPayloadPrefix, rv.length - kEntryPayloadPrefix);
    rec_->entries.push_back(std::move(e));
    return Status::Ok();
  }

  WalRecovery* rec_;
  bool first_ = true;
};

}  // namespace

Result<WalRecovery> ReadWal(const std::string& dir) {
  WalRecovery rec;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) return rec;
    return Status::IoError(Errno("opendir", dir));
  }
  while (struct dirent* de = readdir(d)) {
    SegmentInfo seg;
    if (ParseSegmentFileName(de->d_name, &seg.sequence, &seg.first_index)) {
      seg.path = dir + "/" + de->d_name;
      rec.segments.push_back(std::move(seg));
    }
  }
  closedir(d);
  std::sort(rec.segments.begin(), rec.segments.end(),
            [](const SegmentInfo& a, const SegmentInfo& b) { return a.sequence < b.sequence; });
  for (size_t i = 1; i < rec.segments.size(); ++i) {
    if (rec.segments[i].sequence != rec.segments[i - 1].sequence + 1) {
      return Status::DataLoss("wal: missing segment between " + rec.segments[i - 1].path +
                              " and " + rec.segments[i].path);
    }
  }
  Replayer replayer(&rec);
  for (size_t i = 0; i < rec.segments.size(); ++i) {
    RUSD_RETURN_IF_ERROR(replayer.Segment(rec.segments[i], i + 1 == rec.segments.size()));
  }
  return rec;
}

}  // namespace rusd::wal
