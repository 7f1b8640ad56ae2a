#include "raftd/snapshot/snapshot_point.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/durable_file.h"
#include "common/crc32c.h"
#include "raftd/wal/wal_format.h"

namespace rusd::raftd {
namespace {

constexpr uint64_t kPointMagicV1 = 0x31504E5344535552ull;  // "RUSDSNP1" little-endian
constexpr uint64_t kPointMagic = 0x32504E5344535552ull;    // "RUSDSNP2": with members

}  // namespace

Status WriteSnapshotPoint(const std::string& snap_dir, const raft::SnapshotMeta& meta,
                          std::string_view members) {
  std::string buf;
  wal::AppendU64(&buf, kPointMagic);
  wal::AppendU64(&buf, meta.index);
  wal::AppendU64(&buf, meta.term);
  wal::AppendU32(&buf, static_cast<uint32_t>(meta.conf.voters.size()));
  for (uint64_t v : meta.conf.voters) wal::AppendU64(&buf, v);
  wal::AppendU32(&buf, static_cast<uint32_t>(meta.conf.learners.size()));
  for (uint64_t v : meta.conf.learners) wal::AppendU64(&buf, v);
  wal::AppendU32(&buf, static_cast<uint32_t>(members.size()));
  buf.append(members);
  wal::AppendU32(&buf, Crc32c(buf.data(), buf.size()));
  ::mkdir(snap_dir.c_str(), 0700);
  return WriteFileAtomically(snap_dir + "/" + kSnapshotPointFile, buf);
}

Result<std::optional<raft::SnapshotMeta>> ReadSnapshotPoint(const std::string& snap_dir,
                                                            std::string* members) {
  if (members != nullptr) members->clear();
  const std::string path = snap_dir + "/" + kSnapshotPointFile;
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::optional<raft::SnapshotMeta>();
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string buf = ss.str();
  auto bad = [&](const char* why) {
    return Status::DataLoss("snapshot point " + path + ": " + why);
  };
  if (buf.size() < 8 + 8 + 8 + 4 + 4 + 4) return bad("truncated");
  const uint32_t crc = wal::GetU32(buf.data() + buf.size() - 4);
  if (crc != Crc32c(buf.data(), buf.size() - 4)) return bad("checksum mismatch");
  size_t off = 0;
  auto u64 = [&]() {
    uint64_t v = wal::GetU64(buf.data() + off);
    off += 8;
    return v;
  };
  auto u32 = [&]() {
    uint32_t v = wal::GetU32(buf.data() + off);
    off += 4;
    return v;
  };
  const uint64_t magic = u64();
  if (magic != kPointMagic && magic != kPointMagicV1) return bad("bad magic");
  raft::SnapshotMeta meta;
  meta.index = u64();
  meta.term = u64();
  const size_t body = buf.size() - 4;
  uint32_t n = u32();
  if (off + 8ull * n + 4 > body) return bad("bad voter count");
  for (uint32_t i = 0; i < n; ++i) meta.conf.voters.push_back(u64());
  n = u32();
  if (magic == kPointMagicV1) {
    if (off + 8ull * n != body) return bad("bad learner count");
    for (uint32_t i = 0; i < n; ++i) meta.conf.learners.push_back(u64());
    return std::optional<raft::SnapshotMeta>(std::move(meta));
  }
  if (off + 8ull * n + 4 > body) return bad("bad learner count");
  for (uint32_t i = 0; i < n; ++i) meta.conf.learners.push_back(u64());
  n = u32();
  if (off + n != body) return bad("bad members length");
  if (members != nullptr) members->assign(buf.data() + off, n);
  return std::optional<raft::SnapshotMeta>(std::move(meta));
}

MergedRecovery MergeSnapshotPoint(wal::WalRecovery wal,
                                  const std::optional<raft::SnapshotMeta>& point) {
  MergedRecovery out;
  raft::RecoveredState& s = out.state;
  s.hard_state = wal.hard_state;
  s.prev_index = wal.prev_index;
  s.prev_term = wal.prev_term;
  if (!point || point->index == 0 || point->index < wal.prev_index) {
    // No snapshot, or the WAL restarted after a newer one (its point is the WAL's start).
    s.entries = std::move(wal.entries);
    return out;
  }
  const uint64_t last = wal.prev_index + wal.entries.size();
  const bool holds = point->index == wal.prev_index
                         ? wal.prev_term == point->term
                         : point->index <= last &&
                               wal.entries[point->index - wal.prev_index - 1].term == point->term;
  if (holds) {
    const size_t drop = point->index - wal.prev_index;
    s.entries.assign(std::make_move_iterator(wal.entries.begin() + static_cast<ptrdiff_t>(drop)),
                     std::make_move_iterator(wal.entries.end()));
  } else {
    out.wal_needs_reset = true;  // the installed snapshot replaces the whole log
  }
  s.prev_index = point->index;
  s.prev_term = point->term;
  s.conf_state = point->conf;
  s.hard_state.commit = std::max(s.hard_state.commit, point->index);
  return out;
}

}  // namespace rusd::raftd
