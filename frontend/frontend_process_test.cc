// Process-level tests: a real rusd-frontend (fork+exec) on a free port, this test acting as
// raftd and stored on the rings of a segment it created, and a real gRPC client. They pin
// the frontend's whole behaviour without the other processes.
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "etcd/etcdserverpb/rpc.grpc.pb.h"
#include "etcd/mvccpb/kv.pb.h"
#include "ipc/metrics_grpc_methods.h"
#include "ipc/request_trailer.h"
#include "ipc/ring.h"
#include "ipc/segment.h"
#include "rusd/internal.pb.h"
#include "rusd/lease.pb.h"
#include "rusd/lease_forward.grpc.pb.h"
#include "common/free_port_for_tests.h"

namespace rusd::frontend {
namespace {

using namespace std::chrono_literals;
using ipc::MessageType;

constexpr uint64_t kMemberId = 0xabc;
constexpr uint64_t kReadIndex = 42;

using test_support::FreePort;

// What the fake raftd/stored saw.
struct Seen {
  std::mutex mu;
  std::vector<internal::Command> commands;
  std::vector<uint64_t> command_frame_ids;
  // The deadline each kPropose / kMemberChange carried (ipc/request_trailer.h), and when
  // the fake raftd read it.
  std::vector<std::pair<ipc::RequestClock::time_point, ipc::RequestClock::time_point>>
      deadlines;
  std::vector<internal::RangeRead> reads;
  int read_index_requests = 0;
  std::vector<internal::LeaseRead> lease_batches;  // kLeaseKeepAliveBatch frames
};

// Plays raftd (proposals -> raft-replies) and stored (reads -> store-replies).
// Keys steer it: "fail" -> kError, "never" -> no answer, "drop-once" -> the first
// kRangeRead is ignored (a stored that died before answering).
class FakeNode {
 public:
  explicit FakeNode(ipc::Segment& seg)
      : seg_(seg),
        proposals_(seg, ipc::RingId::kProposals),
        reads_(seg, ipc::RingId::kReads),
        raft_replies_(seg, ipc::RingId::kRaftReplies, 1),
        store_replies_(seg, ipc::RingId::kStoreReplies, 1),
        thread_([this] { Run(); }) {}
  ~FakeNode() {
    stop_ = true;
    thread_.join();
  }

  void SendLeader(uint64_t leader) {
    internal::LeaderInfo info;
    info.set_leader_id(leader);
    info.set_term(3);
    ASSERT_TRUE(raft_replies_.Write(MessageType::kLeaderInfo, 0, info.SerializeAsString(), 1s).ok());
  }

  void SendRaftReply(MessageType type, const std::string& payload) {
    ASSERT_TRUE(raft_replies_.Write(type, 0, payload, 1s).ok());
  }

  Seen seen;

 private:
  void Run() {
    ipc::Message m;
    while (!stop_) {
      bool any = false;
      while (proposals_.TryRead(&m)) {
        any = true;
        OnProposal(m);
      }
      while (reads_.TryRead(&m)) {
        any = true;
        OnRead(m);
      }
      if (!any) std::this_thread::sleep_for(100us);
    }
  }

  void ReplyError(uint64_t id, int code, const std::string& text) {
    internal::ErrorReply err;
    err.set_code(code);
    err.set_message(text);
    (void)store_replies_.Write(MessageType::kError, id, err.SerializeAsString(), 1s);
  }

  void OnProposal(ipc::Message& m) {
    if (m.type == MessageType::kPropose || m.type == MessageType::kMemberChange ||
        m.type == MessageType::kMoveLeader) {
      std::optional<ipc::RequestClock::time_point> deadline =
          ipc::StripRequestTrailer(&m.payload);
      ASSERT_TRUE(deadline) << "a request for raftd without its deadline";
      std::lock_guard lock(seen.mu);
      seen.deadlines.emplace_back(*deadline, ipc::RequestClock::now());
    }
    if (m.type == MessageType::kMemberChange) {
      // raftd's answer for an unknown member (membership.proto).
      internal::ErrorReply err;
      err.set_code(5);
      err.set_message("etcdserver: member not found");
      (void)raft_replies_.Write(MessageType::kError, m.id, err.SerializeAsString(), 1s);
      return;
    }
    if (m.type == MessageType::kReadIndex) {
      {
        std::lock_guard lock(seen.mu);
        seen.read_index_requests++;
      }
      internal::ReadIndexReply r;
      r.set_read_index(kReadIndex);
      r.set_term(3);
      (void)raft_replies_.Write(MessageType::kReadIndexReply, m.id, r.SerializeAsString(), 1s);
      return;
    }
    internal::Command c;
    ASSERT_TRUE(c.ParseFromString(m.payload));
    {
      std::lock_guard lock(seen.mu);
      seen.commands.push_back(c);
      seen.command_frame_ids.push_back(m.id);
    }
    std::string key = c.has_put() ? c.put().key() : "";
    if (key == "never") return;
    if (key == "fail") {
      ReplyError(m.id, 9, "etcdserver: some failure");
      return;
    }
    if (key == "no-leader") {  // raftd refuses it (raft-replies)
      internal::ErrorReply err;
      err.set_code(2);
      err.set_message("context deadline exceeded");
      (void)raft_replies_.Write(MessageType::kError, m.id, err.SerializeAsString(), 1s);
      return;
    }
    std::string out;
    if (c.has_put()) {
      etcdserverpb::PutResponse resp;
      resp.mutable_header()->set_revision(++revision_);
      resp.mutable_header()->set_member_id(kMemberId);
      out = resp.SerializeAsString();
    } else if (c.has_txn()) {
      etcdserverpb::TxnResponse resp;
      resp.set_succeeded(true);
      resp.mutable_header()->set_revision(revision_);
      out = resp.SerializeAsString();
    } else if (c.has_delete_range()) {
      etcdserverpb::DeleteRangeResponse resp;
      resp.set_deleted(1);
      out = resp.SerializeAsString();
    } else {
      etcdserverpb::CompactionResponse resp;
      resp.mutable_header()->set_revision(revision_);
      out = resp.SerializeAsString();
    }
    (void)store_replies_.Write(MessageType::kResult, m.id, out, 1s);
  }

  // Keep-alive batches: lease id N renews to TTL N * 10; id 404 is unknown (TTL 0).
  void OnKeepAliveBatch(const ipc::Message& m) {
    internal::LeaseRead read;
    ASSERT_TRUE(read.ParseFromString(m.payload));
    internal::KeepAliveBatch batch;
    ASSERT_TRUE(batch.ParseFromString(read.request()));
    {
      std::lock_guard lock(seen.mu);
      seen.lease_batches.push_back(read);
    }
    internal::KeepAliveBatchReply reply;
    reply.mutable_header()->set_revision(revision_);
    reply.mutable_header()->set_member_id(kMemberId);
    for (int64_t id : batch.ids()) reply.add_ttls(id == 404 ? 0 : id * 10);
    (void)store_replies_.Write(MessageType::kResult, m.id, reply.SerializeAsString(), 1s);
  }

  void OnRead(const ipc::Message& m) {
    if (m.type == MessageType::kLeaseKeepAliveBatch) {
      OnKeepAliveBatch(m);
      return;
    }
    internal::RangeRead r;
    ASSERT_TRUE(r.ParseFromString(m.payload));
    {
      std::lock_guard lock(seen.mu);
      seen.reads.push_back(r);
    }
    const std::string& key = r.request().key();
    if (key == "never") return;
    if (key == "drop-once" && !dropped_) {
      dropped_ = true;
      return;
    }
    if (key == "fail") {
      ReplyError(m.id, 11, "etcdserver: mvcc: required revision has been compacted");
      return;
    }
    etcdserverpb::RangeResponse resp;
    resp.mutable_header()->set_revision(revision_);
    resp.mutable_header()->set_raft_term(3);
    auto* kv = resp.add_kvs();
    kv->set_key(key);
    kv->set_value(std::string(key == "big" ? 3 << 20 : 1, 'v'));
    resp.set_count(1);
    (void)store_replies_.Write(MessageType::kResult, m.id, resp.SerializeAsString(), 5s);
  }

  ipc::Segment& seg_;
  ipc::RingReader proposals_;
  ipc::RingReader reads_;
  ipc::RingWriter raft_replies_;
  ipc::RingWriter store_replies_;
  int64_t revision_ = 1;
  bool dropped_ = false;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

class FrontendProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    segment_name_ = "rusd-fe-test-" + std::to_string(getpid());
    auto seg = ipc::Segment::Create(segment_name_);
    ASSERT_TRUE(seg.ok()) << seg.status().ToString();
    segment_ = std::move(seg).value();
    for (auto c : {ipc::Component::kFrontend, ipc::Component::kRaftd, ipc::Component::kStored}) {
      segment_->component(c).epoch.store(1);
    }
    node_ = std::make_unique<FakeNode>(*segment_);
    port_ = FreePort();
    pid_ = Spawn({"--listen-client-urls=http://127.0.0.1:" + std::to_string(port_),
                  "--max-request-bytes=4096", "--election-timeout-ms=100",
                  std::string("--experimental-native-grpc=") + (native_ ? "true" : "false")});
    // Wait for the port first: a refused first connect would put the channel in backoff.
    for (int i = 0; i < 1000 && !PortAccepts(); ++i) std::this_thread::sleep_for(5ms);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                                   grpc::InsecureChannelCredentials());
    ASSERT_TRUE(channel_->WaitForConnected(std::chrono::system_clock::now() + 10s));
    stub_ = etcdserverpb::KV::NewStub(channel_);
  }

  void TearDown() override {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
    }
    node_.reset();
    segment_.reset();
    ipc::Segment::Remove(segment_name_);
  }

  pid_t Spawn(std::vector<std::string> extra) {
    std::vector<std::string> args = {RUSD_FRONTEND_BINARY, "--segment=" + segment_name_,
                                     "--data-dir=/tmp", "--member-id=abc", "--cluster-id=123",
                                     "--log-level=warn"};
    args.insert(args.end(), extra.begin(), extra.end());
    pid_t pid = ::fork();
    if (pid == 0) {
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      _exit(127);
    }
    return pid;
  }

  bool PortAccepts() {
    int fd = ConnectToClientPort();
    if (fd < 0) return false;
    ::close(fd);
    return true;
  }

  // A new TCP connection to the frontend's client port on loopback; -1 if refused.
  int ConnectToClientPort() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port_);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd);
      return -1;
    }
    return fd;
  }

  // One HTTP/1.1 exchange on a fresh connection (Connection: close).
  std::string HttpGet(const std::string& path) { return HttpExchange("GET", path, ""); }

  std::string HttpExchange(const std::string& method, const std::string& path,
                           const std::string& body) {
    int fd = ConnectToClientPort();
    if (fd < 0) return "connect failed";
    std::string req = method + " " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" +
                      "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    (void)::send(fd, req.data(), req.size(), 0);
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, n);
    ::close(fd);
    return out;
  }

  std::unique_ptr<grpc::ClientContext> Ctx() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + 20s);
    return ctx;
  }

  // One good Put and one refused (empty key): the KV service counts both in the segment's
  // go-grpc-prometheus slot for Put, whichever server serves it. Returns the good request and
  // its response, whose sizes the byte counters are checked against.
  std::pair<etcdserverpb::PutRequest, etcdserverpb::PutResponse> PutTwiceAndCheckCounters() {
    etcdserverpb::PutRequest req;
    req.set_key("k");
    req.set_value("v");
    etcdserverpb::PutResponse resp;
    EXPECT_TRUE(stub_->Put(Ctx().get(), req, &resp).ok());
    etcdserverpb::PutRequest empty_key;
    etcdserverpb::PutResponse refused;
    EXPECT_EQ(stub_->Put(Ctx().get(), empty_key, &refused).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
    const ipc::GrpcMethodStats& put =
        segment_->metrics().grpc[ipc::GrpcMethodSlot("/etcdserverpb.KV/Put")];
    EXPECT_EQ(put.started.load(), 2u);
    EXPECT_EQ(put.handled[0].load(), 1u);  // OK
    EXPECT_EQ(put.handled[static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT)].load(), 1u);
    EXPECT_EQ(put.msg_received.load(), 2u);
    EXPECT_EQ(put.msg_sent.load(), 1u);
    return {req, resp};
  }

  bool native_ = false;  // serve gRPC with frontend/native_grpc/ (--experimental-native-grpc)
  std::string segment_name_;
  std::unique_ptr<ipc::Segment> segment_;
  std::unique_ptr<FakeNode> node_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<etcdserverpb::KV::Stub> stub_;
};

// The KV tests, and those of the services the native server forwards in process to gRPC C++
// (Lease, Cluster, Maintenance, Watch), run against both gRPC servers: gRPC C++ and rusd's
// native one (--experimental-native-grpc), which must answer alike.
class KvOverBothServers : public FrontendProcessTest, public ::testing::WithParamInterface<bool> {
 protected:
  KvOverBothServers() { native_ = GetParam(); }
};
INSTANTIATE_TEST_SUITE_P(Servers, KvOverBothServers, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& i) {
                           return i.param ? "Native" : "GrpcCpp";
                         });

TEST_P(KvOverBothServers, PutIsProposedAsCommandAndAnsweredWithStoredsResponse) {
  etcdserverpb::PutRequest req;
  req.set_key("k");
  req.set_value("v");
  etcdserverpb::PutResponse resp;
  grpc::Status st = stub_->Put(Ctx().get(), req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.header().revision(), 2);
  EXPECT_EQ(resp.header().member_id(), kMemberId);
  std::lock_guard lock(node_->seen.mu);
  ASSERT_EQ(node_->seen.commands.size(), 1u);
  const internal::Command& c = node_->seen.commands[0];
  EXPECT_EQ(c.request_id(), node_->seen.command_frame_ids[0]);
  EXPECT_NE(c.request_id(), 0u);
  EXPECT_EQ(c.origin_member_id(), kMemberId);
  EXPECT_EQ(c.put().key(), "k");
  EXPECT_EQ(c.put().value(), "v");
}

TEST_P(KvOverBothServers, TxnDeleteAndCompactAreProposed) {
  etcdserverpb::TxnRequest txn;
  txn.add_success()->mutable_request_put()->set_key("a");
  etcdserverpb::TxnResponse txn_resp;
  ASSERT_TRUE(stub_->Txn(Ctx().get(), txn, &txn_resp).ok());
  EXPECT_TRUE(txn_resp.succeeded());
  etcdserverpb::DeleteRangeRequest del;
  del.set_key("a");
  etcdserverpb::DeleteRangeResponse del_resp;
  ASSERT_TRUE(stub_->DeleteRange(Ctx().get(), del, &del_resp).ok());
  EXPECT_EQ(del_resp.deleted(), 1);
  etcdserverpb::CompactionRequest compact;
  compact.set_revision(1);
  etcdserverpb::CompactionResponse compact_resp;
  ASSERT_TRUE(stub_->Compact(Ctx().get(), compact, &compact_resp).ok());
  std::lock_guard lock(node_->seen.mu);
  ASSERT_EQ(node_->seen.commands.size(), 3u);
  EXPECT_TRUE(node_->seen.commands[0].has_txn());
  EXPECT_TRUE(node_->seen.commands[1].has_delete_range());
  EXPECT_EQ(node_->seen.commands[2].compaction().revision(), 1);
}

TEST_P(KvOverBothServers, LinearizableRangeWaitsForTheReadIndex) {
  etcdserverpb::RangeRequest req;
  req.set_key("k");
  etcdserverpb::RangeResponse resp;
  ASSERT_TRUE(stub_->Range(Ctx().get(), req, &resp).ok());
  ASSERT_EQ(resp.kvs_size(), 1);
  EXPECT_EQ(resp.kvs(0).key(), "k");
  std::lock_guard lock(node_->seen.mu);
  EXPECT_EQ(node_->seen.read_index_requests, 1);
  ASSERT_EQ(node_->seen.reads.size(), 1u);
  EXPECT_EQ(node_->seen.reads[0].min_applied_index(), kReadIndex);
  EXPECT_EQ(node_->seen.reads[0].request().key(), "k");
}

TEST_P(KvOverBothServers, SerializableRangeGoesStraightToStored) {
  etcdserverpb::RangeRequest req;
  req.set_key("k");
  req.set_serializable(true);
  etcdserverpb::RangeResponse resp;
  ASSERT_TRUE(stub_->Range(Ctx().get(), req, &resp).ok());
  std::lock_guard lock(node_->seen.mu);
  EXPECT_EQ(node_->seen.read_index_requests, 0);
  ASSERT_EQ(node_->seen.reads.size(), 1u);
  EXPECT_EQ(node_->seen.reads[0].min_applied_index(), 0u);
}

TEST_P(KvOverBothServers, LargeResponseTravelsInChunks) {
  etcdserverpb::RangeRequest req;
  req.set_key("big");
  req.set_serializable(true);
  etcdserverpb::RangeResponse resp;
  ASSERT_TRUE(stub_->Range(Ctx().get(), req, &resp).ok());
  ASSERT_EQ(resp.kvs_size(), 1);
  EXPECT_EQ(resp.kvs(0).value().size(), 3u << 20);
}

TEST_P(KvOverBothServers, ErrorRepliesKeepCodeAndMessage) {
  etcdserverpb::PutRequest put;
  put.set_key("fail");
  etcdserverpb::PutResponse put_resp;
  grpc::Status st = stub_->Put(Ctx().get(), put, &put_resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(st.error_message(), "etcdserver: some failure");
  etcdserverpb::RangeRequest range;
  range.set_key("fail");
  etcdserverpb::RangeResponse range_resp;
  st = stub_->Range(Ctx().get(), range, &range_resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_EQ(st.error_message(), "etcdserver: mvcc: required revision has been compacted");
}

// etcd_server_proposals_failed_total counts a proposal raftd refused, once (raftd does not
// count what it answers), and not stored's errors, which are the request's own outcome.
TEST_P(KvOverBothServers, ProposalRaftdRefusesCountsAsFailedOnceStoredErrorsDoNot) {
  etcdserverpb::PutRequest put;
  etcdserverpb::PutResponse resp;
  put.set_key("fail");  // stored's kError
  EXPECT_FALSE(stub_->Put(Ctx().get(), put, &resp).ok());
  EXPECT_EQ(segment_->metrics().Get(ipc::Metric::kProposalsFailed), 0u);
  put.set_key("no-leader");  // raftd's kError
  grpc::Status st = stub_->Put(Ctx().get(), put, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNKNOWN);
  EXPECT_EQ(st.error_message(), "context deadline exceeded");
  EXPECT_EQ(segment_->metrics().Get(ipc::Metric::kProposalsFailed), 1u);
}

TEST_P(KvOverBothServers, ValidationAndSizeLimitsAnswerLikeEtcd) {
  etcdserverpb::PutRequest empty;
  etcdserverpb::PutResponse resp;
  grpc::Status st = stub_->Put(Ctx().get(), empty, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(st.error_message(), "etcdserver: key is not provided");

  etcdserverpb::PutRequest large;  // over --max-request-bytes=4096, under the gRPC limit
  large.set_key("k");
  large.set_value(std::string(8192, 'x'));
  st = stub_->Put(Ctx().get(), large, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(st.error_message(), "etcdserver: request is too large");

  etcdserverpb::PutRequest huge;  // over max-request-bytes + 512 KiB: gRPC itself refuses
  huge.set_key("k");
  huge.set_value(std::string(600 * 1024, 'x'));
  st = stub_->Put(Ctx().get(), huge, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);

  etcdserverpb::TxnRequest dup;
  dup.add_success()->mutable_request_put()->set_key("a");
  dup.add_success()->mutable_request_put()->set_key("a");
  etcdserverpb::TxnResponse txn_resp;
  st = stub_->Txn(Ctx().get(), dup, &txn_resp);
  EXPECT_EQ(st.error_message(), "etcdserver: duplicate key given in txn request");
  std::lock_guard lock(node_->seen.mu);
  EXPECT_TRUE(node_->seen.commands.empty());  // nothing invalid reached raftd
}

TEST_P(KvOverBothServers, PendingReadIsResentWhenStoredRestarts) {
  std::thread bump([this] {
    std::this_thread::sleep_for(300ms);
    segment_->component(ipc::Component::kStored).epoch.fetch_add(1);
    segment_->WakeAll();
  });
  etcdserverpb::RangeRequest req;
  req.set_key("drop-once");
  req.set_serializable(true);
  etcdserverpb::RangeResponse resp;
  auto start = std::chrono::steady_clock::now();
  grpc::Status st = stub_->Range(Ctx().get(), req, &resp);
  bump.join();
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  std::lock_guard lock(node_->seen.mu);
  EXPECT_EQ(node_->seen.reads.size(), 2u);
}

TEST_F(FrontendProcessTest, UnansweredProposalTimesOutLikeEtcd) {
  etcdserverpb::PutRequest req;
  req.set_key("never");
  etcdserverpb::PutResponse resp;
  auto start = std::chrono::steady_clock::now();
  grpc::Status st = stub_->Put(Ctx().get(), req, &resp);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(st.error_message(), "etcdserver: request timed out");
  // 5 s + 2 x the 100 ms election timeout this test starts the frontend with.
  EXPECT_GE(took, 5100ms);
  EXPECT_LT(took, 7s);
  std::lock_guard lock(node_->seen.mu);
  EXPECT_EQ(node_->seen.commands.size(), 1u);  // never re-sent
  // etcd counts a proposal that timed out as failed.
  EXPECT_EQ(segment_->metrics().Get(ipc::Metric::kProposalsFailed), 1u);
  // The frame told raftd when the frontend would give up: the request timeout after it
  // was written (raftd never proposes it if it reads it after that, request_trailer.h).
  ASSERT_EQ(node_->seen.deadlines.size(), 1u);
  const auto [deadline, read_at] = node_->seen.deadlines[0];
  // The fake node may read the frame late on a loaded machine: up to 1.2 s is tolerated.
  EXPECT_GE(deadline - read_at, 4000ms);
  EXPECT_LE(deadline - read_at, 5200ms);
  EXPECT_LE(deadline, ipc::RequestClock::now());
  // The pending gauge drops when the request's bookkeeping goes, just after the reply.
  for (int i = 0; i < 200 && segment_->metrics().Get(ipc::Metric::kProposalsPending) != 0; ++i) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(segment_->metrics().Get(ipc::Metric::kProposalsPending), 0u);
}

// The KV service and the gRPC interceptor (the other services) count etcd's
// go-grpc-prometheus metrics into the segment, and the client port's /metrics renders them.
TEST_P(KvOverBothServers, GrpcCallsAreCountedPerMethodAndCodeAndServedOnMetrics) {
  const auto [req, resp] = PutTwiceAndCheckCounters();
  ipc::MetricsArea& m = segment_->metrics();
  const ipc::GrpcMethodStats& put = m.grpc[ipc::GrpcMethodSlot("/etcdserverpb.KV/Put")];
  EXPECT_GE(m.Get(ipc::Metric::kGrpcReceivedBytes), req.ByteSizeLong());
  EXPECT_GE(m.Get(ipc::Metric::kGrpcSentBytes), resp.ByteSizeLong());

  // KV counts its own calls (no interceptor on the hot path); every other service is
  // counted by the interceptor, once.
  auto cluster = etcdserverpb::Cluster::NewStub(channel_);
  etcdserverpb::MemberListResponse members;
  cluster->MemberList(Ctx().get(), etcdserverpb::MemberListRequest(), &members);
  const ipc::GrpcMethodStats& list = m.grpc[ipc::GrpcMethodSlot("/etcdserverpb.Cluster/MemberList")];
  EXPECT_EQ(list.started.load(), 1u);
  EXPECT_EQ(list.msg_received.load(), 1u);
  uint64_t list_handled = 0;
  for (const auto& h : list.handled) list_handled += h.load();
  EXPECT_EQ(list_handled, 1u);
  EXPECT_EQ(put.started.load(), 2u);  // not counted twice

  std::string page = HttpGet("/metrics");
  EXPECT_EQ(page.rfind("HTTP/1.1 200", 0), 0u) << page.substr(0, 200);
  EXPECT_NE(page.find("Content-Type: text/plain; version=0.0.4; charset=utf-8"), std::string::npos);
  EXPECT_NE(page.find("\ngrpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Put\","
                      "grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 1\n"),
            std::string::npos);
  EXPECT_NE(page.find("\ngrpc_server_handling_seconds_count{grpc_method=\"Put\","
                      "grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 2\n"),
            std::string::npos);
}

TEST_P(KvOverBothServers, SigtermFinishesPendingCallsAndExitsCleanly) {
  etcdserverpb::PutRequest req;
  req.set_key("never");
  etcdserverpb::PutResponse resp;
  grpc::Status st;
  std::thread call([&] { st = stub_->Put(Ctx().get(), req, &resp); });
  for (int i = 0; i < 200; ++i) {
    {
      std::lock_guard lock(node_->seen.mu);
      if (!node_->seen.commands.empty()) break;
    }
    std::this_thread::sleep_for(10ms);
  }
  auto start = std::chrono::steady_clock::now();
  ::kill(pid_, SIGTERM);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  call.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(st.error_message(), "etcdserver: server stopped");
}

class NativeGrpcProcessTest : public FrontendProcessTest {
 protected:
  NativeGrpcProcessTest() { native_ = true; }
};

// A raw nghttp2 client session, for what gRPC C++'s client will not do (header values it
// deems illegal, a call it never finishes, a stream it stops reading). Records the
// grpc-status, the DATA bytes and whether the stream closed.
class RawH2Client {
 public:
  // `window` > 0: the stream and connection windows the client advertises.
  explicit RawH2Client(int32_t window = 0) {
    nghttp2_session_callbacks* cb = nullptr;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_header_callback(
        cb, [](nghttp2_session*, const nghttp2_frame*, const uint8_t* name, size_t nl,
               const uint8_t* value, size_t vl, uint8_t, void* user) -> int {
          if (std::string_view(reinterpret_cast<const char*>(name), nl) == "grpc-status") {
            static_cast<RawH2Client*>(user)->grpc_status.assign(
                reinterpret_cast<const char*>(value), vl);
          }
          return 0;
        });
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
        cb, [](nghttp2_session*, uint8_t, int32_t, const uint8_t* d, size_t n, void* user) -> int {
          static_cast<RawH2Client*>(user)->data.append(reinterpret_cast<const char*>(d), n);
          return 0;
        });
    nghttp2_session_callbacks_set_on_stream_close_callback(
        cb, [](nghttp2_session*, int32_t, uint32_t, void* user) -> int {
          static_cast<RawH2Client*>(user)->closed = true;
          return 0;
        });
    nghttp2_session_callbacks_set_on_frame_recv_callback(
        cb, [](nghttp2_session*, const nghttp2_frame* frame, void* user) -> int {
          if (frame->hd.type == NGHTTP2_DATA && frame->hd.length > 0) {
            ++static_cast<RawH2Client*>(user)->data_frames;
          }
          return 0;
        });
    nghttp2_session_client_new(&h2_, cb, this);
    nghttp2_session_callbacks_del(cb);
    if (window > 0) {
      nghttp2_settings_entry s[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE,
                                     static_cast<uint32_t>(window)}};
      nghttp2_submit_settings(h2_, NGHTTP2_FLAG_NONE, s, 1);
      nghttp2_session_set_local_window_size(h2_, NGHTTP2_FLAG_NONE, 0, window);
    } else {
      nghttp2_submit_settings(h2_, NGHTTP2_FLAG_NONE, nullptr, 0);
    }
  }
  ~RawH2Client() { nghttp2_session_del(h2_); }
  RawH2Client(const RawH2Client&) = delete;
  RawH2Client& operator=(const RawH2Client&) = delete;

  // POSTs `framed` (gRPC length-prefixed messages) on `path` with gRPC's headers and
  // `extra`; `end_stream` false keeps the request open after the body (a streaming call).
  // The stream id, or a negative nghttp2 error.
  int32_t Submit(const std::string& path,
                 const std::vector<std::pair<std::string, std::string>>& extra,
                 std::string framed, bool end_stream = true) {
    std::vector<std::pair<std::string, std::string>> h = {
        {":method", "POST"}, {":scheme", "http"}, {":path", path}, {":authority", "x"},
        {"content-type", "application/grpc"}, {"te", "trailers"}};
    h.insert(h.end(), extra.begin(), extra.end());
    std::vector<nghttp2_nv> nva;
    for (auto& [n, v] : h) {
      nva.push_back({reinterpret_cast<uint8_t*>(n.data()), reinterpret_cast<uint8_t*>(v.data()),
                     n.size(), v.size(), NGHTTP2_NV_FLAG_NONE});
    }
    body_ = std::move(framed);
    end_stream_ = end_stream;
    nghttp2_data_provider provider;
    provider.source.ptr = this;
    provider.read_callback = [](nghttp2_session*, int32_t, uint8_t* buf, size_t length,
                                uint32_t* flags, nghttp2_data_source* source,
                                void*) -> ssize_t {
      auto* self = static_cast<RawH2Client*>(source->ptr);
      std::string& b = self->body_;
      size_t n = std::min(length, b.size());
      std::memcpy(buf, b.data(), n);
      b.erase(0, n);
      if (b.empty()) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (!self->end_stream_) *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      }
      return static_cast<ssize_t>(n);
    };
    return nghttp2_submit_request(h2_, nullptr, nva.data(), nva.size(), &provider, nullptr);
  }

  // Writes everything the session has to send; false if a send fell short.
  bool SendAll(int fd) {
    const uint8_t* out = nullptr;
    for (ssize_t n; (n = nghttp2_session_mem_send(h2_, &out)) > 0;) {
      if (::send(fd, out, static_cast<size_t>(n), MSG_NOSIGNAL) != n) return false;
    }
    return true;
  }

  // Feeds bytes read from the server; false on a protocol error.
  bool Receive(const char* bytes, size_t n) {
    return nghttp2_session_mem_recv(h2_, reinterpret_cast<const uint8_t*>(bytes), n) >= 0;
  }

  std::string grpc_status;
  std::string data;  // every DATA byte received (prefixed messages)
  int data_frames = 0;  // DATA frames with a payload
  bool closed = false;

 private:
  nghttp2_session* h2_ = nullptr;
  std::string body_;
  bool end_stream_ = true;
};

// One gRPC call over a raw nghttp2 client on a fresh connection (RawH2Client). Returns the
// grpc-status the server answered ("" if the connection closed or `timeout` passed first).
std::string RawGrpcCall(int fd, const std::string& path,
                        const std::vector<std::pair<std::string, std::string>>& extra,
                        std::string body, std::chrono::milliseconds timeout = 10s) {
  RawH2Client client;
  std::string framed(5, '\0');
  framed[4] = static_cast<char>(body.size());  // small messages only
  framed += body;
  EXPECT_GT(client.Submit(path, extra, std::move(framed)), 0);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!client.closed && std::chrono::steady_clock::now() < deadline) {
    client.SendAll(fd);
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) break;
    if (n < 0) {
      std::this_thread::sleep_for(5ms);
      continue;
    }
    client.Receive(buf, static_cast<size_t>(n));
  }
  return client.closed ? client.grpc_status : std::string();
}

TEST_F(NativeGrpcProcessTest, KvCallsAreCountedAndUnregisteredServicesAreUnimplemented) {
  const auto [req, resp] = PutTwiceAndCheckCounters();
  ipc::MetricsArea& m = segment_->metrics();
  EXPECT_EQ(m.Get(ipc::Metric::kGrpcReceivedBytes), req.ByteSizeLong());
  EXPECT_EQ(m.Get(ipc::Metric::kGrpcSentBytes), resp.ByteSizeLong());

  // Auth is registered nowhere: gRPC C++'s answer comes back through the forwarding.
  auto auth = etcdserverpb::Auth::NewStub(channel_);
  etcdserverpb::AuthStatusResponse auth_status;
  grpc::Status st = auth->AuthStatus(Ctx().get(), etcdserverpb::AuthStatusRequest(), &auth_status);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  // The connection is still good.
  etcdserverpb::PutResponse again;
  ASSERT_TRUE(stub_->Put(Ctx().get(), req, &again).ok());
}

// A client that gives up (deadline) resets its stream; the late answer is dropped and the
// connection keeps serving.
TEST_F(NativeGrpcProcessTest, CancelledCallsAnswerLateIntoNothing) {
  etcdserverpb::PutRequest never;
  never.set_key("never");  // the fake node never answers it
  etcdserverpb::PutResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 200ms);
  EXPECT_EQ(stub_->Put(&ctx, never, &resp).error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  etcdserverpb::PutRequest req;
  req.set_key("k");
  ASSERT_TRUE(stub_->Put(Ctx().get(), req, &resp).ok());
}

// A connection that closes with a call in flight: the call's late answer (here "server
// stopped" at SIGTERM, which TearDown sends) finds the connection gone and is dropped; the
// server keeps serving others and exits cleanly.
TEST_F(NativeGrpcProcessTest, ConnectionClosedWithACallInFlight) {
  int fd = ConnectToClientPort();
  ASSERT_GE(fd, 0);
  etcdserverpb::PutRequest never;
  never.set_key("never");
  std::string body(5, '\0');
  body[4] = static_cast<char>(never.ByteSizeLong());
  body += never.SerializeAsString();
  {
    RawH2Client client;
    ASSERT_GT(client.Submit("/etcdserverpb.KV/Put", {}, std::move(body)), 0);
    ASSERT_TRUE(client.SendAll(fd));
  }
  for (int i = 0; i < 500; ++i) {
    {
      std::lock_guard lock(node_->seen.mu);
      if (!node_->seen.commands.empty()) break;
    }
    std::this_thread::sleep_for(10ms);
  }
  {
    std::lock_guard lock(node_->seen.mu);
    ASSERT_EQ(node_->seen.commands.size(), 1u) << "the raw call never reached the ring";
  }
  ::close(fd);  // with the call in flight
  etcdserverpb::PutRequest req;
  req.set_key("k");
  etcdserverpb::PutResponse resp;
  ASSERT_TRUE(stub_->Put(Ctx().get(), req, &resp).ok());
}

TEST_F(FrontendProcessTest, HttpEndpointsShareTheClientPort) {
  std::string version = HttpGet("/version");
  EXPECT_NE(version.find("200 OK"), std::string::npos) << version;
  EXPECT_NE(version.find(R"({"etcdserver":"3.5.17","etcdcluster":"3.5.0"})"), std::string::npos);

  std::string no_leader = HttpGet("/health");
  EXPECT_NE(no_leader.find("503"), std::string::npos) << no_leader;
  EXPECT_NE(no_leader.find("RAFT NO LEADER"), std::string::npos);

  node_->SendLeader(kMemberId);
  std::string health;
  for (int i = 0; i < 50; ++i) {  // the leader info travels asynchronously
    health = HttpGet("/health");
    if (health.find("200 OK") != std::string::npos) break;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_NE(health.find(R"({"health":"true","reason":""})"), std::string::npos) << health;
  EXPECT_NE(HttpGet("/readyz").find("ok\n"), std::string::npos);
  EXPECT_NE(HttpGet("/nope").find("404"), std::string::npos);

  // gRPC still works on the same port after HTTP traffic.
  etcdserverpb::PutRequest req;
  req.set_key("k");
  etcdserverpb::PutResponse resp;
  EXPECT_TRUE(stub_->Put(Ctx().get(), req, &resp).ok());
}

TEST_F(FrontendProcessTest, JsonGatewaySpeaksEtcdJson) {
  // {"key":"foo","value":"bar"} in base64, as grpc-gateway clients send bytes.
  std::string put = HttpExchange("POST", "/v3/kv/put", R"({"key":"Zm9v","value":"YmFy"})");
  EXPECT_NE(put.find("200 OK"), std::string::npos) << put;
  EXPECT_NE(put.find(R"("revision":"2")"), std::string::npos) << put;  // int64 as a string
  std::string range = HttpExchange("POST", "/v3/kv/range", R"({"key":"Zm9v"})");
  EXPECT_NE(range.find(R"("key":"Zm9v")"), std::string::npos) << range;
  EXPECT_NE(range.find(R"("count":"1")"), std::string::npos) << range;
  std::string empty = HttpExchange("POST", "/v3/kv/range", R"({"key":""})");
  EXPECT_NE(empty.find("HTTP/1.1 400"), std::string::npos) << empty;
  EXPECT_NE(empty.find(R"({"error":"etcdserver: key is not provided","code":3,)"),
            std::string::npos)
      << empty;
  std::lock_guard lock(node_->seen.mu);
  ASSERT_EQ(node_->seen.commands.size(), 1u);
  EXPECT_EQ(node_->seen.commands[0].put().value(), "bar");
}

TEST_F(FrontendProcessTest, GarbageOnTheClientPortGets400) {
  std::string reply;
  int fd = ConnectToClientPort();
  ASSERT_GE(fd, 0);
  std::string junk = "\x16\x03\x01garbage\r\n\r\n";
  (void)::send(fd, junk.data(), junk.size(), 0);
  char buf[512];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) reply.append(buf, n);
  ::close(fd);
  EXPECT_EQ(reply.rfind("HTTP/1.1 400", 0), 0u) << reply;
}

TEST_P(KvOverBothServers, MaintenanceStatusReportsVersionAndLeader) {
  node_->SendLeader(kMemberId);
  // As raftd and stored publish them.
  segment_->counter(ipc::Counter::kRaftCommittedIndex).store(42);
  segment_->counter(ipc::Counter::kAppliedIndex).store(41);
  segment_->metrics().Set(ipc::Metric::kDbTotalSize, 1 << 20);
  segment_->metrics().Set(ipc::Metric::kDbInUseSize, 300000);
  auto stub = etcdserverpb::Maintenance::NewStub(channel_);
  etcdserverpb::StatusResponse resp;
  grpc::Status st;
  for (int i = 0; i < 50; ++i) {
    st = stub->Status(Ctx().get(), etcdserverpb::StatusRequest(), &resp);
    if (st.ok() && resp.leader() == kMemberId) break;
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.version(), "3.5.17");
  EXPECT_EQ(resp.leader(), kMemberId);
  EXPECT_EQ(resp.header().member_id(), kMemberId);
  EXPECT_EQ(resp.header().cluster_id(), 0x123u);
  EXPECT_EQ(resp.raftterm(), 3u);
  EXPECT_EQ(resp.raftindex(), 42u);
  EXPECT_EQ(resp.raftappliedindex(), 41u);
  EXPECT_EQ(resp.dbsize(), 1 << 20);
  EXPECT_EQ(resp.dbsizeinuse(), 300000);
  // Other services are not registered: clients get a clean Unimplemented.
  auto auth = etcdserverpb::Auth::NewStub(channel_);
  etcdserverpb::AuthStatusResponse auth_status;
  EXPECT_EQ(auth->AuthStatus(Ctx().get(), etcdserverpb::AuthStatusRequest(), &auth_status)
                .error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
}

// LeaseKeepAlive: every request of every stream becomes part of a keep-alive batch read
// (after a ReadIndex), and each stream gets one answer per request with its lease's TTL.
TEST_P(KvOverBothServers, KeepAlivesOfAllStreamsTravelInBatchesAfterAReadIndex) {
  node_->SendLeader(kMemberId);  // a follower would forward them to the leader's frontend
  auto lease = etcdserverpb::Lease::NewStub(channel_);
  constexpr int kStreams = 4;
  constexpr int kPerStream = 25;
  std::vector<std::unique_ptr<grpc::ClientContext>> ctxs;
  std::vector<std::unique_ptr<grpc::ClientReaderWriter<etcdserverpb::LeaseKeepAliveRequest,
                                                       etcdserverpb::LeaseKeepAliveResponse>>>
      streams;
  for (int s = 0; s < kStreams; ++s) {
    ctxs.push_back(Ctx());
    streams.push_back(lease->LeaseKeepAlive(ctxs.back().get()));
  }
  for (int i = 0; i < kPerStream; ++i) {
    for (int s = 0; s < kStreams; ++s) {
      etcdserverpb::LeaseKeepAliveRequest req;
      req.set_id(i == kPerStream - 1 && s == 0 ? 404 : s * 100 + i + 1);
      ASSERT_TRUE(streams[s]->Write(req));
    }
  }
  for (int s = 0; s < kStreams; ++s) {
    std::set<int64_t> ids;
    for (int i = 0; i < kPerStream; ++i) {
      etcdserverpb::LeaseKeepAliveResponse resp;
      ASSERT_TRUE(streams[s]->Read(&resp)) << "stream " << s << " answer " << i;
      EXPECT_EQ(resp.ttl(), resp.id() == 404 ? 0 : resp.id() * 10);
      EXPECT_EQ(resp.header().member_id(), kMemberId);
      ids.insert(resp.id());
    }
    EXPECT_EQ(ids.size(), static_cast<size_t>(kPerStream));
    streams[s]->WritesDone();
    EXPECT_TRUE(streams[s]->Finish().ok());
  }
  std::lock_guard lock(node_->seen.mu);
  size_t total = 0;
  for (const auto& b : node_->seen.lease_batches) {
    EXPECT_EQ(b.min_applied_index(), kReadIndex) << "sent before its ReadIndex";
    internal::KeepAliveBatch batch;
    ASSERT_TRUE(batch.ParseFromString(b.request()));
    total += static_cast<size_t>(batch.ids_size());
  }
  EXPECT_EQ(total, static_cast<size_t>(kStreams * kPerStream));
  EXPECT_EQ(static_cast<size_t>(node_->seen.read_index_requests),
            node_->seen.lease_batches.size());
  EXPECT_LT(node_->seen.lease_batches.size(), total) << "no batching at all";

  // The service counts its streams itself (no interceptor on this hot path), each once.
  const ipc::GrpcMethodStats& ka =
      segment_->metrics().grpc[ipc::GrpcMethodSlot("/etcdserverpb.Lease/LeaseKeepAlive")];
  EXPECT_EQ(ka.started.load(), static_cast<uint64_t>(kStreams));
  EXPECT_EQ(ka.msg_received.load(), static_cast<uint64_t>(kStreams * kPerStream));
  EXPECT_EQ(ka.msg_sent.load(), static_cast<uint64_t>(kStreams * kPerStream));
  EXPECT_EQ(ka.handled[0].load(), static_cast<uint64_t>(kStreams));  // OK
}

// The leader's frontend as a follower's frontend sees it: refuses the first keep-alive with
// "not leader" (leadership moving), then renews lease N to TTL N * 10 with its own header.
class FakeLeaderFrontend final : public internal::LeaseForward::Service {
 public:
  static constexpr uint64_t kLeaderId = 0x999;
  grpc::Status KeepAlive(grpc::ServerContext*, const internal::KeepAliveBatch* req,
                         internal::KeepAliveBatchReply* resp) override {
    if (calls++ == 0) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "etcdserver: not leader");
    resp->mutable_header()->set_member_id(kLeaderId);
    resp->mutable_header()->set_revision(77);
    for (int64_t id : req->ids()) resp->add_ttls(id * 10);
    return grpc::Status::OK;
  }
  grpc::Status TimeToLive(grpc::ServerContext*, const etcdserverpb::LeaseTimeToLiveRequest* req,
                          etcdserverpb::LeaseTimeToLiveResponse* resp) override {
    resp->mutable_header()->set_member_id(kLeaderId);
    resp->set_id(req->id());
    resp->set_ttl(42);
    resp->set_grantedttl(60);
    return grpc::Status::OK;
  }
  std::atomic<int> calls{0};
};

TEST_P(KvOverBothServers, FollowerForwardsKeepAlivesAndTimeToLiveToTheLeadersFrontend) {
  FakeLeaderFrontend leader;
  int leader_port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &leader_port);
  builder.RegisterService(&leader);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_TRUE(server);
  etcdserverpb::MemberListResponse list;
  auto* m = list.add_members();
  m->set_id(kMemberId);
  m->add_clienturls("http://127.0.0.1:" + std::to_string(port_));
  m = list.add_members();
  m->set_id(FakeLeaderFrontend::kLeaderId);
  m->add_clienturls("http://127.0.0.1:" + std::to_string(leader_port));
  node_->SendRaftReply(ipc::MessageType::kMemberList, list.SerializeAsString());
  node_->SendLeader(FakeLeaderFrontend::kLeaderId);

  auto lease = etcdserverpb::Lease::NewStub(channel_);
  auto ctx = Ctx();
  auto stream = lease->LeaseKeepAlive(ctx.get());
  etcdserverpb::LeaseKeepAliveRequest req;
  req.set_id(7);
  ASSERT_TRUE(stream->Write(req));
  etcdserverpb::LeaseKeepAliveResponse resp;
  ASSERT_TRUE(stream->Read(&resp));
  EXPECT_EQ(resp.id(), 7);
  EXPECT_EQ(resp.ttl(), 70);
  EXPECT_EQ(resp.header().member_id(), kMemberId) << "etcd fills the header locally";
  EXPECT_EQ(resp.header().revision(), 77);
  EXPECT_GE(leader.calls.load(), 2) << "the refused attempt was retried";
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());

  etcdserverpb::LeaseTimeToLiveRequest ttl_req;
  ttl_req.set_id(7);
  etcdserverpb::LeaseTimeToLiveResponse ttl;
  ASSERT_TRUE(lease->LeaseTimeToLive(Ctx().get(), ttl_req, &ttl).ok());
  EXPECT_EQ(ttl.ttl(), 42);
  EXPECT_EQ(ttl.grantedttl(), 60);
  EXPECT_EQ(ttl.header().member_id(), kMemberId);
  {
    std::lock_guard lock(node_->seen.mu);
    EXPECT_TRUE(node_->seen.lease_batches.empty()) << "a follower's stored renewed";
  }

  // No leader: etcd's error once the request timeout (5 s + 2 x 100 ms) has passed.
  node_->SendLeader(0);
  std::this_thread::sleep_for(100ms);
  const auto start = std::chrono::steady_clock::now();
  grpc::Status st = lease->LeaseTimeToLive(Ctx().get(), ttl_req, &ttl);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(st.error_message(), "etcdserver: no leader");
  EXPECT_GE(std::chrono::steady_clock::now() - start, 5s);
  server->Shutdown();
}

// Watch: the client's metadata reaches the service (WithRequireLeader's "hasleader": refused
// with no leader), and a stream the client cancels mid-way ends on the server side too.
TEST_P(KvOverBothServers, WatchCarriesMetadataAndCancellation) {
  auto watch = etcdserverpb::Watch::NewStub(channel_);
  {
    auto ctx = Ctx();
    ctx->AddMetadata("hasleader", "true");
    auto stream = watch->Watch(ctx.get());
    etcdserverpb::WatchResponse resp;
    EXPECT_FALSE(stream->Read(&resp));
    grpc::Status st = stream->Finish();
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_EQ(st.error_message(), "etcdserver: no leader");
  }
  node_->SendLeader(kMemberId);
  for (int round = 0; round < 20; ++round) {
    auto ctx = Ctx();
    auto stream = watch->Watch(ctx.get());
    etcdserverpb::WatchRequest req;
    req.mutable_progress_request();  // no watchers: etcd answers nothing
    ASSERT_TRUE(stream->Write(req));
    ctx->TryCancel();
    etcdserverpb::WatchResponse resp;
    while (stream->Read(&resp)) {
    }
    EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  // Every cancelled stream ended in the service (the interceptor counts handled calls).
  const ipc::GrpcMethodStats& w =
      segment_->metrics().grpc[ipc::GrpcMethodSlot("/etcdserverpb.Watch/Watch")];
  for (int i = 0; i < 200; ++i) {
    uint64_t handled = 0;
    for (const auto& h : w.handled) handled += h.load();
    if (handled == 21) break;
    std::this_thread::sleep_for(10ms);
  }
  uint64_t handled = 0;
  for (const auto& h : w.handled) handled += h.load();
  EXPECT_EQ(w.started.load(), 21u);
  EXPECT_EQ(handled, 21u);
}

// Header values gRPC C++ cannot carry (non-ASCII, tab, NUL: it aborts the process on a call
// started with one) reach the forwarding from any HTTP/2 client: the call goes ahead without
// them and the frontend keeps serving.
TEST_F(NativeGrpcProcessTest, ForwardedCallDropsHeaderValuesGrpcCppCannotCarry) {
  node_->SendLeader(kMemberId);
  const std::vector<std::vector<std::pair<std::string, std::string>>> headers = {
      {{"x-foo", "caf\xc3\xa9"}},
      {{"x-foo", "a\tb"}},
      {{"x-foo", std::string("a\0b", 3)}, {"x-ok", "fine"}},
      {{"x-bin", "not base64!"}},
  };
  for (const auto& extra : headers) {
    int fd = ConnectToClientPort();
    ASSERT_GE(fd, 0);
    EXPECT_EQ(RawGrpcCall(fd, "/etcdserverpb.Maintenance/Status", extra, ""), "0");
    ::close(fd);
    ASSERT_TRUE(PortAccepts());
  }
  // LeaseGrant (a forwarded unary call the fake node does not answer): a defined answer too.
  int fd = ConnectToClientPort();
  ASSERT_GE(fd, 0);
  etcdserverpb::LeaseGrantRequest grant;
  grant.set_ttl(10);
  EXPECT_NE(RawGrpcCall(fd, "/etcdserverpb.Lease/LeaseGrant",
                        {{"x-foo", "caf\xc3\xa9"}, {"grpc-timeout", "300m"}},
                        grant.SerializeAsString()),
            "");
  ::close(fd);
  etcdserverpb::PutRequest req;
  req.set_key("k");
  etcdserverpb::PutResponse resp;
  ASSERT_TRUE(stub_->Put(Ctx().get(), req, &resp).ok());
}

// grpc-go sends grpc-timeout "2562047H" for a context without deadline (math.MaxInt64 ns):
// no deadline, not an overflowed one (which expired at once). The largest valid value too.
TEST_F(NativeGrpcProcessTest, HugeGrpcTimeoutMeansNoDeadline) {
  node_->SendLeader(kMemberId);
  for (const char* timeout : {"2562047H", "99999999H", "99999999M", "99999999S"}) {
    int fd = ConnectToClientPort();
    ASSERT_GE(fd, 0);
    EXPECT_EQ(RawGrpcCall(fd, "/etcdserverpb.Maintenance/Status", {{"grpc-timeout", timeout}}, ""),
              "0")
        << timeout;
    ::close(fd);
  }
}

// A forwarded stream whose client stops reading: its answers fill the socket and the
// stream's send queue (the in-process reads pause); once the client reads again every
// answer arrives. The resume must not depend on which thread drained the queue (the reply
// thread's and gRPC's flushes run alongside the epoll thread's).
TEST_F(NativeGrpcProcessTest, PausedForwardedStreamResumesWhenTheClientReadsAgain) {
  node_->SendLeader(kMemberId);
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  int small = 4096;  // the socket fills long before the HTTP/2 windows do
  ASSERT_EQ(::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port_);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  RawH2Client client(1 << 30);
  constexpr int kRequests = 40000;  // ~1.5 MB of answers: over the queue limit and the socket
  std::string body;
  etcdserverpb::LeaseKeepAliveRequest ka;
  ka.set_id(1);
  const std::string one = ka.SerializeAsString();
  for (int i = 0; i < kRequests; ++i) {
    body.append({0, 0, 0, 0, static_cast<char>(one.size())});
    body += one;
  }
  ASSERT_GT(client.Submit("/etcdserverpb.Lease/LeaseKeepAlive", {}, std::move(body),
                          /*end_stream=*/false),
            0);
  // Sends everything (the frontend reads it all) but reads nothing for a while.
  ASSERT_TRUE(client.SendAll(fd));
  std::this_thread::sleep_for(1s);
  // Meanwhile the frontend keeps serving others.
  etcdserverpb::PutRequest put;
  put.set_key("k");
  etcdserverpb::PutResponse put_resp;
  ASSERT_TRUE(stub_->Put(Ctx().get(), put, &put_resp).ok());
  // Now read: every answer comes.
  const size_t want = static_cast<size_t>(kRequests);
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  size_t answers = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    char buf[65536];
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) break;
    if (n > 0) {
      ASSERT_TRUE(client.Receive(buf, static_cast<size_t>(n)));
    } else {
      std::this_thread::sleep_for(1ms);
    }
    ASSERT_TRUE(client.SendAll(fd));
    answers = 0;
    for (size_t off = 0; off + 5 <= client.data.size();) {
      const size_t len = (static_cast<size_t>(static_cast<uint8_t>(client.data[off + 3])) << 8) |
                         static_cast<uint8_t>(client.data[off + 4]);
      if (off + 5 + len > client.data.size()) break;
      ++answers;
      off += 5 + len;
    }
    if (answers == want || client.closed) break;
  }
  EXPECT_EQ(answers, want) << "the stream stalled";
  EXPECT_FALSE(client.closed);
  ::close(fd);
}

// The prefixed messages in `data` from `*off` on, parsed as WatchResponses (complete ones
// only; *off moves past them).
std::vector<etcdserverpb::WatchResponse> TakeWatchResponses(const std::string& data, size_t* off) {
  std::vector<etcdserverpb::WatchResponse> out;
  while (data.size() - *off >= 5) {
    const size_t len = (size_t{static_cast<uint8_t>(data[*off + 1])} << 24) |
                       (size_t{static_cast<uint8_t>(data[*off + 2])} << 16) |
                       (size_t{static_cast<uint8_t>(data[*off + 3])} << 8) |
                       size_t{static_cast<uint8_t>(data[*off + 4])};
    if (data.size() - *off - 5 < len) break;
    etcdserverpb::WatchResponse r;
    EXPECT_TRUE(r.ParseFromArray(data.data() + *off + 5, static_cast<int>(len)));
    out.push_back(std::move(r));
    *off += 5 + len;
  }
  return out;
}

// A put delivered to many watchers of one forwarded Watch stream crosses the in-process
// call as a few batches of prefixed responses (frontend/forwarded_framing.h), not one
// in-process round trip each: they reach the client in a few DATA frames (one per response
// before; at ~100 µs per round trip under load, a prefix stream with ten watchers per put
// stayed busy most of the time and the put-to-event p99 grew to ~75 ms). Each watcher still
// gets its own response with the event, as from gRPC C++.
TEST_F(NativeGrpcProcessTest, ForwardedWatchResponsesOfOnePutTravelTogether) {
  node_->SendLeader(kMemberId);
  const int fd = ConnectToClientPort();
  ASSERT_GE(fd, 0);
  RawH2Client client(1 << 30);
  constexpr int kWatchers = 200;
  std::string body;
  for (int i = 0; i < kWatchers; ++i) {
    etcdserverpb::WatchRequest req;
    req.mutable_create_request()->set_key("p/");
    req.mutable_create_request()->set_range_end("p0");
    const std::string one = req.SerializeAsString();
    body.append({0, 0, 0, 0, static_cast<char>(one.size())});
    body += one;
  }
  ASSERT_GT(client.Submit("/etcdserverpb.Watch/Watch", {}, std::move(body),
                          /*end_stream=*/false),
            0);
  size_t off = 0;
  // Reads until `want` more responses arrived (or 10 s passed).
  auto await = [&](size_t want) {
    std::vector<etcdserverpb::WatchResponse> got;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (got.size() < want && !client.closed && std::chrono::steady_clock::now() < deadline) {
      EXPECT_TRUE(client.SendAll(fd));
      char buf[65536];
      ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n == 0) break;
      if (n < 0) {
        std::this_thread::sleep_for(1ms);
        continue;
      }
      EXPECT_TRUE(client.Receive(buf, static_cast<size_t>(n)));
      for (auto& r : TakeWatchResponses(client.data, &off)) got.push_back(std::move(r));
    }
    return got;
  };
  std::set<int64_t> ids;
  for (const auto& r : await(kWatchers)) {
    EXPECT_TRUE(r.created());
    ids.insert(r.watch_id());
  }
  ASSERT_EQ(ids.size(), static_cast<size_t>(kWatchers));

  // stored's part: one put at revision 2 (the watchers start after the probe's revision 1).
  ipc::RingWriter events(*segment_, ipc::RingId::kEvents, 1);
  internal::EventBatch batch;
  mvccpb::Event* ev = batch.add_events();
  ev->mutable_kv()->set_key("p/x");
  ev->mutable_kv()->set_value("v");
  ev->mutable_kv()->set_create_revision(2);
  ev->mutable_kv()->set_mod_revision(2);
  ev->mutable_kv()->set_version(1);
  batch.set_revision(2);
  const int frames_before = client.data_frames;
  ASSERT_TRUE(events.Write(MessageType::kEvents, 2, batch.SerializeAsString(), 1s).ok());
  std::set<int64_t> notified;
  for (const auto& r : await(kWatchers)) {
    ASSERT_EQ(r.events_size(), 1);
    EXPECT_EQ(r.events(0).kv().key(), "p/x");
    EXPECT_EQ(r.events(0).kv().mod_revision(), 2);
    notified.insert(r.watch_id());
  }
  EXPECT_EQ(notified, ids) << "every watcher gets its event once";
  // 200 responses of ~40 bytes: one batch, a DATA frame or two (200 frames unbatched).
  EXPECT_LE(client.data_frames - frames_before, 10) << "the responses crossed one by one";
  EXPECT_FALSE(client.closed);
  // The interceptor counts each response as a message sent (created, then the event).
  const ipc::GrpcMethodStats& w =
      segment_->metrics().grpc[ipc::GrpcMethodSlot("/etcdserverpb.Watch/Watch")];
  EXPECT_EQ(w.msg_sent.load(), 2u * kWatchers);
  ::close(fd);
}

// A learner refuses LeaseGrant at once with etcd's error (the service finishes before it
// reads the request): through the forwarding as from gRPC C++.
TEST_P(KvOverBothServers, LearnerRefusesLeaseGrantAtOnce) {
  etcdserverpb::MemberListResponse list;
  auto* m = list.add_members();
  m->set_id(kMemberId);
  m->set_islearner(true);
  node_->SendRaftReply(ipc::MessageType::kMemberList, list.SerializeAsString());
  auto lease = etcdserverpb::Lease::NewStub(channel_);
  grpc::Status st;
  for (int i = 0; i < 50; ++i) {
    etcdserverpb::LeaseGrantRequest req;
    req.set_ttl(10);
    etcdserverpb::LeaseGrantResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 2s);
    st = lease->LeaseGrant(&ctx, req, &resp);
    if (st.error_message() == "etcdserver: rpc not supported for learner") break;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(st.error_message(), "etcdserver: rpc not supported for learner");
  // clientv3 retries it (Grant is "repeatable") up to 100 times within the caller's
  // deadline: each refusal must be quick.
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 100; ++i) {
    etcdserverpb::LeaseGrantRequest req;
    etcdserverpb::LeaseGrantResponse resp;
    EXPECT_EQ(lease->LeaseGrant(Ctx().get(), req, &resp).error_code(),
              grpc::StatusCode::UNAVAILABLE);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  std::printf("100 refused LeaseGrant: %lld ms\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - start).count()));
}

TEST_F(FrontendProcessTest, SecondFrontendOnABoundPortExitsWithAnError) {
  pid_t second = Spawn({"--listen-client-urls=http://127.0.0.1:" + std::to_string(port_)});
  int status = 0;
  ::waitpid(second, &status, 0);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 78);  // EX_CONFIG: the supervisor must not restart it
}

TEST_P(KvOverBothServers, ClusterMemberListServesWhatRaftdReportsAndChangesAreRefused) {
  auto stub = etcdserverpb::Cluster::NewStub(channel_);
  etcdserverpb::MemberListResponse resp;
  // Before raftd reported members: a clean retryable error, not an empty list.
  grpc::Status st = stub->MemberList(Ctx().get(), etcdserverpb::MemberListRequest(), &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  etcdserverpb::MemberListResponse list;
  auto* m = list.add_members();
  m->set_id(kMemberId);
  m->set_name("n1");
  m->add_peerurls("http://127.0.0.1:2380");
  m->add_clienturls("http://127.0.0.1:2379");
  m = list.add_members();
  m->set_id(0x77);
  m->set_name("n2");
  m->add_peerurls("http://127.0.0.1:2480");
  node_->SendRaftReply(ipc::MessageType::kMemberList, list.SerializeAsString());
  for (int i = 0; i < 50; ++i) {
    resp.Clear();
    st = stub->MemberList(Ctx().get(), etcdserverpb::MemberListRequest(), &resp);
    if (st.ok()) break;
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(resp.members_size(), 2);
  EXPECT_EQ(resp.members(0).name(), "n1");
  EXPECT_EQ(resp.members(0).clienturls(0), "http://127.0.0.1:2379");
  EXPECT_EQ(resp.members(1).id(), 0x77u);
  EXPECT_EQ(resp.header().member_id(), kMemberId);
  EXPECT_EQ(resp.header().cluster_id(), 0x123u);
  // Member changes go to raftd (kMemberChange) and its error comes back unchanged.
  etcdserverpb::MemberRemoveRequest remove;
  remove.set_id(0x1234);
  etcdserverpb::MemberRemoveResponse removed;
  st = stub->MemberRemove(Ctx().get(), remove, &removed);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(st.error_message(), "etcdserver: member not found");
}

}  // namespace
}  // namespace rusd::frontend
