// WatchSendQueue (the Watch stream's unsent responses) alone and behind the WatchHub.
#include "frontend/watch_send_queue.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "etcd/etcdserverpb/rpc.pb.h"
#include "etcd/mvccpb/kv.pb.h"
#include "frontend/watch_hub.h"
#include "frontend/watch_response.h"
#include "rusd/internal.pb.h"

namespace rusd::frontend {
namespace {

std::string Events(int64_t rev, size_t value_bytes) {
  mvccpb::Event ev;
  ev.mutable_kv()->set_key("k");
  ev.mutable_kv()->set_value(std::string(value_bytes, 'v'));
  ev.mutable_kv()->set_mod_revision(rev);
  EncodedEvent e = EncodeEvent(ev);
  const EncodedEvent* p = &e;
  std::string body;
  AppendEventFields(std::span<const EncodedEvent* const>(&p, 1), false, &body);
  return body;
}

std::vector<etcdserverpb::WatchResponse> Drain(WatchSendQueue& q, std::vector<size_t>* sizes = nullptr) {
  std::vector<etcdserverpb::WatchResponse> out;
  while (!q.empty()) {
    std::string bytes = q.PopForWrite();
    if (sizes != nullptr) sizes->push_back(bytes.size());
    q.WriteDone();
    etcdserverpb::WatchResponse r;
    EXPECT_TRUE(r.ParseFromString(bytes));
    out.push_back(std::move(r));
  }
  EXPECT_EQ(q.queued_bytes(), 0u);
  return out;
}

TEST(WatchSendQueue, MergesAWatchersResponsesAcrossOthersButNotAcrossABarrier) {
  WatchSendQueue q;
  const size_t big = 1 << 20;
  q.PushEvents(1, EncodeHeader(1, 2, 5, 3), Events(5, 10), big);
  q.PushEvents(2, EncodeHeader(1, 2, 5, 3), Events(5, 10), big);
  q.PushEvents(1, EncodeHeader(1, 2, 300, 3), Events(300, 10), big);  // a longer header
  ControlResponse progress;
  progress.watch_id = -1;
  q.PushRaw(EncodeControlResponse(EncodeHeader(1, 2, 300, 3), progress));
  q.PushEvents(1, EncodeHeader(1, 2, 301, 3), Events(301, 10), big);
  auto got = Drain(q);
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0].watch_id(), 1);
  ASSERT_EQ(got[0].events_size(), 2);
  EXPECT_EQ(got[0].header().revision(), 300);  // the later header
  EXPECT_EQ(got[1].watch_id(), 2);
  EXPECT_EQ(got[2].watch_id(), -1);
  EXPECT_EQ(got[3].events_size(), 1);
}

// The native server's forwarding takes several responses per in-process message
// (forwarded_framing.h): each with gRPC's length prefix, exactly the responses PopForWrite
// would give one by one, up to the byte limit (a larger single response alone), and all
// their bytes stay counted until WriteDone.
TEST(WatchSendQueue, PrefixedBatchesCarryTheSameResponsesLengthPrefixed) {
  auto fill = [](WatchSendQueue& q) {
    ControlResponse created;
    created.watch_id = 1;
    created.created = true;
    q.PushRaw(EncodeControlResponse(EncodeHeader(1, 2, 5, 3), created));
    for (int64_t w = 1; w <= 20; ++w) {
      q.PushEvents(w, EncodeHeader(1, 2, 6, 3), Events(6, 100), 1 << 20);
    }
    q.PushEvents(99, EncodeHeader(1, 2, 7, 3), Events(7, 3000), 1 << 20);  // over the limit alone
    q.PushEvents(100, EncodeHeader(1, 2, 8, 3), Events(8, 10), 1 << 20);
  };
  WatchSendQueue one_by_one;
  fill(one_by_one);
  std::vector<std::string> want;
  while (!one_by_one.empty()) {
    want.push_back(one_by_one.PopForWrite());
    one_by_one.WriteDone();
  }
  ASSERT_EQ(want.size(), 23u);

  WatchSendQueue q;
  fill(q);
  constexpr size_t kLimit = 1000;
  std::vector<std::string> got;
  size_t batches = 0;
  while (!q.empty()) {
    const size_t before = q.queued_bytes();
    const std::string b = q.PopPrefixedForWrite(kLimit);
    ++batches;
    EXPECT_EQ(q.queued_bytes(), before) << "popped bytes must stay counted until WriteDone";
    size_t off = 0, in_batch = 0;
    while (off < b.size()) {
      ASSERT_GE(b.size() - off, 5u);
      EXPECT_EQ(b[off], 0) << "compressed flag";
      const size_t len = (size_t{static_cast<uint8_t>(b[off + 1])} << 24) |
                         (size_t{static_cast<uint8_t>(b[off + 2])} << 16) |
                         (size_t{static_cast<uint8_t>(b[off + 3])} << 8) |
                         size_t{static_cast<uint8_t>(b[off + 4])};
      ASSERT_LE(len, b.size() - off - 5);
      got.push_back(b.substr(off + 5, len));
      off += 5 + len;
      ++in_batch;
    }
    EXPECT_TRUE(b.size() <= kLimit || in_batch == 1) << "a batch beyond the limit";
    q.WriteDone();
    EXPECT_LT(q.queued_bytes(), before);
  }
  EXPECT_EQ(q.queued_bytes(), 0u);
  EXPECT_EQ(got, want);
  EXPECT_GT(batches, 2u);             // the limit splits them
  EXPECT_LT(batches, want.size());    // and they do travel together
}

TEST(WatchSendQueue, MergesStayWithinTheBodyLimit) {
  WatchSendQueue q;
  for (int64_t r = 2; r < 12; ++r) q.PushEvents(1, EncodeHeader(1, 2, r, 3), Events(r, 100), 250);
  size_t events = 0;
  for (const auto& r : Drain(q)) {
    EXPECT_LE(r.events_size(), 2);  // ~110 bytes each
    events += static_cast<size_t>(r.events_size());
  }
  EXPECT_EQ(events, 10u);
}

// The writer sends a response as prefix + body without joining them: the parts must make
// the very response, raw or events, and a header too long to keep inline still goes out
// whole (unmerged).
TEST(WatchSendQueue, PartsJoinIntoTheEncodedResponse) {
  WatchSendQueue q;
  ControlResponse created;
  created.watch_id = 4;
  created.created = true;
  const std::string raw = EncodeControlResponse(EncodeHeader(1, 2, 5, 3), created);
  q.PushRaw(raw);
  const std::string header = EncodeHeader(~0ull, ~0ull, INT64_MAX, ~0ull);  // the longest
  q.PushEvents(4, header, Events(6, 10), 1 << 20);
  const std::string huge_header(100, 'h');
  q.PushEvents(4, huge_header, Events(7, 10), 1 << 20);
  q.PushEvents(4, header, Events(8, 10), 1 << 20);

  WatchSendQueue::Parts p = q.PopForWriteParts();
  EXPECT_EQ(p.prefix, "");
  EXPECT_EQ(p.body, raw);
  q.WriteDone();
  p = q.PopForWriteParts();
  EXPECT_EQ(p.prefix + p.body, EncodeEventsResponse(header, 4, Events(6, 10)));
  q.WriteDone();
  p = q.PopForWriteParts();
  EXPECT_EQ(p.prefix + p.body, EncodeEventsResponse(huge_header, 4, Events(7, 10)));
  q.WriteDone();
  p = q.PopForWriteParts();
  EXPECT_EQ(p.prefix + p.body, EncodeEventsResponse(header, 4, Events(8, 10)));
  q.WriteDone();
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.queued_bytes(), 0u);
}

// A sink as the gRPC reactor is: responses go through a WatchSendQueue, written later.
class QueueSink final : public WatchSink {
 public:
  WatchSendQueue q;
  size_t Send(std::string response) override {
    q.PushRaw(std::move(response));
    return q.queued_bytes();
  }
  size_t SendEvents(int64_t watch_id, std::string_view header, std::string&& events,
                    size_t max_body) override {
    q.PushEvents(watch_id, header, std::move(events), max_body);
    return q.queued_bytes();
  }
  size_t QueuedBytes() const override { return q.queued_bytes(); }
};

class NoStore final : public WatchStore {
 public:
  void CurrentRevision(std::function<void(const Status&, int64_t, uint64_t)> done) override {
    done(Status::Ok(), 1, 2);
  }
  void ReadHistory(std::string, std::function<void(const Status&, std::string&&)> done) override {
    done(Status::Ok(), std::string());
  }
  uint64_t Term() const override { return 2; }
};

// The responses the hub sends one per batch and the stream merges while a write is in
// flight stay below the fragment limit (max-request-bytes + 512 KiB), as each one does.
TEST(WatchSendQueue, ResponsesMergedBehindTheHubStayBelowItsResponseLimit) {
  NoStore store;
  WatchHubOptions o;
  o.max_response_bytes = 1000;
  WatchHub hub(store, o);
  hub.Start();
  QueueSink sink;
  auto s = hub.OpenStream(&sink);
  etcdserverpb::WatchCreateRequest req;
  req.set_key("k");
  req.set_fragment(true);
  hub.Create(s, req);
  for (int64_t r = 2; r < 22; ++r) {  // one batch per revision, ~210 bytes of events each
    auto b = std::make_shared<internal::EventBatch>();
    auto* ev = b->add_events();
    ev->mutable_kv()->set_key("k");
    ev->mutable_kv()->set_value(std::string(200, 'v'));
    ev->mutable_kv()->set_mod_revision(r);
    b->set_revision(r);
    hub.OnEventBatch(b);
  }
  std::vector<size_t> sizes;
  auto got = Drain(sink.q, &sizes);
  int events = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_LT(sizes[i], 1000u);
    events += got[i].events_size();
  }
  EXPECT_EQ(events, 20);
  EXPECT_GT(got.size(), 3u);  // created + several merged responses
  hub.CloseStream(s);
}

}  // namespace
}  // namespace rusd::frontend
