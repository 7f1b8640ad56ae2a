// ConnectionCork: the gRPC connections of this frontend, corked (TCP_CORK) while the reply
// thread completes a batch of calls, so that each connection's responses leave in one
// transmission instead of one per call. Only the connections that get a reply in the batch
// are corked (Touch), not every connection tracked.
//
// Why: gRPC (chttp2) writes every finished unary call with its own sendmsg at once. On the
// loopback a sendmsg that transmits costs the whole TCP path of both ends (netfilter,
// segment, the client's wake-up) in the sender's thread: under load that was about a third
// of the frontend's CPU per call. A corked socket only queues the bytes; uncorking sends
// what was queued as one segment (or as few as the MSS allows).
//
// The set holds socket numbers only, never a reference to the socket: gRPC closes its
// connections whenever it likes, and the peer must see that close at once. A number that
// gRPC closed and the OS reused for another socket may be corked for the length of one batch
// (its writes wait microseconds, never longer: Uncork always follows); a closed one makes
// setsockopt fail harmlessly. Prune drops numbers that are no longer established TCP
// sockets.
//
// Thread safety: every method may be called from any thread; Cork/Uncork are meant for one
// thread (the ring client's reply thread) and must come in pairs with nothing blocking in
// between: anything written to a corked socket waits for Uncork. Touch/TouchAll are meant
// for the callbacks that reply thread runs between them; from another thread they only
// delay that thread's write to the end of the batch.
#pragma once

#include <atomic>
#include <mutex>
#include <string_view>
#include <vector>

namespace rusd::frontend {

class ConnectionCork {
 public:
  ConnectionCork() = default;
  ~ConnectionCork();
  ConnectionCork(const ConnectionCork&) = delete;
  ConnectionCork& operator=(const ConnectionCork&) = delete;

  // Tracks the connected TCP socket `fd` (handed to gRPC by the caller; not owned here).
  void Add(int fd);

  // Opens a batch: from now until Uncork, Touch corks the connection a reply is about to
  // be written to (two setsockopt calls per connection and batch, paid only by connections
  // that get a reply in it); Uncork sends what they queued meanwhile.
  void Cork();
  void Uncork();

  // Called before writing a reply to the connection whose socket is `fd` (a call's peer
  // "fd:N", see ParsePeerFd): corks it if a batch is open and it is tracked, once per batch.
  // Cheap otherwise (a lock and a scan of the batch's few corked sockets).
  void Touch(int fd);
  // A batch is open (Cork called, Uncork not yet): lets a caller skip finding its socket.
  bool batch_open() const { return open_.load(std::memory_order_relaxed); }
  // For writers that do not know their connection (e.g. one reply answering many streams):
  // corks every tracked connection for the rest of the batch. With more than
  // kMaxConnections tracked it does nothing: that would cost two setsockopt calls per
  // connection, which pays only while a few connections carry many calls each.
  static constexpr size_t kMaxConnections = 16;
  void TouchAll();

  // The socket number of a gRPC peer string of a connection gRPC got from a socket
  // ("fd:N", what grpc::AddInsecureChannelFromFd names it), or -1.
  static int ParsePeerFd(std::string_view peer);

  // Forgets connections that are no longer established (closed by gRPC or the peer).
  void Prune();

  // Tracked connections (tests).
  size_t size() const;

 private:
  void CorkLocked(int fd);

  mutable std::mutex mu_;
  std::vector<int> fds_;     // socket numbers, under mu_
  std::atomic<bool> open_{false};  // a batch is open (between Cork and Uncork); set under mu_
  std::vector<int> corked_;  // sockets corked in this batch, under mu_
};

}  // namespace rusd::frontend
