// The peer wire format (round trips, garbage) and PeerTransport over real loopback sockets:
// delivery both ways, batching, a peer that restarts, a node of another cluster.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <thread>

#include "raftd/transport/peer_transport.h"
#include "raftd/transport/wire_format.h"
#include "common/free_port_for_tests.h"

namespace rusd::transport {
namespace {

using namespace std::chrono_literals;

raft::Message MakeMessage(uint64_t from, uint64_t to, uint64_t index, size_t n_entries) {
  raft::Message m;
  m.type = raft::MessageType::kAppend;
  m.from = from;
  m.to = to;
  m.term = 7;
  m.log_term = 6;
  m.index = index;
  m.commit = index - 1;
  m.reject = index % 2 == 0;
  m.reject_hint = 3;
  m.context = 0xfeedface;
  for (size_t i = 0; i < n_entries; ++i) {
    raft::Entry e;
    e.index = index + 1 + i;
    e.term = 7;
    e.type = i % 3 == 0 ? raft::EntryType::kEmpty : raft::EntryType::kNormal;
    e.data = std::string(i * 10, static_cast<char>('a' + i % 26));
    m.entries.push_back(std::move(e));
  }
  return m;
}

void ExpectSame(const raft::Message& a, const raft::Message& b) {
  EXPECT_EQ(a.type, b.type);
  EXPECT_EQ(a.from, b.from);
  EXPECT_EQ(a.to, b.to);
  EXPECT_EQ(a.term, b.term);
  EXPECT_EQ(a.log_term, b.log_term);
  EXPECT_EQ(a.index, b.index);
  EXPECT_EQ(a.commit, b.commit);
  EXPECT_EQ(a.reject, b.reject);
  EXPECT_EQ(a.reject_hint, b.reject_hint);
  EXPECT_EQ(a.context, b.context);
  ASSERT_EQ(a.entries.size(), b.entries.size());
  for (size_t i = 0; i < a.entries.size(); ++i) {
    EXPECT_EQ(a.entries[i].index, b.entries[i].index);
    EXPECT_EQ(a.entries[i].term, b.entries[i].term);
    EXPECT_EQ(a.entries[i].type, b.entries[i].type);
    EXPECT_EQ(a.entries[i].data, b.entries[i].data);
  }
}

TEST(WireFormat, MessagesRoundTrip) {
  std::vector<raft::Message> msgs;
  for (uint64_t i = 1; i <= 5; ++i) msgs.push_back(MakeMessage(1, 2, i, i * 2));
  std::string buf;
  AppendMessagesFrame(msgs, 0, msgs.size(), &buf);
  FrameView f;
  auto n = SplitFrame(buf, &f);
  ASSERT_TRUE(n.ok());
  ASSERT_EQ(*n, buf.size());
  EXPECT_EQ(f.kind, FrameKind::kMessages);
  std::vector<raft::Message> out;
  ASSERT_TRUE(DecodeMessages(f.body, &out).ok());
  ASSERT_EQ(out.size(), msgs.size());
  for (size_t i = 0; i < msgs.size(); ++i) ExpectSame(msgs[i], out[i]);
}

TEST(WireFormat, SnapshotDescriptionIsSkippedWhenTheMessageHasNone) {
  std::vector<raft::Message> msgs = {MakeMessage(1, 2, 5, 1)};
  std::string buf;
  AppendMessagesFrame(msgs, 0, 1, &buf);
  std::string body = buf.substr(kFrameHeaderBytes);
  ASSERT_EQ(body.back(), '\0');  // "no snapshot"
  body.back() = '\1';
  auto put64 = [&body](uint64_t v) { for (int i = 0; i < 8; ++i) body.push_back(static_cast<char>(v >> (8 * i))); };
  auto put32 = [&body](uint32_t v) { for (int i = 0; i < 4; ++i) body.push_back(static_cast<char>(v >> (8 * i))); };
  put64(100);  // index
  put64(3);    // term
  put32(2);
  put64(1);
  put64(2);    // voters
  put32(0);    // learners
  std::vector<raft::Message> out;
  ASSERT_TRUE(DecodeMessages(body, &out).ok());
  ASSERT_EQ(out.size(), 1u);
  ExpectSame(out[0], msgs[0]);
  body.pop_back();  // truncated description
  out.clear();
  EXPECT_FALSE(DecodeMessages(body, &out).ok());
}

TEST(WireFormat, HelloRoundTripAndVersionCheck) {
  Hello h;
  h.cluster_id = 0xabc;
  h.from_member = 1;
  h.to_member = 2;
  h.name = "infra1";
  h.client_urls = {"http://127.0.0.1:2379", "http://10.0.0.1:2379"};
  std::string buf;
  AppendHelloFrame(h, &buf);
  FrameView f;
  { auto split = SplitFrame(buf, &f); ASSERT_TRUE(split.ok()); ASSERT_EQ(*split, buf.size()); }
  auto back = DecodeHello(f.body);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->cluster_id, 0xabcu);
  EXPECT_EQ(back->name, "infra1");
  EXPECT_EQ(back->client_urls, h.client_urls);
  h.version = 9;
  buf.clear();
  AppendHelloFrame(h, &buf);
  { auto split = SplitFrame(buf, &f); ASSERT_TRUE(split.ok()); ASSERT_EQ(*split, buf.size()); }
  auto bad = DecodeHello(f.body);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("wire version 9"), std::string::npos);

  HelloReply r;
  r.accepted = false;
  r.error = "cluster ID mismatch";
  r.member_id = 2;
  buf.clear();
  AppendHelloReplyFrame(r, &buf);
  { auto split = SplitFrame(buf, &f); ASSERT_TRUE(split.ok()); ASSERT_EQ(*split, buf.size()); }
  auto rb = DecodeHelloReply(f.body);
  ASSERT_TRUE(rb.ok());
  EXPECT_FALSE(rb->accepted);
  EXPECT_EQ(rb->error, "cluster ID mismatch");
}

TEST(WireFormat, PartialFramesWaitForMoreBytes) {
  std::vector<raft::Message> msgs = {MakeMessage(1, 2, 5, 3)};
  std::string buf;
  AppendMessagesFrame(msgs, 0, 1, &buf);
  FrameView f;
  for (size_t len = 0; len < buf.size(); ++len) {
    auto n = SplitFrame(std::string_view(buf).substr(0, len), &f);
    ASSERT_TRUE(n.ok());
    EXPECT_EQ(*n, 0u) << len;
  }
}

TEST(WireFormat, GarbageIsAnErrorNeverACrash) {
  std::mt19937_64 rng(42);
  std::vector<raft::Message> msgs = {MakeMessage(1, 2, 5, 4), MakeMessage(1, 2, 9, 1)};
  std::string good;
  AppendMessagesFrame(msgs, 0, msgs.size(), &good);
  const std::string body = good.substr(kFrameHeaderBytes);
  // Every truncation of a valid body fails cleanly.
  for (size_t len = 0; len < body.size(); ++len) {
    std::vector<raft::Message> out;
    EXPECT_FALSE(DecodeMessages(std::string_view(body).substr(0, len), &out).ok()) << len;
    EXPECT_TRUE(out.empty());
  }
  // Random bytes and random corruption: any result but a crash (or a huge allocation).
  for (int i = 0; i < 20000; ++i) {
    std::string b = body;
    if (i % 2 == 0) {
      b.resize(rng() % 300);
      for (char& c : b) c = static_cast<char>(rng());
    } else {
      for (int k = 0; k < 3; ++k) b[rng() % b.size()] = static_cast<char>(rng());
    }
    std::vector<raft::Message> out;
    (void)DecodeMessages(b, &out);
    (void)DecodeHello(b);
    (void)DecodeHelloReply(b);
  }
  FrameView f;
  std::string huge = "\xff\xff\xff\xff\x03";
  EXPECT_FALSE(SplitFrame(huge, &f).ok());
  std::string bad_kind = std::string("\x01\x00\x00\x00\x07", 5);
  EXPECT_FALSE(SplitFrame(bad_kind, &f).ok());
}

// Before the handshake a connection is anyone's: a Hello announcing more than
// kMaxHandshakeFrameBytes is refused from its header, not buffered up to kMaxFrameBytes.
TEST(WireFormat, HandshakeFramesAreHeldToTheHandshakeLimit) {
  std::string header(4, '\0');
  const uint32_t len = kMaxHandshakeFrameBytes + 1;
  for (int i = 0; i < 4; ++i) header[i] = static_cast<char>(len >> (8 * i));
  header.push_back(static_cast<char>(FrameKind::kHello));
  FrameView f;
  auto limited = SplitFrame(header, &f, kMaxHandshakeFrameBytes);
  ASSERT_FALSE(limited.ok());
  EXPECT_NE(limited.status().message().find("out of range"), std::string::npos);
  auto after = SplitFrame(header, &f);  // after the handshake: just wait for the bytes
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(*after, 0u);
}

TEST(WireFormat, OversizedAppendsSplitIntoConsecutiveAppends) {
  raft::Message m = MakeMessage(1, 2, 10, 0);
  m.reject = false;
  for (uint64_t i = 0; i < 10; ++i) {
    raft::Entry e;
    e.index = 11 + i;
    e.term = 7 + i / 5;
    e.data = std::string(1000, 'x');
    m.entries.push_back(e);
  }
  std::vector<raft::Message> out;
  SplitAppend(raft::Message(m), 2500, &out);
  ASSERT_EQ(out.size(), 5u);  // two 1000-byte entries per part
  uint64_t next = 11, prev_index = 10, prev_term = 6;
  for (const raft::Message& p : out) {
    EXPECT_LE(EncodedMessageSize(p), 2500u);
    EXPECT_EQ(p.index, prev_index);
    EXPECT_EQ(p.log_term, prev_term);
    EXPECT_EQ(p.commit, m.commit);
    EXPECT_EQ(p.term, m.term);
    for (const raft::Entry& e : p.entries) EXPECT_EQ(e.index, next++);
    prev_index = p.entries.back().index;
    prev_term = p.entries.back().term;
  }
  EXPECT_EQ(next, 21u);
  // Small appends, and any other message, pass unchanged.
  out.clear();
  SplitAppend(raft::Message(m), 1u << 20, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].entries.size(), 10u);
  // One entry larger than the limit travels alone.
  out.clear();
  SplitAppend(raft::Message(m), 10, &out);
  EXPECT_EQ(out.size(), 10u);
}

// Ports that were free a moment ago.
using test_support::FreePort;

struct Node {
  uint64_t id;
  std::string url;
};

class TransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    nodes_ = {{0x11, "http://127.0.0.1:" + std::to_string(FreePort())},
              {0x22, "http://127.0.0.1:" + std::to_string(FreePort())},
              {0x33, "http://127.0.0.1:" + std::to_string(FreePort())}};
  }

  std::unique_ptr<PeerTransport> StartNode(size_t i, uint64_t cluster_id = 0xc1,
                                           std::chrono::milliseconds handshake_timeout = 300ms) {
    TransportOptions o;
    o.cluster_id = cluster_id;
    o.member_id = nodes_[i].id;
    o.name = "n" + std::to_string(i);
    o.listen_urls = {nodes_[i].url};
    o.client_urls = {"http://127.0.0.1:" + std::to_string(2379 + i)};
    for (size_t j = 0; j < nodes_.size(); ++j) {
      if (j != i) o.peers.push_back(PeerAddress{nodes_[j].id, "n" + std::to_string(j), {nodes_[j].url}});
    }
    o.min_backoff = 5ms;
    o.max_backoff = 50ms;
    o.handshake_timeout = handshake_timeout;
    auto t = PeerTransport::Start(o);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return t.ok() ? std::move(*t) : nullptr;
  }

  // Waits until `t` has received `n` messages (appended to out).
  static bool Receive(PeerTransport& t, size_t n, std::vector<raft::Message>* out,
                      std::chrono::milliseconds timeout = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (out->size() < n && std::chrono::steady_clock::now() < deadline) {
      t.TakeReceived(out);
      if (out->size() < n) std::this_thread::sleep_for(1ms);
    }
    return out->size() >= n;
  }

  static bool WaitConnected(PeerTransport& t, uint64_t peer, std::chrono::milliseconds timeout = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      for (const PeerState& p : t.Peers()) {
        if (p.id == peer && p.connected) return true;
      }
      std::this_thread::sleep_for(2ms);
    }
    return false;
  }

  std::vector<Node> nodes_;
};

TEST_F(TransportTest, DeliversBothWaysInOrderAndExchangesClientUrls) {
  auto a = StartNode(0);
  auto b = StartNode(1);
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(WaitConnected(*a, 0x22));
  ASSERT_TRUE(WaitConnected(*b, 0x11));
  std::vector<raft::Message> batch;
  for (uint64_t i = 1; i <= 1000; ++i) batch.push_back(MakeMessage(0x11, 0x22, i, i % 4));
  a->Send(batch);
  EXPECT_TRUE(batch.empty());
  std::vector<raft::Message> got;
  ASSERT_TRUE(Receive(*b, 1000, &got));
  for (uint64_t i = 0; i < 1000; ++i) {
    ASSERT_EQ(got[i].index, i + 1);
    ASSERT_EQ(got[i].from, 0x11u);
  }
  std::vector<raft::Message> back = {MakeMessage(0x22, 0x11, 42, 2)};
  b->Send(back);
  got.clear();
  ASSERT_TRUE(Receive(*a, 1, &got));
  ExpectSame(got[0], MakeMessage(0x22, 0x11, 42, 2));
  // Each side knows the other's name and client URLs from the handshake.
  for (const PeerState& p : a->Peers()) {
    if (p.id == 0x22) {
      EXPECT_EQ(p.name, "n1");
      EXPECT_EQ(p.client_urls, std::vector<std::string>{"http://127.0.0.1:2380"});
    }
  }
}

// A snapshot is installed only from a snapshot stream, whose data is verified first
// (raftd/snapshot/snapshot_transfer.h); the same description on a message stream would make
// the receiver restore a snapshot whose data it does not have, so it is dropped there.
TEST_F(TransportTest, SnapshotMessagesOnAMessageStreamAreDropped) {
  auto a = StartNode(0);
  auto b = StartNode(1);
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(WaitConnected(*a, 0x22));
  raft::Message snapshot = MakeMessage(0x11, 0x22, 500, 3);
  snapshot.type = raft::MessageType::kSnapshot;
  snapshot.entries.clear();
  snapshot.snapshot.index = 500;
  snapshot.snapshot.term = 3;
  snapshot.snapshot.conf.voters = {0x11, 0x22};
  std::vector<raft::Message> batch = {snapshot, MakeMessage(0x11, 0x22, 7, 0)};
  a->Send(batch);
  std::vector<raft::Message> got;
  ASSERT_TRUE(Receive(*b, 1, &got));
  std::this_thread::sleep_for(50ms);
  b->TakeReceived(&got);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_NE(got[0].type, raft::MessageType::kSnapshot);
  EXPECT_EQ(got[0].index, 7u);
}

TEST_F(TransportTest, MessagesToAnUnknownMemberOrADownPeerAreDroppedWithoutBlocking) {
  TransportOptions o;
  o.cluster_id = 1;
  o.member_id = 0x11;
  o.listen_urls = {nodes_[0].url};
  o.peers = {PeerAddress{0x22, "down", {nodes_[1].url}}};
  o.max_queued_messages = 100;
  auto t = PeerTransport::Start(o);
  ASSERT_TRUE(t.ok());
  const auto start = std::chrono::steady_clock::now();
  for (int round = 0; round < 100; ++round) {
    std::vector<raft::Message> batch;
    for (uint64_t i = 1; i <= 100; ++i) batch.push_back(MakeMessage(0x11, 0x22, i, 1));
    batch.push_back(MakeMessage(0x11, 0x99, 1, 1));
    (*t)->Send(batch);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 500ms);
  auto peers = (*t)->Peers();
  ASSERT_EQ(peers.size(), 1u);
  EXPECT_FALSE(peers[0].connected);
  EXPECT_GT(peers[0].dropped, 0u);
}

TEST_F(TransportTest, ReconnectsToAPeerThatRestarts) {
  auto a = StartNode(0);
  auto b = StartNode(1);
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(WaitConnected(*a, 0x22));
  std::vector<raft::Message> batch = {MakeMessage(0x11, 0x22, 1, 1)};
  a->Send(batch);
  std::vector<raft::Message> got;
  ASSERT_TRUE(Receive(*b, 1, &got));

  b.reset();  // the peer goes away
  // Sends while it is down are dropped, never block.
  for (int i = 0; i < 50; ++i) {
    batch = {MakeMessage(0x11, 0x22, 100 + i, 1)};
    a->Send(batch);
    std::this_thread::sleep_for(2ms);
  }
  b = StartNode(1);  // same port, new process state
  ASSERT_TRUE(b);
  ASSERT_TRUE(WaitConnected(*a, 0x22));
  // Once reconnected, new messages arrive (keep sending: the first may race the reconnect).
  got.clear();
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  bool seen = false;
  while (!seen && std::chrono::steady_clock::now() < deadline) {
    batch = {MakeMessage(0x11, 0x22, 777, 1)};
    a->Send(batch);
    std::this_thread::sleep_for(5ms);
    b->TakeReceived(&got);
    for (const auto& m : got) seen |= m.index == 777;
  }
  EXPECT_TRUE(seen);
}

TEST_F(TransportTest, RefusesANodeOfAnotherCluster) {
  auto a = StartNode(0, /*cluster_id=*/0xc1);
  auto b = StartNode(1, /*cluster_id=*/0xdead);  // another --initial-cluster-token
  ASSERT_TRUE(a && b);
  // Wait for b's verdict itself, not for last_error to hold it when sampled: under load
  // each attempt may also fail otherwise (a dial before b listened, a handshake timeout),
  // and those overwrite last_error between two samples. The deadline is only a backstop.
  std::string error;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (error.empty() && std::chrono::steady_clock::now() < deadline) {
    for (const PeerState& p : a->Peers()) {
      if (p.id == 0x22) error = p.refused_by_peer;
    }
    if (error.empty()) std::this_thread::sleep_for(5ms);
  }
  EXPECT_NE(error.find("cluster ID mismatch"), std::string::npos) << error;
  EXPECT_NE(error.find("dead"), std::string::npos) << error;
  std::vector<raft::Message> batch = {MakeMessage(0x11, 0x22, 1, 1)};
  a->Send(batch);
  batch = {MakeMessage(0x22, 0x11, 1, 1)};
  b->Send(batch);
  std::this_thread::sleep_for(200ms);
  std::vector<raft::Message> got;
  a->TakeReceived(&got);
  b->TakeReceived(&got);
  EXPECT_TRUE(got.empty());
  for (const PeerState& p : a->Peers()) EXPECT_FALSE(p.connected);
}

TEST_F(TransportTest, ListenOnAPortInUseIsAClearError) {
  auto a = StartNode(0);
  ASSERT_TRUE(a);
  TransportOptions o;
  o.member_id = 0x99;
  o.listen_urls = {nodes_[0].url};
  auto t = PeerTransport::Start(o);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find(nodes_[0].url), std::string::npos);
}

TEST_F(TransportTest, GarbageOnThePeerPortIsClosed) {
  auto a = StartNode(0);
  ASSERT_TRUE(a);
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(nodes_[0].url.substr(17))));
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const char junk[] = "GET / HTTP/1.1\r\n\r\n";
  ASSERT_GT(::write(fd, junk, sizeof junk - 1), 0);
  char buf[64];
  struct timeval tv = {5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  EXPECT_EQ(::read(fd, buf, sizeof buf), 0);  // closed by the transport
  ::close(fd);
  // The transport still serves real peers afterwards.
  auto b = StartNode(1);
  ASSERT_TRUE(WaitConnected(*b, 0x11));
}

TEST_F(TransportTest, OversizedHandshakeIsClosedAtOnce) {
  auto a = StartNode(0, 0xc1, 60s);  // so that only the size check can close it in time
  ASSERT_TRUE(a);
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(nodes_[0].url.substr(17))));
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  // A Hello header announcing 200 MiB (under kMaxFrameBytes), then part of its body: the
  // transport closes on the header instead of buffering the body.
  std::string bytes(4, '\0');
  const uint32_t len = 200u << 20;
  for (int i = 0; i < 4; ++i) bytes[i] = static_cast<char>(len >> (8 * i));
  bytes.push_back(static_cast<char>(FrameKind::kHello));
  bytes.append(4096, 'x');
  ASSERT_GT(::write(fd, bytes.data(), bytes.size()), 0);
  struct timeval tv = {5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[64];
  const ssize_t n = ::read(fd, buf, sizeof buf);
  const int err = errno;
  // Closed (or reset: unread bytes were left), not a read timeout.
  EXPECT_TRUE(n == 0 || (n < 0 && err == ECONNRESET)) << n << " " << std::strerror(err);
  ::close(fd);
}

TEST_F(TransportTest, SilentConnectionIsClosedAfterTheHandshakeTimeout) {
  auto a = StartNode(0);
  ASSERT_TRUE(a);
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(nodes_[0].url.substr(17))));
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  struct timeval tv = {5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  const auto start = std::chrono::steady_clock::now();
  char buf[8];
  EXPECT_EQ(::read(fd, buf, sizeof buf), 0);  // closed, without a word from us
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  ::close(fd);
}

}  // namespace
}  // namespace rusd::transport

namespace rusd::transport {
namespace {

// Membership changes (raftd's UpdatePeers): a new member is dialled, a removed one is
// refused with a text that tells it why.
TEST_F(TransportTest, UpdatePeersDialsNewMembersAndRefusesRemovedOnes) {
  TransportOptions o;
  o.cluster_id = 0xc1;
  o.member_id = 0x11;
  o.name = "n0";
  o.listen_urls = {nodes_[0].url};
  o.peers = {PeerAddress{0x22, "n1", {nodes_[1].url}}};  // 0x33 is not a member yet
  o.min_backoff = 5ms;
  o.max_backoff = 50ms;
  auto started = PeerTransport::Start(o);
  ASSERT_TRUE(started.ok());
  std::unique_ptr<PeerTransport> a = std::move(*started);
  auto b = StartNode(1);
  auto c = StartNode(2);
  ASSERT_TRUE(b && c);
  ASSERT_TRUE(WaitConnected(*a, 0x22));
  a->UpdatePeers({PeerAddress{0x22, "n1", {nodes_[1].url}}, PeerAddress{0x33, "n2", {nodes_[2].url}}},
                 {});
  ASSERT_TRUE(WaitConnected(*a, 0x33));
  std::vector<raft::Message> batch = {MakeMessage(0x11, 0x33, 7, 1)};
  a->Send(batch);
  std::vector<raft::Message> got;
  ASSERT_TRUE(Receive(*c, 1, &got));
  EXPECT_EQ(got[0].index, 7u);

  a->UpdatePeers({PeerAddress{0x33, "n2", {nodes_[2].url}}}, {0x22});
  // The refusal itself (as RefusesANodeOfAnotherCluster: last_error may be overwritten).
  std::string error;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (error.find("removed") == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    for (const PeerState& p : b->Peers()) {
      if (p.id == 0x11) error = p.refused_by_peer;
    }
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_NE(error.find("member 22 was removed from the cluster"), std::string::npos)
      << error;
  for (const PeerState& p : a->Peers()) EXPECT_NE(p.id, 0x22u);
}

}  // namespace
}  // namespace rusd::transport
