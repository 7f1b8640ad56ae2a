// MembershipRegistry: raftd's member list (ids, names, peer URLs, learner or voter) and the
// rules etcd 3.5 applies to member changes before they are proposed.
//
// What it promises:
// - The list starts from the bootstrap members (--members), then follows every committed
//   conf-change entry (its context is a rusd.internal.MemberRecord) in log order.
// - It is durable: after each applied change it rewrites <dir>/members.pb (write to a
//   temporary file, fsync, rename) with the index it reflects; a restart loads that file
//   and replays only later conf-change entries, so WAL trimming loses nothing.
// - Plan() refuses a change with etcd's gRPC code and message (api/v3rpc/rpctypes):
//   unknown member, id or peer URLs already present, promoting a voter, a learner not in
//   sync (match < 90 % of the leader's, only judged on the leader), too many learners
//   (etcd's default maximum of 1).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/component_flags.h"
#include "common/status.h"
#include "raftd/raft/conf_change.h"
#include "raftd/raft/raft_node.h"
#include "rusd/membership.pb.h"

namespace rusd::raftd {

// etcd's membership.computeMemberId for a member added at run time: SHA-1 of the sorted
// peer URLs joined, then the decimal Unix time; the first 8 bytes big endian.
uint64_t ComputeAddedMemberId(std::vector<std::string> peer_urls, int64_t unix_time);

class MembershipRegistry {
 public:
  static constexpr size_t kMaxLearners = 1;  // etcd 3.5's --max-learners default

  // `dir` empty: nothing is persisted (tests).
  MembershipRegistry(uint64_t self_id, const std::vector<ClusterMember>& bootstrap,
                     std::string dir);

  // Reads members.pb if present (corrupt: an error naming the file).
  Status Load();
  // Applies the conf-change entries in `entries` above the loaded index (a restart).
  void Replay(std::span<const raft::Entry> entries, uint64_t commit);

  // The change to propose for `req`, or etcd's error.
  Result<raft::ConfChange> Plan(const internal::MemberChangeRequest& req,
                                const raft::RaftNode& node, uint64_t request_id) const;

  struct Applied {
    bool changed = false;
    internal::MemberRecord record;  // the member the entry is about (request id inside)
    raft::ConfChangeType type = raft::ConfChangeType::kAddNode;
  };
  // A committed conf-change entry: updates the list and persists it (errors are logged:
  // the log still holds the change and a restart replays it).
  Applied Apply(const raft::Entry& e);

  // The list now, as members.pb holds it.
  internal::MemberListFile Current() const;
  // The bootstrap list (as of index 0), before members.pb or any change.
  const internal::MemberListFile& initial() const { return initial_; }
  // The list as of log index `index`: `base` (the list as of its applied_index) with the
  // conf-change entries of `entries` in (base.applied_index, index] applied on top. What
  // a snapshot at `index` carries: the entries that built it are compacted away after it.
  static internal::MemberListFile ListAt(internal::MemberListFile base,
                                         std::span<const raft::Entry> entries, uint64_t index);
  // Installs the list a snapshot carried (as of its applied_index, the snapshot's index)
  // and persists it; later conf-change entries apply on top. An older or empty list is
  // ignored (false): the registry never goes back.
  bool Restore(const internal::MemberListFile& file);

  const std::vector<internal::MemberRecord>& members() const { return members_; }
  const internal::MemberRecord* Find(uint64_t id) const;
  bool WasRemoved(uint64_t id) const;
  const std::vector<uint64_t>& removed_ids() const { return removed_; }
  uint64_t applied_index() const { return applied_index_; }
  bool self_removed() const { return WasRemoved(self_id_); }

 private:
  void Persist();
  // Applies one conf-change entry to a list (no index check, no logging, no file).
  static Applied ApplyTo(const raft::Entry& e, std::vector<internal::MemberRecord>* members,
                         std::vector<uint64_t>* removed);

  uint64_t self_id_;
  std::string dir_;
  uint64_t applied_index_ = 0;
  std::vector<internal::MemberRecord> members_;
  std::vector<uint64_t> removed_;
  internal::MemberListFile initial_;
};

}  // namespace rusd::raftd
