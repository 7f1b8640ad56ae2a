// The frame types that travel on a node's rings, and which ring carries each. The payload
// of each is the rusd.internal (proto/rusd/internal.proto) or etcdserverpb message named
// beside it. The frame id is the deduplication key the brief's ring rules require.
#pragma once

#include <cstdint>

namespace rusd::ipc {

enum class MessageType : uint16_t {
  kInvalid = 0,
  // proposals ring (frontend -> raftd). id = request id. kPropose, kMemberChange and
  // kMoveLeader end with a RequestTrailer (the frontend's deadline, request_trailer.h).
  kPropose = 1,        // rusd.internal.Command + trailer
  kReadIndex = 2,      // empty payload
  kMemberChange = 6,   // rusd.internal.MemberChangeRequest (membership.proto) + trailer;
                       // kResult/kError
  kMoveLeader = 7,     // rusd.internal.MoveLeaderRequest (membership.proto) + trailer;
                       // kResult/kError
  // raft-replies ring (raftd -> frontend).
  kReadIndexReply = 10,  // id = request id; rusd.internal.ReadIndexReply
  kLeaderInfo = 11,      // id = 0; rusd.internal.LeaderInfo
  kMemberList = 12,      // id = 0; etcdserverpb.MemberListResponse (members only, no header)
  // committed ring (raftd -> stored). id = index of the first entry.
  kCommittedEntries = 20,  // rusd.internal.EntryBatch
  kLeaderState = 21,       // id = term; rusd.internal.LeaderState (proto/rusd/lease.proto)
  kInstallSnapshot = 23,   // id = index; rusd.internal.InstallSnapshot (snapshot.proto)
  // store-control ring (stored -> raftd). id = 0.
  kResumeFrom = 30,      // rusd.internal.ResumeFrom
  kDurableApplied = 31,  // rusd.internal.DurableApplied
  kLeaseProposals = 32,  // id = term; rusd.internal.LeaseProposals (expiry revocations)
  kSnapshotReady = 36,   // id = index; rusd.internal.SnapshotReady (snapshot.proto)
  // reads ring (frontend -> stored). id = request id.
  kRangeRead = 40,  // rusd.internal.RangeRead
  // Lease queries: rusd.internal.LeaseRead around the etcd request; answered with kResult.
  kLeaseKeepAlive = 45,
  kLeaseTimeToLive = 46,
  kLeaseLeases = 47,
  kWatchHistoryRead = 41,  // rusd.internal.WatchHistoryRead (watch.proto); answered by a
                           // kResult carrying a rusd.internal.WatchHistoryChunk
  kLeaseKeepAliveBatch = 48,  // LeaseRead around rusd.internal.KeepAliveBatch
  // Maintenance hashes, served from a store snapshot without ReadIndex (etcd serves them
  // locally); answered with kResult carrying the etcd response.
  kHashKvRead = 43,  // etcdserverpb.HashKVRequest -> HashKVResponse
  kHashRead = 44,    // etcdserverpb.HashRequest -> HashResponse (rusd's state hash)
  // store-replies ring (stored -> frontend). id = request id.
  kResult = 50,  // the etcd response (RangeResponse, PutResponse, DeleteRangeResponse,
                 // TxnResponse, CompactionResponse) serialized; the frontend knows which
                 // from the request it keeps pending under that id.
  // events ring (stored -> frontend), used by the watch issue. id = revision.
  kEvents = 60,
  // Any reply ring. id = request id.
  kError = 90,  // rusd.internal.ErrorReply
};

}  // namespace rusd::ipc
