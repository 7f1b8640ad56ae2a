#include "raftd/wal/wal_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace rusd::wal {
namespace {

std::string Errno(const std::string& what, const std::string& path) {
  return "wal: " + what + " " + path + ": " + std::strerror(errno);
}

Status WriteAll(int fd, const char* p, size_t n, uint64_t offset, const std::string& path) {
  while (n > 0) {
    ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::IoError(Errno("write", path));
    }
    p += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
  return Status::Ok();
}

Status Preallocate(int fd, uint64_t bytes, const std::string& path) {
  int rc = ::posix_fallocate(fd, 0, static_cast<off_t>(bytes));
  if (rc == 0) return Status::Ok();
  errno = rc;
  if (rc == EOPNOTSUPP || rc == EINVAL) {
    // Filesystems without fallocate (tmpfs on old kernels): a sparse file still reads zeros.
    if (::ftruncate(fd, static_cast<off_t>(bytes)) == 0) return Status::Ok();
  }
  return Status::IoError(Errno("preallocate", path));
}

// How far ahead of the records Flush writes zeros (see WalWriter::zeroed_).
constexpr uint64_t kZeroChunk = 1ull << 20;

void EncodeHardState(std::string* out, uint32_t group, const raft::HardState& hs) {
  char p[kHardStatePayload];
  PutU64(p, hs.term);
  PutU64(p + 8, hs.vote);
  PutU64(p + 16, hs.commit);
  AppendRecord(out, RecordType::kHardState, group, std::string_view(p, sizeof p));
}

}  // namespace

WalWriter::WalWriter(std::string dir, const WalOptions& options)
    : dir_(std::move(dir)), options_(options) {}

WalWriter::~WalWriter() {
  if (fd_ >= 0) ::close(fd_);
}

Result<std::unique_ptr<WalWriter>> WalWriter::Open(const std::string& dir,
                                                   const WalRecovery& rec,
                                                   const WalOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::IoError("wal: create " + dir + ": " + ec.message());
  // Leftovers of a segment creation a crash interrupted.
  for (const auto& de : std::filesystem::directory_iterator(dir, ec)) {
    if (de.path().extension() == ".tmp") std::filesystem::remove(de.path(), ec);
  }

  std::unique_ptr<WalWriter> w(new WalWriter(dir, options));
  w->hard_state_ = rec.hard_state;
  w->last_index_ = rec.prev_index + rec.entries.size();
  w->last_term_ = rec.entries.empty() ? rec.prev_term : rec.entries.back().term;
  w->group_ = rec.last_group + 1;
  w->segments_ = rec.segments;
  if (w->segments_.empty()) {
    RUSD_RETURN_IF_ERROR(w->CreateSegment(0));
    return w;
  }
  const SegmentInfo& last = w->segments_.back();
  w->fd_ = ::open(last.path.c_str(), O_RDWR | O_CLOEXEC);
  if (w->fd_ < 0) return Status::IoError(Errno("open", last.path));
  w->offset_ = rec.tail_offset;
  w->zeroed_ = rec.tail_offset;  // what lies beyond is unknown: zero it again when needed
  if (rec.torn_tail) {
    // Cut the torn tail and give the space back as zeros, so that no stale record after
    // the new ones can ever be mistaken for part of the log.
    if (::ftruncate(w->fd_, static_cast<off_t>(rec.tail_offset)) != 0) {
      return Status::IoError(Errno("truncate", last.path));
    }
    RUSD_RETURN_IF_ERROR(Preallocate(w->fd_, options.segment_bytes, last.path));
  }
  // The previous raftd may have died between writing its last records and syncing them:
  // they are readable from the page cache but not yet durable. Sync before this raftd
  // treats them as persisted (it will commit them), whatever its first write does next.
  if (::fdatasync(w->fd_) != 0) return Status::IoError(Errno("fdatasync", last.path));
  ++w->fsyncs_;
  return w;
}

Status WalWriter::CreateSegment(uint64_t sequence) {
  SegmentInfo seg;
  seg.sequence = sequence;
  seg.first_index = last_index_ + 1;
  seg.path = dir_ + "/" + SegmentFileName(sequence, seg.first_index);
  const std::string tmp = seg.path + ".tmp";
  int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::IoError(Errno("create", tmp));
  auto fail = [&](Status s) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  };
  Status st = Preallocate(fd, options_.segment_bytes, tmp);
  if (!st.ok()) return fail(st);
  std::string head;
  char p[kSegmentHeaderPayload];
  PutU64(p, kSegmentMagic);
  PutU32(p + 8, kFormatVersion);
  PutU32(p + 12, next_segment_flags_);
  PutU64(p + 16, sequence);
  PutU64(p + 24, last_index_);
  PutU64(p + 32, last_term_);
  AppendRecord(&head, RecordType::kSegmentHeader, group_, std::string_view(p, sizeof p));
  EncodeHardState(&head, group_, hard_state_);
  const uint64_t head_bytes = head.size();
  // The first chunk is zeroed with the header, under the same fdatasync (see zeroed_).
  const uint64_t zeroed = std::max<uint64_t>(head.size(), std::min(kZeroChunk, options_.segment_bytes));
  head.resize(zeroed, '\0');
  st = WriteAll(fd, head.data(), head.size(), 0, tmp);
  if (!st.ok()) return fail(st);
  if (::fdatasync(fd) != 0) return fail(Status::IoError(Errno("fdatasync", tmp)));
  if (::rename(tmp.c_str(), seg.path.c_str()) != 0) {
    return fail(Status::IoError(Errno("rename", tmp)));
  }
  RUSD_RETURN_IF_ERROR(SyncDir());
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
  offset_ = head_bytes;
  zeroed_ = zeroed;
  // The header keeps the current group number: the records staged for this segment carry
  // it too, so recovery sees one group, never a skipped one.
  dirty_ = false;
  next_segment_flags_ = 0;
  segments_.push_back(std::move(seg));
  return Status::Ok();
}

Status WalWriter::SyncDir() {
  int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return Status::IoError(Errno("open", dir_));
  int rc = ::fsync(dfd);
  ::close(dfd);
  if (rc != 0) return Status::IoError(Errno("fsync", dir_));
  return Status::Ok();
}

void WalWriter::AddEntries(std::span<const raft::Entry> entries) {
  char prefix[kEntryPayloadPrefix] = {};
  for (const raft::Entry& e : entries) {
    PutU64(prefix, e.index);
    PutU64(prefix + 8, e.term);
    prefix[16] = static_cast<char>(e.type);
    AppendRecord(&staged_, RecordType::kEntry, group_, std::string_view(prefix, sizeof prefix),
                 e.data);
    staged_last_index_ = e.index;
    staged_last_term_ = e.term;
    staged_entries_ = true;
  }
}

void WalWriter::AddHardState(const raft::HardState& hs) {
  staged_hard_state_ = hs;
  staged_hs_ = true;
  EncodeHardState(&staged_, group_, hs);
}

Status WalWriter::Flush(bool sync) {
  if (!staged_.empty()) {
    // Roll over when the group does not fit, unless the segment holds nothing but its
    // header (then a huge group simply grows the file).
    constexpr uint64_t kPreamble =
        AlignedRecordSize(kSegmentHeaderPayload) + AlignedRecordSize(kHardStatePayload);
    if (offset_ + staged_.size() > options_.segment_bytes && offset_ > kPreamble) {
      if (dirty_) {
        // Every segment but the last must be complete on disk (recovery treats a bad
        // record there as corruption).
        if (::fdatasync(fd_) != 0) return Status::IoError(Errno("fdatasync", segments_.back().path));
        ++fsyncs_;
      }
      RUSD_RETURN_IF_ERROR(CreateSegment(segments_.back().sequence + 1));
    }
    RUSD_RETURN_IF_ERROR(ZeroAhead(offset_ + staged_.size()));
    RUSD_RETURN_IF_ERROR(WriteAll(fd_, staged_.data(), staged_.size(), offset_,
                                  segments_.back().path));
    offset_ += staged_.size();
    staged_.clear();
    dirty_ = true;
    if (staged_entries_) {
      last_index_ = staged_last_index_;
      last_term_ = staged_last_term_;
      staged_entries_ = false;
    }
    if (staged_hs_) {
      hard_state_ = staged_hard_state_;
      staged_hs_ = false;
    }
  }
  if (sync && dirty_) {
    if (::fdatasync(fd_) != 0) return Status::IoError(Errno("fdatasync", segments_.back().path));
    ++fsyncs_;
    dirty_ = false;
    ++group_;
  }
  return Status::Ok();
}

// Makes [zeroed_, end) and the chunk after it written zeros before records land there, so
// the fdatasync of most groups flushes data only. Writes of zeros over space that reads as
// zeros anyway change nothing recovery can see; they become durable with the next sync.
Status WalWriter::ZeroAhead(uint64_t end) {
  if (end <= zeroed_ || zeroed_ >= options_.segment_bytes) return Status::Ok();
  const uint64_t target = std::max(end, std::min(zeroed_ + kZeroChunk, options_.segment_bytes));
  if (zeros_.size() < kZeroChunk) zeros_.assign(kZeroChunk, '\0');
  // Records (padded to 8 bytes) are written over everything below `end` right after.
  uint64_t at = end;
  while (at < target) {
    const uint64_t n = std::min<uint64_t>(target - at, zeros_.size());
    RUSD_RETURN_IF_ERROR(WriteAll(fd_, zeros_.data(), n, at, segments_.back().path));
    at += n;
  }
  zeroed_ = target;
  return Status::Ok();
}

Status WalWriter::Trim(uint64_t index) {
  size_t drop = 0;
  while (drop + 1 < segments_.size() && segments_[drop + 1].first_index <= index) ++drop;
  if (drop == 0) return Status::Ok();
  for (size_t i = 0; i < drop; ++i) {
    if (::unlink(segments_[i].path.c_str()) != 0 && errno != ENOENT) {
      return Status::IoError(Errno("remove", segments_[i].path));
    }
  }
  segments_.erase(segments_.begin(), segments_.begin() + static_cast<long>(drop));
  return SyncDir();
}

Status WalWriter::ResetTo(uint64_t index, uint64_t term) {
  if (HasStaged() || dirty_) RUSD_RETURN_IF_ERROR(Flush(/*sync=*/true));
  const uint64_t sequence = segments_.empty() ? 0 : segments_.back().sequence + 1;
  last_index_ = index;
  last_term_ = term;
  next_segment_flags_ = kSegmentRestartsLog;
  RUSD_RETURN_IF_ERROR(CreateSegment(sequence));
  for (size_t i = 0; i + 1 < segments_.size(); ++i) {
    if (::unlink(segments_[i].path.c_str()) != 0 && errno != ENOENT) {
      return Status::IoError(Errno("remove", segments_[i].path));
    }
  }
  segments_.erase(segments_.begin(), segments_.end() - 1);
  return SyncDir();
}

}  // namespace rusd::wal
