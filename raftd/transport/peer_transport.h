// PeerTransport: carries raft::Message values between the rusd-raftd processes of a
// cluster over TCP (--listen-peer-urls / --initial-advertise-peer-urls).
//
// What it promises:
// - Send() never blocks on the network: it writes a batch straight to a ready, idle stream
//   (non-blocking send; the rest, if any, is left to the I/O thread), or appends it to a
//   bounded per-peer queue and wakes the transport's own I/O thread. A full queue drops messages (Raft tolerates loss:
//   heartbeats and probes retransmit), so the Raft thread keeps ticking whatever peers do.
// - One persistent outgoing TCP stream per peer, dialled by this node; each write carries
//   as many queued messages as are waiting (one Messages frame per ≤ max_batch_bytes).
//   A failed or closed stream is re-dialled with exponential backoff (min_backoff doubling
//   up to max_backoff, reset by a successful handshake); queued messages of a failed
//   stream are dropped (stale by the time it reconnects).
// - Every connection starts with a handshake (wire_format.h: Hello / HelloReply) carrying
//   the cluster id and both member ids: a node of another cluster (another
//   --initial-cluster-token), a connection meant for another member, or an unknown member
//   is refused with a clear error logged on both sides (and kept in PeerState::last_error).
//   The handshake also carries each member's name and advertised client URLs, which is how
//   a member learns the client URLs of the others (MemberList).
// - Received messages (addressed to this member) queue in an inbox; on_receive is called
//   from the I/O thread after new ones arrived. The inbox is bounded too (drops when full).
//
// Thread safety: Send, TakeReceived, Peers and peers_version may be called from any thread.
// One I/O thread (poll) does all socket work; the destructor stops it and closes sockets.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "raftd/raft/messages.h"

namespace rusd::transport {

struct PeerAddress {
  uint64_t id = 0;
  std::string name;
  std::vector<std::string> peer_urls;  // http://host:port; dialled in order, round robin
};

struct TransportOptions {
  uint64_t cluster_id = 0;
  uint64_t member_id = 0;
  std::string name;
  std::vector<std::string> listen_urls;  // http://host:port (port 0: any, see listen_ports)
  std::vector<std::string> client_urls;  // this member's advertised client URLs
  std::vector<PeerAddress> peers;        // every other member
  size_t max_queued_messages = 16384;    // per peer
  size_t max_queued_bytes = 64u << 20;   // per peer (one larger message passes when empty)
  size_t max_inbox_messages = 65536;
  size_t max_batch_bytes = 4u << 20;     // one Messages frame
  std::chrono::milliseconds min_backoff{10};
  std::chrono::milliseconds max_backoff{500};
  // A dial or handshake that has not completed in this time is abandoned and retried.
  std::chrono::milliseconds handshake_timeout{2000};
  std::function<void()> on_receive;  // called on the I/O thread; must not block
  // An accepted connection whose first frame has a kind >= 16 is a snapshot stream
  // (raftd/snapshot/snapshot_transfer.h): the socket and the bytes read so far are handed
  // over (the transport forgets them). Unset: such a connection is closed as garbage.
  std::function<void(int fd, std::string head)> on_snapshot_stream;
};

// What this member knows about one peer.
struct PeerState {
  uint64_t id = 0;
  std::string name;
  bool connected = false;                // our outgoing stream is up (handshake done)
  std::vector<std::string> client_urls;  // from the peer's handshake; empty until then
  std::string last_error;                // why the last dial or handshake failed
  // Why the peer last refused our handshake (cluster ID mismatch, "was removed from the
  // cluster", ...): unlike last_error it survives later dial failures and timeouts, so
  // the verdict is not lost to whatever failed next; cleared by a successful handshake.
  std::string refused_by_peer;
  uint64_t dropped = 0;                  // messages dropped for this peer (queue full, failure)
};

// A Hello with cluster id and both member ids 0 is a membership query (a member joining
// an existing cluster learns the cluster id and its own id): the reply is refused with this
// name, member_id = cluster id and one "<hex id>\t<name>\t<url>,..." per member.
inline constexpr char kMembershipQueryName[] = "rusd-membership";

class PeerTransport {
 public:
  // Binds every listen URL (an error names the URL: in use, bad address) and starts the
  // I/O thread, which dials all peers at once.
  static Result<std::unique_ptr<PeerTransport>> Start(TransportOptions options);
  ~PeerTransport();
  PeerTransport(const PeerTransport&) = delete;
  PeerTransport& operator=(const PeerTransport&) = delete;

  // Queues each message for its `to` peer (moved from; `msgs` is left empty). Messages to
  // unknown members are dropped.
  void Send(std::vector<raft::Message>& msgs);
  // Moves every received message into `out` (appended).
  void TakeReceived(std::vector<raft::Message>* out);
  // True if TakeReceived would return something (cheap).
  bool HasReceived() const;

  std::vector<PeerState> Peers() const;
  // Increases whenever a peer's name, client URLs or connection state changes.
  uint64_t peers_version() const;
  // The bound port of each listen URL, in order.
  std::vector<uint16_t> listen_ports() const;
  // Membership changed: dial `peers` (every other member; new ones are added, changed URLs
  // take effect at the next dial) and forget members no longer listed. A member in
  // `removed` that dials us is refused with "member <id> was removed from the cluster".
  // Applied by the I/O thread at its next turn.
  void UpdatePeers(std::vector<PeerAddress> peers, std::vector<uint64_t> removed);

 private:
  struct Impl;
  explicit PeerTransport(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rusd::transport
