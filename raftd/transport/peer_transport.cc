#include "raftd/transport/peer_transport.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <thread>

#include "common/url.h"
#include "raftd/transport/wire_format.h"

namespace rusd::transport {
namespace {

using Clock = std::chrono::steady_clock;

// Bytes read from a socket per read() call; a turn reads until EAGAIN or this many calls.
constexpr size_t kReadChunk = 256u << 10;
constexpr int kMaxReadsPerTurn = 16;

std::string Hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%lx", static_cast<unsigned long>(v));
  return buf;
}

void SetNonBlocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }
void SetNoDelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// Writes as much of buf[*off..] as the socket takes. False on a broken connection.
bool FlushBuffer(int fd, std::string* buf, size_t* off) {
  while (*off < buf->size()) {
    ssize_t n = ::send(fd, buf->data() + *off, buf->size() - *off, MSG_NOSIGNAL);
    if (n > 0) {
      *off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    return false;
  }
  buf->clear();
  *off = 0;
  return true;
}

// Appends what the socket has to buf. False on EOF or error (what was read before stays
// in buf: a refusal or a last batch is still processed).
bool FillBuffer(int fd, std::string* buf) {
  static thread_local char chunk[kReadChunk];
  for (int i = 0; i < kMaxReadsPerTurn; ++i) {
    ssize_t n = ::read(fd, chunk, kReadChunk);
    if (n > 0) {
      buf->append(chunk, static_cast<size_t>(n));
      if (static_cast<size_t>(n) < kReadChunk) return true;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    return false;
  }
  return true;
}

}  // namespace

struct PeerTransport::Impl {
  enum class DialState { kIdle, kConnecting, kHandshake, kReady };

  // One peer: our outgoing stream to it and its queue (under mu).
  struct Peer {
    PeerAddress address;
    // state, fd, wbuf and woff change under wmu: the I/O thread holds it while it works on
    // the stream, and Send (the Raft thread) try-locks it to write a batch straight to a
    // ready, idle stream, saving the hop through the I/O thread. Only the I/O thread
    // changes state and fd, so it reads them without wmu. Lock order: wmu, then mu.
    std::mutex wmu;
    // I/O thread only (but see wmu).
    DialState state = DialState::kIdle;
    int fd = -1;
    size_t url_index = 0;
    Clock::time_point next_dial{};
    Clock::time_point attempt_deadline{};
    std::chrono::milliseconds backoff{0};
    std::string wbuf;
    size_t woff = 0;
    std::string rbuf;
    std::string logged_error;  // last error logged, so a down peer does not flood the log
    // Under mu.
    std::deque<raft::Message> outbox;
    size_t outbox_bytes = 0;
    PeerState state_view;
  };

  // A connection a peer dialled to us: we read its messages.
  struct Incoming {
    int fd = -1;
    std::string rbuf;
    std::string wbuf;
    size_t woff = 0;
    uint64_t from = 0;  // 0 until its Hello was accepted
    bool close_after_write = false;
    Clock::time_point accepted_at{};  // a dialer silent past handshake_timeout is closed
  };

  TransportOptions options;
  std::vector<int> listeners;
  std::vector<uint16_t> ports;
  int wake_fd = -1;
  std::atomic<bool> stop{false};
  std::thread io;

  mutable std::mutex mu;
  // The peer map changes shape (members added or removed) only on the I/O thread, under
  // `mu` and `shape` held exclusively; Send, on the Raft thread, holds `shape` shared while
  // it looks peers up and writes to their streams, so no Peer it uses can vanish or have its
  // stream closed under it. Order: shape, then a peer's wmu, then mu.
  std::shared_mutex shape;
  std::map<uint64_t, Peer> peers;
  // UpdatePeers: the next peer set (under mu), applied by the I/O thread.
  std::optional<std::vector<PeerAddress>> pending_peers;
  std::vector<uint64_t> removed;  // under mu
  std::vector<raft::Message> inbox;
  std::atomic<size_t> inbox_size{0};
  std::atomic<uint64_t> version{1};

  std::vector<Incoming> incoming;  // I/O thread only
  std::map<uint64_t, std::string> last_refusal;  // by dialer; I/O thread only

  ~Impl() {
    for (int fd : listeners) ::close(fd);
    for (auto& [id, p] : peers) {
      if (p.fd >= 0) ::close(p.fd);
    }
    for (Incoming& c : incoming) ::close(c.fd);
    if (wake_fd >= 0) ::close(wake_fd);
  }

  void Wake() {
    uint64_t one = 1;
    ssize_t n = ::write(wake_fd, &one, sizeof one);
    (void)n;  // a full counter already means "wake"
  }

  Status Listen(const std::string& url) {
    auto hp = rusd::ParsePeerUrl(url);
    if (!hp.ok()) return hp.status();
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* res = nullptr;
    int rc = ::getaddrinfo(hp->host.empty() ? nullptr : hp->host.c_str(), hp->port.c_str(),
                           &hints, &res);
    if (rc != 0) {
      return Status::InvalidArgument("--listen-peer-urls " + url + ": " + gai_strerror(rc));
    }
    std::string err = "no address";
    int fd = -1;
    for (addrinfo* ai = res; ai != nullptr && fd < 0; ai = ai->ai_next) {
      int s = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
      if (s < 0) continue;
      int one = 1;
      ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      if (::bind(s, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(s, 64) == 0) {
        fd = s;
      } else {
        err = std::strerror(errno);
        ::close(s);
      }
    }
    ::freeaddrinfo(res);
    if (fd < 0) return Status::Unavailable("--listen-peer-urls " + url + ": " + err);
    SetNonBlocking(fd);
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    uint16_t port = addr.ss_family == AF_INET6
                        ? ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port)
                        : ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
    listeners.push_back(fd);
    ports.push_back(port);
    return Status::Ok();
  }

  void SetPeerError(Peer& p, const std::string& error) {
    if (error != p.logged_error) {
      if (p.address.id != 0) {
        spdlog::warn("peer {} ({}): {}", Hex(p.address.id), p.address.name, error);
      }
      p.logged_error = error;
    }
    std::lock_guard lock(mu);
    p.state_view.last_error = error;
  }

  // Closes the stream, drops what was queued for it and schedules the next dial.
  void FailPeer(Peer& p, const std::string& error) {
    if (p.fd >= 0) ::close(p.fd);
    p.fd = -1;
    const bool was_ready = p.state == DialState::kReady;
    p.state = DialState::kIdle;
    p.wbuf.clear();
    p.woff = 0;
    p.rbuf.clear();
    p.backoff = std::clamp(p.backoff * 2, options.min_backoff, options.max_backoff);
    p.next_dial = Clock::now() + p.backoff;
    p.url_index = (p.url_index + 1) % std::max<size_t>(1, p.address.peer_urls.size());
    SetPeerError(p, error);
    std::lock_guard lock(mu);
    p.state_view.dropped += p.outbox.size();
    p.outbox.clear();
    p.outbox_bytes = 0;
    if (was_ready) {
      p.state_view.connected = false;
      version.fetch_add(1);
    }
  }

  void Dial(Peer& p) {
    if (p.address.peer_urls.empty()) {
      p.next_dial = Clock::now() + options.max_backoff;
      return;
    }
    const std::string& url = p.address.peer_urls[p.url_index % p.address.peer_urls.size()];
    auto hp = rusd::ParsePeerUrl(url);
    if (!hp.ok()) {
      FailPeer(p, hp.status().message());
      return;
    }
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* res = nullptr;
    int rc = ::getaddrinfo(hp->host.c_str(), hp->port.c_str(), &hints, &res);
    if (rc != 0 || res == nullptr) {
      FailPeer(p, "resolve " + url + ": " + gai_strerror(rc));
      return;
    }
    int fd = ::socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                      res->ai_protocol);
    if (fd < 0) {
      ::freeaddrinfo(res);
      FailPeer(p, std::string("socket: ") + std::strerror(errno));
      return;
    }
    SetNoDelay(fd);
    rc = ::connect(fd, res->ai_addr, res->ai_addrlen);
    ::freeaddrinfo(res);
    p.fd = fd;
    p.attempt_deadline = Clock::now() + options.handshake_timeout;
    if (rc == 0) {
      StartHandshake(p);
    } else if (errno == EINPROGRESS) {
      p.state = DialState::kConnecting;
    } else {
      FailPeer(p, "dial " + url + ": " + std::strerror(errno));
    }
  }

  void StartHandshake(Peer& p) {
    p.state = DialState::kHandshake;
    Hello h;
    h.cluster_id = options.cluster_id;
    h.from_member = options.member_id;
    h.to_member = p.address.id;
    h.name = options.name;
    h.client_urls = options.client_urls;
    AppendHelloFrame(h, &p.wbuf);
    if (!FlushBuffer(p.fd, &p.wbuf, &p.woff)) FailPeer(p, "connection lost during handshake");
  }

  void OnPeerWritable(Peer& p) {
    if (p.state == DialState::kConnecting) {
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(p.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        FailPeer(p, "dial " + p.address.peer_urls[p.url_index % p.address.peer_urls.size()] +
                        ": " + std::strerror(err));
        return;
      }
      StartHandshake(p);
      return;
    }
    if (!FlushBuffer(p.fd, &p.wbuf, &p.woff)) {
      FailPeer(p, "connection lost");
      return;
    }
    if (p.state == DialState::kReady && p.wbuf.empty()) FillAndWrite(p);
  }

  // Encodes everything queued for `p` into its write buffer and writes what the socket
  // takes: one write carries the whole backlog.
  void FillAndWrite(Peer& p) {
    std::vector<raft::Message> batch;
    {
      std::lock_guard lock(mu);
      if (p.outbox.empty()) return;
      batch.reserve(p.outbox.size());
      for (auto& m : p.outbox) batch.push_back(std::move(m));
      p.outbox.clear();
      p.outbox_bytes = 0;
    }
    size_t begin = 0, bytes = 0;
    for (size_t i = 0; i < batch.size(); ++i) {
      const size_t sz = EncodedMessageSize(batch[i]);
      if (i > begin && bytes + sz > options.max_batch_bytes) {
        AppendMessagesFrame(batch, begin, i, &p.wbuf);
        begin = i;
        bytes = 0;
      }
      bytes += sz;
    }
    AppendMessagesFrame(batch, begin, batch.size(), &p.wbuf);
    if (!FlushBuffer(p.fd, &p.wbuf, &p.woff)) FailPeer(p, "connection lost");
  }

  void OnPeerReadable(Peer& p) {
    const bool alive = FillBuffer(p.fd, &p.rbuf);
    if (p.state == DialState::kHandshake) ReadHandshakeReply(p);
    if (p.fd < 0) return;
    if (p.state == DialState::kReady) p.rbuf.clear();  // nothing is expected after it
    if (!alive) {
      FailPeer(p, p.state == DialState::kReady ? "connection closed by peer"
                                               : "connection closed during handshake");
    }
  }

  void ReadHandshakeReply(Peer& p) {
    FrameView frame;
    auto n = SplitFrame(p.rbuf, &frame, kMaxHandshakeFrameBytes);
    if (!n.ok()) {
      FailPeer(p, "handshake: " + n.status().message());
      return;
    }
    if (*n == 0) return;
    if (frame.kind != FrameKind::kHelloReply) {
      FailPeer(p, "handshake: unexpected frame");
      return;
    }
    auto reply = DecodeHelloReply(frame.body);
    if (!reply.ok()) {
      FailPeer(p, "handshake: " + reply.status().message());
      return;
    }
    if (!reply->accepted) {
      {
        std::lock_guard lock(mu);
        p.state_view.refused_by_peer = reply->error;
      }
      FailPeer(p, "refused by peer: " + reply->error);
      return;
    }
    if (reply->member_id != p.address.id) {
      FailPeer(p, "peer answered as member " + Hex(reply->member_id) + ", expected " +
                      Hex(p.address.id));
      return;
    }
    p.rbuf.erase(0, *n);
    p.state = DialState::kReady;
    p.backoff = std::chrono::milliseconds(0);
    spdlog::info("peer {} ({}) connected", Hex(p.address.id),
                 reply->name.empty() ? p.address.name : reply->name);
    p.logged_error.clear();
    {
      std::lock_guard lock(mu);
      p.state_view.connected = true;
      p.state_view.last_error.clear();
      p.state_view.refused_by_peer.clear();
      if (!reply->name.empty()) p.state_view.name = reply->name;
      p.state_view.client_urls = reply->client_urls;
    }
    version.fetch_add(1);
    FillAndWrite(p);
  }

  void Accept(int lfd) {
    for (;;) {
      int fd = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      SetNoDelay(fd);
      Incoming c;
      c.fd = fd;
      c.accepted_at = Clock::now();
      incoming.push_back(std::move(c));
    }
  }

  // Membership query answer: member_id = the cluster id, name = kMembershipQueryName,
  // client_urls = one "<hex id>\t<name>\t<url>,<url>" per member (this one included).
  void AnswerMembershipQuery(HelloReply* reply) {
    reply->accepted = false;
    reply->member_id = options.cluster_id;
    reply->name = kMembershipQueryName;
    auto entry = [](uint64_t id, const std::string& name, const std::vector<std::string>& urls) {
      std::string e = Hex(id);
      e.append("\t").append(name).append("\t");
      for (size_t i = 0; i < urls.size(); ++i) e.append(i ? "," : "").append(urls[i]);
      return e;
    };
    reply->client_urls.push_back(entry(options.member_id, options.name, options.listen_urls));
    std::lock_guard lock(mu);
    for (const auto& [id, p] : peers) {
      reply->client_urls.push_back(entry(id, p.state_view.name, p.address.peer_urls));
    }
  }

  // Checks a dialer's Hello; returns the refusal text, or empty when accepted.
  std::string CheckHello(const Hello& h) {
    {
      std::lock_guard lock(mu);
      if (std::find(removed.begin(), removed.end(), h.from_member) != removed.end()) {
        return "member " + Hex(h.from_member) + " was removed from the cluster " +
               Hex(options.cluster_id);
      }
    }
    if (h.cluster_id != options.cluster_id) {
      return "cluster ID mismatch: this member " + Hex(options.member_id) + " is in cluster " +
             Hex(options.cluster_id) + ", the dialing member " + Hex(h.from_member) +
             " is in cluster " + Hex(h.cluster_id) +
             " (different --initial-cluster or --initial-cluster-token?)";
    }
    if (h.to_member != options.member_id) {
      return "member ID mismatch: this is member " + Hex(options.member_id) + ", the dialer (" +
             Hex(h.from_member) + ") expected member " + Hex(h.to_member);
    }
    if (peers.find(h.from_member) == peers.end()) {
      return "member " + Hex(h.from_member) + " is not a member of cluster " +
             Hex(options.cluster_id);
    }
    return "";
  }

  // Returns false when the connection should be closed.
  bool OnIncomingReadable(Incoming& c, std::vector<raft::Message>* received) {
    const bool alive = FillBuffer(c.fd, &c.rbuf);
    if (c.from == 0 && options.on_snapshot_stream && c.rbuf.size() >= kFrameHeaderBytes &&
        static_cast<uint8_t>(c.rbuf[4]) >= 16) {
      options.on_snapshot_stream(c.fd, std::move(c.rbuf));  // snapshot_transfer.h
      c.fd = -1;  // handed over: the caller's close(-1) does nothing
      return false;
    }
    size_t pos = 0;
    bool ok = true;
    while (ok && !c.close_after_write) {
      FrameView frame;
      auto n = SplitFrame(std::string_view(c.rbuf).substr(pos), &frame,
                          c.from == 0 ? kMaxHandshakeFrameBytes : kMaxFrameBytes);
      if (!n.ok()) {
        spdlog::warn("peer connection{}: {}", c.from ? " from " + Hex(c.from) : "",
                     n.status().message());
        ok = false;
        break;
      }
      if (*n == 0) break;
      pos += *n;
      if (c.from == 0) {
        if (frame.kind != FrameKind::kHello) {
          spdlog::warn("peer connection: first frame is not a handshake; closing");
          ok = false;
          break;
        }
        auto hello = DecodeHello(frame.body);
        HelloReply reply;
        reply.member_id = options.member_id;
        reply.name = options.name;
        if (hello.ok() && hello->from_member == 0 && hello->to_member == 0 &&
            hello->cluster_id == 0) {
          // A member joining with --initial-cluster-state=existing asks who we are: the
          // cluster id and the members (see MembershipQueryEntry).
          AnswerMembershipQuery(&reply);
          AppendHelloReplyFrame(reply, &c.wbuf);
          c.close_after_write = true;
          break;
        }
        if (!hello.ok()) {
          reply.error = hello.status().message();
        } else {
          reply.error = CheckHello(*hello);
        }
        if (!reply.error.empty()) {
          // A misconfigured peer redials every max_backoff: say it once per new reason.
          std::string& last = last_refusal[hello.ok() ? hello->from_member : 0];
          if (reply.error != last) {
            spdlog::error("refusing peer connection: {}", reply.error);
            last = reply.error;
          }
          AppendHelloReplyFrame(reply, &c.wbuf);
          c.close_after_write = true;
          break;
        }
        reply.accepted = true;
        reply.client_urls = options.client_urls;
        AppendHelloReplyFrame(reply, &c.wbuf);
        c.from = hello->from_member;
        {
          std::lock_guard lock(mu);
          PeerState& sv = peers[c.from].state_view;
          if (!hello->name.empty()) sv.name = hello->name;
          if (sv.client_urls != hello->client_urls) {
            sv.client_urls = hello->client_urls;
            version.fetch_add(1);
          }
        }
        continue;
      }
      if (frame.kind != FrameKind::kMessages) {
        spdlog::warn("peer {}: unexpected frame kind {}", Hex(c.from), static_cast<int>(frame.kind));
        ok = false;
        break;
      }
      const size_t before = received->size();
      Status st = DecodeMessages(frame.body, received);
      if (!st.ok()) {
        spdlog::warn("peer {}: {}", Hex(c.from), st.message());
        ok = false;
        break;
      }
      // Only messages for this member from the member that shook hands count. A snapshot
      // is installed only from a snapshot stream, after its data is verified
      // (snapshot_transfer.h): here it would restore a snapshot this node does not hold.
      auto keep_end = std::remove_if(received->begin() + static_cast<ptrdiff_t>(before),
                                     received->end(), [&](const raft::Message& m) {
                                       return m.to != options.member_id || m.from != c.from ||
                                              m.type == raft::MessageType::kSnapshot;
                                     });
      received->erase(keep_end, received->end());
    }
    c.rbuf.erase(0, pos);
    if (!FlushBuffer(c.fd, &c.wbuf, &c.woff)) return false;
    if (c.close_after_write && c.wbuf.empty()) {
      // Let the refusal reach the dialer before the close (it reads, then sees EOF).
      ::shutdown(c.fd, SHUT_WR);
      return false;
    }
    return ok && alive;
  }

  void Deliver(std::vector<raft::Message>& received) {
    if (received.empty()) return;
    {
      std::lock_guard lock(mu);
      for (auto& m : received) {
        if (inbox.size() >= options.max_inbox_messages) break;  // Raft retransmits
        inbox.push_back(std::move(m));
      }
      inbox_size.store(inbox.size(), std::memory_order_release);
    }
    received.clear();
    if (options.on_receive) options.on_receive();
  }

  // I/O thread: adopt the peer set UpdatePeers left.
  void ApplyPendingPeers() {
    {
      std::lock_guard lock(mu);
      if (!pending_peers) return;
    }
    std::unique_lock shape_lock(shape);
    std::lock_guard lock(mu);
    if (!pending_peers) return;
    std::vector<PeerAddress> next = std::move(*pending_peers);
    pending_peers.reset();
    for (auto it = peers.begin(); it != peers.end();) {
      bool keep = false;
      for (const PeerAddress& a : next) keep |= a.id == it->first;
      if (keep) {
        ++it;
        continue;
      }
      if (it->second.fd >= 0) ::close(it->second.fd);
      spdlog::info("peer {} ({}): no longer a member, disconnected", Hex(it->first),
                   it->second.address.name);
      it = peers.erase(it);
    }
    for (const PeerAddress& a : next) {
      if (a.id == options.member_id || a.id == 0) continue;
      auto [it, added] = peers.try_emplace(a.id);
      Peer& p = it->second;
      if (added) {
        p.next_dial = Clock::now();
        p.state_view.id = a.id;
        p.state_view.name = a.name;
        spdlog::info("peer {} ({}): new member, dialling", Hex(a.id), a.name);
      }
      const std::string name = a.name.empty() ? p.address.name : a.name;
      p.address = a;
      p.address.name = name;
    }
    version.fetch_add(1);
    // A removed member's streams to us are closed: its redial is refused as removed, which
    // is how it learns of a removal it did not apply itself.
    std::erase_if(incoming, [&](const Incoming& c) {
      const bool drop = c.from != 0 && std::find(removed.begin(), removed.end(), c.from) != removed.end();
      if (drop) ::close(c.fd);
      return drop;
    });
  }

  void Loop() {
    std::vector<pollfd> fds;
    std::vector<raft::Message> received;
    const Clock::time_point start = Clock::now();
    for (auto& [id, p] : peers) p.next_dial = start;
    while (!stop.load(std::memory_order_acquire)) {
      ApplyPendingPeers();
      const Clock::time_point now = Clock::now();
      Clock::time_point wake_at = now + std::chrono::milliseconds(100);
      for (auto& [id, p] : peers) {
        // A ready stream needs nothing here; its wmu may be held by Send (writing).
        if (p.state == DialState::kReady) continue;
        std::lock_guard w(p.wmu);
        if (p.state == DialState::kIdle && now >= p.next_dial) Dial(p);
        if ((p.state == DialState::kConnecting || p.state == DialState::kHandshake) &&
            now >= p.attempt_deadline) {
          FailPeer(p, "dial/handshake timed out");
        }
        if (p.state == DialState::kIdle) wake_at = std::min(wake_at, p.next_dial);
        if (p.state == DialState::kConnecting || p.state == DialState::kHandshake) {
          wake_at = std::min(wake_at, p.attempt_deadline);
        }
      }
      fds.clear();
      fds.push_back({wake_fd, POLLIN, 0});
      for (int l : listeners) fds.push_back({l, POLLIN, 0});
      std::vector<Peer*> polled_peers;
      for (auto& [id, p] : peers) {
        // fd and state change only on this thread, so they are read without wmu; wbuf
        // needs it. While Send holds it (writing a batch from the Raft thread), the
        // stream is polled for input only: Send wakes us if it leaves bytes unwritten.
        // Blocking here instead cost a futex sleep and wake-up per collision, about
        // every fifth turn of a loaded follower.
        if (p.fd < 0) continue;
        short ev = POLLIN;
        if (p.state == DialState::kConnecting) ev |= POLLOUT;
        std::unique_lock w(p.wmu, std::try_to_lock);
        if (w.owns_lock() && !p.wbuf.empty()) ev |= POLLOUT;
        if (w.owns_lock() && p.state == DialState::kReady) {
          std::lock_guard lock(mu);
          if (!p.outbox.empty()) ev |= POLLOUT;
        }
        fds.push_back({p.fd, ev, 0});
        polled_peers.push_back(&p);
      }
      const size_t incoming_at = fds.size();
      for (const Incoming& c : incoming) {
        fds.push_back({c.fd, static_cast<short>(POLLIN | (c.wbuf.empty() ? 0 : POLLOUT)), 0});
      }
      const auto timeout = std::chrono::ceil<std::chrono::milliseconds>(wake_at - now);
      int rc = ::poll(fds.data(), fds.size(),
                      static_cast<int>(std::clamp<int64_t>(timeout.count(), 0, 100)));
      if (rc < 0) {
        if (errno == EINTR) continue;
        spdlog::error("peer transport: poll: {}", std::strerror(errno));
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      if (fds[0].revents & POLLIN) {
        uint64_t v;
        ssize_t n = ::read(wake_fd, &v, sizeof v);
        (void)n;
      }
      for (size_t i = 0; i < listeners.size(); ++i) {
        if (fds[1 + i].revents & POLLIN) Accept(listeners[i]);
      }
      for (size_t i = 0; i < polled_peers.size(); ++i) {
        Peer& p = *polled_peers[i];
        const short re = fds[1 + listeners.size() + i].revents;
        if (re == 0) continue;  // (most turns: outgoing streams rarely have events)
        std::lock_guard w(p.wmu);
        if (p.fd < 0) continue;
        if (re & (POLLERR | POLLHUP)) {
          if (p.state == DialState::kConnecting) {
            OnPeerWritable(p);  // reports the connect error
          } else {
            OnPeerReadable(p);  // reads what is left, then sees EOF
            if (p.fd >= 0 && (re & POLLERR)) FailPeer(p, "connection error");
          }
          continue;
        }
        if (re & POLLIN) OnPeerReadable(p);
        if (p.fd >= 0 && (re & POLLOUT)) OnPeerWritable(p);
      }
      // Accepted connections were appended after the poll set was built: only the first
      // (incoming_end - incoming_at) of them were polled.
      const size_t polled_incoming = fds.size() - incoming_at;
      std::vector<size_t> dead;
      for (size_t i = 0; i < polled_incoming && i < incoming.size(); ++i) {
        Incoming& c = incoming[i];
        const short re = fds[incoming_at + i].revents;
        bool keep = true;
        if (re & (POLLIN | POLLHUP | POLLERR)) keep = OnIncomingReadable(c, &received);
        if (keep && (re & POLLOUT)) keep = FlushBuffer(c.fd, &c.wbuf, &c.woff);
        if (keep && c.from == 0 && Clock::now() - c.accepted_at > options.handshake_timeout) {
          keep = false;  // not a peer (a port scan, a stuck dialer): do not hold the fd
        }
        if (!keep) dead.push_back(i);
      }
      for (auto it = dead.rbegin(); it != dead.rend(); ++it) {
        ::close(incoming[*it].fd);
        incoming.erase(incoming.begin() + static_cast<ptrdiff_t>(*it));
      }
      Deliver(received);
      // Peers whose queue filled while we were polling (Send woke us) are written now.
      for (auto& [id, p] : peers) {
        if (p.state != DialState::kReady) continue;
        {
          std::lock_guard lock(mu);
          if (p.outbox.empty()) continue;
        }
        // Held by Send: it queued (and woke us) or is writing; the next turn looks again.
        std::unique_lock w(p.wmu, std::try_to_lock);
        if (w.owns_lock() && p.wbuf.empty()) FillAndWrite(p);
      }
    }
  }
};

PeerTransport::PeerTransport(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

PeerTransport::~PeerTransport() {
  impl_->stop.store(true, std::memory_order_release);
  impl_->Wake();
  if (impl_->io.joinable()) impl_->io.join();
}

Result<std::unique_ptr<PeerTransport>> PeerTransport::Start(TransportOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  impl->wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (impl->wake_fd < 0) return Status::Internal(std::string("eventfd: ") + std::strerror(errno));
  for (const std::string& url : impl->options.listen_urls) {
    RUSD_RETURN_IF_ERROR(impl->Listen(url));
  }
  for (const PeerAddress& a : impl->options.peers) {
    if (a.id == impl->options.member_id || a.id == 0) continue;
    Impl::Peer& p = impl->peers[a.id];
    p.address = a;
    p.state_view.id = a.id;
    p.state_view.name = a.name;
  }
  Impl* raw = impl.get();
  impl->io = std::thread([raw] { raw->Loop(); });
  return std::unique_ptr<PeerTransport>(new PeerTransport(std::move(impl)));
}

void PeerTransport::Send(std::vector<raft::Message>& msgs) {
  // Bound every message (and so every frame) whatever the core batched.
  bool oversized = false;
  for (const raft::Message& m : msgs) {
    oversized |= m.type == raft::MessageType::kAppend && m.entries.size() > 1 &&
                 EncodedMessageSize(m) > impl_->options.max_batch_bytes;
  }
  if (oversized) {
    std::vector<raft::Message> split;
    for (raft::Message& m : msgs) SplitAppend(std::move(m), impl_->options.max_batch_bytes, &split);
    msgs.swap(split);
  }
  // Per peer, in order: stable_sort keeps each peer's messages in the core's order.
  std::stable_sort(msgs.begin(), msgs.end(),
                   [](const raft::Message& a, const raft::Message& b) { return a.to < b.to; });
  bool wake = false;
  std::shared_lock shape_lock(impl_->shape);
  for (size_t begin = 0; begin < msgs.size();) {
    size_t end = begin + 1;
    while (end < msgs.size() && msgs[end].to == msgs[begin].to) ++end;
    auto it = impl_->peers.find(msgs[begin].to);
    if (it == impl_->peers.end()) {
      begin = end;
      continue;
    }
    Impl::Peer& p = it->second;
    // Fast path: a ready stream with nothing pending is written from this thread (never
    // waiting: if the I/O thread holds the stream, the batch goes through the queue).
    std::unique_lock w(p.wmu, std::try_to_lock);
    if (w.owns_lock() && p.state == Impl::DialState::kReady && p.wbuf.empty()) {
      bool idle;
      {
        std::lock_guard lock(impl_->mu);
        idle = p.outbox.empty();
      }
      if (idle) {
        size_t from = begin, bytes = 0;
        for (size_t i = begin; i < end; ++i) {
          const size_t sz = EncodedMessageSize(msgs[i]);
          if (i > from && bytes + sz > impl_->options.max_batch_bytes) {
            AppendMessagesFrame(msgs, from, i, &p.wbuf);
            from = i;
            bytes = 0;
          }
          bytes += sz;
        }
        AppendMessagesFrame(msgs, from, end, &p.wbuf);
        // What the socket did not take (or a failed write) is the I/O thread's to finish.
        FlushBuffer(p.fd, &p.wbuf, &p.woff);
        wake |= !p.wbuf.empty();
        begin = end;
        continue;
      }
    }
    if (w.owns_lock()) w.unlock();
    // Even when every message is dropped (queue full): the I/O thread may have skipped
    // this stream's POLLOUT while we held wmu, and only a wake makes it look again.
    wake = true;
    {
      std::lock_guard lock(impl_->mu);
      for (size_t i = begin; i < end; ++i) {
        raft::Message& m = msgs[i];
        const size_t sz = EncodedMessageSize(m);
        if (!p.outbox.empty() && (p.outbox.size() >= impl_->options.max_queued_messages ||
                                  p.outbox_bytes + sz > impl_->options.max_queued_bytes)) {
          ++p.state_view.dropped;
          continue;
        }
        p.outbox_bytes += sz;
        p.outbox.push_back(std::move(m));
      }
    }
    begin = end;
  }
  msgs.clear();
  if (wake) impl_->Wake();
}

void PeerTransport::TakeReceived(std::vector<raft::Message>* out) {
  if (impl_->inbox_size.load(std::memory_order_acquire) == 0) return;
  std::lock_guard lock(impl_->mu);
  if (out->empty()) {
    out->swap(impl_->inbox);
  } else {
    for (auto& m : impl_->inbox) out->push_back(std::move(m));
    impl_->inbox.clear();
  }
  impl_->inbox_size.store(0, std::memory_order_release);
}

bool PeerTransport::HasReceived() const {
  return impl_->inbox_size.load(std::memory_order_acquire) != 0;
}

std::vector<PeerState> PeerTransport::Peers() const {
  std::lock_guard lock(impl_->mu);
  std::vector<PeerState> out;
  for (const auto& [id, p] : impl_->peers) out.push_back(p.state_view);
  return out;
}

uint64_t PeerTransport::peers_version() const { return impl_->version.load(); }

std::vector<uint16_t> PeerTransport::listen_ports() const { return impl_->ports; }

void PeerTransport::UpdatePeers(std::vector<PeerAddress> peers, std::vector<uint64_t> removed) {
  {
    std::lock_guard lock(impl_->mu);
    impl_->pending_peers = std::move(peers);
    impl_->removed = std::move(removed);
  }
  impl_->Wake();
}

}  // namespace rusd::transport
