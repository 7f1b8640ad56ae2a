// RaftProcess: membership changes and leader moves (issue 3 item 4). The frontend's
// kMemberChange is checked against the member list (etcd's errors), proposed as a
// conf-change entry (a follower's core forwards it to the leader) and answered with kResult
// (MemberChangeResult) by the member that proposed it once the entry is applied. kMoveLeader
// asks the core for a leader transfer and is answered when the transferee leads.
// A member that applies its own removal, or whose peers refuse it as removed, stops Run()
// (main exits with kExitConfigError: the supervisor does not restart it).
#include <spdlog/spdlog.h>

#include "raftd/raft_process.h"
#include "rusd/internal.pb.h"
#include "rusd/membership.pb.h"

namespace rusd::raftd {
namespace {
using Clock = std::chrono::steady_clock;
using ipc::MessageType;
constexpr char kRemovedByPeer[] = "was removed from the cluster";
}  // namespace

void RaftProcess::TakeMemberRequest(ipc::Message& m, Clock::time_point deadline) {
  if (m.type == MessageType::kMoveLeader) {
    internal::MoveLeaderRequest req;
    if (!req.ParseFromString(m.payload)) {
      QueueError(m.id, static_cast<int>(StatusCode::kInvalidArgument), "rusd: bad MoveLeader");
      return;
    }
    if (node_.role() != raft::Role::kLeader) {
      QueueError(m.id, static_cast<int>(StatusCode::kFailedPrecondition), "etcdserver: not leader");
      return;
    }
    if (!node_.IsVoter(req.target_id())) {
      QueueError(m.id, static_cast<int>(StatusCode::kFailedPrecondition),
                 "etcdserver: bad leader transferee");
      return;
    }
    if (req.target_id() == node_.id()) {
      QueueReply(MessageType::kResult, m.id, std::string());
      return;
    }
    Status st = node_.TransferLeadership(req.target_id());
    if (!st.ok()) {
      QueueError(m.id, static_cast<int>(st.code()), st.message());
      return;
    }
    spdlog::info("raft: moving leadership to {:016x} (request {:x})", req.target_id(), m.id);
    pending_moves_[m.id] = req.target_id();
    return;
  }
  internal::MemberChangeRequest req;
  if (!req.ParseFromString(m.payload)) {
    QueueError(m.id, static_cast<int>(StatusCode::kInvalidArgument), "rusd: bad member change");
    return;
  }
  if (options_.membership == nullptr || options_.transport == nullptr) {
    QueueError(m.id, static_cast<int>(StatusCode::kUnimplemented),
               "rusd: member changes need a peer listener (this member runs without one: its "
               "--listen-peer-urls are not usable; TLS peer URLs are not supported yet)");
    return;
  }
  if (Status health = options_.strict_reconfig_check ? CheckReconfigHealth(req) : Status::Ok();
      !health.ok()) {
    QueueError(m.id, static_cast<int>(health.code()), health.message());
    return;
  }
  Result<raft::ConfChange> cc = options_.membership->Plan(req, node_, m.id);
  if (!cc.ok()) {
    QueueError(m.id, static_cast<int>(cc.status().code()), cc.status().message());
    return;
  }
  if (node_.leader() == 0) {
    // As a proposal: etcd's configure() blocks in ProposeConfChange until a leader appears.
    // The checks above run again when it does (ReleaseAwaitingLeader).
    spdlog::info("membership: no leader; change of member {:016x} waits for one (request {:x})",
                 cc->node_id, m.id);
    AwaitLeader(m.type, m.id, m.payload, m.sender_epoch, deadline);
    return;
  }
  Status st = node_.ProposeConfChange(*cc);
  if (!st.ok()) {
    QueueError(m.id, static_cast<int>(st.code()), st.message());
    return;
  }
  spdlog::info("membership: proposed change {} of member {:016x} (request {:x})",
               static_cast<int>(cc->type), cc->node_id, m.id);
}

void RaftProcess::OnConfChangeCommitted(const raft::Entry& e) {
  if (options_.membership == nullptr) return;
  MembershipRegistry::Applied a = options_.membership->Apply(e);
  if (!a.changed) return;
  UpdateTransportPeers();
  QueueMemberList();
  if (a.type == raft::ConfChangeType::kRemoveNode && a.record.id() == options_.member_id &&
      !removed_applied_at_) {
    spdlog::warn("membership: this member {:016x} was removed from the cluster (entry {})",
                 options_.member_id, e.index);
    removed_applied_at_ = Clock::now();
  }
  if (a.record.origin_member_id() != options_.member_id || a.record.request_id() == 0) return;
  internal::MemberChangeResult result;
  etcdserverpb::MemberListResponse list = BuildMemberList();
  for (const auto& m : list.members()) {
    *result.add_members() = m;
    if (m.id() == a.record.id()) *result.mutable_member() = m;
  }
  if (!result.has_member()) {  // removed: etcd's MemberRemoveResponse has no member
    result.mutable_member()->set_id(a.record.id());
    for (const auto& u : a.record.peer_urls()) result.mutable_member()->add_peerurls(u);
    result.mutable_member()->set_islearner(a.record.is_learner());
  }
  QueueReply(MessageType::kResult, a.record.request_id(), result.SerializeAsString());
}

void RaftProcess::OnLeaderChangedForMoves() {
  for (auto it = pending_moves_.begin(); it != pending_moves_.end();) {
    if (node_.leader() == it->second) {
      QueueReply(MessageType::kResult, it->first, std::string());
      it = pending_moves_.erase(it);
    } else if (node_.leader() != 0 && node_.leader() != options_.member_id) {
      // Someone else won: etcd's ErrTimeoutLeaderTransfer after its wait.
      QueueError(it->first, static_cast<int>(StatusCode::kDeadlineExceeded),
                 "etcdserver: request timed out, leader transfer took too long");
      it = pending_moves_.erase(it);
    } else {
      ++it;
    }
  }
}

void RaftProcess::CheckRemoved() {
  if (options_.membership == nullptr) return;
  const Clock::time_point now = Clock::now();
  if (removed_applied_at_) {
    // A removed leader keeps leading until a remaining voter takes over (the core hands
    // over), so the others surely learn the removal; bounded by an election timeout.
    if (node_.role() != raft::Role::kLeader ||
        now - *removed_applied_at_ > options_.tick_interval * options_.election_ticks * 2) {
      spdlog::critical("membership: this member {:016x} was removed from the cluster; "
                       "stopping (it will not be restarted)",
                       options_.member_id);
      removed_ = true;
    }
    return;
  }
  if (options_.transport == nullptr || now < next_removed_check_) return;
  next_removed_check_ = now + options_.tick_interval;
  PollPeers(now);
  for (const transport::PeerState& p : options_.transport->Peers()) {
    // The refusal itself, not last_error: a later dial failure would overwrite that.
    if (p.refused_by_peer.find(kRemovedByPeer) == std::string::npos) continue;
    spdlog::critical("membership: peer {:016x} refuses this member {:016x}: {}; this member "
                     "was removed from the cluster; stopping (it will not be restarted)",
                     p.id, options_.member_id, p.refused_by_peer);
    removed_ = true;
    return;
  }
}

void RaftProcess::PollPeers(Clock::time_point now) {
  for (const transport::PeerState& p : options_.transport->Peers()) {
    if (!p.connected) {
      connected_since_.erase(p.id);
    } else {
      connected_since_.try_emplace(p.id, now);
    }
  }
}

Status RaftProcess::CheckReconfigHealth(const internal::MemberChangeRequest& req) const {
  constexpr std::chrono::seconds kHealthInterval{5};  // etcd's etcdserver.HealthInterval
  const Status unhealthy = Status::Unavailable("etcdserver: unhealthy cluster");
  const Clock::time_point cutoff = Clock::now() - kHealthInterval;
  auto connected_long = [&](uint64_t id) {
    if (id == options_.member_id) return true;
    auto it = connected_since_.find(id);
    return it != connected_since_.end() && it->second <= cutoff;
  };
  std::vector<uint64_t> voters;
  for (const auto& m : options_.membership->members()) {
    if (!m.is_learner()) voters.push_back(m.id());
  }
  // etcd's Member.IsStarted (it published its name): here a bootstrap member (named by
  // --initial-cluster), this member, or a peer that introduced itself in a handshake.
  std::vector<transport::PeerState> peers = options_.transport->Peers();
  auto started = [&](uint64_t id) {
    if (id == options_.member_id) return true;
    const auto* m = options_.membership->Find(id);
    if (m != nullptr && !m->name().empty()) return true;
    for (const auto& p : peers) {
      if (p.id == id && !p.name.empty()) return true;
    }
    return false;
  };
  // etcd 3.4's gRPC layer has no mapping for ErrNotEnoughStartedMembers: it reaches the
  // client as code Unknown (3.5 maps it to FailedPrecondition; clientv3 shows that code
  // for either, from its own table).
  const Status not_enough = Status(StatusCode::kUnknown,
      "etcdserver: re-configuration failed due to not enough started members");
  auto enough_started = [&](size_t nmembers, size_t nstarted) {
    return nstarted >= nmembers / 2 + 1;
  };
  if (req.kind() == internal::MemberChangeRequest::ADD && !req.is_learner()) {
    size_t nmembers = 1, nstarted = 0;  // IsReadyToAddVotingMember
    for (uint64_t v : voters) {
      nstarted += started(v) ? 1 : 0;
      ++nmembers;
    }
    if (!(nstarted == 1 && nmembers == 2) && !enough_started(nmembers, nstarted)) return not_enough;
  }
  if (req.kind() == internal::MemberChangeRequest::PROMOTE) {
    size_t nmembers = 1, nstarted = 1;  // IsReadyToPromoteMember: the learner counts
    for (uint64_t v : voters) {
      nstarted += started(v) ? 1 : 0;
      ++nmembers;
    }
    if (!enough_started(nmembers, nstarted)) return not_enough;
    return Status::Ok();
  }
  if (req.kind() == internal::MemberChangeRequest::REMOVE) {
    const auto* m = options_.membership->Find(req.member_id());
    if (m != nullptr && !m->is_learner()) {
      size_t nmembers = 0, nstarted = 0;  // IsReadyToRemoveVotingMember
      for (uint64_t v : voters) {
        if (v == req.member_id()) continue;
        nstarted += started(v) ? 1 : 0;
        ++nmembers;
      }
      if (!enough_started(nmembers, nstarted)) return not_enough;
    }
  }
  if (req.kind() == internal::MemberChangeRequest::ADD) {
    for (uint64_t v : voters) {
      if (!connected_long(v)) return unhealthy;  // isConnectedFullySince
    }
    return Status::Ok();
  }
  if (req.kind() == internal::MemberChangeRequest::REMOVE) {
    const auto* m = options_.membership->Find(req.member_id());
    if (m == nullptr || m->is_learner()) return Status::Ok();
    // A member that is down is safe to remove: it is not part of the active quorum.
    if (req.member_id() != options_.member_id && !connected_since_.count(req.member_id())) {
      return Status::Ok();
    }
    size_t active = 0;
    for (uint64_t v : voters) active += connected_long(v) ? 1 : 0;
    // active - 1 < quorum, written so that no active voter (a learner asking) cannot wrap.
    if (active < 2 + (voters.size() - 1) / 2) return unhealthy;
  }
  return Status::Ok();
}

void RaftProcess::UpdateTransportPeers() {
  if (options_.transport == nullptr || options_.membership == nullptr) return;
  std::vector<transport::PeerAddress> peers;
  for (const auto& m : options_.membership->members()) {
    if (m.id() == options_.member_id) continue;
    peers.push_back({m.id(), m.name(), {m.peer_urls().begin(), m.peer_urls().end()}});
  }
  std::vector<uint64_t> removed = options_.membership->removed_ids();
  if (options_.snapshots != nullptr) {
    std::vector<std::pair<uint64_t, std::vector<std::string>>> urls;
    for (const auto& p : peers) urls.emplace_back(p.id, p.peer_urls);
    options_.snapshots->UpdatePeers(std::move(urls));
  }
  options_.transport->UpdatePeers(std::move(peers), std::move(removed));
}

}  // namespace rusd::raftd
