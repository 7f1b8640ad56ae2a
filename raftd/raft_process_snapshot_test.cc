// RaftProcess, a follower's snapshot install path (raft_process_snapshot.cc), in process: a
// snapshot stream arrives through a real SnapshotTransfer (a socketpair stands in for the
// peer port), the core restores it, and the process persists it. The member list the
// snapshot carries must replace the follower's: the conf-change entries that added a
// member are compacted away, so without it the follower never learns that member's URLs.
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "ipc/ring.h"
#include "ipc/test_segment.h"
#include "raftd/membership_registry.h"
#include "raftd/raft_process.h"
#include "raftd/snapshot/snapshot_point.h"
#include "raftd/snapshot/snapshot_stream_frames.h"
#include "raftd/snapshot/snapshot_transfer.h"
#include "common/crc32c.h"
#include "raftd/wal/wal_format.h"
#include "raftd/wal/wal_reader.h"
#include "raftd/wal/wal_writer.h"
#include "rusd/internal.pb.h"
#include "rusd/membership.pb.h"
#include "rusd/snapshot.pb.h"

namespace rusd::raftd {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr uint64_t kCluster = 0xc1;
constexpr uint64_t kSelf = 2;
constexpr uint64_t kNewMember = 4;

using namespace stream_frames;

// A whole version 2 stream from leader 1 (term 4): a snapshot at `index` (term 3) whose
// configuration has voters {1, 2, 3, 4}, one file, and `members`.
std::string SnapshotStream(uint64_t index, const std::string& members) {
  std::string header(1, '\2');
  header += U64(kCluster) + U64(1) + U64(kSelf) + U64(4) + U64(index) + U64(3) + U32(4) +
            U64(1) + U64(2) + U64(3) + U64(kNewMember) + U32(0) + Str(members);
  const std::string data = "checkpoint bytes";
  return Frame(16, header) + FileFrames("000001.sst", data) + DoneFrame();
}

std::vector<ClusterMember> Bootstrap() {
  return {{1, "n1", {"http://127.0.0.1:1001"}},
          {2, "n2", {"http://127.0.0.1:1002"}},
          {3, "n3", {"http://127.0.0.1:1003"}}};
}

// The leader's list as of the snapshot: the bootstrap members and n4, added at index 30.
internal::MemberListFile LeaderList(uint64_t index) {
  internal::MemberListFile file;
  file.set_applied_index(index);
  for (const ClusterMember& m : Bootstrap()) {
    internal::MemberRecord* r = file.add_members();
    r->set_id(m.id);
    r->set_name(m.name);
    r->add_peer_urls(m.peer_urls[0]);
  }
  internal::MemberRecord* r = file.add_members();
  r->set_id(kNewMember);
  r->set_name("n4");
  r->add_peer_urls("http://127.0.0.1:1004");
  return file;
}

template <typename Pred>
bool WaitFor(Pred pred, std::chrono::milliseconds timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

class RaftProcessSnapshotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = (fs::temp_directory_path() /
             ("raft_process_snapshot_test_" + std::to_string(::getpid()) + "_" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name()))
                .string();
    fs::remove_all(root_);
    member_dir_ = root_ + "/member";
    snap_dir_ = member_dir_ + "/snap";
    fs::create_directories(snap_dir_);
    ASSERT_TRUE(segment_.ok());
    for (auto c : {ipc::Component::kFrontend, ipc::Component::kStored, ipc::Component::kRaftd}) {
      segment_->component(c).epoch.store(1);
    }
  }
  void TearDown() override {
    StopRaftd();
    if (!HasFailure()) fs::remove_all(root_);
  }

  // Starts the follower's RaftProcess (member 2 of {1, 2, 3}) on its own thread.
  void StartRaftd() {
    auto recovered = wal::ReadWal(member_dir_ + "/wal");
    ASSERT_TRUE(recovered.ok()) << recovered.status().ToString();
    auto wal = wal::WalWriter::Open(member_dir_ + "/wal", *recovered);
    ASSERT_TRUE(wal.ok()) << wal.status().ToString();
    wal_ = std::move(*wal);
    membership_ = std::make_unique<MembershipRegistry>(kSelf, Bootstrap(), member_dir_);
    ASSERT_TRUE(membership_->Load().ok());
    SnapshotTransferOptions so;
    so.cluster_id = kCluster;
    so.member_id = kSelf;
    so.snap_dir = snap_dir_;
    snapshots_ = std::make_unique<SnapshotTransfer>(so);
    RaftProcessOptions o;
    o.member_id = kSelf;
    o.members = Bootstrap();
    o.tick_interval = 10ms;
    o.election_ticks = 100000;  // it never campaigns: the test plays its leader
    o.snap_dir = snap_dir_;
    o.snapshots = snapshots_.get();
    o.compact_on_snapshot = true;
    o.membership = membership_.get();
    auto point = ReadSnapshotPoint(snap_dir_);
    ASSERT_TRUE(point.ok()) << point.status().ToString();
    process_ = std::make_unique<RaftProcess>(
        *segment_, *wal_, MergeSnapshotPoint(std::move(*recovered), *point).state, o);
    stop_ = false;
    thread_ = std::thread([this] {
      Status st = process_->Run([this] { return stop_.load(); });
      EXPECT_TRUE(st.ok()) << st.ToString();
    });
  }
  void StopRaftd() {
    if (!thread_.joinable()) return;
    stop_ = true;
    thread_.join();
    process_.reset();
    snapshots_.reset();
  }

  // Hands the follower a snapshot stream as its transport would (an accepted connection).
  void Deliver(const std::string& stream) {
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    ASSERT_EQ(::send(fds[0], stream.data(), stream.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(stream.size()));
    snapshots_->Accept(fds[1], "");
    char ack[64];
    ssize_t n = ::recv(fds[0], ack, sizeof ack, 0);  // the receiver acks once verified
    ::close(fds[0]);
    ASSERT_GE(n, 6);
    EXPECT_EQ(ack[5], 1) << "the snapshot stream is acknowledged";
  }

  std::string root_, member_dir_, snap_dir_;
  ipc::testing::ScopedSegment segment_{"snapinstall", ipc::testing::UniformLayout(256 << 10)};
  std::unique_ptr<wal::WalWriter> wal_;
  std::unique_ptr<MembershipRegistry> membership_;
  std::unique_ptr<SnapshotTransfer> snapshots_;
  std::unique_ptr<RaftProcess> process_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST_F(RaftProcessSnapshotTest, InstallingASnapshotTakesOverItsMemberList) {
  StartRaftd();
  ipc::RingReader replies(*segment_, ipc::RingId::kRaftReplies);
  Deliver(SnapshotStream(50, LeaderList(50).SerializeAsString()));

  // The point is persisted with the snapshot's list (this member can send it on later).
  std::string point_members;
  ASSERT_TRUE(WaitFor([&] {
    auto point = ReadSnapshotPoint(snap_dir_, &point_members);
    return point.ok() && point->has_value() && (*point)->index == 50;
  })) << "the core never restored the snapshot";
  internal::MemberListFile at_point;
  ASSERT_TRUE(at_point.ParseFromString(point_members)) << "no member list with the point";
  EXPECT_EQ(at_point.SerializeAsString(), LeaderList(50).SerializeAsString());

  // The frontend hears of the new member with its URLs (MemberList on this node).
  bool listed = false;
  ASSERT_TRUE(WaitFor([&] {
    while (auto m = replies.TryRead()) {
      if (m->type != ipc::MessageType::kMemberList) continue;
      etcdserverpb::MemberListResponse list;
      EXPECT_TRUE(list.ParseFromString(m->payload));
      for (const auto& member : list.members()) {
        listed |= member.id() == kNewMember && member.name() == "n4" &&
                  member.peerurls_size() == 1 && member.peerurls(0) == "http://127.0.0.1:1004";
      }
    }
    return listed;
  })) << "kMemberList never listed the member the snapshot carried";
  // stored confirms the install (its kResumeFrom reaches 50): the received copy goes.
  EXPECT_TRUE(fs::exists(ReceivedSnapshotDir(snap_dir_, 50)));
  internal::ResumeFrom resume;
  resume.set_applied_index(50);
  ipc::RingWriter control(*segment_, ipc::RingId::kStoreControl, 1);
  ASSERT_TRUE(control.Write(ipc::MessageType::kResumeFrom, 0, resume.SerializeAsString(), 1s).ok());
  EXPECT_TRUE(WaitFor([&] { return !fs::exists(ReceivedSnapshotDir(snap_dir_, 50)); }));
  StopRaftd();

  // members.pb holds it: a restart knows the member (and later conf changes apply on top).
  MembershipRegistry reloaded(kSelf, Bootstrap(), member_dir_);
  ASSERT_TRUE(reloaded.Load().ok());
  EXPECT_EQ(reloaded.applied_index(), 50u);
  ASSERT_NE(reloaded.Find(kNewMember), nullptr);
  EXPECT_EQ(reloaded.Find(kNewMember)->peer_urls(0), "http://127.0.0.1:1004");
}

// A received snapshot the core never restores (it is already past it) is removed once
// stored reports a durable index past it, without waiting for stored's next restart; the
// snapshot whose install raftd ordered stays until stored confirms it.
TEST_F(RaftProcessSnapshotTest, DurableProgressRemovesReceivedSnapshotsButThePendingInstall) {
  StartRaftd();
  Deliver(SnapshotStream(50, LeaderList(50).SerializeAsString()));
  ASSERT_TRUE(WaitFor([&] {
    auto point = ReadSnapshotPoint(snap_dir_);
    return point.ok() && point->has_value() && (*point)->index == 50;
  })) << "the core never restored the snapshot";
  // An older stream (a previous leader's) finishes after the core restored 50: ignored.
  Deliver(SnapshotStream(40, LeaderList(40).SerializeAsString()));
  ASSERT_TRUE(fs::exists(ReceivedSnapshotDir(snap_dir_, 40)));
  internal::DurableApplied durable;
  durable.set_index(50);
  ipc::RingWriter control(*segment_, ipc::RingId::kStoreControl, 1);
  ASSERT_TRUE(
      control.Write(ipc::MessageType::kDurableApplied, 0, durable.SerializeAsString(), 1s).ok());
  EXPECT_TRUE(WaitFor([&] { return !fs::exists(ReceivedSnapshotDir(snap_dir_, 40)); }))
      << "a received snapshot stored is past stayed on disk";
  // One worker removes a call's snapshots in turn: give it time to reach 50 if it would.
  std::this_thread::sleep_for(200ms);
  EXPECT_TRUE(fs::exists(ReceivedSnapshotDir(snap_dir_, 50)))
      << "the snapshot stored was ordered to install was removed";
}

// A snapshot point written without a member list (by an older version) leaves the list at
// the next point unknown: the list now (which may hold later changes) must not be stamped
// with the point's index, or a follower that receives it adopts it as of that index. The
// next point is stored (and its snapshot sent) without a list.
TEST_F(RaftProcessSnapshotTest, CompactionAfterAPointWithoutAListStoresNoList) {
  raft::SnapshotMeta meta;
  meta.index = 20;
  meta.term = 1;
  meta.conf.voters = {1, 2, 3};
  ASSERT_TRUE(WriteSnapshotPoint(snap_dir_, meta, "").ok());
  {
    auto empty = wal::ReadWal(member_dir_ + "/wal");
    ASSERT_TRUE(empty.ok());
    auto writer = wal::WalWriter::Open(member_dir_ + "/wal", *empty);
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->ResetTo(20, 1).ok());
    std::vector<raft::Entry> entries;
    for (uint64_t i = 21; i <= 60; ++i) {
      entries.push_back(raft::Entry{i, 1, raft::EntryType::kNormal, {}});
    }
    (*writer)->AddEntries(entries);
    (*writer)->AddHardState(raft::HardState{1, 1, 60});
    ASSERT_TRUE((*writer)->Flush(true).ok());
  }
  StartRaftd();
  ipc::RingWriter control(*segment_, ipc::RingId::kStoreControl, 1);
  // Checkpoints at 30 and 40: compaction at the older. Sent until the process has applied
  // that far (it hands the WAL's entries out first; earlier reports are ignored).
  ASSERT_TRUE(WaitFor([&] {
    for (uint64_t index : {30, 40}) {
      internal::SnapshotReady ready;
      ready.set_index(index);
      ready.set_dir(root_ + "/checkpoint-" + std::to_string(index));
      EXPECT_TRUE(
          control.Write(ipc::MessageType::kSnapshotReady, 0, ready.SerializeAsString(), 1s).ok());
    }
    std::this_thread::sleep_for(20ms);
    auto point = ReadSnapshotPoint(snap_dir_);
    return point.ok() && point->has_value() && (*point)->index == 30;
  })) << "the process never compacted at 30";
  std::string members = "unset";
  auto point = ReadSnapshotPoint(snap_dir_, &members);
  ASSERT_TRUE(point.ok() && point->has_value());
  EXPECT_EQ((*point)->index, 30u);
  EXPECT_EQ(members, "") << "a member list of a later index was stamped with the point's";
}

// A snapshot from a sender that carries no list (an older version) still installs; the
// follower keeps the list it had.
TEST_F(RaftProcessSnapshotTest, ASnapshotWithoutAMemberListStillInstalls) {
  StartRaftd();
  Deliver(SnapshotStream(60, ""));
  ASSERT_TRUE(WaitFor([&] {
    auto point = ReadSnapshotPoint(snap_dir_);
    return point.ok() && point->has_value() && (*point)->index == 60;
  }));
  StopRaftd();
  EXPECT_EQ(membership_->members().size(), 3u);
  EXPECT_EQ(membership_->Find(kNewMember), nullptr);
}

}  // namespace
}  // namespace rusd::raftd
