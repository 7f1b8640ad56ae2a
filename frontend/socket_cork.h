// SocketCorks: TCP_CORK held on a few client connections while a burst of gRPC responses is
// written to them.
//
// gRPC C++ writes each message to its socket as soon as it is issued (TCP_NODELAY), so a
// thread answering 500 keep-alive streams in a row makes 500 sendmsg calls, and on loopback
// each one also runs the receiver's TCP input and wakes the client: most of the kernel time
// of a keep-alive. Corked, the kernel only appends each response to the connection's send
// queue and sends it in full segments when the cork is removed, as etcd's (Go) HTTP/2 writer
// sends every response that is ready in one write.
//
// What it promises: every fd corked by Cork is uncorked by the destructor (then whatever was
// written meanwhile leaves at once); a burst delays other writes on those connections by at
// most its own duration. gRPC owns the sockets: an fd may have been closed (and its number
// reused) by the time it is corked; setsockopt then fails (not a TCP socket) or briefly corks
// an unrelated connection, which the uncork flushes; both are harmless.
//
// Thread safety: one object per burst, on one thread. Two bursts may cork the same socket;
// the first uncork sends what both wrote so far.
#pragma once

#include <string_view>
#include <vector>

namespace rusd::frontend {

class SocketCorks {
 public:
  SocketCorks() = default;
  ~SocketCorks();
  SocketCorks(const SocketCorks&) = delete;
  SocketCorks& operator=(const SocketCorks&) = delete;

  // Corks `fd` (once; a negative fd is ignored).
  void Cork(int fd);

 private:
  std::vector<int> fds_;  // corked, in order; a burst touches few connections
};

// The socket of a gRPC call's connection from its peer string: connections the frontend
// accepts itself and hands to gRPC (ClientListener) are named "fd:<n>". -1 for any other.
int ConnectionFdOfPeer(std::string_view peer);

}  // namespace rusd::frontend
