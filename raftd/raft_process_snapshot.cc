// RaftProcess, the snapshot half: compaction at stored's checkpoints, the snapshot point on
// disk, streaming to followers, and the install a follower orders from its stored
// (docs/architecture.md, "Durability between the WAL and RocksDB").
//
// Leader (any member whose log others may need):
//   stored kSnapshotReady{J, dir}: remember `dir`; with an older checkpoint I also known,
//   CompactLog(I), persist the snapshot point (index, term, configuration), trim WAL
//   segments wholly at or below I (the entries (I, J] stay for followers that lag a
//   little). A kSnapshot message of the core goes to SnapshotTransfer with I's directory;
//   its outcome comes back as ReportSnapshot.
// Follower:
//   a received, verified snapshot's kSnapshot message is stepped; when the core restores it
//   (Ready.snapshot) the point is persisted, then the WAL restarts at it; stored, now below
//   the log start, gets kInstallSnapshot{I, recv dir} (re-sent every 2 s) until its
//   kResumeFrom reaches I. A restart in between finds the point and the received directory
//   and orders the install again.
#include <spdlog/spdlog.h>

#include <filesystem>

#include "common/fault_point.h"
#include "raftd/raft_process.h"
#include "raftd/snapshot/snapshot_point.h"
#include "rusd/membership.pb.h"
#include "rusd/snapshot.pb.h"

namespace rusd::raftd {
namespace {

constexpr std::chrono::seconds kInstallResend{2};

}  // namespace

void RaftProcess::RecoverPendingInstall() {
  if (options_.snap_dir.empty()) return;
  const raft::SnapshotMeta meta = node_.snapshot_meta();
  if (meta.index == 0) return;
  const std::string dir = ReceivedSnapshotDir(options_.snap_dir, meta.index);
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) return;  // installed already (renamed away)
  pending_install_ = PendingInstall{meta.index, meta.term, dir};
  spdlog::info("snapshot {} at index {} is not confirmed installed by stored yet", dir,
               meta.index);
}

void RaftProcess::OnSnapshotReady(const std::string& payload) {
  internal::SnapshotReady ready;
  if (!ready.ParseFromString(payload)) {
    spdlog::error("store-control: unparsable SnapshotReady");
    return;
  }
  if (!options_.compact_on_snapshot) return;  // one member: compacted at durable indexes
  const uint64_t index = ready.index();
  const uint64_t point = node_.log().first_index() - 1;
  if (index < point) return;  // older than our snapshot point
  if (index > node_.log().applied()) {
    spdlog::warn("stored reports a snapshot at {} beyond the applied index {}", index,
                 node_.log().applied());
    return;
  }
  snapshot_dirs_[index] = ready.dir();
  // Compact at the older of stored's two newest checkpoints, not the newest: the entries
  // after it stay in the log, so a follower that lags a little catches up by appends (etcd
  // keeps SnapshotCatchUpEntries likewise), and stored still keeps that checkpoint's data
  // for a follower that needs it.
  if (snapshot_dirs_.size() < 2) return;
  const uint64_t target = std::prev(snapshot_dirs_.end(), 2)->first;
  if (target <= point) return;
  // The list as of the target, before the entries that built it leave the log.
  std::optional<internal::MemberListFile> members = MembersAt(target);
  node_.CompactLog(target);
  const raft::SnapshotMeta meta = node_.snapshot_meta();
  if (meta.index != target) return;
  std::erase_if(snapshot_dirs_, [&](const auto& d) { return d.first < target; });
  point_members_ = std::move(members);
  Status st = WriteSnapshotPoint(options_.snap_dir, meta,
                                 point_members_ ? point_members_->SerializeAsString() : "");
  if (!st.ok()) {
    // The WAL keeps its segments: a restart starts from an earlier point, which is safe.
    spdlog::error("cannot persist the snapshot point {}: {}", target, st.ToString());
    return;
  }
  st = wal_.Trim(target + 1);
  if (!st.ok()) spdlog::warn("wal trim below {}: {}", target + 1, st.ToString());
  spdlog::info("log compacted at snapshot {} (term {}); log now ({}, {}], {} WAL segments",
               target, meta.term, node_.log().first_index() - 1, node_.log().last_index(),
               wal_.segment_count());
}

std::optional<internal::MemberListFile> RaftProcess::MembersAt(uint64_t index) const {
  if (options_.membership == nullptr) return std::nullopt;
  const raft::RaftLog& log = node_.log();
  const uint64_t point = log.first_index() - 1;
  std::optional<internal::MemberListFile> base = point_members_;
  if (point == 0) base = options_.membership->initial();  // the log holds every change
  if (!base || base->applied_index() < point) {
    // Unknown at the point (written by a version without member lists). The list now is
    // not the list as of `index` (it may hold later changes), and a receiver adopts any
    // list stamped newer than its own: none is sent (receivers keep theirs, as with an
    // older sender) and none is stored with the point.
    return std::nullopt;
  }
  return MembershipRegistry::ListAt(*base, log.Slice(point + 1, index), index);
}

Status RaftProcess::PersistRestoredSnapshot(const raft::SnapshotMeta& meta) {
  // The member list the snapshot carried first: the conf-change entries that built it are
  // compacted away, so it is the only way to learn members added before the snapshot (and
  // their URLs). members.pb ahead of the point is safe (the list only moves forward and
  // later changes replay on top); the point without it would lose it.
  std::optional<internal::MemberListFile> members;
  if (auto it = received_members_.find(meta.index); it != received_members_.end()) {
    members.emplace();
    if (!members->ParseFromString(it->second) || members->applied_index() != meta.index) {
      spdlog::warn("snapshot at index {}: ignoring an unusable member list", meta.index);
      members.reset();
    }
  }
  received_members_.clear();
  if (members && options_.membership != nullptr && options_.membership->Restore(*members)) {
    UpdateTransportPeers();
    QueueMemberList();
    if (options_.membership->self_removed() && !removed_applied_at_) {
      spdlog::warn("membership: this member {:016x} was removed from the cluster (snapshot "
                   "at {})",
                   options_.member_id, meta.index);
      removed_applied_at_ = std::chrono::steady_clock::now();
    }
  }
  point_members_ = std::move(members);
  // The point next: a crash before the WAL restart is recovered from it (the WAL then
  // restarts at startup, MergeSnapshotPoint).
  RUSD_RETURN_IF_ERROR(WriteSnapshotPoint(
      options_.snap_dir, meta, point_members_ ? point_members_->SerializeAsString() : ""));
  MaybeDieAtFaultPoint(options_.snap_dir, "raftd-restore-point-written");
  RUSD_RETURN_IF_ERROR(wal_.ResetTo(meta.index, meta.term));
  MaybeDieAtFaultPoint(options_.snap_dir, "raftd-restore-wal-restarted");
  pending_install_ =
      PendingInstall{meta.index, meta.term, ReceivedSnapshotDir(options_.snap_dir, meta.index)};
  install_sent_at_ = {};
  spdlog::info("restored snapshot at index {} term {} (voters {}); stored will install {}",
               meta.index, meta.term, meta.conf.voters.size(), pending_install_->dir);
  return Status::Ok();
}

void RaftProcess::PruneReceivedSnapshots(uint64_t stored_index) {
  // Received snapshots at or below what stored holds are never installed (the core has
  // committed past them, e.g. a new leader caught this member up by log while the old
  // leader's stream finished): their copies, gigabytes maybe, go now rather than at stored's
  // next restart. The install ordered is kept whatever stored reports until its kResumeFrom
  // confirms it. The transfer removes them on its own thread, off this loop.
  if (options_.snapshots == nullptr) return;
  options_.snapshots->RemoveReceivedUpTo(
      stored_index, pending_install_ ? std::optional<uint64_t>(pending_install_->index)
                                     : std::nullopt);
}

bool RaftProcess::SendInstallOrder(uint64_t next) {
  if (!pending_install_ || next > pending_install_->index ||
      pending_install_->index + 1 != node_.log().first_index()) {
    return false;
  }
  const auto now = std::chrono::steady_clock::now();
  if (install_sent_at_ != std::chrono::steady_clock::time_point{} &&
      now - install_sent_at_ < kInstallResend) {
    return true;
  }
  internal::InstallSnapshot order;
  order.set_index(pending_install_->index);
  order.set_term(pending_install_->term);
  order.set_dir(pending_install_->dir);
  if (committed_.TryWrite(ipc::MessageType::kInstallSnapshot, order.index(),
                          order.SerializeAsString())
          .ok()) {
    install_sent_at_ = now;
    spdlog::info("ordering stored (at {}) to install snapshot {} at index {}", next - 1,
                 order.dir(), order.index());
  }
  return true;
}

void RaftProcess::SendMessages(std::vector<raft::Message>& msgs) {
  bool any_snapshot = false;
  for (const raft::Message& m : msgs) any_snapshot |= m.type == raft::MessageType::kSnapshot;
  if (any_snapshot) {
    std::vector<raft::Message> rest;
    for (raft::Message& m : msgs) {
      if (m.type != raft::MessageType::kSnapshot) {
        rest.push_back(std::move(m));
        continue;
      }
      std::error_code ec;
      auto dir = snapshot_dirs_.find(m.snapshot.index);
      if (options_.snapshots == nullptr || dir == snapshot_dirs_.end() ||
          !std::filesystem::exists(dir->second, ec)) {
        spdlog::warn("no snapshot data at index {} for {:x} (stored has not announced it)",
                     m.snapshot.index, m.to);
        snapshot_reports_.emplace_back(m.to, false);  // reported next turn
        continue;
      }
      std::string members;
      if (point_members_ && point_members_->applied_index() == m.snapshot.index) {
        members = point_members_->SerializeAsString();
      }
      spdlog::info("sending snapshot {} (index {}, {}) to {:x}", dir->second, m.snapshot.index,
                   members.empty() ? "no member list" : "with the member list", m.to);
      options_.snapshots->Send(std::move(m), dir->second, std::move(members));
    }
    msgs = std::move(rest);
  }
  if (msgs.empty()) return;
  ObserveHeartbeats(msgs);
  options_.transport->Send(msgs);
}

bool RaftProcess::TakeSnapshotEvents() {
  if (options_.snapshots != nullptr && options_.snapshots->HasEvents()) {
    options_.snapshots->TakeReports(&snapshot_reports_);
    snapshot_inbox_.clear();
    options_.snapshots->TakeReceived(&snapshot_inbox_);
    for (SnapshotTransfer::Received& r : snapshot_inbox_) {
      spdlog::info("received snapshot at index {} from {:x}", r.message.snapshot.index,
                   r.message.from);
      if (!r.members.empty()) {
        received_members_[r.message.snapshot.index] = std::move(r.members);
        // Lists of snapshots the core ignored (it held them already) are not needed.
        while (received_members_.size() > 4) received_members_.erase(received_members_.begin());
      }
      node_.Step(std::move(r.message));
    }
    snapshot_inbox_.clear();
  }
  if (snapshot_reports_.empty()) return false;
  for (const auto& [to, ok] : snapshot_reports_) {
    if (ok) spdlog::info("snapshot sent to {:x}", to);
    node_.ReportSnapshot(to, ok);
  }
  snapshot_reports_.clear();
  return true;
}

}  // namespace rusd::raftd
