// Process tests of rusd-stored: each test starts the REAL binary (fork + exec) against a
// segment it creates, in a temporary data directory, and plays raftd (committed ring in,
// store-control out) and the frontend (reads in, store-replies and events out) itself.
// Revision numbers prove that nothing is applied twice across SIGKILL and restart.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/component_flags.h"
#include "etcd/etcdserverpb/rpc.pb.h"
#include "ipc/metrics_area.h"
#include "ipc/ring.h"
#include "ipc/segment.h"
#include "rusd/internal.pb.h"
#include "rusd/lease.pb.h"
#include "rusd/snapshot.pb.h"

namespace rusd::stored {
namespace {

using namespace std::chrono_literals;
using ipc::Component;
using ipc::Message;
using ipc::MessageType;
using ipc::RingId;

constexpr uint64_t kMember = 0x8e9e05c52164694dull;
constexpr uint64_t kOtherMember = 0x1234;
constexpr uint64_t kCluster = 0xcdf818194e3a8c32ull;

ipc::SegmentLayout SmallLayout() {
  ipc::SegmentLayout layout;
  for (auto& b : layout.ring_bytes) b = 256u << 10;
  return layout;
}

// One running rusd-stored child. Killed (SIGKILL) if still running when destroyed.
class StoredProcess {
 public:
  StoredProcess(const std::vector<std::string>& args, const std::string& log_path) {
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a crashed test
      int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) dup2(fd, STDERR_FILENO);
      std::vector<char*> argv;
      static char binary[] = RUSD_STORED_BINARY;
      argv.push_back(binary);
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(binary, argv.data());
      _exit(127);
    }
  }
  ~StoredProcess() {
    if (running()) {
      kill(pid_, SIGKILL);
      Wait(5s);
    }
  }

  bool running() const { return pid_ > 0 && !exited_; }
  void Signal(int sig) { kill(pid_, sig); }
  // Waits for the child to exit; returns its wait status, or nullopt on timeout.
  std::optional<int> Wait(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!exited_) {
      int status = 0;
      pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        exited_ = true;
        status_ = status;
        break;
      }
      if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
      std::this_thread::sleep_for(5ms);
    }
    return status_;
  }

 private:
  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = 0;
};

std::string PutCommand(uint64_t request_id, uint64_t origin, const std::string& key,
                       const std::string& value) {
  internal::Command command;
  command.set_request_id(request_id);
  command.set_origin_member_id(origin);
  command.mutable_put()->set_key(key);
  command.mutable_put()->set_value(value);
  return command.SerializeAsString();
}

internal::Entry NormalEntry(uint64_t index, std::string data) {
  internal::Entry e;
  e.set_index(index);
  e.set_term(1);
  e.set_type(internal::Entry::NORMAL);
  e.set_data(std::move(data));
  return e;
}

// Entry `index`: a LeaseGrant of lease `lease_id` for `ttl` seconds, answered to this member
// as request `request_id`.
internal::Entry GrantEntry(uint64_t index, uint64_t request_id, int64_t lease_id, int64_t ttl) {
  internal::Command grant;
  grant.set_request_id(request_id);
  grant.set_origin_member_id(kMember);
  grant.mutable_lease_grant()->set_id(lease_id);
  grant.mutable_lease_grant()->set_ttl(ttl);
  return NormalEntry(index, grant.SerializeAsString());
}

class StoredTest : public ::testing::Test {
 protected:
  void SetUp() override { CreateSegment(SmallLayout()); }

  void CreateSegment(const ipc::SegmentLayout& layout) {
    Teardown();
    char tmpl[] = "/tmp/stored_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    data_dir_ = tmpl;
    segment_name_ = "rusd-stored-test-" + std::to_string(getpid()) + "-" +
                    std::to_string(reinterpret_cast<uintptr_t>(this));
    auto segment = ipc::Segment::Create(segment_name_, layout);
    ASSERT_TRUE(segment.ok()) << segment.status().ToString();
    segment_ = std::move(segment).value();
    segment_->component(Component::kRaftd).epoch.store(1);
    segment_->component(Component::kFrontend).epoch.store(1);
    committed_ = std::make_unique<ipc::RingWriter>(*segment_, RingId::kCommitted, 1);
    reads_ = std::make_unique<ipc::RingWriter>(*segment_, RingId::kReads, 1);
    control_ = std::make_unique<ipc::RingReader>(*segment_, RingId::kStoreControl);
    replies_ = std::make_unique<ipc::RingReader>(*segment_, RingId::kStoreReplies);
    events_ = std::make_unique<ipc::RingReader>(*segment_, RingId::kEvents);
  }

  void TearDown() override {
    if (HasFailure() && !data_dir_.empty()) {
      std::ifstream log(data_dir_ + "/stored.log");
      std::stringstream text;
      text << log.rdbuf();
      std::cerr << "---- rusd-stored log ----\n" << text.str() << "-------------------------\n";
    }
    Teardown();
  }

  void Teardown() {
    stored_.reset();
    committed_.reset();
    reads_.reset();
    control_.reset();
    replies_.reset();
    events_.reset();
    segment_.reset();
    if (!segment_name_.empty()) ipc::Segment::Remove(segment_name_);
    if (!data_dir_.empty()) std::filesystem::remove_all(data_dir_);
    data_dir_.clear();
  }

  // Starts rusd-stored as the supervisor would: bump its epoch, then spawn.
  void StartStored(uint64_t snapshot_count = 100000, uint64_t snapshot_bytes = 32u << 20) {
    segment_->component(Component::kStored).epoch.fetch_add(1);
    ComponentFlags flags;
    flags.snapshot_count = snapshot_count;
    flags.snapshot_bytes = snapshot_bytes;
    // Snapshots are made only in a cluster of more than one member.
    flags.members = {ClusterMember{kMember, "self", {"http://127.0.0.1:1"}},
                     ClusterMember{kOtherMember, "other", {"http://127.0.0.1:2"}}};
    flags.segment = segment_name_;
    flags.data_dir = data_dir_;
    flags.member_id = kMember;
    flags.cluster_id = kCluster;
    stored_ = std::make_unique<StoredProcess>(flags.ToArgs(), data_dir_ + "/stored.log");
  }

  void KillStored() {
    stored_->Signal(SIGKILL);
    ASSERT_TRUE(stored_->Wait(5s).has_value());
    // As the supervisor does when it reaps a component.
    segment_->component(Component::kStored).epoch.fetch_add(1);
    stored_.reset();
  }

  static std::optional<Message> ReadWithin(ipc::Segment& segment, ipc::RingReader& reader,
                                           std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    ipc::RingReader* readers[] = {&reader};
    for (;;) {
      if (auto m = reader.TryRead()) return m;
      if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
      ipc::WaitForMessages(segment, readers, 10ms);
    }
  }

  // The next kResumeFrom on store-control (kDurableApplied frames on the way are recorded).
  std::optional<uint64_t> NextResumeFrom(std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left <= 0ms) return std::nullopt;
      auto m = ReadWithin(*segment_, *control_, left);
      if (!m) return std::nullopt;
      if (m->type == MessageType::kResumeFrom) {
        internal::ResumeFrom resume;
        EXPECT_TRUE(resume.ParseFromString(m->payload));
        return resume.applied_index();
      }
      NoteControl(*m);
    }
  }

  // Waits until stored reported kDurableApplied >= index.
  bool WaitDurable(uint64_t index, std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (durable_ < index) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left <= 0ms) return false;
      auto m = ReadWithin(*segment_, *control_, left);
      if (!m) return false;
      NoteControl(*m);
    }
    return true;
  }

  void NoteControl(const Message& m) {
    if (m.type == MessageType::kDurableApplied) {
      internal::DurableApplied d;
      EXPECT_TRUE(d.ParseFromString(m.payload));
      EXPECT_GE(d.index(), durable_) << "durable index went backwards";
      durable_ = std::max(durable_, d.index());
    } else if (m.type == MessageType::kResumeFrom) {
      ++resumes_seen_;
    }
  }

  // Plays raftd: one kCommittedEntries frame.
  void SendEntries(const std::vector<internal::Entry>& entries) {
    internal::EntryBatch batch;
    for (const auto& e : entries) *batch.add_entries() = e;
    ASSERT_TRUE(committed_
                    ->Write(MessageType::kCommittedEntries, entries.front().index(),
                            batch.SerializeAsString(), 5s)
                    .ok());
  }

  // Entries first..last, each a Put of key/"v<index>" with request id base + index.
  void SendPuts(uint64_t first, uint64_t last, const std::string& key, uint64_t id_base,
                uint64_t origin = kMember) {
    std::vector<internal::Entry> entries;
    for (uint64_t i = first; i <= last; ++i) {
      entries.push_back(
          NormalEntry(i, PutCommand(id_base + i, origin, key, "v" + std::to_string(i))));
    }
    SendEntries(entries);
  }

  // The reply for `request_id` on store-replies (others arriving first are kept).
  std::optional<Message> WaitReply(uint64_t request_id, std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto it = replies_seen_.find(request_id);
      if (it != replies_seen_.end()) {
        Message m = std::move(it->second);
        replies_seen_.erase(it);
        return m;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left <= 0ms) return std::nullopt;
      auto m = ReadWithin(*segment_, *replies_, left);
      if (!m) return std::nullopt;
      EXPECT_EQ(replies_seen_.count(m->id), 0u) << "two replies for request " << m->id;
      replies_seen_[m->id] = std::move(*m);
    }
  }

  // Drains store-replies for `duration`, returning every reply seen (and those kept before).
  std::map<uint64_t, Message> CollectReplies(std::chrono::milliseconds duration) {
    const auto deadline = std::chrono::steady_clock::now() + duration;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left <= 0ms) break;
      auto m = ReadWithin(*segment_, *replies_, left);
      if (!m) break;
      EXPECT_EQ(replies_seen_.count(m->id), 0u) << "two replies for request " << m->id;
      replies_seen_[m->id] = std::move(*m);
    }
    return std::move(replies_seen_);
  }

  // Forgets every reply so far (those of a killed incarnation), read or still on the ring.
  void ForgetReplies() {
    while (replies_->TryRead()) {
    }
    replies_seen_.clear();
  }

  static int64_t PutRevision(const Message& reply) {
    EXPECT_EQ(reply.type, MessageType::kResult);
    etcdserverpb::PutResponse response;
    EXPECT_TRUE(response.ParseFromString(reply.payload));
    return response.header().revision();
  }

  // Plays the frontend: a range read of `key` that stored answers once `min_applied`.
  void SendRangeRead(uint64_t request_id, const std::string& key, uint64_t min_applied) {
    internal::RangeRead read;
    read.set_min_applied_index(min_applied);
    read.mutable_request()->set_key(key);
    ASSERT_TRUE(reads_->Write(MessageType::kRangeRead, request_id, read.SerializeAsString(), 5s)
                    .ok());
  }

  etcdserverpb::RangeResponse RangeReply(uint64_t request_id) {
    etcdserverpb::RangeResponse response;
    auto m = WaitReply(request_id);
    EXPECT_TRUE(m.has_value()) << "no reply to range " << request_id;
    if (!m) return response;
    EXPECT_EQ(m->type, MessageType::kResult);
    EXPECT_TRUE(response.ParseFromString(m->payload));
    return response;
  }

  std::string data_dir_;
  std::string segment_name_;
  std::unique_ptr<ipc::Segment> segment_;
  std::unique_ptr<ipc::RingWriter> committed_, reads_;
  std::unique_ptr<ipc::RingReader> control_, replies_, events_;
  std::unique_ptr<StoredProcess> stored_;
  std::map<uint64_t, Message> replies_seen_;
  uint64_t durable_ = 0;
  int resumes_seen_ = 0;
};

// Leases in the real process: keep-alives only once raftd said this node leads; expiry is
// proposed on store-control under the leader's term, after TTL + the promotion extension.
TEST_F(StoredTest, LeaseKeepAliveAndExpiryProposalFollowLeadership) {
  constexpr auto kRingOrderSettle = 300ms;
  StartStored();
  ASSERT_EQ(NextResumeFrom(), 0u);
  SendEntries({GrantEntry(1, 501, /*lease_id=*/5, /*ttl=*/1)});
  auto granted = WaitReply(501);
  ASSERT_TRUE(granted);
  etcdserverpb::LeaseGrantResponse gr;
  ASSERT_TRUE(gr.ParseFromString(granted->payload));
  EXPECT_EQ(gr.ttl(), 2);  // etcd's minimum with the default election timeout

  auto keep_alive = [&](uint64_t request_id, std::vector<int64_t> ids) {
    internal::KeepAliveBatch batch;
    for (int64_t id : ids) batch.add_ids(id);
    internal::LeaseRead read;
    read.set_min_applied_index(1);
    read.set_request(batch.SerializeAsString());
    ASSERT_TRUE(reads_->Write(MessageType::kLeaseKeepAliveBatch, request_id,
                              read.SerializeAsString(), 5s)
                    .ok());
  };
  auto leader_state = [&](uint64_t term, bool is_leader) {
    internal::LeaderState st;
    st.set_term(term);
    st.set_is_leader(is_leader);
    ASSERT_TRUE(
        committed_->Write(MessageType::kLeaderState, term, st.SerializeAsString(), 5s).ok());
  };
  // Before raftd said anything (a freshly started stored) a keep-alive waits...
  keep_alive(600, {5});
  EXPECT_FALSE(WaitReply(600, 300ms)) << "answered before knowing who leads";
  leader_state(4, true);  // ...and is answered once this node is known to lead
  auto first = WaitReply(600);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->type, MessageType::kResult);
  // A node that does not lead refuses to renew.
  leader_state(5, false);
  // The leader state travels on the committed ring and the keep-alive on the reads ring:
  // give the apply thread time to take it first (generous for a loaded machine).
  std::this_thread::sleep_for(kRingOrderSettle);
  keep_alive(601, {5});
  auto refused = WaitReply(601);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->type, MessageType::kError) << "renewed without leading";
  leader_state(6, true);
  std::this_thread::sleep_for(kRingOrderSettle);
  keep_alive(602, {5, 6});
  auto renewed = WaitReply(602);
  ASSERT_TRUE(renewed);
  ASSERT_EQ(renewed->type, MessageType::kResult);
  const auto renewed_at = std::chrono::steady_clock::now();
  internal::KeepAliveBatchReply reply;
  ASSERT_TRUE(reply.ParseFromString(renewed->payload));
  ASSERT_EQ(reply.ttls_size(), 2);
  EXPECT_EQ(reply.ttls(0), 2);
  EXPECT_EQ(reply.ttls(1), 0) << "unknown lease: TTL 0";
  EXPECT_EQ(reply.header().member_id(), kMember);

  // Nobody renews again: the revocation comes after the 2 s TTL, under term 4.
  for (;;) {
    auto m = ReadWithin(*segment_, *control_, 5s);
    ASSERT_TRUE(m) << "no expiry proposal";
    if (m->type != MessageType::kLeaseProposals) {
      NoteControl(*m);
      continue;
    }
    const auto after = std::chrono::steady_clock::now() - renewed_at;
    EXPECT_GE(after, 1900ms);
    EXPECT_LE(after, 3500ms);  // the expiry clock's granularity plus a loaded machine's lag
    internal::LeaseProposals proposals;
    ASSERT_TRUE(proposals.ParseFromString(m->payload));
    EXPECT_EQ(proposals.term(), 6u);
    ASSERT_EQ(proposals.commands_size(), 1);
    internal::Command revoke;
    ASSERT_TRUE(revoke.ParseFromString(proposals.commands(0)));
    EXPECT_EQ(revoke.lease_revoke().id(), 5);
    EXPECT_EQ(revoke.request_id(), 0u);
    break;
  }
  // etcd's lease counters in the segment: one grant applied, two renewals (term 4 and term 6;
  // the refused one and the unknown lease renew nothing), one expiry proposed; nothing
  // revoked until the revocation is applied.
  ipc::MetricsArea& metrics = segment_->metrics();
  EXPECT_EQ(metrics.Get(ipc::Metric::kLeaseGranted), 1u);
  EXPECT_EQ(metrics.Get(ipc::Metric::kLeaseRenewed), 2u);
  EXPECT_EQ(metrics.Get(ipc::Metric::kLeaseExpired), 1u);
  EXPECT_EQ(metrics.Get(ipc::Metric::kLeaseRevoked), 0u);
}

// A frontend restart (the supervisor changes its epoch) cut every client's keep-alive
// stream while this node kept leading: as an etcd member restart would, every lease gets its
// full TTL (plus the promotion extension) again, so none expires while its clients
// reconnect. Without that, the lease below has under a second left when asked.
TEST_F(StoredTest, FrontendRestartGivesEveryLeaseItsTtlAgain) {
  StartStored();
  ASSERT_EQ(NextResumeFrom(), 0u);
  SendEntries({GrantEntry(1, 501, /*lease_id=*/5, /*ttl=*/2)});
  ASSERT_TRUE(WaitReply(501));
  internal::LeaderState st;
  st.set_term(4);
  st.set_is_leader(true);
  ASSERT_TRUE(committed_->Write(MessageType::kLeaderState, 4, st.SerializeAsString(), 5s).ok());

  auto read = [&](MessageType type, uint64_t request_id, const std::string& request) {
    internal::LeaseRead r;
    r.set_min_applied_index(1);
    r.set_request(request);
    ASSERT_TRUE(reads_->Write(type, request_id, r.SerializeAsString(), 5s).ok());
  };
  auto time_to_live = [&](uint64_t request_id) -> int64_t {
    etcdserverpb::LeaseTimeToLiveRequest req;
    req.set_id(5);
    read(MessageType::kLeaseTimeToLive, request_id, req.SerializeAsString());
    auto m = WaitReply(request_id);
    etcdserverpb::LeaseTimeToLiveResponse resp;
    if (!m || m->type != MessageType::kResult || !resp.ParseFromString(m->payload)) return -100;
    return resp.ttl();
  };
  // Renewed (its clock restarts at 2 s) once the leader state is applied.
  internal::KeepAliveBatch batch;
  batch.add_ids(5);
  read(MessageType::kLeaseKeepAliveBatch, 600, batch.SerializeAsString());
  auto renewed = WaitReply(600);
  ASSERT_TRUE(renewed);
  ASSERT_EQ(renewed->type, MessageType::kResult);
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(time_to_live(601), 0) << "under a second left before the restart";

  segment_->component(Component::kFrontend).epoch.fetch_add(1);  // the supervisor restarts it
  segment_->WakeAll();
  std::this_thread::sleep_for(300ms);  // the apply thread notices within its idle wait
  EXPECT_GE(time_to_live(602), 1) << "the frontend restart did not restart the lease clock";
}

TEST_F(StoredTest, FreshStoreAsksToResumeFromZero) {
  StartStored();
  EXPECT_EQ(NextResumeFrom(), 0u);
}

TEST_F(StoredTest, AppliesCommittedPutsAndRepliesOnlyForThisMembersRequests) {
  StartStored();
  ASSERT_EQ(NextResumeFrom(), 0u);
  std::vector<internal::Entry> entries;
  entries.push_back(NormalEntry(1, PutCommand(101, kMember, "a", "1")));
  entries.push_back(NormalEntry(2, PutCommand(102, kMember, "b", "2")));
  entries.push_back(NormalEntry(3, PutCommand(103, kOtherMember, "c", "3")));
  entries.push_back(NormalEntry(4, PutCommand(0, kMember, "d", "4")));  // nobody waits
  internal::Entry empty;
  empty.set_index(5);
  empty.set_term(2);
  empty.set_type(internal::Entry::EMPTY);
  entries.push_back(empty);
  entries.push_back(NormalEntry(6, PutCommand(106, kMember, "a", "6")));
  SendEntries(entries);

  auto r1 = WaitReply(101);
  ASSERT_TRUE(r1.has_value());
  EXPECT_EQ(PutRevision(*r1), 2);  // etcd's first write is revision 2
  auto r2 = WaitReply(102);
  ASSERT_TRUE(r2.has_value());
  EXPECT_EQ(PutRevision(*r2), 3);
  auto r6 = WaitReply(106);
  ASSERT_TRUE(r6.has_value());
  EXPECT_EQ(PutRevision(*r6), 6);  // c and d took revisions 4 and 5
  auto rest = CollectReplies(200ms);
  EXPECT_TRUE(rest.empty()) << "unexpected reply for request " << rest.begin()->first;
  EXPECT_TRUE(WaitDurable(6));
  EXPECT_EQ(segment_->counter(ipc::Counter::kEntriesApplied).load(), 6u);
  // etcd's mvcc metrics: five puts, four live keys, each batch timed as a backend commit.
  ipc::MetricsArea& metrics = segment_->metrics();
  EXPECT_EQ(metrics.Get(ipc::Metric::kMvccPut), 5u);
  EXPECT_EQ(metrics.Get(ipc::Metric::kKeysTotal), 4u);
  uint64_t commits = 0;
  for (const auto& b : metrics.histogram(ipc::Histogram::kBackendCommit).buckets) {
    commits += b.load();
  }
  EXPECT_GE(commits, 1u);
}

TEST_F(StoredTest, RequestThatFailsAtApplyGetsEtcdsErrorAndStillAdvancesTheIndex) {
  StartStored();
  ASSERT_EQ(NextResumeFrom(), 0u);
  internal::Command compact;
  compact.set_request_id(77);
  compact.set_origin_member_id(kMember);
  compact.mutable_compaction()->set_revision(100);
  SendEntries({NormalEntry(1, compact.SerializeAsString())});
  auto reply = WaitReply(77);
  ASSERT_TRUE(reply.has_value());
  ASSERT_EQ(reply->type, MessageType::kError);
  internal::ErrorReply error;
  ASSERT_TRUE(error.ParseFromString(reply->payload));
  EXPECT_EQ(error.code(), static_cast<int>(StatusCode::kOutOfRange));
  EXPECT_EQ(error.message(), "etcdserver: mvcc: required revision is a future revision");
  EXPECT_TRUE(WaitDurable(1));
}

TEST_F(StoredTest, MalformedOrUnsupportedReadsGetAnErrorReply) {
  StartStored();
  ASSERT_EQ(NextResumeFrom(), 0u);
  ASSERT_TRUE(reads_->Write(MessageType::kRangeRead, 5, "\xff\xff\xff", 5s).ok());
  ASSERT_TRUE(reads_->Write(MessageType::kReadIndex, 6, "", 5s).ok());
  auto bad = WaitReply(5);
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->type, MessageType::kError);
  auto unsupported = WaitReply(6);
  ASSERT_TRUE(unsupported.has_value());
  internal::ErrorReply error;
  ASSERT_TRUE(error.ParseFromString(unsupported->payload));
  EXPECT_EQ(error.code(), static_cast<int>(StatusCode::kUnimplemented));
}

TEST_F(StoredTest, PublishesAppliedEventsInRevisionOrder) {
  // What the frontend does before its first Watch stream opens; without it stored builds
  // no events at all (nobody watches).
  segment_->counter(ipc::Counter::kWatchEventsWanted).store(1);
  StartStored();
  ASSERT_EQ(NextResumeFrom(), 0u);
  SendPuts(1, 3, "k", 100);
  SendPuts(4, 4, "j", 100);
  ASSERT_TRUE(WaitReply(104).has_value());
  std::vector<std::pair<std::string, int64_t>> seen;
  int64_t prev_mod = 0;
  while (seen.size() < 4) {
    auto m = ReadWithin(*segment_, *events_, 5s);
    ASSERT_TRUE(m.has_value()) << "only " << seen.size() << " events";
    ASSERT_EQ(m->type, MessageType::kEvents);
    internal::EventBatch batch;
    ASSERT_TRUE(batch.ParseFromString(m->payload));
    EXPECT_EQ(static_cast<int64_t>(m->id), batch.revision());
    EXPECT_FALSE(batch.after_gap());
    for (const auto& e : batch.events()) {
      seen.emplace_back(e.kv().key(), e.kv().mod_revision());
      if (e.kv().key() == "k" && e.kv().mod_revision() > 2) {
        EXPECT_EQ(e.prev_kv().mod_revision(), prev_mod);  // watch's prev_kv
      }
      if (e.kv().key() == "k") prev_mod = e.kv().mod_revision();
    }
  }
  std::vector<std::pair<std::string, int64_t>> want = {{"k", 2}, {"k", 3}, {"k", 4}, {"j", 5}};
  EXPECT_EQ(seen, want);
}

TEST_F(StoredTest, PublishesNoEventsWhileNoWatchStreamWantsThem) {
  StartStored();
  ASSERT_EQ(NextResumeFrom(), 0u);
  SendPuts(1, 3, "k", 100);
  ASSERT_TRUE(WaitReply(103).has_value());
  EXPECT_FALSE(ReadWithin(*segment_, *events_, 300ms).has_value());
  // From the moment a stream wants them, every later batch is published.
  segment_->counter(ipc::Counter::kWatchEventsWanted).store(1);
  SendPuts(4, 4, "j", 100);
  ASSERT_TRUE(WaitReply(104).has_value());
  auto m = ReadWithin(*segment_, *events_, 5s);
  ASSERT_TRUE(m.has_value());
  internal::EventBatch batch;
  ASSERT_TRUE(batch.ParseFromString(m->payload));
  ASSERT_EQ(batch.events_size(), 1);
  EXPECT_EQ(batch.events(0).kv().key(), "j");
  EXPECT_EQ(batch.events(0).kv().mod_revision(), 5);
}

TEST_F(StoredTest, RangeReadWaitsUntilItsMinAppliedIndexIsApplied) {
  StartStored();
  ASSERT_EQ(NextResumeFrom(), 0u);
  SendPuts(1, 1, "k", 100);
  ASSERT_TRUE(WaitReply(101).has_value());

  SendRangeRead(500, "k", /*min_applied=*/2);
  SendRangeRead(501, "k", /*min_applied=*/0);  // serializable: answered at once
  etcdserverpb::RangeResponse now = RangeReply(501);
  ASSERT_EQ(now.kvs_size(), 1);
  EXPECT_EQ(now.kvs(0).value(), "v1");
  EXPECT_FALSE(WaitReply(500, 300ms).has_value()) << "answered before index 2 was applied";

  SendPuts(2, 2, "k", 100);
  etcdserverpb::RangeResponse later = RangeReply(500);
  ASSERT_EQ(later.kvs_size(), 1);
  EXPECT_EQ(later.kvs(0).value(), "v2");
  EXPECT_EQ(later.header().revision(), 3);
  EXPECT_GE(segment_->counter(ipc::Counter::kRangeReads).load(), 2u);
}

TEST_F(StoredTest, GapInCommittedEntriesAsksRaftdToResumeAfterTheAppliedIndex) {
  StartStored();
  ASSERT_EQ(NextResumeFrom(), 0u);
  SendPuts(1, 2, "k", 100);
  SendPuts(5, 6, "k", 100);  // 3 and 4 were lost
  EXPECT_EQ(NextResumeFrom(), 2u);
  SendPuts(3, 6, "k", 200);  // raftd re-sends from 3
  auto r6 = WaitReply(206);
  ASSERT_TRUE(r6.has_value());
  EXPECT_EQ(PutRevision(*r6), 7);
  EXPECT_FALSE(WaitReply(105, 100ms).has_value()) << "an entry after the gap was applied";
}

TEST_F(StoredTest, RaftdEpochChangeAsksForResumeFromTheAppliedIndex) {
  StartStored();
  ASSERT_EQ(NextResumeFrom(), 0u);
  SendPuts(1, 3, "k", 100);
  ASSERT_TRUE(WaitReply(103).has_value());
  segment_->component(Component::kRaftd).epoch.fetch_add(1);  // the supervisor restarts raftd
  segment_->WakeAll();
  EXPECT_EQ(NextResumeFrom(), 3u);
}

TEST_F(StoredTest, RestartAfterSigkillResumesFromAppliedIndexAndSkipsResentEntries) {
  StartStored();
  ASSERT_EQ(NextResumeFrom(), 0u);
  SendPuts(1, 10, "k", 1000);
  ASSERT_TRUE(WaitReply(1010).has_value());
  ASSERT_TRUE(WaitDurable(10));
  KillStored();
  ForgetReplies();

  StartStored();
  EXPECT_EQ(NextResumeFrom(), 10u);
  SendPuts(5, 12, "k", 1000);  // raftd re-sends entries stored already has
  auto r11 = WaitReply(1011);
  ASSERT_TRUE(r11.has_value());
  EXPECT_EQ(PutRevision(*r11), 12);
  auto r12 = WaitReply(1012);
  ASSERT_TRUE(r12.has_value());
  EXPECT_EQ(PutRevision(*r12), 13);
  SendRangeRead(1, "k", 12);
  etcdserverpb::RangeResponse range = RangeReply(1);
  ASSERT_EQ(range.kvs_size(), 1);
  EXPECT_EQ(range.kvs(0).version(), 12);
  EXPECT_EQ(range.kvs(0).mod_revision(), 13);
  auto rest = CollectReplies(100ms);
  for (const auto& [id, m] : rest) ADD_FAILURE() << "reply for re-sent request " << id;
}

// raftd keeps streaming while stored dies and comes back, then honours kResumeFrom by
// re-sending from there; stale frames left on the ring overlap the re-sent ones.
TEST_F(StoredTest, SigkillMidStreamThenRestartAppliesEveryEntryExactlyOnce) {
  constexpr uint64_t kKillAt = 300, kRestartAt = 400, kEntries = 600, kPerFrame = 5;
  StartStored();
  ASSERT_EQ(NextResumeFrom(), 0u);
  uint64_t next = 1;
  for (; next <= kRestartAt; next += kPerFrame) {
    SendPuts(next, next + kPerFrame - 1, "k", 0);
    if (next + kPerFrame - 1 == kKillAt) KillStored();
    std::this_thread::sleep_for(200us);
  }
  while (auto m = control_->TryRead()) NoteControl(*m);  // what it reported before dying
  const uint64_t durable_before = durable_;
  ForgetReplies();

  StartStored();
  std::optional<uint64_t> resume = NextResumeFrom();
  ASSERT_TRUE(resume.has_value());
  EXPECT_GE(*resume, durable_before) << "durable entries were lost";
  EXPECT_LE(*resume, kKillAt);
  // raftd re-sends from resume + 1 and goes on; stored drops what it already has.
  for (uint64_t first = *resume + 1; first <= kEntries; first += kPerFrame) {
    SendPuts(first, std::min(first + kPerFrame - 1, kEntries), "k", 0);
  }
  for (uint64_t i = *resume + 1; i <= kEntries; ++i) {
    auto r = WaitReply(i);
    ASSERT_TRUE(r.has_value()) << "no reply for entry " << i;
    EXPECT_EQ(PutRevision(*r), static_cast<int64_t>(i) + 1);
  }
  SendRangeRead(1 << 20, "k", kEntries);
  etcdserverpb::RangeResponse range = RangeReply(1 << 20);
  ASSERT_EQ(range.kvs_size(), 1);
  EXPECT_EQ(range.kvs(0).version(), static_cast<int64_t>(kEntries));
  EXPECT_EQ(range.kvs(0).mod_revision(), static_cast<int64_t>(kEntries) + 1);
  auto rest = CollectReplies(100ms);
  for (const auto& [id, m] : rest) {
    if (id != (1u << 20)) ADD_FAILURE() << "second reply for request " << id;
  }
  std::cerr << "killed at applied index in [" << durable_before << ", " << kKillAt
            << "], resumed from " << *resume << "\n";
}

TEST_F(StoredTest, FullRepliesRingNeverBlocksApply) {
  ipc::SegmentLayout layout = SmallLayout();
  layout.ring_bytes[static_cast<int>(RingId::kStoreReplies)] = 4096;
  CreateSegment(layout);
  StartStored();
  ASSERT_EQ(NextResumeFrom(), 0u);
  constexpr uint64_t kEntries = 300;  // ~20 KB of replies: 5x the ring
  for (uint64_t first = 1; first <= kEntries; first += 20) SendPuts(first, first + 19, "k", 0);
  // Nobody reads store-replies yet, and yet everything gets applied and made durable.
  EXPECT_TRUE(WaitDurable(kEntries));
  for (uint64_t i = 1; i <= kEntries; ++i) {
    auto r = WaitReply(i);
    ASSERT_TRUE(r.has_value()) << "reply " << i << " lost";
    EXPECT_EQ(PutRevision(*r), static_cast<int64_t>(i) + 1);
  }
}

TEST_F(StoredTest, SigtermSyncsAndExitsCleanly) {
  StartStored();
  ASSERT_EQ(NextResumeFrom(), 0u);
  SendPuts(1, 5, "k", 100);
  ASSERT_TRUE(WaitReply(105).has_value());
  stored_->Signal(SIGTERM);
  auto status = stored_->Wait(10s);
  ASSERT_TRUE(status.has_value()) << "rusd-stored did not exit on SIGTERM";
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 0);
  EXPECT_TRUE(WaitDurable(5, 1s));
}

// Not a pass/fail test: how fast the real process applies small puts through the rings.
// Run with --gtest_also_run_disabled_tests --gtest_filter=*Throughput*.
TEST_F(StoredTest, DISABLED_ThroughputOfSmallPuts) {
  ipc::SegmentLayout layout;  // the production ring sizes
  CreateSegment(layout);
  StartStored();
  ASSERT_EQ(NextResumeFrom(), 0u);
  constexpr uint64_t kEntries = 200000, kPerFrame = 100;
  const auto start = std::chrono::steady_clock::now();
  std::thread raftd([&] {
    for (uint64_t first = 1; first <= kEntries; first += kPerFrame) {
      std::vector<internal::Entry> entries;
      for (uint64_t i = first; i < first + kPerFrame; ++i) {
        entries.push_back(NormalEntry(i, PutCommand(i, kMember, "key" + std::to_string(i % 1000),
                                                    std::string(100, 'v'))));
      }
      SendEntries(entries);
    }
  });
  uint64_t received = 0;
  while (received < kEntries) {
    auto m = ReadWithin(*segment_, *replies_, 10s);
    ASSERT_TRUE(m.has_value()) << "stalled after " << received << " replies";
    ++received;
  }
  raftd.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cerr << kEntries << " puts applied and answered in " << seconds << " s: "
            << kEntries / seconds << " puts/s\n";
}

// Not a pass/fail test: one put at a time, as a single sequential client drives it.
TEST_F(StoredTest, DISABLED_LatencyOfSequentialPuts) {
  StartStored();
  ASSERT_EQ(NextResumeFrom(), 0u);
  constexpr uint64_t kPuts = 2000;
  std::vector<double> micros;
  for (uint64_t i = 1; i <= kPuts; ++i) {
    const auto start = std::chrono::steady_clock::now();
    SendPuts(i, i, "k", 0);
    ASSERT_TRUE(WaitReply(i).has_value());
    micros.push_back(std::chrono::duration<double, std::micro>(
                         std::chrono::steady_clock::now() - start)
                         .count());
  }
  std::sort(micros.begin(), micros.end());
  std::cerr << "put round trip through rusd-stored: p50 " << micros[kPuts / 2] << " us, p99 "
            << micros[kPuts * 99 / 100] << " us, max " << micros.back() << " us\n";
}

TEST_F(StoredTest, BadFlagsExitWithStatusTwo) {
  StoredProcess p({"--segment=x", "--data-dir=" + data_dir_, "--no-such-flag=1"},
                  data_dir_ + "/stored.log");
  auto status = p.Wait(10s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 2);
}

TEST_F(StoredTest, MissingSegmentIsFatal) {
  StoredProcess p({"--segment=rusd-stored-test-no-such-segment", "--data-dir=" + data_dir_},
                  data_dir_ + "/stored.log");
  auto status = p.Wait(10s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 1);
}

// Snapshots: a checkpoint every --snapshot-count applied entries, announced on
// store-control; an install order on the committed ring swaps a received checkpoint in
// as the store, the process exits (75) and its next incarnation resumes after the
// snapshot's index with the snapshot's data.
// Large entries far below --snapshot-count still make a snapshot once their bytes add up,
// so raftd's in-memory log (compacted at snapshots) is bounded by bytes too.
TEST_F(StoredTest, SnapshotAfterSnapshotBytesOfEntriesBeforeSnapshotCount) {
  StartStored(/*snapshot_count=*/100000, /*snapshot_bytes=*/600);
  ASSERT_EQ(NextResumeFrom(), 0u);
  SendPuts(1, 5, "a", 1000);  // well under 600 bytes of entry data
  ASSERT_TRUE(WaitReply(1005).has_value());
  SendPuts(6, 40, "a", 1000);  // well over it
  ASSERT_TRUE(WaitReply(1040).has_value());
  internal::SnapshotReady ready;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (ready.index() == 0 && std::chrono::steady_clock::now() < deadline) {
    auto m = ReadWithin(*segment_, *control_, 1s);
    if (!m) continue;
    if (m->type == MessageType::kSnapshotReady) {
      ASSERT_TRUE(ready.ParseFromString(m->payload));
    }
    NoteControl(*m);
  }
  ASSERT_GT(ready.index(), 5u) << "no snapshot after the bytes added up";
  EXPECT_LE(ready.index(), 40u);
  EXPECT_TRUE(std::filesystem::exists(ready.dir() + "/RUSD_SNAPSHOT"));
}

TEST_F(StoredTest, SnapshotEverySnapshotCountAndInstallOrderSwapsTheStore) {
  StartStored(/*snapshot_count=*/10);
  ASSERT_EQ(NextResumeFrom(), 0u);
  SendPuts(1, 10, "a", 1000);
  SendPuts(11, 20, "a", 1000);
  ASSERT_TRUE(WaitReply(1020).has_value());
  // The newest announcement wins (one at 10 and one at 20, or one at 20 when both frames
  // were applied in one batch).
  internal::SnapshotReady ready;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (ready.index() < 20 && std::chrono::steady_clock::now() < deadline) {
    auto m = ReadWithin(*segment_, *control_, 1s);
    if (!m) continue;
    if (m->type == MessageType::kSnapshotReady) {
      ASSERT_TRUE(ready.ParseFromString(m->payload));
      EXPECT_EQ(m->id, ready.index());
    }
    NoteControl(*m);
  }
  ASSERT_EQ(ready.index(), 20u);
  EXPECT_EQ(ready.term(), 1u);
  ASSERT_TRUE(std::filesystem::exists(ready.dir() + "/RUSD_SNAPSHOT"));
  // Keep a copy as the "received" snapshot, then make this member a fresh follower.
  const std::string received = data_dir_ + "/received-20";
  std::filesystem::copy(ready.dir(), received, std::filesystem::copy_options::recursive);
  stored_->Signal(SIGTERM);
  ASSERT_TRUE(stored_->Wait(10s).has_value());
  segment_->component(Component::kStored).epoch.fetch_add(1);
  std::filesystem::remove_all(data_dir_ + "/member");
  while (control_->TryRead()) {
  }
  durable_ = 0;  // a new member's store
  StartStored(/*snapshot_count=*/10);
  ASSERT_EQ(NextResumeFrom(), 0u);
  SendPuts(1, 3, "b", 2000);
  ASSERT_TRUE(WaitReply(2003).has_value());

  internal::InstallSnapshot order;
  order.set_index(20);
  order.set_term(1);
  order.set_dir(received);
  ASSERT_TRUE(committed_->Write(MessageType::kInstallSnapshot, 20, order.SerializeAsString(), 5s)
                  .ok());
  auto status = stored_->Wait(20s);
  ASSERT_TRUE(status.has_value());
  ASSERT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 75);
  EXPECT_FALSE(std::filesystem::exists(received));  // renamed into place
  segment_->component(Component::kStored).epoch.fetch_add(1);
  stored_.reset();
  ForgetReplies();

  StartStored(/*snapshot_count=*/10);
  ASSERT_EQ(NextResumeFrom(), 20u);  // the confirmation raftd waits for
  // The installed store is checkpointed at once (this member may have to send it on).
  EXPECT_TRUE(std::filesystem::exists(data_dir_ + "/member/snap/db-0000000000000014/RUSD_SNAPSHOT"));
  SendPuts(21, 21, "a", 1000);
  auto reply = WaitReply(1021);
  ASSERT_TRUE(reply.has_value());
  etcdserverpb::PutResponse put;
  ASSERT_TRUE(put.ParseFromString(reply->payload));
  EXPECT_EQ(put.header().revision(), 22);  // 20 puts in the snapshot + this one
  // A repeated order for what is installed is only confirmed, never re-installed.
  ASSERT_TRUE(committed_->Write(MessageType::kInstallSnapshot, 20, order.SerializeAsString(), 5s)
                  .ok());
  ASSERT_EQ(NextResumeFrom(), 21u);
  EXPECT_TRUE(stored_->running());
}

}  // namespace
}  // namespace rusd::stored
