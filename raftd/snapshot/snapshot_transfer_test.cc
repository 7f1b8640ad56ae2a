// SnapshotTransfer over a real PeerTransport on loopback: a snapshot directory streamed in
// chunks arrives whole and verified beside the message stream, and the kSnapshot message
// is handed over only then; corrupt chunks, another cluster and missing data fail cleanly.
#include "raftd/snapshot/snapshot_transfer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <thread>

#include "raftd/snapshot/snapshot_stream_frames.h"
#include "raftd/transport/peer_transport.h"
#include "common/crc32c.h"
#include "raftd/wal/wal_format.h"

namespace rusd::raftd {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr uint64_t kCluster = 0xc1;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

using namespace stream_frames;

std::string HeaderFrame(uint64_t index) {
  std::string header(1, '\1');
  header += U64(kCluster) + U64(1) + U64(2) + U64(4) + U64(index) + U64(3) + U32(1) + U64(1) +
            U32(0);
  return Frame(16, header);
}

// The files of a directory, name -> content.
std::map<std::string, std::string> DirContents(const std::string& dir) {
  std::map<std::string, std::string> out;
  std::error_code ec;
  for (const auto& de : fs::directory_iterator(dir, ec)) {
    out[de.path().filename().string()] = ReadFile(de.path().string());
  }
  return out;
}

// Whether a file named `name` exists anywhere under `dir`.
bool FileExistsUnder(const std::string& dir, const std::string& name) {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (it->path().filename() == name) return true;
  }
  return false;
}

class SnapshotTransferTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = (fs::temp_directory_path() /
             ("snapshot_transfer_test_" + std::to_string(::getpid()) + "_" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name()))
                .string();
    fs::remove_all(root_);
    fs::create_directories(root_ + "/source");
    // The follower (member 2): its transport hands snapshot streams to its transfer.
    SnapshotTransferOptions ro;
    ro.cluster_id = kCluster;
    ro.member_id = 2;
    ro.snap_dir = root_ + "/follower-snap";
    receiver_ = std::make_unique<SnapshotTransfer>(ro);
    transport::TransportOptions t;
    t.cluster_id = kCluster;
    t.member_id = 2;
    t.listen_urls = {"http://127.0.0.1:0"};
    t.peers = {{1, "n1", {"http://127.0.0.1:1"}}};
    SnapshotTransfer* r = receiver_.get();
    t.on_snapshot_stream = [r](int fd, std::string head) { r->Accept(fd, std::move(head)); };
    auto started = transport::PeerTransport::Start(std::move(t));
    ASSERT_TRUE(started.ok()) << started.status().ToString();
    transport_ = std::move(*started);
    port_ = transport_->listen_ports().at(0);
  }
  void TearDown() override {
    transport_.reset();
    receiver_.reset();
    fs::remove_all(root_);
  }

  std::unique_ptr<SnapshotTransfer> Sender(uint64_t cluster = kCluster) {
    SnapshotTransferOptions so;
    so.cluster_id = cluster;
    so.member_id = 1;
    so.snap_dir = root_ + "/leader-snap";
    so.peers = {{2, {"http://127.0.0.1:" + std::to_string(port_)}}};
    so.chunk_bytes = 64 << 10;
    return std::make_unique<SnapshotTransfer>(so);
  }

  static raft::Message SnapshotMessage(uint64_t index) {
    raft::Message m;
    m.type = raft::MessageType::kSnapshot;
    m.from = 1;
    m.to = 2;
    m.term = 4;
    m.snapshot.index = index;
    m.snapshot.term = 3;
    m.snapshot.conf.voters = {1, 2, 3};
    return m;
  }

  template <typename Pred>
  static bool WaitFor(Pred pred, std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!pred()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(5ms);
    }
    return true;
  }

  // A raw connection to the follower's peer port (a hand-made snapshot stream).
  int Connect() const {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port_);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    return fd;
  }
  static void SendBytes(int fd, const std::string& bytes) {
    // The receiver may have refused the stream and closed already: that is not an error.
    (void)::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  }
  // The Ack frame's ok byte once one arrived (non-blocking), or nullopt.
  static std::optional<bool> PollAck(int fd, std::string* buf) {
    char tmp[256];
    ssize_t n;
    while ((n = ::recv(fd, tmp, sizeof tmp, MSG_DONTWAIT)) > 0) buf->append(tmp, n);
    if (buf->size() < 6) return std::nullopt;
    EXPECT_EQ(static_cast<uint8_t>((*buf)[4]), 21);  // Ack
    return (*buf)[5] == 1;
  }

  std::string root_;
  std::unique_ptr<SnapshotTransfer> receiver_;
  std::unique_ptr<transport::PeerTransport> transport_;
  uint16_t port_ = 0;
};

TEST_F(SnapshotTransferTest, StreamsADirectoryInChunksAndHandsOverTheMessageAndMembersAfterIt) {
  std::mt19937 rng(7);
  std::string big(3u << 20, '\0');
  for (char& c : big) c = static_cast<char>(rng());
  std::ofstream(root_ + "/source/000012.sst", std::ios::binary) << big;
  std::ofstream(root_ + "/source/MANIFEST-000005", std::ios::binary) << "manifest";
  std::ofstream(root_ + "/source/empty", std::ios::binary);
  auto sender = Sender();
  // The member list as of the snapshot travels in the header (opaque bytes here).
  const std::string members("member list\0as of 500", 21);
  sender->Send(SnapshotMessage(500), root_ + "/source", members);

  std::vector<std::pair<uint64_t, bool>> reports;
  ASSERT_TRUE(WaitFor([&] {
    sender->TakeReports(&reports);
    return !reports.empty();
  }));
  EXPECT_EQ(reports, (std::vector<std::pair<uint64_t, bool>>{{2, true}}));
  std::vector<SnapshotTransfer::Received> got;
  ASSERT_TRUE(WaitFor([&] {
    receiver_->TakeReceived(&got);
    return !got.empty();
  }));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].message.type, raft::MessageType::kSnapshot);
  EXPECT_EQ(got[0].message.from, 1u);
  EXPECT_EQ(got[0].message.term, 4u);
  EXPECT_EQ(got[0].message.snapshot, SnapshotMessage(500).snapshot);
  EXPECT_EQ(got[0].members, members);
  const std::string dir = ReceivedSnapshotDir(root_ + "/follower-snap", 500);
  EXPECT_EQ(dir, root_ + "/follower-snap/recv-00000000000001f4");
  EXPECT_EQ(ReadFile(dir + "/000012.sst"), big);
  EXPECT_EQ(ReadFile(dir + "/MANIFEST-000005"), "manifest");
  EXPECT_TRUE(fs::exists(dir + "/empty"));
  EXPECT_FALSE(fs::exists(dir + ".tmp"));

  // A newer snapshot arrives: the older one stays (stored may be installing it) until
  // raftd says stored is past it.
  sender->Send(SnapshotMessage(900), root_ + "/source");
  got.clear();
  ASSERT_TRUE(WaitFor([&] {
    receiver_->TakeReceived(&got);
    return !got.empty();
  }));
  EXPECT_TRUE(fs::exists(ReceivedSnapshotDir(root_ + "/follower-snap", 900)));
  EXPECT_TRUE(fs::exists(dir + "/000012.sst"));
  receiver_->RemoveReceivedUpTo(899);
  EXPECT_TRUE(WaitFor([&] { return !fs::exists(dir); }));
  EXPECT_TRUE(fs::exists(ReceivedSnapshotDir(root_ + "/follower-snap", 900)));
  // The one raftd ordered installed is kept whatever the index (nothing else to remove:
  // no worker runs, so the check needs no wait).
  const std::string dir900 = ReceivedSnapshotDir(root_ + "/follower-snap", 900);
  receiver_->RemoveReceivedUpTo(1000, /*keep=*/900);
  EXPECT_TRUE(fs::exists(dir900));
  receiver_->RemoveReceivedUpTo(1000);
  EXPECT_TRUE(WaitFor([&] { return !fs::exists(dir900); }));
}

// A snapshot without a member list goes out as wire version 1, which receivers older than
// version 2 accept (a rolling upgrade's old followers); with a list it is version 2.
TEST_F(SnapshotTransferTest, HeaderIsVersionOneWithoutAMemberList) {
  std::ofstream(root_ + "/source/f", std::ios::binary) << "data";
  // A bare listener stands in for the follower: only the first frame (the header) matters.
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 4), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  SnapshotTransferOptions so;
  so.cluster_id = kCluster;
  so.member_id = 1;
  so.snap_dir = root_ + "/leader-snap";
  so.peers = {{2, {"http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port))}}};
  SnapshotTransfer sender(so);
  for (const std::string& members : {std::string(), std::string("a list")}) {
    sender.Send(SnapshotMessage(500), root_ + "/source", members);
    int fd = ::accept(listener, nullptr, nullptr);
    ASSERT_GE(fd, 0);
    std::string header;
    char buf[4096];
    while (header.size() < 4 || header.size() < 4 + wal::GetU32(header.data())) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      ASSERT_GT(n, 0);
      header.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);  // the transfer fails; only its header is checked
    const std::string body = header.substr(5, wal::GetU32(header.data()) - 1);
    EXPECT_EQ(static_cast<uint8_t>(header[4]), 16);
    // version, 6 x u64, voters (u32 + 3 x u64), learners (u32), then the list if any.
    EXPECT_EQ(static_cast<uint8_t>(body[0]), members.empty() ? 1 : 2);
    EXPECT_EQ(body.size(), 1 + 6 * 8 + 4 + 3 * 8 + 4 + (members.empty() ? 0 : 4 + members.size()));
    std::vector<std::pair<uint64_t, bool>> reports;
    ASSERT_TRUE(WaitFor([&] {
      sender.TakeReports(&reports);
      return !reports.empty();
    }));
  }
  ::close(listener);
}

TEST_F(SnapshotTransferTest, AnotherClusterOrMissingDataFailsTheTransfer) {
  std::ofstream(root_ + "/source/a") << "a";
  auto stranger = Sender(/*cluster=*/0xbad);
  stranger->Send(SnapshotMessage(10), root_ + "/source");
  std::vector<std::pair<uint64_t, bool>> reports;
  ASSERT_TRUE(WaitFor([&] {
    stranger->TakeReports(&reports);
    return !reports.empty();
  }));
  EXPECT_EQ(reports, (std::vector<std::pair<uint64_t, bool>>{{2, false}}));

  auto sender = Sender();
  sender->Send(SnapshotMessage(11), root_ + "/nowhere");
  reports.clear();
  ASSERT_TRUE(WaitFor([&] {
    sender->TakeReports(&reports);
    return !reports.empty();
  }));
  EXPECT_EQ(reports, (std::vector<std::pair<uint64_t, bool>>{{2, false}}));
  std::this_thread::sleep_for(50ms);
  std::vector<SnapshotTransfer::Received> got;
  receiver_->TakeReceived(&got);
  EXPECT_TRUE(got.empty());
  EXPECT_FALSE(fs::exists(ReceivedSnapshotDir(root_ + "/follower-snap", 10)));
  EXPECT_FALSE(fs::exists(ReceivedSnapshotDir(root_ + "/follower-snap", 11)));
}

// Hand-made frames: a chunk whose checksum does not match is refused with an Ack(0), and
// nothing is handed to raftd.
// Sends `stream` to the follower's peer port; checks it is refused and leaves nothing.
void ExpectRefused(uint16_t port, const std::string& stream, SnapshotTransfer* receiver,
                   const std::string& snap_dir, uint64_t index) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::send(fd, stream.data(), stream.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(stream.size()));
  char ack[256];
  ssize_t n = ::recv(fd, ack, sizeof ack, MSG_WAITALL);
  ::close(fd);
  ASSERT_GE(n, 6);
  EXPECT_EQ(static_cast<uint8_t>(ack[4]), 21);  // Ack
  EXPECT_EQ(ack[5], 0);                          // refused
  std::vector<SnapshotTransfer::Received> got;
  receiver->TakeReceived(&got);
  EXPECT_TRUE(got.empty());
  EXPECT_FALSE(fs::exists(ReceivedSnapshotDir(snap_dir, index)));
  EXPECT_FALSE(fs::exists(ReceivedSnapshotDir(snap_dir, index) + ".partial"));
}

TEST_F(SnapshotTransferTest, CorruptChunkIsRefused) {
  const std::string data = "some sst bytes";
  const uint32_t crc = Crc32c(data.data(), data.size());
  std::string stream = HeaderFrame(77) + Frame(17, U32(4) + "file" + U64(data.size())) +
                       Frame(18, U32(crc ^ 1) + data) + Frame(19, U32(crc)) + DoneFrame();
  ExpectRefused(port_, stream, receiver_.get(), root_ + "/follower-snap", 77);
}

// A header followed at once by Done (no File frame) once installed an empty directory as
// the snapshot: stored would have opened an empty store at that index.
TEST_F(SnapshotTransferTest, StreamWithoutFilesIsRefusedWithAClearError) {
  const std::string stream = HeaderFrame(79) + DoneFrame();
  ExpectRefused(port_, stream, receiver_.get(), root_ + "/follower-snap", 79);
  int fd = Connect();
  SendBytes(fd, stream);
  char ack[256];
  const ssize_t n = ::recv(fd, ack, sizeof ack, MSG_WAITALL);
  ::close(fd);
  ASSERT_GE(n, 10);
  EXPECT_EQ(ack[5], 0);  // refused
  const std::string error(ack + 10, static_cast<size_t>(n) - 10);
  EXPECT_NE(error.find("snapshot stream at index 79 has no files"), std::string::npos) << error;
}

// Found by reading the parser while writing tests/fuzz/snapshot_stream: a File frame closed
// the previous file without its FileEnd, so a snapshot missing most of a file's bytes was
// accepted as verified.
TEST_F(SnapshotTransferTest, FileWithoutFileEndIsRefused) {
  std::string stream = HeaderFrame(78) + Frame(17, U32(7) + "CURRENT" + U64(5)) +
                       Frame(17, U32(1) + "B" + U64(0)) + Frame(19, U32(0)) + DoneFrame();
  ExpectRefused(port_, stream, receiver_.get(), root_ + "/follower-snap", 78);
}

// Two streams of the same index at once (a leader that reconnected and re-sent while its
// first stream was still open, or a new leader): neither may write into the other's files.
// Interleaving: stream 1 sends file a; stream 2 starts and sends file b; stream 1 sends
// file c and finishes; stream 2 finishes. Whatever is handed to raftd must be exactly what
// one stream sent (sharing one temporary directory once installed {b, c}).
TEST_F(SnapshotTransferTest, ConcurrentStreamsOfOneIndexNeverMixTheirFiles) {
  const std::string snap_dir = root_ + "/follower-snap";
  const std::map<std::string, std::string> first = {{"a", "aaaa"}, {"c", "cccc"}};
  const std::map<std::string, std::string> second = {{"b", "bbbb"}, {"d", "dddd"}};
  int s1 = Connect();
  int s2 = Connect();
  std::string ack1, ack2;
  SendBytes(s1, HeaderFrame(42) + FileFrames("a", "aaaa"));
  ASSERT_TRUE(WaitFor([&] { return FileExistsUnder(snap_dir, "a"); }));
  SendBytes(s2, HeaderFrame(42) + FileFrames("b", "bbbb"));
  // Refused at once (fixed), or writing b (the shared directory of the bug).
  ASSERT_TRUE(WaitFor([&] { return PollAck(s2, &ack2) || FileExistsUnder(snap_dir, "b"); }));
  SendBytes(s1, FileFrames("c", "cccc") + DoneFrame());
  std::optional<bool> ok1;
  ASSERT_TRUE(WaitFor([&] { return (ok1 = PollAck(s1, &ack1)).has_value(); }));
  SendBytes(s2, FileFrames("d", "dddd") + DoneFrame());
  std::optional<bool> ok2;
  ASSERT_TRUE(WaitFor([&] { return (ok2 = PollAck(s2, &ack2)).has_value(); }));
  ::close(s1);
  ::close(s2);

  EXPECT_TRUE(*ok1) << "the first stream completes";
  EXPECT_FALSE(*ok2) << "the second stream of index 42 is refused while the first runs";
  std::vector<SnapshotTransfer::Received> got;
  receiver_->TakeReceived(&got);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].message.snapshot.index, 42u);
  EXPECT_EQ(DirContents(ReceivedSnapshotDir(snap_dir, 42)), first);

  // Once the first stream ended, the index can be streamed again; the complete copy (which
  // stored may be installing) is kept, and the message is handed over again.
  int s3 = Connect();
  std::string ack3;
  SendBytes(s3, HeaderFrame(42) + FileFrames("b", "bbbb") + FileFrames("d", "dddd") + DoneFrame());
  std::optional<bool> ok3;
  ASSERT_TRUE(WaitFor([&] { return (ok3 = PollAck(s3, &ack3)).has_value(); }));
  ::close(s3);
  EXPECT_TRUE(*ok3);
  got.clear();
  ASSERT_TRUE(WaitFor([&] {
    receiver_->TakeReceived(&got);
    return !got.empty();
  }));
  EXPECT_EQ(DirContents(ReceivedSnapshotDir(snap_dir, 42)), first);
  EXPECT_EQ(std::vector<std::string>{"recv-000000000000002a"}, [&] {
    std::vector<std::string> names;
    for (const auto& de : fs::directory_iterator(snap_dir)) {
      names.push_back(de.path().filename().string());
    }
    return names;
  }()) << "no partial directory is left behind";
}

// A stream of an older index still in flight keeps its partial data when a newer snapshot
// arrives complete, and when received ones are removed; partial directories a crash left
// behind are removed when raftd starts.
TEST_F(SnapshotTransferTest, SupersedingSparesStreamsInFlightAndStartupRemovesStaleOnes) {
  const std::string snap_dir = root_ + "/follower-snap";
  std::ofstream(root_ + "/source/x") << "x";
  int slow = Connect();
  std::string slow_ack;
  SendBytes(slow, HeaderFrame(5) + FileFrames("a", "aaaa"));
  ASSERT_TRUE(WaitFor([&] { return FileExistsUnder(snap_dir, "a"); }));
  auto sender = Sender();
  sender->Send(SnapshotMessage(9), root_ + "/source");
  std::vector<SnapshotTransfer::Received> got;
  ASSERT_TRUE(WaitFor([&] {
    receiver_->TakeReceived(&got);
    return !got.empty();
  }));
  receiver_->RemoveReceivedUpTo(9);
  EXPECT_TRUE(WaitFor([&] { return !fs::exists(ReceivedSnapshotDir(snap_dir, 9)); }));
  SendBytes(slow, FileFrames("c", "cccc") + DoneFrame());
  std::optional<bool> ok;
  ASSERT_TRUE(WaitFor([&] { return (ok = PollAck(slow, &slow_ack)).has_value(); }));
  ::close(slow);
  EXPECT_TRUE(*ok);
  EXPECT_EQ(DirContents(ReceivedSnapshotDir(snap_dir, 5)),
            (std::map<std::string, std::string>{{"a", "aaaa"}, {"c", "cccc"}}));

  // A crash left partial directories: a new receiver (raftd restarted) removes them and
  // keeps complete ones.
  fs::create_directories(ReceivedSnapshotDir(snap_dir, 11) + ".partial");
  std::ofstream(ReceivedSnapshotDir(snap_dir, 11) + ".partial/half") << "h";
  transport_.reset();
  receiver_.reset();
  SnapshotTransferOptions ro;
  ro.cluster_id = kCluster;
  ro.member_id = 2;
  ro.snap_dir = snap_dir;
  receiver_ = std::make_unique<SnapshotTransfer>(ro);
  EXPECT_FALSE(fs::exists(ReceivedSnapshotDir(snap_dir, 11) + ".partial"));
  EXPECT_TRUE(fs::exists(ReceivedSnapshotDir(snap_dir, 5) + "/a"));
}

}  // namespace
}  // namespace rusd::raftd
