// ConnectionCork: the gRPC connections of this frontend, corked (TCP_CORK) while the reply
// thread completes a batch of calls, so that each connection's responses leave in one
// transmission instead of one per call.
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
// between: anything written to a corked socket waits for Uncork.
#pragma once

#include <mutex>
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

  // Corks every tracked connection still open; Uncork sends what they queued meanwhile.
  // With more than kMaxConnections tracked, Cork does nothing: it costs two setsockopt
  // calls per connection and batch, which pays only while a few connections carry many
  // calls each (the case it is for: clients multiplexing calls on few connections).
  static constexpr size_t kMaxConnections = 16;
  void Cork();
  void Uncork();

  // Forgets connections that are no longer established (closed by gRPC or the peer).
  void Prune();

  // Tracked connections (tests).
  size_t size() const;

 private:
  mutable std::mutex mu_;
  std::vector<int> fds_;  // socket numbers, under mu_
  bool corked_ = false;   // under mu_
};

}  // namespace rusd::frontend
