// RingClient: the frontend's side of the rings. gRPC and HTTP threads hand it requests;
// it writes them to the proposals and reads rings, keeps them pending by request id, and
// its ONE reply thread (the consumer of raft-replies and store-replies, woken through
// DoorbellId::kFrontendReplies) completes them.
//
// What it promises:
// - Every request's `done` callback runs exactly once: with the kResult payload (the
//   serialized etcd response stored built, passed on unchanged), with the kError status
//   (gRPC code and etcd message unchanged), with Unavailable "etcdserver: request timed
//   out" at the deadline (etcd's request timeout: 5 s + 2 x election timeout), with
//   ResourceExhausted "etcdserver: too many requests" when the ring stays full, or with
//   Unavailable "etcdserver: server stopped" when the client shuts down.
// - A linearizable read is a kReadIndex on proposals; on kReadIndexReply it becomes a
//   kRangeRead{min_applied_index = read_index} on reads. A serializable read is a kRangeRead
//   with minimum 0.
// - Re-sends follow docs/architecture.md: when stored's epoch changes, pending kRangeReads are
//   sent again; when raftd's epoch changes, pending kReadIndexes are. A kPropose is never
//   sent twice (it may already be in the WAL): it completes through stored or times out.
// - A request for raftd's log or actions (kPropose, kMemberChange, kMoveLeader) ends with its
//   deadline (ipc/request_trailer.h): raftd never proposes (nor, on a follower, forwards to
//   the leader) a request it reads at or after that time. One proposed or forwarded just
//   before may still be appended and commit after the client was told "request timed out"
//   (a follower's forward carries no deadline: the leader appends it whenever it arrives),
//   which is why that answer means outcome unknown, as etcd's does (Unavailable, etcd's
//   ErrTimeout): clientv3 never retries a mutation on it (isSafeRetryMutableRPC retries
//   Unavailable only for "there is no address/connection available").
// - etcd_server_proposals_failed_total counts a Propose once, here: when it times out or
//   raftd refuses it (kError on raft-replies); not on "server stopped" (etcd's ErrStopped
//   is not counted either) nor for stored's errors (the request's own outcome).
// - Replies for ids nobody waits for (an older frontend's, or already timed out) are dropped.
// - The reply thread never blocks producing into a ring (it consumes two): its own writes
//   (read-index follow-ups, re-sends) and the reads a callback issues (Read, ReadAs,
//   ReadStore on the reply thread: e.g. the next keep-alive batch) use TryWrite and are
//   retried from a local backlog until their deadline. Propose and SubmitToRaft from a
//   callback still wait up to ring_write_timeout for space.
//
// Threads: Propose/Read/NextRequestId from any thread. `done` runs on the reply thread, or on
// the calling thread when the request fails before it reached a ring. Callbacks should be
// short (they delay every other reply); no lock of the client is held while one runs, so a
// callback may issue new requests.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/request_id.h"
#include "common/status.h"
#include "ipc/message_type.h"

namespace rusd::ipc {
class Segment;
}

namespace rusd::frontend {

class ConnectionCork;

// Told by the reply thread when it finished a round of completions (a batch of replies,
// timeouts, re-send failures), on the reply thread: writers that deferred their output while
// the callbacks ran (native_grpc/: one write per connection per batch) send it now.
class ReplyBatchHook {
 public:
  virtual ~ReplyBatchHook() = default;
  virtual void ReplyBatchEnd() = 0;
};

struct RingClientOptions {
  uint64_t member_id = 0;
  uint64_t own_epoch = 0;  // stamped on every frame (ComponentContext::epoch)
  // etcd's ReqTimeout(): 5 s + 2 x election timeout.
  std::chrono::milliseconds request_timeout{7000};
  // How long a request thread waits for ring space before "too many requests".
  std::chrono::milliseconds ring_write_timeout{200};
  // If set, the reply thread opens a cork batch (ConnectionCork::Cork) while it completes a
  // batch of two or more replies; the callbacks cork the connections they answer on, so that
  // gRPC's per-call writes leave together (connection_cork.h).
  ConnectionCork* cork = nullptr;
  // If set, called on the reply thread after every round of its loop that may have run
  // callbacks (see ReplyBatchHook). Must outlive the client's Stop().
  ReplyBatchHook* batch_hook = nullptr;
};

// Called once per request. `payload` is the kResult bytes when status is OK.
using RequestCallback = std::function<void(const Status& status, std::string&& payload)>;

// What raftd last reported (kLeaderInfo).
struct LeaderState {
  uint64_t leader_id = 0;  // 0: no leader known
  uint64_t term = 0;
};

class RingClient {
 public:
  RingClient(ipc::Segment& segment, const RingClientOptions& options);
  // Stops the reply thread and fails every pending request with "server stopped".
  ~RingClient();
  RingClient(const RingClient&) = delete;
  RingClient& operator=(const RingClient&) = delete;

  // Starts the reply thread. Call once, before the first request.
  void Start();

  // Stops the reply thread and fails every pending request, and every later one, with
  // Unavailable "etcdserver: server stopped". Call before shutting down the gRPC server:
  // a call whose reactor never finishes would keep the server's shutdown waiting.
  // Idempotent; the destructor calls it.
  void Stop();

  uint64_t NextRequestId() { return ids_.Next(); }
  uint64_t member_id() const { return options_.member_id; }
  // The reply thread's cork batches (RingClientOptions::cork; may be null), for callbacks
  // that write replies to gRPC connections.
  ConnectionCork* cork() const { return options_.cork; }

  // Writes a kPropose carrying `command` (a serialized rusd.internal.Command whose
  // request_id is `request_id`) and the request's deadline; `done` gets stored's kResult
  // (or kError from raftd/stored).
  void Propose(uint64_t request_id, std::string_view command, RequestCallback done);
  // Another request for raftd on the proposals ring (kMemberChange, kMoveLeader), answered
  // by raftd's kResult or kError; never re-sent, like a proposal.
  void SubmitToRaft(ipc::MessageType type, std::string_view payload, RequestCallback done);

  // Reads `range_request` (a serialized etcdserverpb.RangeRequest): linearizable via
  // kReadIndex first, or serializable straight from stored. `done` gets the RangeResponse.
  void Read(std::string range_request, bool linearizable, RequestCallback done);

  // The same path for another reads-ring query (`read_type`, e.g. the lease queries of
  // ipc/message_type.h): `request` is the etcd request, sent in a RangeRead-shaped envelope
  // {min_applied_index, request}; `done` gets stored's kResult. Linearizable = ReadIndex first.
  void ReadAs(uint16_t read_type, std::string request, bool linearizable, RequestCallback done);
  // Sends `payload` as a `type` frame on the reads ring: a serializable store read other
  // than a range (kWatchHistoryRead), without the envelope. Otherwise the same path as
  // ReadAs: `done` gets stored's kResult; re-sent like range reads when stored's epoch
  // changes.
  void ReadStore(ipc::MessageType type, std::string payload, RequestCallback done);

  LeaderState leader() const;

  // The members raftd last reported (kMemberList): a serialized
  // etcdserverpb.MemberListResponse without header; empty until raftd sent one.
  std::string member_list() const;
  // Changes whenever member_list() does (a count of the lists raftd sent). Read it before
  // member_list() to cache something derived from the list under its version.
  uint64_t member_list_version() const;
  // This member is a learner in the member list raftd last reported. etcd then refuses
  // every RPC but Maintenance.Status and serializable Range (etcd_errors.h).
  bool is_learner() const;

  // raftd's commit index and stored's applied index as they last published them in the
  // segment (Maintenance.Status's raftIndex and raftAppliedIndex).
  uint64_t committed_index() const;
  uint64_t applied_index() const;
  // stored's database size on disk and RocksDB's estimate of its live data, as stored last
  // published them (about once a second): Status's dbSize and dbSizeInUse.
  uint64_t db_size() const;
  uint64_t db_size_in_use() const;

  // Number of requests waiting for a reply (tests, metrics).
  size_t PendingCount() const;

  // For a callback that completes many calls at once (one keep-alive batch reply answers
  // hundreds of streams): corks the client connections (connection_cork.h) for the rest of
  // the reply thread's current batch of replies, even when this reply is its first (which
  // the reply thread alone leaves uncorked). If they are corked already, what they queued
  // leaves first (uncork, cork again): calling this every few dozen calls completed lets
  // the first answers go without waiting for the last. Does nothing off the reply thread
  // or without `cork`.
  void CorkConnections();

  // The caller is the reply thread (so a ReplyBatchHook::ReplyBatchEnd follows what it does
  // now).
  bool OnReplyThread() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  RingClientOptions options_;
  RequestIdGenerator ids_;
};

// The payload of a kRangeRead: rusd.internal.RangeRead{min_applied_index, request} built
// around already-serialized RangeRequest bytes (no re-encoding of the request).
std::string EncodeRangeRead(uint64_t min_applied_index, std::string_view range_request);

}  // namespace rusd::frontend
