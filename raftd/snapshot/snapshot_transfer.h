// SnapshotTransfer: streams snapshot directories (RocksDB checkpoints stored made) between
// the rusd-raftd processes of a cluster, beside the peer transport's message streams so a
// large snapshot never delays heartbeats.
//
// Connection: the sender dials the follower's peer URL and writes frames in the transport's
// framing (u32 length LE | u8 kind | body); kinds start at 16, so the transport's acceptor
// can tell a snapshot stream from a message stream by its first frame and hands the socket
// over (TransportOptions::on_snapshot_stream). Frames (integers little-endian, strings u32
// length + bytes):
//   16 Header    u8 version | u64 cluster_id | u64 from | u64 to | u64 term |
//                u64 index | u64 snap_term | u32 n, n x u64 voters | u32 n, n x u64 learners
//                | string members (version 2 only: the member list as of index, a
//                serialized rusd.internal.MemberListFile). Without a list the sender
//                writes version 1, which receivers older than version 2 still accept;
//                both versions are accepted here.
//   17 File      string name (a plain file name, no '/') | u64 size
//   18 Chunk     u32 crc32c(data) | data (<= chunk_bytes)
//   19 FileEnd   u32 crc32c of the whole file
//   20 Done      (empty)
//   21 Ack       u8 ok | string error                 (receiver -> sender, once, at the end)
// The receiver writes into <snap_dir>/recv-<index:016x>.partial, checks every chunk's and
// file's checksum and size, fsyncs, renames the directory to recv-<index:016x> and only then
// hands the kSnapshot message to raftd (TakeReceived) and acks. Anything wrong (checksum,
// size, name, no file at all, another cluster, a closed connection) discards the partial
// directory and acks failure (or just closes): the leader reports the snapshot failed and
// Raft retries later.
// Only one stream per index runs at a time (a second one, e.g. from a leader that
// reconnected or a new leader, is refused at its header until the first ends), and a
// complete recv-<index> is never replaced (stored may be installing it): a later stream of
// the same index is dropped once verified and its message handed over again. Partial
// directories a crash left are removed when a SnapshotTransfer is constructed. Complete
// received snapshots are removed only by RemoveReceivedUpTo, once stored is known to hold a
// newer state (not when a newer one arrives: stored may be installing the older one then),
// on a worker thread (unlinking gigabytes must not stall the caller, raftd's Raft loop);
// a stream of an index being removed is refused like a second stream of it.
//
// Threads: one thread per transfer in flight (at most one outgoing per peer, and incoming
// streams each on their own); every public method may be called from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "raftd/raft/messages.h"

namespace rusd::raftd {

inline constexpr uint8_t kSnapshotFrameHeader = 16;

struct SnapshotTransferOptions {
  uint64_t cluster_id = 0;
  uint64_t member_id = 0;
  std::string snap_dir;  // <data-dir>/member/snap
  // Peer URLs by member id (http://host:port), dialled in order.
  std::vector<std::pair<uint64_t, std::vector<std::string>>> peers;
  size_t chunk_bytes = 1u << 20;
  // Called (from a transfer thread) when a report or a received snapshot is ready.
  std::function<void()> on_event;
};

// "recv-<index:016x>" in snap_dir: where a received snapshot at `index` lives.
std::string ReceivedSnapshotDir(const std::string& snap_dir, uint64_t index);

class SnapshotTransfer {
 public:
  explicit SnapshotTransfer(SnapshotTransferOptions options);
  ~SnapshotTransfer();  // waits for the transfers in flight (their sockets are shut down)
  SnapshotTransfer(const SnapshotTransfer&) = delete;
  SnapshotTransfer& operator=(const SnapshotTransfer&) = delete;

  // Streams the files of `dir` with the kSnapshot message `m` and the member list as of
  // the snapshot (`members`, opaque here) to m.to. A transfer already running to that peer
  // makes this one fail at once (reported like any failure).
  void Send(raft::Message m, std::string dir, std::string members = {});
  // Replaces the peers' URLs (membership changed): a member added later can be sent one.
  void UpdatePeers(std::vector<std::pair<uint64_t, std::vector<std::string>>> peers);
  // Takes over a connection the transport accepted whose first bytes (`head`, already
  // read) begin a snapshot stream.
  void Accept(int fd, std::string head);

  // Removes the complete received snapshots at or below `index` (stored applied at least
  // that far: none of them will be installed) except the one at `keep` (the install
  // raftd ordered). Partial ones are left to their streams. Returns at once: the removal
  // runs on a worker thread; a call with nothing to remove costs one mutex, no I/O.
  void RemoveReceivedUpTo(uint64_t index, std::optional<uint64_t> keep = std::nullopt);

  // Outcomes of sends, (to, ok), for RaftNode::ReportSnapshot.
  void TakeReports(std::vector<std::pair<uint64_t, bool>>* out);
  // kSnapshot messages whose data is complete in ReceivedSnapshotDir(snap_dir, index).
  struct Received {
    raft::Message message;
    std::string members;  // as the sender gave it to Send (empty from a version 1 sender)
  };
  void TakeReceived(std::vector<Received>* out);
  bool HasEvents() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rusd::raftd
