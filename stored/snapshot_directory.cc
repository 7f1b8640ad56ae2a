#include "stored/snapshot_directory.h"

#include <fcntl.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/durable_file.h"
#include "stored/mvcc/kv_store.h"

namespace rusd::stored {
namespace fs = std::filesystem;
namespace {

std::string Errno(const std::string& what, const std::string& path) {
  std::string s = what;
  s.append(" ").append(path).append(": ").append(std::strerror(errno));
  return s;
}

std::string IndexName(const char* prefix, uint64_t index) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s%016" PRIx64, prefix, index);
  return buf;
}

Status Rename(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) {
    return Status::IoError(Errno("rename " + from + " to", to));
  }
  return Status::Ok();
}

Status RemoveAll(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec) return Status::IoError("remove " + path + ": " + ec.message());
  return Status::Ok();
}

}  // namespace

Status WriteSnapshotMarker(const std::string& dir, uint64_t index, uint64_t term) {
  const std::string path = dir + "/" + kSnapshotMarkerFile;
  const std::string text = std::to_string(index) + " " + std::to_string(term) + "\n";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::IoError(Errno("create", path));
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                  ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) return Status::IoError(Errno("write", path));
  return SyncDirectory(dir);
}

Result<SnapshotInfo> ReadSnapshotMarker(const std::string& dir) {
  const std::string path = dir + "/" + kSnapshotMarkerFile;
  std::ifstream in(path);
  if (!in) return Status::NotFound("no snapshot marker in " + dir);
  SnapshotInfo info;
  info.dir = dir;
  if (!(in >> info.index >> info.term) || info.index == 0) {
    return Status::DataLoss("unreadable snapshot marker " + path);
  }
  return info;
}

SnapshotDirectory::SnapshotDirectory(std::string member_dir, size_t keep)
    : member_dir_(std::move(member_dir)),
      snap_dir_(member_dir_ + "/snap"),
      keep_(std::max<size_t>(keep, 1)) {}

Status SnapshotDirectory::Load() {
  std::error_code ec;
  fs::create_directories(snap_dir_, ec);
  if (ec) return Status::IoError("create " + snap_dir_ + ": " + ec.message());
  made_.clear();
  for (const auto& de : fs::directory_iterator(snap_dir_, ec)) {
    const std::string name = de.path().filename().string();
    if (name.size() > 4 && name.ends_with(".tmp")) {
      RUSD_RETURN_IF_ERROR(RemoveAll(de.path().string()));  // a write a crash interrupted
      continue;
    }
    if (!name.starts_with("db-")) continue;
    Result<SnapshotInfo> info = ReadSnapshotMarker(de.path().string());
    if (!info.ok()) {
      spdlog::warn("snapshot: removing {}: {}", de.path().string(), info.status().message());
      RUSD_RETURN_IF_ERROR(RemoveAll(de.path().string()));
      continue;
    }
    made_.push_back(*info);
  }
  if (ec) return Status::IoError("list " + snap_dir_ + ": " + ec.message());
  std::sort(made_.begin(), made_.end(),
            [](const SnapshotInfo& a, const SnapshotInfo& b) { return a.index < b.index; });
  return Prune();
}

Result<SnapshotInfo> SnapshotDirectory::Create(KvStore& store) {
  const uint64_t index = store.applied_index();
  if (!made_.empty() && made_.back().index >= index) {
    return Status::AlreadyExists("a snapshot at index " + std::to_string(made_.back().index) +
                                 " exists");
  }
  const std::string final_dir = snap_dir_ + "/" + IndexName("db-", index);
  const std::string tmp = final_dir + ".tmp";
  RUSD_RETURN_IF_ERROR(RemoveAll(tmp));
  Result<uint64_t> covered = store.CreateCheckpoint(tmp);
  if (!covered.ok()) {
    (void)RemoveAll(tmp);
    return covered.status();
  }
  SnapshotInfo info{*covered, store.raft_term(), final_dir};
  Status st = WriteSnapshotMarker(tmp, info.index, info.term);
  if (st.ok()) st = Rename(tmp, final_dir);
  if (st.ok()) st = SyncDirectory(snap_dir_);
  if (!st.ok()) {
    (void)RemoveAll(tmp);
    return st;
  }
  made_.push_back(info);
  RUSD_RETURN_IF_ERROR(Prune());
  return info;
}

std::optional<SnapshotInfo> SnapshotDirectory::newest() const {
  if (made_.empty()) return std::nullopt;
  return made_.back();
}

Status SnapshotDirectory::Prune() {
  while (made_.size() > keep_) {
    RUSD_RETURN_IF_ERROR(RemoveAll(made_.front().dir));
    made_.erase(made_.begin());
  }
  return Status::Ok();
}

Status InstallSnapshotDir(const std::string& member_dir, const std::string& snapshot_dir,
                          uint64_t index, const std::function<bool(InstallStep)>& continue_after) {
  Result<SnapshotInfo> info = ReadSnapshotMarker(snapshot_dir);
  if (!info.ok()) return info.status();
  if (info->index != index) {
    return Status::FailedPrecondition("snapshot " + snapshot_dir + " holds index " +
                                      std::to_string(info->index) + ", the order names " +
                                      std::to_string(index));
  }
  const std::string store = member_dir + "/store";
  const std::string old = member_dir + "/store.old";
  RUSD_RETURN_IF_ERROR(RemoveAll(old));
  std::error_code ec;
  if (fs::exists(store, ec)) {
    RUSD_RETURN_IF_ERROR(Rename(store, old));
    RUSD_RETURN_IF_ERROR(SyncDirectory(member_dir));
  }
  if (continue_after && !continue_after(InstallStep::kOldMovedAside)) return Status::Ok();
  RUSD_RETURN_IF_ERROR(Rename(snapshot_dir, store));
  RUSD_RETURN_IF_ERROR(SyncDirectory(member_dir));
  if (continue_after && !continue_after(InstallStep::kNewInPlace)) return Status::Ok();
  return RemoveAll(old);
}

Status RecoverInterruptedInstall(const std::string& member_dir) {
  const std::string store = member_dir + "/store";
  const std::string old = member_dir + "/store.old";
  std::error_code ec;
  if (!fs::exists(old, ec)) return Status::Ok();
  if (!fs::exists(store, ec)) {
    spdlog::warn("snapshot install was interrupted before the new store was in place: "
                 "keeping the old store (raftd re-sends the install)");
    RUSD_RETURN_IF_ERROR(Rename(old, store));
    return SyncDirectory(member_dir);
  }
  spdlog::info("snapshot install was interrupted after the new store was in place: "
               "removing the old store");
  return RemoveAll(old);
}

}  // namespace rusd::stored
