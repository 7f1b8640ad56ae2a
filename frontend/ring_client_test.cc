// RingClient in-process, against hand-driven raftd and stored ends of a small segment.
#include "frontend/ring_client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "etcd/etcdserverpb/rpc.pb.h"
#include "frontend/connection_cork.h"
#include "frontend/tcp_pair_for_tests.h"
#include "ipc/message_type.h"
#include "ipc/ring.h"
#include "ipc/segment.h"
#include "rusd/internal.pb.h"

namespace rusd::frontend {
namespace {

using namespace std::chrono_literals;
using ipc::MessageType;
using Clock = std::chrono::steady_clock;

class RingClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    name_ = "rusd-ringclient-test-" + std::to_string(getpid());
    ipc::SegmentLayout layout;
    layout.ring_bytes[static_cast<int>(ipc::RingId::kProposals)] = 64u << 10;  // fills fast
    auto seg = ipc::Segment::Create(name_, layout);
    ASSERT_TRUE(seg.ok()) << seg.status().ToString();
    segment_ = std::move(seg).value();
    for (auto c : {ipc::Component::kFrontend, ipc::Component::kRaftd, ipc::Component::kStored}) {
      segment_->component(c).epoch.store(1);
    }
    proposals_ = std::make_unique<ipc::RingReader>(*segment_, ipc::RingId::kProposals);
    reads_ = std::make_unique<ipc::RingReader>(*segment_, ipc::RingId::kReads);
    raft_replies_ = std::make_unique<ipc::RingWriter>(*segment_, ipc::RingId::kRaftReplies, 1);
    store_replies_ = std::make_unique<ipc::RingWriter>(*segment_, ipc::RingId::kStoreReplies, 1);
  }

  // Fills the proposals ring until not even an empty frame fits (raftd is "stalled"). Before
  // StartClient: a ring has one writer at a time, and the client's continues from here.
  void FillProposals() {
    ipc::RingWriter filler(*segment_, ipc::RingId::kProposals, 1);
    for (size_t size : {1000, 100, 0}) {
      while (filler.TryWrite(MessageType::kPropose, 0, std::string(size, 'f')).ok()) {
      }
    }
  }

  void StartClient(ConnectionCork* cork = nullptr, ReplyBatchHook* batch_hook = nullptr) {
    RingClientOptions options;
    options.cork = cork;
    options.batch_hook = batch_hook;
    options.member_id = 1;
    options.own_epoch = 1;
    options.ring_write_timeout = 2000ms;  // what a blocked reply thread would wait
    client_ = std::make_unique<RingClient>(*segment_, options);
    client_->Start();
  }

  void TearDown() override {
    client_.reset();
    proposals_.reset();
    reads_.reset();
    raft_replies_.reset();
    store_replies_.reset();
    segment_.reset();
    ipc::Segment::Remove(name_);
  }

  // Answers every read on the reads ring with kResult "ok"; returns how many.
  int AnswerReads() {
    int n = 0;
    ipc::Message m;
    while (reads_->TryRead(&m)) {
      EXPECT_TRUE(store_replies_->Write(MessageType::kResult, m.id, "ok", 1s).ok());
      ++n;
    }
    return n;
  }

  std::string name_;
  std::unique_ptr<ipc::Segment> segment_;
  std::unique_ptr<ipc::RingReader> proposals_;
  std::unique_ptr<ipc::RingReader> reads_;
  std::unique_ptr<ipc::RingWriter> raft_replies_;
  std::unique_ptr<ipc::RingWriter> store_replies_;
  std::unique_ptr<RingClient> client_;
};

// A callback (on the reply thread) that issues a linearizable read while the proposals ring
// is full must not wait for space: the reply thread is what lets raftd and stored go on.
// The read leaves once raftd drains the ring and completes normally.
TEST_F(RingClientTest, ReadIssuedFromACallbackNeverBlocksTheReplyThreadOnAFullRing) {
  FillProposals();
  StartClient();

  std::promise<Clock::duration> callback_took;
  std::promise<Status> inner_done;
  client_->ReadAs(static_cast<uint16_t>(MessageType::kLeaseKeepAliveBatch), "outer",
                  /*linearizable=*/false, [&](const Status& st, std::string&&) {
                    EXPECT_TRUE(st.ok()) << st.ToString();
                    const Clock::time_point start = Clock::now();
                    client_->ReadAs(static_cast<uint16_t>(MessageType::kLeaseKeepAliveBatch),
                                    "inner", /*linearizable=*/true,
                                    [&](const Status& st2, std::string&&) {
                                      inner_done.set_value(st2);
                                    });
                    callback_took.set_value(Clock::now() - start);
                  });
  // stored answers the outer read; its callback issues the inner one on the reply thread.
  const Clock::time_point until = Clock::now() + 5s;
  while (AnswerReads() == 0 && Clock::now() < until) std::this_thread::sleep_for(1ms);
  std::future<Clock::duration> took = callback_took.get_future();
  ASSERT_EQ(took.wait_for(5s), std::future_status::ready);
  EXPECT_LT(took.get(), 500ms) << "the reply thread waited for ring space";

  // raftd wakes up: drains the ring and answers the inner read's kReadIndex.
  std::future<Status> inner = inner_done.get_future();
  ipc::Message m;
  bool read_index_seen = false;
  while (inner.wait_for(0s) != std::future_status::ready && Clock::now() < until) {
    while (proposals_->TryRead(&m)) {
      if (m.type != MessageType::kReadIndex) continue;
      read_index_seen = true;
      internal::ReadIndexReply reply;
      reply.set_read_index(1);
      EXPECT_TRUE(
          raft_replies_->Write(MessageType::kReadIndexReply, m.id, reply.SerializeAsString(), 1s)
              .ok());
    }
    AnswerReads();
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_TRUE(read_index_seen);
  ASSERT_EQ(inner.wait_for(0s), std::future_status::ready);
  EXPECT_TRUE(inner.get().ok());
}

// The batch hook (the native gRPC server's flush, native_grpc_server.h) runs on the reply
// thread after the callbacks of a batch: all five replies are on the ring before the reply
// thread reads any of them, so its first call after them must see all five callbacks done
// (a hook run per message would see 1).
TEST_F(RingClientTest, BatchHookRunsOnTheReplyThreadAfterTheBatchsCallbacks) {
  struct Hook final : ReplyBatchHook {
    std::mutex mu;
    int callbacks_done = 0;        // callbacks of the five reads that ran so far
    int seen_at_first_hook = -1;   // callbacks_done when the hook first saw any
    bool on_reply_thread = true;
    RingClient* client = nullptr;
    void ReplyBatchEnd() override {
      std::lock_guard lock(mu);
      if (client == nullptr) return;  // a batch ended before the test saw the client
      if (!client->OnReplyThread()) on_reply_thread = false;
      if (callbacks_done > 0 && seen_at_first_hook < 0) seen_at_first_hook = callbacks_done;
    }
  } hook;
  StartClient(nullptr, &hook);
  // The client (and its reply thread) must be gone before `hook` is, whichever way the
  // test body ends.
  struct StopClientFirst {
    std::unique_ptr<RingClient>& client;
    ~StopClientFirst() { client.reset(); }
  } stop_client_first{client_};
  {
    std::lock_guard lock(hook.mu);
    hook.client = client_.get();
  }
  EXPECT_FALSE(client_->OnReplyThread());
  // A first read whose callback holds the reply thread while the five replies are written.
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  client_->Read("blocker", /*linearizable=*/false, [&, released](const Status&, std::string&&) {
    entered.set_value();
    released.wait();
  });
  std::promise<void> all;
  constexpr int kReads = 5;
  for (int i = 0; i < kReads; ++i) {
    client_->Read("r", /*linearizable=*/false, [&](const Status& st, std::string&&) {
      EXPECT_TRUE(st.ok());
      EXPECT_TRUE(client_->OnReplyThread());
      std::lock_guard lock(hook.mu);
      if (++hook.callbacks_done == kReads) all.set_value();
    });
  }
  std::vector<uint64_t> ids;  // in the order issued: the blocker's first
  const Clock::time_point until = Clock::now() + 5s;
  ipc::Message m;
  while (ids.size() < kReads + 1 && Clock::now() < until) {
    if (reads_->TryRead(&m)) {
      ids.push_back(m.id);
    } else {
      std::this_thread::sleep_for(1ms);
    }
  }
  ASSERT_EQ(ids.size(), static_cast<size_t>(kReads + 1));
  ASSERT_TRUE(store_replies_->Write(MessageType::kResult, ids[0], "ok", 1s).ok());
  ASSERT_EQ(entered.get_future().wait_for(5s), std::future_status::ready);
  for (int i = 1; i <= kReads; ++i) {
    ASSERT_TRUE(store_replies_->Write(MessageType::kResult, ids[i], "ok", 1s).ok());
  }
  release.set_value();
  ASSERT_EQ(all.get_future().wait_for(5s), std::future_status::ready);
  for (int i = 0; i < 200; ++i) {
    {
      std::lock_guard lock(hook.mu);
      if (hook.seen_at_first_hook >= 0) break;
    }
    std::this_thread::sleep_for(5ms);
  }
  std::lock_guard lock(hook.mu);
  EXPECT_TRUE(hook.on_reply_thread);
  EXPECT_EQ(hook.seen_at_first_hook, kReads) << "the hook ran before the batch's callbacks";
}

}  // namespace
}  // namespace rusd::frontend

namespace rusd::frontend {
namespace {

// A callback that answers many calls from one reply (the keep-alive batcher) corks the
// connections even though its reply is the reply thread's only one; calling again sends
// what was queued so far; the reply thread uncorks once the callback is done. Elsewhere
// the call does nothing.
TEST_F(RingClientTest, CorkConnectionsFromACallbackCorksFlushesAndUncorksAfterTheBatch) {
  TcpPair pair;
  ConnectionCork cork;
  cork.Add(pair.server);
  StartClient(&cork);

  client_->CorkConnections();  // not the reply thread: no cork
  ASSERT_EQ(::send(pair.server, "x", 1, 0), 1);
  EXPECT_EQ(pair.Received(1000), "x");

  std::promise<void> done;
  std::string while_corked, at_flush, after_flush;
  client_->ReadAs(static_cast<uint16_t>(MessageType::kLeaseKeepAliveBatch), "batch",
                  /*linearizable=*/false, [&](const Status& st, std::string&&) {
                    EXPECT_TRUE(st.ok()) << st.ToString();
                    client_->CorkConnections();
                    EXPECT_EQ(::send(pair.server, "ab", 2, 0), 2);
                    while_corked = pair.Received(100);
                    client_->CorkConnections();  // flush: "ab" leaves, corked again
                    at_flush = pair.Received(1000);
                    EXPECT_EQ(::send(pair.server, "cd", 2, 0), 2);
                    after_flush = pair.Received(100);
                    done.set_value();
                  });
  const Clock::time_point until = Clock::now() + 5s;
  while (AnswerReads() == 0 && Clock::now() < until) std::this_thread::sleep_for(1ms);
  ASSERT_EQ(done.get_future().wait_for(5s), std::future_status::ready);
  EXPECT_EQ(while_corked, "") << "a corked connection sent a short write";
  EXPECT_EQ(at_flush, "ab");
  EXPECT_EQ(after_flush, "") << "not corked again after the flush";
  EXPECT_EQ(pair.Received(1000), "cd") << "not uncorked after the reply thread's batch";
}

}  // namespace
}  // namespace rusd::frontend
