// End-to-end tests of the rusd-raftd binary: this test plays supervisor, frontend and
// stored around a real segment, starts the real process with fork+exec, kills it and
// restarts it, and checks that committed entries reach "stored" in order with nothing lost
// and nothing duplicated.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <netinet/in.h>
#include <sys/socket.h>
#include <set>
#include <thread>

#include "ipc/request_trailer.h"
#include "ipc/ring.h"
#include "ipc/segment.h"
#include "ipc/test_segment.h"
#include "raftd/transport/peer_transport.h"
#include "raftd/wal/wal_reader.h"
#include "rusd/internal.pb.h"
#include "rusd/lease.pb.h"
#include "rusd/membership.pb.h"
#include "common/free_port_for_tests.h"

namespace rusd::raftd {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ipc::Component;
using ipc::MessageType;
using ipc::RingId;

constexpr uint64_t kMemberId = 0xabc;

class RaftdProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_dir_ = fs::temp_directory_path() /
                ("rusd_raftd_test_" + std::to_string(getpid()) + "_" +
                 ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(data_dir_);
    fs::create_directories(data_dir_);
    UseLayout(ipc::SegmentLayout{});
  }

  // (Re)creates the segment with `layout` and this test's ring ends on it (before raftd
  // starts).
  void UseLayout(const ipc::SegmentLayout& layout) {
    proposals_.reset();
    replies_.reset();
    committed_.reset();
    control_.reset();
    segment_.reset();
    segment_ = std::make_unique<ipc::testing::ScopedSegment>("raftd", layout);
    ASSERT_TRUE(segment_->ok());
    SetEpoch(Component::kFrontend, 1);
    SetEpoch(Component::kStored, 1);
    proposals_ = std::make_unique<ipc::RingWriter>(**segment_, RingId::kProposals, 1);
    replies_ = std::make_unique<ipc::RingReader>(**segment_, RingId::kRaftReplies);
    committed_ = std::make_unique<ipc::RingReader>(**segment_, RingId::kCommitted);
    control_ = std::make_unique<ipc::RingWriter>(**segment_, RingId::kStoreControl, 1);
  }

  void TearDown() override {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (!HasFailure()) fs::remove_all(data_dir_);
  }

  void SetEpoch(Component c, uint64_t e) {
    (*segment_)->component(c).epoch.store(e, std::memory_order_release);
  }
  uint64_t Epoch(Component c) { return (*segment_)->component(c).epoch.load(); }

  // Starts rusd-raftd as the supervisor would: a new epoch, then fork+exec.
  void StartRaftd(const std::vector<std::string>& extra = {}) {
    SetEpoch(Component::kRaftd, Epoch(Component::kRaftd) + 1);
    const std::string log = (data_dir_ / "raftd.log").string();
    std::vector<std::string> args = {RUSD_RAFTD_PATH,
                                     "--segment=" + segment_->name(),
                                     "--data-dir=" + data_dir_.string(),
                                     "--member-id=abc",
                                     "--heartbeat-interval-ms=" + std::to_string(heartbeat_ms_),
                                     "--election-timeout-ms=" + std::to_string(election_ms_),
                                     "--log-level=debug"};
    args.insert(args.end(), extra.begin(), extra.end());
    pid_ = fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
  }

  void KillRaftd() {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
    SetEpoch(Component::kRaftd, Epoch(Component::kRaftd) + 1);  // reaped
    (*segment_)->WakeAll();
  }

  // Waits for the process to exit; returns its exit status (or -1 on timeout).
  int WaitExit(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(5ms);
    }
    return -1;
  }

  std::string RaftdLog() {
    std::ifstream in(data_dir_ / "raftd.log");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  // The frontend's request timeout with this test's election timeout (5 s + 2 x 100 ms).
  static constexpr auto kRequestTimeout = 5200ms;

  // Writes a request for raftd as the frontend does: `payload` then the deadline
  // (ipc/request_trailer.h), by default the request timeout from now.
  void WriteRequest(MessageType type, uint64_t id, std::string payload,
                    ipc::RequestClock::time_point deadline = ipc::RequestClock::now() +
                                                             kRequestTimeout,
                    ipc::RingWriter* writer = nullptr) {
    ipc::AppendRequestTrailer(&payload, deadline);
    ipc::RingWriter& w = writer != nullptr ? *writer : *proposals_;
    ASSERT_TRUE(w.Write(type, id, payload, 5s).ok());
  }

  static internal::Command PutCommand(uint64_t request_id) {
    internal::Command cmd;
    cmd.set_request_id(request_id);
    cmd.set_origin_member_id(kMemberId);
    cmd.mutable_put()->set_key("key-" + std::to_string(request_id));
    cmd.mutable_put()->set_value(std::string(100, 'v'));
    return cmd;
  }

  void Propose(uint64_t request_id,
               ipc::RequestClock::time_point deadline = ipc::RequestClock::now() +
                                                        kRequestTimeout) {
    WriteRequest(MessageType::kPropose, request_id, PutCommand(request_id).SerializeAsString(),
                 deadline);
  }

  void Resume(uint64_t applied, uint64_t stored_epoch) {
    internal::ResumeFrom r;
    r.set_applied_index(applied);
    ipc::RingWriter w(**segment_, RingId::kStoreControl, stored_epoch);
    ASSERT_TRUE(w.Write(MessageType::kResumeFrom, 0, r.SerializeAsString(), 1s).ok());
  }

  // Reads raft-replies until a kLeaderInfo names `leader`.
  bool AwaitLeader(uint64_t leader, std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto m = AwaitReply(MessageType::kLeaderInfo, 0, 1s);
      internal::LeaderInfo info;
      if (m && info.ParseFromString(m->payload) && info.leader_id() == leader) return true;
    }
    return false;
  }

  // Reads raft-replies until a message of `type` (and `id` unless 0) arrives.
  std::optional<ipc::Message> AwaitReply(MessageType type, uint64_t id,
                                         std::chrono::milliseconds timeout = 5s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      while (auto m = replies_->TryRead()) {
        if (m->type == type && (id == 0 || m->id == id)) return m;
      }
      std::this_thread::sleep_for(1ms);
    }
    return std::nullopt;
  }

  // Reads committed frames, applying them as stored would (dropping index <= applied_),
  // until applied_ reaches `index`.
  bool ApplyUntil(uint64_t index, std::chrono::milliseconds timeout = 10s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (applied_ < index && std::chrono::steady_clock::now() < deadline) {
      auto m = committed_->TryRead();
      if (!m) {
        std::this_thread::sleep_for(1ms);
        continue;
      }
      if (m->type == MessageType::kLeaderState) continue;  // lease clocks' leadership note
      EXPECT_EQ(m->type, MessageType::kCommittedEntries);
      internal::EntryBatch batch;
      EXPECT_TRUE(batch.ParseFromString(m->payload));
      EXPECT_EQ(m->id, batch.entries(0).index()) << "frame id is the first index";
      for (const auto& e : batch.entries()) {
        ++frames_entries_seen_;
        if (e.index() <= applied_) continue;  // a re-sent entry: stored drops it
        EXPECT_EQ(e.index(), applied_ + 1) << "gap in committed entries";
        if (e.index() != applied_ + 1) return false;
        applied_ = e.index();
        log_[e.index()] = e;
      }
    }
    return applied_ >= index;
  }

  // Entries that look like nothing arrived for `quiet`.
  bool NothingCommittedFor(std::chrono::milliseconds quiet) {
    auto deadline = std::chrono::steady_clock::now() + quiet;
    while (std::chrono::steady_clock::now() < deadline) {
      auto m = committed_->TryRead();
      if (m && m->type != MessageType::kLeaderState) return false;
      std::this_thread::sleep_for(2ms);
    }
    return true;
  }

  // request ids of NORMAL entries applied, in order.
  std::vector<uint64_t> AppliedRequestIds() {
    std::vector<uint64_t> ids;
    for (const auto& [index, e] : log_) {
      if (e.type() != internal::Entry::NORMAL) continue;
      internal::Command cmd;
      EXPECT_TRUE(cmd.ParseFromString(e.data()));
      ids.push_back(cmd.request_id());
    }
    return ids;
  }

  fs::path data_dir_;
  std::unique_ptr<ipc::testing::ScopedSegment> segment_;
  std::unique_ptr<ipc::RingWriter> proposals_;
  std::unique_ptr<ipc::RingReader> replies_;
  std::unique_ptr<ipc::RingReader> committed_;
  std::unique_ptr<ipc::RingWriter> control_;
  pid_t pid_ = -1;
  int heartbeat_ms_ = 10;
  int election_ms_ = 100;
  uint64_t applied_ = 0;
  uint64_t frames_entries_seen_ = 0;
  std::map<uint64_t, internal::Entry> log_;
};

TEST_F(RaftdProcessTest, CommitsProposalsAndResendsFromWalAfterKillWithoutLossOrDuplicate) {
  StartRaftd();
  auto leader = AwaitReply(MessageType::kLeaderInfo, 0);
  ASSERT_TRUE(leader) << RaftdLog();
  internal::LeaderInfo info;
  ASSERT_TRUE(info.ParseFromString(leader->payload));
  EXPECT_EQ(info.leader_id(), kMemberId);
  EXPECT_EQ(info.term(), 1u);

  // Nothing is delivered before stored says where to resume.
  for (uint64_t id = 1; id <= 50; ++id) Propose(id);
  EXPECT_TRUE(NothingCommittedFor(100ms));
  Resume(0, 1);
  ASSERT_TRUE(ApplyUntil(51)) << "applied " << applied_ << "\n" << RaftdLog();
  EXPECT_EQ(log_[1].type(), internal::Entry::EMPTY);
  EXPECT_EQ(log_[1].term(), 1u);
  internal::Command cmd;
  ASSERT_TRUE(cmd.ParseFromString(log_[2].data()));
  EXPECT_EQ(cmd.request_id(), 1u);
  EXPECT_EQ(log_[2].data(), PutCommand(1).SerializeAsString())
      << "entry data is the kPropose payload without its deadline trailer, unchanged";

  // Duplicated proposal ids are dropped; the next ones follow without a gap.
  Propose(7);
  Propose(51);
  ASSERT_TRUE(ApplyUntil(52));
  EXPECT_TRUE(NothingCommittedFor(50ms));

  // Group commit: a burst of proposals costs far fewer fsyncs than proposals.
  const uint64_t fsyncs_before = (*segment_)->counter(ipc::Counter::kWalFsyncs).load();
  for (uint64_t id = 52; id <= 1051; ++id) Propose(id);
  ASSERT_TRUE(ApplyUntil(1052)) << RaftdLog();
  const uint64_t fsyncs = (*segment_)->counter(ipc::Counter::kWalFsyncs).load() - fsyncs_before;
  EXPECT_LT(fsyncs, 500u) << "one fdatasync per batch, not per proposal";
  EXPECT_GE((*segment_)->counter(ipc::Counter::kProposalsReceived).load(), 1052u);
  EXPECT_GE((*segment_)->counter(ipc::Counter::kEntriesCommitted).load(), 1052u);
  // etcd's leader metrics, and every WAL sync timed in etcd's fsync histogram.
  ipc::MetricsArea& metrics = (*segment_)->metrics();
  EXPECT_EQ(metrics.Get(ipc::Metric::kHasLeader), 1u);
  EXPECT_EQ(metrics.Get(ipc::Metric::kIsLeader), 1u);
  EXPECT_EQ(metrics.Get(ipc::Metric::kLeaderChanges), 1u);
  uint64_t observed = 0;
  for (const auto& b : metrics.histogram(ipc::Histogram::kWalFsync).buckets) observed += b.load();
  EXPECT_GE(observed, fsyncs);

  auto read_reply_for = [&](uint64_t id) -> std::optional<internal::ReadIndexReply> {
    if (!proposals_->Write(MessageType::kReadIndex, id, "", 1s).ok()) return std::nullopt;
    auto m = AwaitReply(MessageType::kReadIndexReply, id);
    if (!m) return std::nullopt;
    internal::ReadIndexReply r;
    if (!r.ParseFromString(m->payload)) return std::nullopt;
    return r;
  };
  auto read = read_reply_for(9001);
  ASSERT_TRUE(read);
  EXPECT_EQ(read->read_index(), 1052u);
  EXPECT_EQ(read->term(), 1u);

  // SIGKILL, restart: stored (this test) lost its last 500 entries and resumes at 552.
  KillRaftd();
  StartRaftd();
  leader = AwaitReply(MessageType::kLeaderInfo, 0);
  ASSERT_TRUE(leader) << RaftdLog();
  ASSERT_TRUE(info.ParseFromString(leader->payload));
  EXPECT_EQ(info.term(), 2u) << "the term grows across restarts";
  applied_ = 552;
  for (auto it = log_.upper_bound(552); it != log_.end();) it = log_.erase(it);
  Resume(552, 1);
  ASSERT_TRUE(ApplyUntil(1053)) << RaftdLog();
  EXPECT_EQ(log_[1053].type(), internal::Entry::EMPTY);
  EXPECT_EQ(log_[1053].term(), 2u);
  Propose(2000);
  ASSERT_TRUE(ApplyUntil(1054));
  std::vector<uint64_t> ids = AppliedRequestIds();
  ASSERT_EQ(ids.size(), 1052u);
  for (uint64_t i = 0; i < 1051; ++i) ASSERT_EQ(ids[i], i + 1) << "lost or duplicated";
  EXPECT_EQ(ids.back(), 2000u);

  read = read_reply_for(9002);
  ASSERT_TRUE(read);
  EXPECT_EQ(read->read_index(), 1054u);
  EXPECT_EQ(read->term(), 2u);

  // SIGTERM: clean exit, with the latest commit index on disk.
  kill(pid_, SIGTERM);
  EXPECT_EQ(WaitExit(5s), 0) << RaftdLog();
  auto wal = wal::ReadWal((data_dir_ / "member" / "wal").string());
  ASSERT_TRUE(wal.ok()) << wal.status().ToString();
  EXPECT_EQ(wal->hard_state.term, 2u);
  EXPECT_EQ(wal->hard_state.vote, kMemberId);
  EXPECT_EQ(wal->hard_state.commit, 1054u);
  EXPECT_EQ(wal->prev_index + wal->entries.size(), 1054u);
  EXPECT_FALSE(wal->torn_tail);
}

TEST_F(RaftdProcessTest, HoldsEntriesAfterStoredRestartsUntilItsResumeFrom) {
  StartRaftd();
  ASSERT_TRUE(AwaitReply(MessageType::kLeaderInfo, 0)) << RaftdLog();
  Resume(0, 1);
  for (uint64_t id = 1; id <= 10; ++id) Propose(id);
  ASSERT_TRUE(ApplyUntil(11)) << RaftdLog();

  // stored "crashes": the supervisor bumps its epoch (reaped) and again (respawned).
  SetEpoch(Component::kStored, 3);
  (*segment_)->WakeAll();
  std::this_thread::sleep_for(50ms);
  for (uint64_t id = 11; id <= 20; ++id) Propose(id);
  EXPECT_TRUE(NothingCommittedFor(200ms)) << "entries pushed into the void";
  // A stale ResumeFrom of the dead incarnation does not restart delivery.
  Resume(11, 1);
  EXPECT_TRUE(NothingCommittedFor(100ms));
  // The new stored recovered applied index 5 only.
  applied_ = 5;
  for (auto it = log_.upper_bound(5); it != log_.end();) it = log_.erase(it);
  Resume(5, 3);
  ASSERT_TRUE(ApplyUntil(21)) << RaftdLog();
  std::vector<uint64_t> ids = AppliedRequestIds();
  ASSERT_EQ(ids.size(), 20u);
  for (uint64_t i = 0; i < 20; ++i) EXPECT_EQ(ids[i], i + 1);

  // Durable applied lets raftd forget entries: a resume below it cannot be served.
  internal::DurableApplied durable;
  durable.set_index(15);
  ipc::RingWriter control(**segment_, RingId::kStoreControl, 3);
  ASSERT_TRUE(control.Write(MessageType::kDurableApplied, 0, durable.SerializeAsString(), 1s).ok());
  std::this_thread::sleep_for(50ms);
  applied_ = 15;
  Resume(15, 3);
  Propose(21);
  ASSERT_TRUE(ApplyUntil(22)) << RaftdLog();
}

// Leases: stored hears "leader, term T" ahead of the entries after each kResumeFrom, and
// the revocations it proposes are proposed only under the term they name.
TEST_F(RaftdProcessTest, TellsStoredItLeadsAndProposesLeaseExpiriesOnlyInItsTerm) {
  StartRaftd();
  ASSERT_TRUE(AwaitReply(MessageType::kLeaderInfo, 0)) << RaftdLog();
  auto await_leader_state = [&](uint64_t stored_epoch) {
    Resume(applied_, stored_epoch);
    for (int i = 0; i < 2000; ++i) {
      auto m = committed_->TryRead();
      if (!m) {
        std::this_thread::sleep_for(1ms);
        continue;
      }
      EXPECT_EQ(m->type, MessageType::kLeaderState) << "entries before the leader state";
      internal::LeaderState st;
      EXPECT_TRUE(st.ParseFromString(m->payload));
      EXPECT_TRUE(st.is_leader());
      EXPECT_EQ(st.term(), 1u);
      return;
    }
    ADD_FAILURE() << "no kLeaderState";
  };
  await_leader_state(1);
  ASSERT_TRUE(ApplyUntil(1)) << RaftdLog();

  auto propose_revokes = [&](uint64_t term, std::vector<int64_t> ids) {
    internal::LeaseProposals p;
    p.set_term(term);
    for (int64_t id : ids) {
      internal::Command c;
      c.mutable_lease_revoke()->set_id(id);
      p.add_commands(c.SerializeAsString());
    }
    ipc::RingWriter w(**segment_, RingId::kStoreControl, 1);
    ASSERT_TRUE(w.Write(MessageType::kLeaseProposals, term, p.SerializeAsString(), 1s).ok());
  };
  propose_revokes(7, {100});  // a term this raftd does not lead in: dropped
  EXPECT_TRUE(NothingCommittedFor(200ms));
  propose_revokes(1, {101, 102});
  ASSERT_TRUE(ApplyUntil(3)) << RaftdLog();
  for (uint64_t i : {2u, 3u}) {
    internal::Command c;
    ASSERT_TRUE(c.ParseFromString(log_[i].data()));
    EXPECT_EQ(c.lease_revoke().id(), static_cast<int64_t>(99 + i));
    EXPECT_EQ(c.request_id(), 0u);
  }
  // A restarted stored is told again, before anything else.
  SetEpoch(Component::kStored, 3);
  (*segment_)->WakeAll();
  std::this_thread::sleep_for(50ms);
  await_leader_state(3);
}

TEST_F(RaftdProcessTest, TellsARestartedFrontendWhoLeadsAndAnswersReadIndex) {
  StartRaftd();
  ASSERT_TRUE(AwaitReply(MessageType::kLeaderInfo, 0)) << RaftdLog();
  EXPECT_FALSE(AwaitReply(MessageType::kLeaderInfo, 0, 100ms)) << "no change, no message";
  SetEpoch(Component::kFrontend, 2);
  (*segment_)->WakeAll();
  auto again = AwaitReply(MessageType::kLeaderInfo, 0);
  ASSERT_TRUE(again);
  internal::LeaderInfo info;
  ASSERT_TRUE(info.ParseFromString(again->payload));
  EXPECT_EQ(info.leader_id(), kMemberId);
  EXPECT_EQ(info.term(), 1u);
  ASSERT_TRUE(proposals_->Write(MessageType::kReadIndex, 77, "", 1s).ok());
  auto read = AwaitReply(MessageType::kReadIndexReply, 77);
  ASSERT_TRUE(read);
  internal::ReadIndexReply r;
  ASSERT_TRUE(r.ParseFromString(read->payload));
  EXPECT_EQ(r.read_index(), 1u) << "the leader's empty entry";
}

TEST_F(RaftdProcessTest, DeliveredEntriesSurviveKillsUnderLoad) {
  std::map<uint64_t, std::pair<uint64_t, uint64_t>> delivered;  // index -> (term, request id)
  uint64_t next_id = 1;
  for (int round = 0; round < 4; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    StartRaftd();
    ASSERT_TRUE(AwaitReply(MessageType::kLeaderInfo, 0)) << RaftdLog();
    // Re-read the whole log: whatever was delivered before a kill is there, unchanged.
    applied_ = 0;
    log_.clear();
    Resume(0, 1);
    const uint64_t before = delivered.empty() ? 0 : delivered.rbegin()->first;
    ASSERT_TRUE(ApplyUntil(before + 1)) << RaftdLog();
    for (const auto& [index, v] : delivered) {
      ASSERT_TRUE(log_.count(index)) << index;
      EXPECT_EQ(log_[index].term(), v.first) << index;
      internal::Command cmd;
      if (log_[index].type() == internal::Entry::NORMAL) {
        ASSERT_TRUE(cmd.ParseFromString(log_[index].data()));
      }
      EXPECT_EQ(cmd.request_id(), v.second) << index;
    }
    // A burst, part of it delivered, then SIGKILL in the middle of it.
    for (int i = 0; i < 300; ++i) Propose(next_id++);
    ASSERT_TRUE(ApplyUntil(applied_ + 100)) << RaftdLog();
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
    for (const auto& [index, e] : log_) {
      internal::Command cmd;
      if (e.type() == internal::Entry::NORMAL) {
        ASSERT_TRUE(cmd.ParseFromString(e.data()));
      }
      delivered[index] = {e.term(), cmd.request_id()};
    }
    SetEpoch(Component::kRaftd, Epoch(Component::kRaftd) + 1);
    // Drain what the dead incarnation left on the rings.
    while (committed_->TryRead()) {
    }
    while (replies_->TryRead()) {
    }
  }
  std::set<uint64_t> ids;
  for (const auto& [index, v] : delivered) {
    if (v.second != 0) {
      EXPECT_TRUE(ids.insert(v.second).second) << "request twice: " << v.second;
    }
  }
  EXPECT_GE(ids.size(), 400u);
}

TEST_F(RaftdProcessTest, StreamsAnEntryLargerThanTheCommittedRing) {
  StartRaftd();
  ASSERT_TRUE(AwaitReply(MessageType::kLeaderInfo, 0)) << RaftdLog();
  Resume(0, 1);
  internal::Command cmd;
  cmd.set_request_id(42);
  cmd.mutable_put()->set_key("big");
  cmd.mutable_put()->set_value(std::string(10u << 20, 'b'));  // the committed ring is 8 MiB
  WriteRequest(MessageType::kPropose, 42, cmd.SerializeAsString());
  Propose(43);
  ASSERT_TRUE(ApplyUntil(3)) << RaftdLog();
  ASSERT_EQ(log_[2].data().size(), cmd.ByteSizeLong());
  EXPECT_EQ(AppliedRequestIds(), (std::vector<uint64_t>{42, 43}));
}

// A committed entry near --max-request-bytes (1.5 MiB) with a committed ring far smaller
// than it, and a stored that does not drain for a while: raftd streams the entry in chunks
// as room appears, but its loop (which ticks Raft and sends heartbeats) never waits for
// the ring. Measured by how fast it answers read-index requests meanwhile; before, each
// turn blocked up to election-timeout/4 in a chunked write.
TEST_F(RaftdProcessTest, AnEntryLargerThanTheCommittedRingNeverStallsTheLoop) {
  ipc::SegmentLayout layout;
  layout.ring_bytes[static_cast<int>(RingId::kCommitted)] = 256u << 10;
  UseLayout(layout);
  heartbeat_ms_ = 100;
  election_ms_ = 2000;  // the old bound on one wait was 2000 / 4 = 500 ms
  StartRaftd();
  ASSERT_TRUE(AwaitReply(MessageType::kLeaderInfo, 0)) << RaftdLog();
  Resume(0, 1);
  ASSERT_TRUE(ApplyUntil(1)) << RaftdLog();
  internal::Command cmd;
  cmd.set_request_id(42);
  cmd.set_origin_member_id(kMemberId);
  cmd.mutable_put()->set_key("big");
  cmd.mutable_put()->set_value(std::string(1536u << 10, 'b'));
  WriteRequest(MessageType::kPropose, 42, cmd.SerializeAsString());
  Propose(43);
  std::this_thread::sleep_for(200ms);  // committed; the ring is full and nobody drains

  std::vector<std::chrono::microseconds> latencies;
  for (uint64_t id = 1000; id < 1030; ++id) {
    const auto start = std::chrono::steady_clock::now();
    ASSERT_TRUE(proposals_->Write(MessageType::kReadIndex, id, "", 1s).ok());
    ASSERT_TRUE(AwaitReply(MessageType::kReadIndexReply, id)) << RaftdLog();
    latencies.push_back(std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - start));
    std::this_thread::sleep_for(std::chrono::milliseconds(7 * (id % 5)));
  }
  std::sort(latencies.begin(), latencies.end());
  const auto median = latencies[latencies.size() / 2];
  RecordProperty("read_index_median_us", static_cast<int>(median.count()));
  RecordProperty("read_index_max_us", static_cast<int>(latencies.back().count()));
  EXPECT_LT(median, 50ms) << "the loop waits for the committed ring (max "
                          << latencies.back().count() << " us)";

  // Drained, the big entry arrives whole and in order, then the next one.
  ASSERT_TRUE(ApplyUntil(3)) << RaftdLog();
  ASSERT_EQ(log_[2].data().size(), cmd.ByteSizeLong());
  EXPECT_EQ(log_[2].data(), cmd.SerializeAsString());
  EXPECT_EQ(AppliedRequestIds(), (std::vector<uint64_t>{42, 43}));
  EXPECT_EQ(committed_->dropped_chunks(), 0u);
}

TEST_F(RaftdProcessTest, StoredAheadOfTheWalStopsRaftdInsteadOfReusingIndexes) {
  StartRaftd();
  ASSERT_TRUE(AwaitReply(MessageType::kLeaderInfo, 0)) << RaftdLog();
  // stored applied up to 100, but this WAL (lost and recreated) holds only index 1.
  Resume(100, 1);
  EXPECT_EQ(WaitExit(5s), 2) << RaftdLog();
  const std::string log = RaftdLog();
  EXPECT_NE(log.find("stored has applied index 100 but the WAL ends at index 1"),
            std::string::npos)
      << log;
}

TEST_F(RaftdProcessTest, RefusesToStartOnACorruptWalNamingTheFile) {
  StartRaftd();
  ASSERT_TRUE(AwaitReply(MessageType::kLeaderInfo, 0)) << RaftdLog();
  Resume(0, 1);
  for (uint64_t id = 1; id <= 5; ++id) Propose(id);
  ASSERT_TRUE(ApplyUntil(6));
  kill(pid_, SIGTERM);
  ASSERT_EQ(WaitExit(5s), 0) << RaftdLog();

  // Flip a byte of the first entry record (a synced record followed by later groups).
  const fs::path wal = data_dir_ / "member" / "wal";
  fs::path segment;
  for (const auto& de : fs::directory_iterator(wal)) segment = de.path();
  std::fstream f(segment, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(16 + 40 + 16 + 24 + 8);
  f.put('\x7f');
  f.close();
  StartRaftd();
  EXPECT_EQ(WaitExit(5s), 2);
  const std::string log = RaftdLog();
  EXPECT_NE(log.find("WAL recovery failed"), std::string::npos) << log;
  EXPECT_NE(log.find(segment.filename().string()), std::string::npos) << log;
}


// A loopback port that was free a moment ago.
using test_support::FreePort;

// Another member of raftd's cluster, played by the test: member `id` on a real
// PeerTransport (cluster 1234) that knows raftd (abc) at `raftd_url`, and a thread that
// every `period` hands `step` what arrived and sends what `step` put in `out`.
class FakePeer {
 public:
  using Step = std::function<void(const std::vector<raft::Message>& in,
                                  std::vector<raft::Message>* out)>;
  FakePeer(uint64_t id, const std::string& name, const std::string& raftd_url) {
    transport::TransportOptions t;
    t.cluster_id = 0x1234;
    t.member_id = id;
    t.name = name;
    t.listen_urls = {"http://127.0.0.1:0"};
    t.peers = {{kMemberId, "abc", {raftd_url}}};
    auto started = transport::PeerTransport::Start(std::move(t));
    if (!started.ok()) {
      status_ = started.status();
      return;
    }
    transport_ = std::move(started).value();
    url_ = "http://127.0.0.1:" + std::to_string(transport_->listen_ports().at(0));
  }
  ~FakePeer() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  const Status& status() const { return status_; }
  const std::string& url() const { return url_; }

  void Run(std::chrono::milliseconds period, Step step) {
    thread_ = std::thread([this, period, step = std::move(step)] {
      std::vector<raft::Message> in, out;
      while (!stop_.load()) {
        in.clear();
        out.clear();
        transport_->TakeReceived(&in);
        step(in, &out);
        transport_->Send(out);
        std::this_thread::sleep_for(period);
      }
    });
  }

 private:
  Status status_;
  std::unique_ptr<transport::PeerTransport> transport_;
  std::string url_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// A forwarded read-index request whose answer is lost (a dropped message, no leader
// change) is asked again, and one never answered fails with etcd's "request timed out"
// after the request timeout instead of waiting in raftd's table forever. The test plays
// the leader (member def) over a real peer transport: it heartbeats the real raftd (member
// abc, a follower) and drops or answers the reads abc forwards.
TEST_F(RaftdProcessTest, ForwardedReadIndexWhoseAnswerIsLostIsAskedAgainThenTimesOut) {
  constexpr uint64_t kLeader = 0xdef;
  constexpr uint64_t kTerm = 100;
  // What the fake leader saw and does; declared first, so they outlive its thread.
  std::mutex mu;
  std::map<uint64_t, int> forwarded;  // request id -> times abc asked
  std::set<uint64_t> answer;          // request ids to answer from now on
  const std::string own_url = "http://127.0.0.1:" + std::to_string(FreePort());
  FakePeer leader(kLeader, "leader", own_url);
  ASSERT_TRUE(leader.status().ok()) << leader.status().ToString();
  StartRaftd({"--cluster-id=1234", "--listen-peer-urls=" + own_url,
              "--members=abc=follower=" + own_url + ",def=leader=" + leader.url()});

  // The fake leader: heartbeats every 10 ms; answers forwarded reads only when told to.
  leader.Run(10ms, [&](const std::vector<raft::Message>& in, std::vector<raft::Message>* out) {
    raft::Message hb;
    hb.type = raft::MessageType::kHeartbeat;
    hb.from = kLeader;
    hb.to = kMemberId;
    hb.term = kTerm;
    out->push_back(hb);
    for (const raft::Message& m : in) {
      if (m.type != raft::MessageType::kReadIndex) continue;
      std::vector<uint64_t> ids;
      if (m.entries.empty()) ids.push_back(m.context);
      for (const auto& e : m.entries) ids.push_back(e.index);
      std::lock_guard lock(mu);
      for (uint64_t id : ids) {
        ++forwarded[id];
        if (!answer.count(id)) continue;  // lost
        raft::Message r;
        r.type = raft::MessageType::kReadIndexResp;
        r.from = kLeader;
        r.to = kMemberId;
        r.term = kTerm;
        r.index = 0;
        r.context = id;
        out->push_back(r);
      }
    }
  });

  // abc follows def.
  ASSERT_TRUE(AwaitLeader(kLeader)) << RaftdLog();

  // The first forward of read 77 is lost; abc asks again and gets its answer.
  ASSERT_TRUE(proposals_->Write(MessageType::kReadIndex, 77, "", 1s).ok());
  auto deadline = std::chrono::steady_clock::now() + 3s;
  for (;;) {
    {
      std::lock_guard lock(mu);
      if (forwarded[77] >= 1) {
        answer.insert(77);
        break;
      }
    }
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "abc never forwarded the read";
    std::this_thread::sleep_for(1ms);
  }
  auto read = AwaitReply(MessageType::kReadIndexReply, 77, 3s);
  ASSERT_TRUE(read) << "a read whose forward was lost was never asked again";
  {
    std::lock_guard lock(mu);
    EXPECT_GE(forwarded[77], 2);
  }
  // etcd_server_slow_read_indexes_total: read 77 waited past the retry interval.
  ipc::MetricsArea& metrics = (*segment_)->metrics();
  const uint64_t slow_after_77 = metrics.Get(ipc::Metric::kSlowReadIndexes);
  EXPECT_GE(slow_after_77, 1u);

  // Read 78 is never answered: "etcdserver: request timed out" after etcd's request
  // timeout (5 s + 2 election timeouts), and abc stops waiting for it.
  const auto asked = std::chrono::steady_clock::now();
  ASSERT_TRUE(proposals_->Write(MessageType::kReadIndex, 78, "", 1s).ok());
  auto err = AwaitReply(MessageType::kError, 78, 10s);
  ASSERT_TRUE(err) << "a read never answered waits forever";
  const auto waited = std::chrono::steady_clock::now() - asked;
  EXPECT_GE(waited, 5000ms);
  internal::ErrorReply e;
  ASSERT_TRUE(e.ParseFromString(err->payload));
  EXPECT_EQ(e.code(), 14);
  EXPECT_EQ(e.message(), "etcdserver: request timed out");
  // Each retry of 78 and its timeout were slow read indexes; the timeout also failed it.
  EXPECT_GE(metrics.Get(ipc::Metric::kSlowReadIndexes), slow_after_77 + 5);
  EXPECT_GE(metrics.Get(ipc::Metric::kReadIndexesFailed), 1u);
  std::lock_guard lock(mu);
  EXPECT_GE(forwarded[78], 5) << "asked again every 500 ms meanwhile";
}


// Member def over a real peer transport, for the leaderless-proposal tests: silent (abc has
// no leader) until set_leading(true), then it sends abc a heartbeat of `term` every 10 ms;
// every kPropose abc forwards to it goes to `on_propose`, on its own thread. Stops on
// destruction.
class FakeLeader {
 public:
  FakeLeader(transport::PeerTransport& peer, uint64_t term,
             std::function<void(const raft::Message&)> on_propose)
      : peer_(peer), term_(term), on_propose_(std::move(on_propose)), thread_([this] { Run(); }) {}
  ~FakeLeader() {
    stop_ = true;
    thread_.join();
  }
  FakeLeader(const FakeLeader&) = delete;
  FakeLeader& operator=(const FakeLeader&) = delete;

  void set_leading(bool on) { leading_ = on; }

 private:
  void Run() {
    std::vector<raft::Message> in, out;
    while (!stop_.load()) {
      if (leading_.load()) {
        raft::Message hb;
        hb.type = raft::MessageType::kHeartbeat;
        hb.from = 0xdef;
        hb.to = kMemberId;
        hb.term = term_;
        out.push_back(hb);
      }
      in.clear();
      peer_.TakeReceived(&in);
      for (const raft::Message& m : in) {
        if (m.type == raft::MessageType::kPropose) on_propose_(m);
      }
      peer_.Send(out);
      out.clear();
      std::this_thread::sleep_for(10ms);
    }
  }

  transport::PeerTransport& peer_;
  const uint64_t term_;
  const std::function<void(const raft::Message&)> on_propose_;
  std::atomic<bool> leading_{false};
  std::atomic<bool> stop_{false};
  std::thread thread_;  // last: starts once the members above exist
};

// etcd 3.4 lets a proposal made while no leader is known wait for one (its raft node does
// not read proposals without a leader) until the request timeout: it is proposed as soon
// as a leader appears, and one that waited too long fails as etcd's do (Unknown "context
// deadline exceeded") and is never proposed. The test plays member def over a real peer
// transport: silent at first (abc has no leader), then leading at term 100, then silent.
TEST_F(RaftdProcessTest, ProposalWithoutALeaderWaitsForOneOrTimesOutUnproposed) {
  constexpr uint64_t kLeader = 0xdef;
  constexpr uint64_t kTerm = 100;
  const std::string own_url = "http://127.0.0.1:" + std::to_string(FreePort());
  transport::TransportOptions t;
  t.cluster_id = 0x1234;
  t.member_id = kLeader;
  t.name = "leader";
  t.listen_urls = {"http://127.0.0.1:0"};
  t.peers = {{kMemberId, "follower", {own_url}}};
  auto leader = transport::PeerTransport::Start(std::move(t));
  ASSERT_TRUE(leader.ok()) << leader.status().ToString();
  const std::string leader_url =
      "http://127.0.0.1:" + std::to_string((*leader)->listen_ports().at(0));
  StartRaftd({"--cluster-id=1234", "--listen-peer-urls=" + own_url,
              "--members=abc=follower=" + own_url + ",def=leader=" + leader_url});

  std::mutex mu;
  std::map<uint64_t, int> proposed;  // request id -> times abc forwarded it to def
  FakeLeader fake_leader(**leader, kTerm, [&](const raft::Message& m) {
    std::lock_guard lock(mu);
    for (const auto& e : m.entries) {
      internal::Command cmd;
      if (cmd.ParseFromString(e.data)) ++proposed[cmd.request_id()];
    }
  });
  auto times_proposed = [&](uint64_t id) {
    std::lock_guard lock(mu);
    return proposed.count(id) ? proposed[id] : 0;
  };

  // No leader (def is silent): the proposal is neither refused nor forwarded.
  std::this_thread::sleep_for(300ms);
  Propose(1);
  EXPECT_FALSE(AwaitReply(MessageType::kError, 1, 1s)) << "refused at once without a leader";
  EXPECT_EQ(times_proposed(1), 0);

  // def leads: abc forwards the waiting proposal to it, once.
  fake_leader.set_leading(true);
  auto deadline = std::chrono::steady_clock::now() + 3s;
  while (times_proposed(1) == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_EQ(times_proposed(1), 1) << "the waiting proposal was not proposed\n" << RaftdLog();

  // def falls silent: once abc gives up on it, a proposal waits the request timeout
  // (5 s + 2 x 100 ms), fails with etcd's error, and is never proposed later.
  fake_leader.set_leading(false);
  deadline = std::chrono::steady_clock::now() + 5s;
  bool no_leader = false;
  while (!no_leader && std::chrono::steady_clock::now() < deadline) {
    auto m = AwaitReply(MessageType::kLeaderInfo, 0, 1s);
    internal::LeaderInfo info;
    no_leader = m && info.ParseFromString(m->payload) && info.leader_id() == 0;
  }
  ASSERT_TRUE(no_leader) << RaftdLog();
  const auto asked = std::chrono::steady_clock::now();
  Propose(2);
  auto err = AwaitReply(MessageType::kError, 2, 10s);
  ASSERT_TRUE(err) << "a proposal without a leader waits forever";
  const auto waited = std::chrono::steady_clock::now() - asked;
  // The frame's deadline is etcd's request timeout (5 s + 2 x 100 ms) after it was written;
  // raftd gives up 2 ticks (10 ms here) + 250 ms before it: ~4.93 s.
  EXPECT_GE(waited, 4900ms);
  EXPECT_LE(waited, 6500ms);
  internal::ErrorReply e;
  ASSERT_TRUE(e.ParseFromString(err->payload));
  EXPECT_EQ(e.code(), 2);  // etcd 3.4: gRPC Unknown
  EXPECT_EQ(e.message(), "context deadline exceeded");
  fake_leader.set_leading(true);
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(times_proposed(2), 0) << "a proposal that timed out was proposed";
}

}  // namespace
}  // namespace rusd::raftd

namespace rusd::raftd {
namespace {

// etcd_server_heartbeat_send_failures_total: a leader whose loop is held up (here: stopped
// with SIGSTOP, as a long disk stall or an overloaded machine would) sends its next
// heartbeats more than 2 heartbeat intervals after the previous ones, and counts them.
// The test plays a voter (member def) over a real peer transport that elects abc.
TEST_F(RaftdProcessTest, LeaderCountsHeartbeatsItSendsLate) {
  constexpr uint64_t kVoter = 0xdef;
  const std::string own_url = "http://127.0.0.1:" + std::to_string(FreePort());
  FakePeer voter(kVoter, "voter", own_url);
  ASSERT_TRUE(voter.status().ok()) << voter.status().ToString();
  // The 300 ms stop below must stay under the election timeout: a leader whose check-quorum
  // saw no answers for an election timeout steps down, and its next heartbeat never comes.
  election_ms_ = 1000;
  StartRaftd({"--cluster-id=1234", "--listen-peer-urls=" + own_url,
              "--members=abc=leader=" + own_url + ",def=voter=" + voter.url()});

  // The fake voter grants every vote and acknowledges heartbeats and appends.
  voter.Run(2ms, [&](const std::vector<raft::Message>& in, std::vector<raft::Message>* out) {
    for (const raft::Message& m : in) {
      raft::Message r;
      r.from = kVoter;
      r.to = m.from;
      r.term = m.term;
      if (m.type == raft::MessageType::kPreVote) {
        r.type = raft::MessageType::kPreVoteResp;
      } else if (m.type == raft::MessageType::kVote) {
        r.type = raft::MessageType::kVoteResp;
      } else if (m.type == raft::MessageType::kHeartbeat) {
        r.type = raft::MessageType::kHeartbeatResp;
        r.context = m.context;
      } else if (m.type == raft::MessageType::kAppend) {
        r.type = raft::MessageType::kAppendResp;
        r.index = m.entries.empty() ? m.index : m.entries.back().index;
      } else {
        continue;
      }
      out->push_back(r);
    }
  });
  ASSERT_TRUE(AwaitLeader(kMemberId)) << RaftdLog();

  ipc::MetricsArea& metrics = (*segment_)->metrics();
  const uint64_t before = metrics.Get(ipc::Metric::kHeartbeatSendFailures);
  // Up to five stops: one that catches the loop between a Ready's heartbeats and the next
  // turn can resume without a heartbeat due at once (seen on a quiet machine).
  for (int attempt = 0; attempt < 5; ++attempt) {
    ASSERT_EQ(kill(pid_, SIGSTOP), 0);
    std::this_thread::sleep_for(300ms);  // 30 heartbeat intervals of 10 ms
    ASSERT_EQ(kill(pid_, SIGCONT), 0);
    const auto deadline = std::chrono::steady_clock::now() + 2s;
    while (metrics.Get(ipc::Metric::kHeartbeatSendFailures) == before &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
    }
    if (metrics.Get(ipc::Metric::kHeartbeatSendFailures) > before) break;
  }
  EXPECT_GT(metrics.Get(ipc::Metric::kHeartbeatSendFailures), before) << RaftdLog();
  EXPECT_NE(RaftdLog().find("later than 2 heartbeat intervals"), std::string::npos);
}

}  // namespace
}  // namespace rusd::raftd

namespace rusd::raftd {
namespace {

// A frame may sit in the proposals ring while raftd is down (killed, restarted by the
// supervisor). The frontend answers each request at its deadline ("request timed out") and
// never re-sends it, so raftd must not propose one it reads at or after the deadline the
// frame carries (ipc/request_trailer.h): the client was already told, and may have moved
// on. Such a frame is dropped silently (the frontend's answer is the only one).
TEST_F(RaftdProcessTest, RequestsReadAfterTheirDeadlineAreNeverProposed) {
  StartRaftd();
  ASSERT_TRUE(AwaitReply(MessageType::kLeaderInfo, 0)) << RaftdLog();
  Resume(0, 1);
  Propose(1);
  ASSERT_TRUE(ApplyUntil(2)) << RaftdLog();

  KillRaftd();
  Propose(2, ipc::RequestClock::now() + 300ms);  // passes while raftd is down
  Propose(3);                                    // the request timeout: still waited for
  Propose(4, ipc::RequestClock::now() - 1ms);    // already past when written
  std::this_thread::sleep_for(400ms);
  StartRaftd();
  ASSERT_TRUE(AwaitReply(MessageType::kLeaderInfo, 0)) << RaftdLog();
  Resume(applied_, 1);
  ASSERT_TRUE(ApplyUntil(4)) << RaftdLog();  // index 3: the new term's empty entry
  EXPECT_TRUE(NothingCommittedFor(200ms));
  EXPECT_EQ(AppliedRequestIds(), (std::vector<uint64_t>{1, 3}));
  EXPECT_FALSE(AwaitReply(MessageType::kError, 2, 100ms)) << "the frontend answers it";
  EXPECT_NE(RaftdLog().find("dropped 2 requests read after their deadline"), std::string::npos)
      << RaftdLog();
}

// A request frame without the deadline trailer (a frontend of another build: they must be
// one build, ipc/request_trailer.h) is refused, never proposed: proposing it would cut 16
// bytes off its Command, or put them into the WAL. One error line per turn, not per frame.
TEST_F(RaftdProcessTest, RequestsWithoutADeadlineTrailerAreRefused) {
  StartRaftd();
  ASSERT_TRUE(AwaitReply(MessageType::kLeaderInfo, 0)) << RaftdLog();
  Resume(0, 1);
  ASSERT_TRUE(ApplyUntil(1)) << RaftdLog();

  ASSERT_EQ(kill(pid_, SIGSTOP), 0);  // so that one turn reads both
  for (uint64_t id : {21, 22}) {
    ASSERT_TRUE(proposals_
                    ->Write(MessageType::kPropose, id, PutCommand(id).SerializeAsString(), 5s)
                    .ok());
  }
  ASSERT_EQ(kill(pid_, SIGCONT), 0);
  for (uint64_t id : {21, 22}) {
    auto err = AwaitReply(MessageType::kError, id, 3s);
    ASSERT_TRUE(err) << "a frame without a trailer got no answer\n" << RaftdLog();
    internal::ErrorReply e;
    ASSERT_TRUE(e.ParseFromString(err->payload));
    EXPECT_EQ(e.code(), 3);  // InvalidArgument
    EXPECT_EQ(e.message(), "rusd: malformed request frame (no deadline)");
  }
  Propose(23);  // a well-formed one still goes through
  ASSERT_TRUE(ApplyUntil(2)) << RaftdLog();
  EXPECT_TRUE(NothingCommittedFor(200ms));
  EXPECT_EQ(AppliedRequestIds(), (std::vector<uint64_t>{23}));
  EXPECT_NE(RaftdLog().find("refused 2 frames without a deadline trailer"), std::string::npos)
      << RaftdLog();
}

// A frame written by a frontend that has since died (the supervisor bumped the frontend's
// epoch when it reaped it) is never proposed: its client saw the connection break (an
// ambiguous outcome, which clientv3 does not retry) and nobody waits for the answer, as
// when an etcd process dies with a request it had not proposed yet.
TEST_F(RaftdProcessTest, RequestsOfAFrontendThatDiedAreNeverProposed) {
  StartRaftd();
  ASSERT_TRUE(AwaitReply(MessageType::kLeaderInfo, 0)) << RaftdLog();
  Resume(0, 1);
  ASSERT_TRUE(ApplyUntil(1)) << RaftdLog();

  KillRaftd();  // so that the frames stay in the ring
  Propose(10);  // frontend epoch 1
  // Frontend 1 dies and is reaped (epoch 2); its successor starts (epoch 3).
  SetEpoch(Component::kFrontend, 3);
  proposals_.reset();
  proposals_ = std::make_unique<ipc::RingWriter>(**segment_, RingId::kProposals, 3);
  Propose(11);
  StartRaftd();
  ASSERT_TRUE(AwaitReply(MessageType::kLeaderInfo, 0)) << RaftdLog();
  Resume(applied_, 1);
  ASSERT_TRUE(ApplyUntil(3)) << RaftdLog();  // index 2: the new term's empty entry
  EXPECT_TRUE(NothingCommittedFor(200ms));
  EXPECT_EQ(AppliedRequestIds(), (std::vector<uint64_t>{11}));
}

// A clean stop (SIGTERM) while requests wait for a leader answers them as etcd answers the
// requests it is waiting on when it stops: Unavailable "etcdserver: server stopped" (they
// were never proposed). Before, they got no answer and their clients waited out the
// request timeout.
TEST_F(RaftdProcessTest, ACleanStopAnswersTheRequestsWaitingForALeader) {
  const std::string own_url = "http://127.0.0.1:" + std::to_string(FreePort());
  const std::string absent_url = "http://127.0.0.1:" + std::to_string(FreePort());
  StartRaftd({"--cluster-id=1234", "--listen-peer-urls=" + own_url,
              "--members=abc=follower=" + own_url + ",def=absent=" + absent_url});
  std::this_thread::sleep_for(300ms);  // def never answers: no leader
  Propose(30);
  EXPECT_FALSE(AwaitReply(MessageType::kError, 30, 300ms)) << "it waits for a leader";
  kill(pid_, SIGTERM);
  EXPECT_EQ(WaitExit(5s), 0) << RaftdLog();
  auto err = AwaitReply(MessageType::kError, 30, 1s);
  ASSERT_TRUE(err) << "a waiting request got no answer on a clean stop\n" << RaftdLog();
  internal::ErrorReply e;
  ASSERT_TRUE(e.ParseFromString(err->payload));
  EXPECT_EQ(e.code(), 14);  // Unavailable
  EXPECT_EQ(e.message(), "etcdserver: server stopped");
}

// Without a leader, requests wait in raftd (leader_wait_queue.h) and are handed on in the
// order they came through the ring, a member change included, even when the proposals
// before it were read in the same turn. A waiting request gives up shortly before the
// deadline its frame carries, not a fixed time after raftd read it; one whose frontend died
// meanwhile is dropped. The test plays member def over a real peer transport: silent (abc
// has no leader), then leading, and records what abc forwards to it, in order.
TEST_F(RaftdProcessTest, LeaderlessRequestsKeepRingOrderAndGiveUpAtTheirDeadline) {
  constexpr uint64_t kLeader = 0xdef;
  constexpr uint64_t kConfChangeLabel = ~0ull;
  const std::string own_url = "http://127.0.0.1:" + std::to_string(FreePort());
  transport::TransportOptions t;
  t.cluster_id = 0x1234;
  t.member_id = kLeader;
  t.name = "leader";
  t.listen_urls = {"http://127.0.0.1:0"};
  t.peers = {{kMemberId, "follower", {own_url}}};
  auto leader = transport::PeerTransport::Start(std::move(t));
  ASSERT_TRUE(leader.ok()) << leader.status().ToString();
  const std::string leader_url =
      "http://127.0.0.1:" + std::to_string((*leader)->listen_ports().at(0));
  StartRaftd({"--cluster-id=1234", "--listen-peer-urls=" + own_url,
              "--members=abc=follower=" + own_url + ",def=leader=" + leader_url,
              "--strict-reconfig-check=false"});

  std::mutex mu;
  std::vector<uint64_t> forwarded;  // request ids (kConfChangeLabel: a conf change), in order
  FakeLeader fake_leader(**leader, 100, [&](const raft::Message& m) {
    std::lock_guard lock(mu);
    for (const auto& e : m.entries) {
      internal::Command cmd;
      if (e.type == raft::EntryType::kConfChange) {
        forwarded.push_back(kConfChangeLabel);
      } else if (cmd.ParseFromString(e.data)) {
        forwarded.push_back(cmd.request_id());
      }
    }
  });

  std::this_thread::sleep_for(300ms);  // no leader: def is silent
  // The frontend dies with request 13 waiting; its successor (epoch 3) sends the rest.
  Propose(13);
  std::this_thread::sleep_for(50ms);
  SetEpoch(Component::kFrontend, 3);
  (*segment_)->WakeAll();
  proposals_.reset();
  proposals_ = std::make_unique<ipc::RingWriter>(**segment_, RingId::kProposals, 3);
  std::this_thread::sleep_for(100ms);  // a few ticks: the orphan is dropped on one

  // One turn reads the next four: raftd is stopped while they are written.
  ASSERT_EQ(kill(pid_, SIGSTOP), 0);
  Propose(10);
  internal::MemberChangeRequest add;
  add.set_kind(internal::MemberChangeRequest::ADD);
  add.add_peer_urls("http://127.0.0.1:1");
  add.set_is_learner(true);
  add.set_unix_time(1);
  WriteRequest(MessageType::kMemberChange, 20, add.SerializeAsString());
  Propose(11);
  // Its deadline is 2 s away, well before the others' (5.2 s): the wait ends 2 ticks + 250 ms
  // (270 ms here, main.cc) before it, not leader_wait after raftd read it (4.93 s).
  constexpr auto kShortDeadline = 2000ms;
  constexpr auto kMargin = 2 * 10ms + 250ms;
  const auto short_written = std::chrono::steady_clock::now();
  Propose(12, ipc::RequestClock::now() + kShortDeadline);
  ASSERT_EQ(kill(pid_, SIGCONT), 0);

  auto err = AwaitReply(MessageType::kError, 12, 4s);
  ASSERT_TRUE(err) << "a leaderless request outlived its deadline\n" << RaftdLog();
  const auto waited = std::chrono::steady_clock::now() - short_written;
  // Never before its give-up time (the deadline was taken after short_written) ...
  EXPECT_GE(waited, kShortDeadline - kMargin - 20ms);
  // ... and at it, give or take a loaded machine's delays (the 300 ms slack keeps this from
  // flaking on 2 busy cores; a wait counted from the read would take 4.9 s).
  EXPECT_LE(waited, kShortDeadline + 300ms) << "the wait did not end at the frame's deadline";
  internal::ErrorReply e;
  ASSERT_TRUE(e.ParseFromString(err->payload));
  EXPECT_EQ(e.code(), 2);  // etcd 3.4: gRPC Unknown
  EXPECT_EQ(e.message(), "context deadline exceeded");

  Propose(14);
  std::this_thread::sleep_for(100ms);

  fake_leader.set_leading(true);
  const auto deadline = std::chrono::steady_clock::now() + 3s;
  auto count = [&] {
    std::lock_guard lock(mu);
    return forwarded.size();
  };
  while (count() < 4 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  std::this_thread::sleep_for(300ms);  // anything more would show now
  std::lock_guard lock(mu);
  EXPECT_EQ(forwarded, (std::vector<uint64_t>{10, kConfChangeLabel, 11, 14})) << RaftdLog();
}

}  // namespace
}  // namespace rusd::raftd
