#include "raftd/membership_registry.h"

#include <fcntl.h>
#include <openssl/sha.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/durable_file.h"
#include "common/url.h"

namespace rusd::raftd {
namespace {

constexpr char kFileName[] = "members.pb";

// etcd's rpctypes (api/v3rpc/rpctypes/error.go), code and text exactly.
Status MemberNotFound() { return Status::NotFound("etcdserver: member not found"); }
Status MemberExist() { return Status::FailedPrecondition("etcdserver: member ID already exist"); }
Status PeerUrlExist() { return Status::FailedPrecondition("etcdserver: Peer URLs already exists"); }
Status BadUrls() { return Status::InvalidArgument("etcdserver: given member URLs are invalid"); }
Status NotLearner() {
  return Status::FailedPrecondition("etcdserver: can only promote a learner member");
}
Status LearnerNotReady() {
  return Status::FailedPrecondition(
      "etcdserver: can only promote a learner member which is in sync with leader");
}
Status TooManyLearners() {
  return Status::FailedPrecondition("etcdserver: too many learner members in cluster");
}
Status NotLeader() { return Status::FailedPrecondition("etcdserver: not leader"); }

// etcd's types.NewURLs (etcd's error for any malformed URL), then what this build can
// dial: a member with TLS or unix-socket peer URLs would be accepted and never reached.
template <typename Urls>
Status CheckPeerUrls(const Urls& urls) {
  if (urls.empty()) return BadUrls();
  for (const auto& u : urls) {
    if (!ParseUrl(u).ok()) return BadUrls();
    if (Result<Url> p = ParsePeerUrl(u); !p.ok()) {
      return Status::InvalidArgument("rusd: " + p.status().message());
    }
  }
  return Status::Ok();
}

}  // namespace

uint64_t ComputeAddedMemberId(std::vector<std::string> peer_urls, int64_t unix_time) {
  std::sort(peer_urls.begin(), peer_urls.end());
  std::string b;
  for (const std::string& u : peer_urls) b += u;
  b += std::to_string(unix_time);  // cluster name is "" for an added member
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(b.data()), b.size(), digest);
  uint64_t id = 0;
  for (int i = 0; i < 8; ++i) id = (id << 8) | digest[i];
  return id;
}

MembershipRegistry::MembershipRegistry(uint64_t self_id, const std::vector<ClusterMember>& bootstrap,
                                       std::string dir)
    : self_id_(self_id), dir_(std::move(dir)) {
  for (const ClusterMember& m : bootstrap) {
    internal::MemberRecord r;
    r.set_id(m.id);
    r.set_name(m.name);
    for (const auto& u : m.peer_urls) r.add_peer_urls(u);
    members_.push_back(std::move(r));
  }
  if (members_.empty()) {
    internal::MemberRecord r;
    r.set_id(self_id);
    members_.push_back(std::move(r));
  }
  initial_ = Current();
}

Status MembershipRegistry::Load() {
  if (dir_.empty()) return Status::Ok();
  const std::string path = dir_ + "/" + kFileName;
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Ok();  // never changed since bootstrap
  std::stringstream buf;
  buf << in.rdbuf();
  internal::MemberListFile file;
  if (!file.ParseFromString(buf.str())) {
    return Status::DataLoss(path + ": unparsable member list");
  }
  applied_index_ = file.applied_index();
  members_.assign(file.members().begin(), file.members().end());
  removed_.assign(file.removed_ids().begin(), file.removed_ids().end());
  spdlog::info("membership: {} members as of index {} from {}", members_.size(), applied_index_,
               path);
  return Status::Ok();
}

void MembershipRegistry::Replay(std::span<const raft::Entry> entries, uint64_t commit) {
  for (const raft::Entry& e : entries) {
    if (e.index > commit) break;
    if (e.type == raft::EntryType::kConfChange && e.index > applied_index_) Apply(e);
  }
}

const internal::MemberRecord* MembershipRegistry::Find(uint64_t id) const {
  for (const auto& m : members_) {
    if (m.id() == id) return &m;
  }
  return nullptr;
}

bool MembershipRegistry::WasRemoved(uint64_t id) const {
  return std::find(removed_.begin(), removed_.end(), id) != removed_.end();
}

Result<raft::ConfChange> MembershipRegistry::Plan(const internal::MemberChangeRequest& req,
                                                  const raft::RaftNode& node,
                                                  uint64_t request_id) const {
  using Kind = internal::MemberChangeRequest;
  internal::MemberRecord record;
  raft::ConfChange cc;
  auto urls_taken = [&](uint64_t except) {
    for (const auto& m : members_) {
      if (m.id() == except) continue;
      for (const auto& u : m.peer_urls()) {
        for (const auto& want : req.peer_urls()) {
          if (u == want) return true;
        }
      }
    }
    return false;
  };
  switch (req.kind()) {
    case Kind::ADD: {
      RUSD_RETURN_IF_ERROR(CheckPeerUrls(req.peer_urls()));
      std::vector<std::string> urls(req.peer_urls().begin(), req.peer_urls().end());
      const uint64_t id = ComputeAddedMemberId(urls, req.unix_time());
      if (Find(id) != nullptr) return MemberExist();
      if (WasRemoved(id)) return MemberNotFound();  // etcd: ErrIDRemoved
      if (urls_taken(0)) return PeerUrlExist();
      if (req.is_learner()) {
        size_t learners = 0;
        for (const auto& m : members_) learners += m.is_learner() ? 1 : 0;
        if (learners + 1 > kMaxLearners) return TooManyLearners();
      }
      record.set_id(id);
      for (const auto& u : urls) record.add_peer_urls(u);
      record.set_is_learner(req.is_learner());
      cc.type = req.is_learner() ? raft::ConfChangeType::kAddLearnerNode
                                 : raft::ConfChangeType::kAddNode;
      break;
    }
    case Kind::REMOVE: {
      const internal::MemberRecord* m = Find(req.member_id());
      if (m == nullptr) return MemberNotFound();
      record = *m;
      cc.type = raft::ConfChangeType::kRemoveNode;
      break;
    }
    case Kind::UPDATE: {
      const internal::MemberRecord* m = Find(req.member_id());
      if (m == nullptr) return MemberNotFound();
      RUSD_RETURN_IF_ERROR(CheckPeerUrls(req.peer_urls()));
      if (urls_taken(req.member_id())) return PeerUrlExist();
      record = *m;
      record.clear_peer_urls();
      for (const auto& u : req.peer_urls()) record.add_peer_urls(u);
      cc.type = raft::ConfChangeType::kUpdateNode;
      break;
    }
    case Kind::PROMOTE: {
      const internal::MemberRecord* m = Find(req.member_id());
      if (m == nullptr) return MemberNotFound();
      if (!m->is_learner()) return NotLearner();
      // etcd's isLearnerReady: only the leader knows how far the learner is.
      if (node.role() != raft::Role::kLeader) return NotLeader();
      const auto& progress = node.progress();
      auto self = progress.find(node.id());
      auto learner = progress.find(req.member_id());
      if (learner != progress.end() && self != progress.end() &&
          static_cast<double>(learner->second.match) <
              static_cast<double>(self->second.match) * 0.9) {
        return LearnerNotReady();
      }
      record = *m;
      record.set_is_learner(false);
      cc.type = raft::ConfChangeType::kAddNode;
      break;
    }
    default:
      return Status::InvalidArgument("rusd: unknown member change kind");
  }
  cc.node_id = record.id();
  record.set_request_id(request_id);
  record.set_origin_member_id(self_id_);
  cc.context = record.SerializeAsString();
  return cc;
}

MembershipRegistry::Applied MembershipRegistry::ApplyTo(
    const raft::Entry& e, std::vector<internal::MemberRecord>* members,
    std::vector<uint64_t>* removed) {
  Applied out;
  Result<raft::ConfChange> cc = raft::DecodeConfChange(e.data);
  if (!cc.ok()) {
    spdlog::error("membership: undecodable conf change at index {}", e.index);
    return out;
  }
  internal::MemberRecord record;
  if (!record.ParseFromString(cc->context)) record.Clear();
  record.set_id(cc->node_id);
  out.type = cc->type;
  out.changed = true;
  auto it = std::find_if(members->begin(), members->end(),
                         [&](const internal::MemberRecord& m) { return m.id() == cc->node_id; });
  internal::MemberRecord stored = record;
  stored.clear_request_id();
  stored.clear_origin_member_id();
  switch (cc->type) {
    case raft::ConfChangeType::kAddNode:
    case raft::ConfChangeType::kAddLearnerNode:
    case raft::ConfChangeType::kUpdateNode:
      if (it == members->end()) {
        members->push_back(stored);
      } else {
        if (stored.name().empty()) stored.set_name(it->name());
        if (stored.peer_urls().empty()) *stored.mutable_peer_urls() = it->peer_urls();
        *it = stored;
      }
      break;
    case raft::ConfChangeType::kRemoveNode:
      if (it != members->end()) {
        if (record.peer_urls().empty()) *record.mutable_peer_urls() = it->peer_urls();
        if (record.name().empty()) record.set_name(it->name());
        members->erase(it);
      }
      if (std::find(removed->begin(), removed->end(), cc->node_id) == removed->end()) {
        removed->push_back(cc->node_id);
      }
      break;
  }
  out.record = std::move(record);
  return out;
}

MembershipRegistry::Applied MembershipRegistry::Apply(const raft::Entry& e) {
  if (e.index <= applied_index_) return Applied{};
  applied_index_ = e.index;
  Applied out = ApplyTo(e, &members_, &removed_);
  if (!out.changed) return out;
  spdlog::info("membership: applied {} of member {:016x} at index {}; {} members",
               static_cast<int>(out.type), out.record.id(), e.index, members_.size());
  Persist();
  return out;
}

internal::MemberListFile MembershipRegistry::ListAt(internal::MemberListFile base,
                                                    std::span<const raft::Entry> entries,
                                                    uint64_t index) {
  std::vector<internal::MemberRecord> members(base.members().begin(), base.members().end());
  std::vector<uint64_t> removed(base.removed_ids().begin(), base.removed_ids().end());
  for (const raft::Entry& e : entries) {
    if (e.index > index) break;
    if (e.type == raft::EntryType::kConfChange && e.index > base.applied_index()) {
      ApplyTo(e, &members, &removed);
    }
  }
  internal::MemberListFile out;
  out.set_applied_index(std::max(index, base.applied_index()));
  for (auto& m : members) *out.add_members() = std::move(m);
  for (uint64_t id : removed) out.add_removed_ids(id);
  return out;
}

internal::MemberListFile MembershipRegistry::Current() const {
  internal::MemberListFile file;
  file.set_applied_index(applied_index_);
  for (const auto& m : members_) *file.add_members() = m;
  for (uint64_t id : removed_) file.add_removed_ids(id);
  return file;
}

bool MembershipRegistry::Restore(const internal::MemberListFile& file) {
  if (file.applied_index() <= applied_index_ || file.members().empty()) return false;
  applied_index_ = file.applied_index();
  members_.assign(file.members().begin(), file.members().end());
  removed_.assign(file.removed_ids().begin(), file.removed_ids().end());
  spdlog::info("membership: {} members as of index {} from a snapshot", members_.size(),
               applied_index_);
  Persist();
  return true;
}

void MembershipRegistry::Persist() {
  if (dir_.empty()) return;
  const internal::MemberListFile file = Current();
  const std::string path = dir_ + "/" + kFileName;
  if (Status st = WriteFileAtomically(path, file.SerializeAsString(), 0644); !st.ok()) {
    spdlog::error("membership: cannot write {}: {} (a restart replays the change from the WAL "
                  "while it holds it)",
                  path, st.ToString());
  }
}

}  // namespace rusd::raftd
