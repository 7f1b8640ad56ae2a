// The vocabulary of the Raft core: log entries, the state that must survive a restart, and
// the messages peers exchange. Plain values; no I/O, no clocks (see raft_node.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rusd::raft {

// Values match rusd.internal.Entry.Type so raftd can hand them to stored unchanged.
enum class EntryType : uint8_t {
  kNormal = 0,      // data is a serialized rusd.internal.Command
  kConfChange = 1,  // membership change (cluster issue)
  kEmpty = 2,       // a new leader's no-op entry (Raft §8: commits earlier-term entries)
};

struct Entry {
  uint64_t index = 0;
  uint64_t term = 0;
  EntryType type = EntryType::kNormal;
  std::string data;
};

// What Raft requires on stable storage before answering any message (Raft §5, Figure 2).
// `commit` is persisted too so a restart can re-deliver committed entries without first
// hearing from a leader.
struct HardState {
  uint64_t term = 0;
  uint64_t vote = 0;  // member id voted for in `term`, 0 for none
  uint64_t commit = 0;
  bool operator==(const HardState&) const = default;
};

enum class Role : uint8_t { kFollower, kPreCandidate, kCandidate, kLeader };
const char* RoleName(Role r);

// Volatile state the caller may want to react to (leader changes).
struct SoftState {
  uint64_t leader = 0;  // 0: no known leader
  Role role = Role::kFollower;
  bool operator==(const SoftState&) const = default;
};

// The answer to ReadIndex(request_id): reads issued after the request may be served once
// the state machine has applied `index`.
struct ReadState {
  uint64_t request_id = 0;
  uint64_t index = 0;
};

enum class MessageType : uint8_t {
  kPreVote,        // §9.6 (Ongaro's thesis): would you vote for me at term+1?
  kPreVoteResp,
  kVote,           // RequestVote
  kVoteResp,
  kAppend,         // AppendEntries with entries
  kAppendResp,
  kHeartbeat,      // AppendEntries without entries; carries commit and a read context
  kHeartbeatResp,
  kPropose,        // a follower forwards proposals to its leader
  kReadIndex,      // a follower forwards a read-index request to its leader
  kReadIndexResp,
  // Appended for flow control, membership and snapshots (keep the order: wire values).
  kSnapshot,        // leader → follower: install the snapshot described by `snapshot`
  kTimeoutNow,      // leader → transferee: campaign now (leader transfer)
  kTransferLeader,  // a follower forwards a leader-transfer request; `context` = transferee
};
const char* MessageTypeName(MessageType t);

// A cluster configuration: who votes and who only receives the log. Sorted, disjoint.
struct ConfState {
  std::vector<uint64_t> voters;
  std::vector<uint64_t> learners;
  bool operator==(const ConfState&) const = default;
};

// Describes the state machine as of `index` (the entry at `index` had `term`), with the
// configuration in force there. The snapshot's data is the caller's business.
struct SnapshotMeta {
  uint64_t index = 0;
  uint64_t term = 0;
  ConfState conf;
  bool operator==(const SnapshotMeta&) const = default;
};

// One message between peers. Field use depends on the type, as in etcd's raftpb.Message:
//  - kAppend: (index, log_term) precede `entries`; `commit` is the leader's commit.
//    `context` == kCommitAnnouncement: an append without entries sent only to announce a
//    new commit index to a follower in pipelined replication; accepted, it is not
//    acknowledged (a rejection still is).
//  - kAppendResp: `index` is the last index matched, or on reject the index that did not
//    match with `reject_hint` = the follower's guess of the last index that may match and
//    `log_term` = the term of its entry there (fast back-off: the leader skips a whole term
//    per round trip, as etcd 3.5).
//  - kSnapshot: `snapshot` describes the snapshot; the caller carries its data beside.
//  - kTimeoutNow: the transferee campaigns at once. A kVote with `context` ==
//    kCampaignTransfer is part of a leader transfer: voters answer it even in lease.
//  - kTransferLeader: `context` is the member that should become leader.
//  - kVote/kPreVote: (index, log_term) describe the candidate's last entry.
//  - kVoteResp/kPreVoteResp: `commit` is the voter's commit index and `log_term` the term
//    of its entry there (a candidate holding that entry knows it is committed).
//  - kHeartbeat/kHeartbeatResp: `context` is a read-confirmation round (0: none).
//  - kReadIndex: `context` is one read request id, or `entries` carry several (one per
//    entry, in Entry::index; nothing else set). kReadIndexResp: `index` is the read index
//    for the request id in `context`, or for every request id in `entries`.
struct Message {
  MessageType type = MessageType::kHeartbeat;
  uint64_t to = 0;
  uint64_t from = 0;
  uint64_t term = 0;
  uint64_t log_term = 0;
  uint64_t index = 0;
  uint64_t commit = 0;
  bool reject = false;
  uint64_t reject_hint = 0;
  uint64_t context = 0;
  std::vector<Entry> entries;
  SnapshotMeta snapshot;  // kSnapshot only (appended field)
};

// Message::context of a kVote sent because of a leader transfer.
inline constexpr uint64_t kCampaignTransfer = 1;
// Message::context of an entry-less kAppend that only announces the commit index
// (RaftNode::AnnounceCommit). Its acknowledgement would tell the leader nothing new: the
// leader already counts the follower up to the appends that carried the entries (their
// own acknowledgements), so the follower skips it, sparing both sides a message and a
// wake-up per announcement (about a third of a loaded leader's appends). Members that do
// not know the value ignore it and acknowledge as before.
inline constexpr uint64_t kCommitAnnouncement = 0x636f6d6d6974;  // "commit"

}  // namespace rusd::raft
