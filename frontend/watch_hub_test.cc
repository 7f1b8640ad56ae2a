// WatchKeyIndex and WatchHub through their public interfaces, with an in-memory store (the
// history stored would serve) and sinks that record, or refuse, what the hub sends.
#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <functional>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "etcd/etcdserverpb/rpc.pb.h"
#include "etcd/mvccpb/kv.pb.h"
#include "frontend/watch_hub.h"
#include "frontend/watch_key_index.h"
#include "frontend/watch_range_index.h"
#include "frontend/watch_response.h"
#include "frontend/watch_service.h"
#include "rusd/internal.pb.h"
#include "rusd/watch.pb.h"

namespace rusd::frontend {
namespace {

// ---- WatchKeyIndex ----

struct W {
  int id;
};

std::set<int> Matches(const WatchKeyIndex<W>& idx, std::string_view key) {
  std::set<int> out;
  idx.Match(key, [&](W* w) { out.insert(w->id); });
  return out;
}

TEST(WatchKeyIndex, MatchesKeysPrefixesFromKeyAndRanges) {
  WatchKeyIndex<W> idx;
  W single{1}, prefix{2}, from{3}, range{4}, all{5}, prefix2{6};
  idx.Add(&single, "a/b", "");
  idx.Add(&prefix, "a/", PrefixEnd("a/"));
  idx.Add(&from, "m", std::string(1, '\0'));
  idx.Add(&range, "b", "d");
  idx.Add(&all, std::string(1, '\0'), std::string(1, '\0'));
  idx.Add(&prefix2, "a/b", PrefixEnd("a/b"));
  EXPECT_EQ(Matches(idx, "a/b"), (std::set<int>{1, 2, 5, 6}));
  EXPECT_EQ(Matches(idx, "a/bc"), (std::set<int>{2, 5, 6}));
  EXPECT_EQ(Matches(idx, "a/"), (std::set<int>{2, 5}));
  EXPECT_EQ(Matches(idx, "a"), (std::set<int>{5}));
  EXPECT_EQ(Matches(idx, "c"), (std::set<int>{4, 5}));
  EXPECT_EQ(Matches(idx, "d"), (std::set<int>{5}));
  EXPECT_EQ(Matches(idx, "z"), (std::set<int>{3, 5}));
  idx.Remove(&prefix, "a/", PrefixEnd("a/"));
  idx.Remove(&all, std::string(1, '\0'), std::string(1, '\0'));
  idx.Remove(&range, "b", "d");
  EXPECT_EQ(Matches(idx, "a/bc"), (std::set<int>{6}));
  EXPECT_EQ(Matches(idx, "c"), (std::set<int>{}));
  EXPECT_EQ(idx.size(), 3u);
}

TEST(WatchKeyIndex, PrefixEndFollowsEtcd) {
  EXPECT_EQ(PrefixEnd("abc"), "abd");
  EXPECT_EQ(PrefixEnd("a\xff"), "b");
  EXPECT_EQ(PrefixEnd("\xff\xff"), std::string(1, '\0'));
  EXPECT_EQ(PrefixEnd(""), std::string(1, '\0'));
}

TEST(WatchKeyIndex, ManyUnrelatedWatchersDoNotMatch) {
  WatchKeyIndex<W> idx;
  std::vector<W> ws(10000);
  std::vector<std::string> keys;
  for (int i = 0; i < 10000; ++i) {
    ws[i].id = i;
    std::string k = "key/";
    k.append(std::to_string(i));
    keys.push_back(std::move(k));
  }
  for (int i = 0; i < 10000; ++i) idx.Add(&ws[i], keys[i], "");
  EXPECT_EQ(Matches(idx, "key/77"), (std::set<int>{77}));
  EXPECT_EQ(Matches(idx, "other"), (std::set<int>{}));
}

// The interval tree against a linear scan: random ranges over a small alphabet (many
// overlaps and shared endpoints), lookups after adds and after removes.
TEST(WatchRangeIndex, MatchesWhatALinearScanMatches) {
  std::mt19937 rng(7);
  auto key = [&] {
    std::string k;
    const int n = 1 + static_cast<int>(rng() % 3);
    for (int i = 0; i < n; ++i) k.push_back(static_cast<char>('a' + rng() % 6));
    return k;
  };
  struct R {
    W w;
    std::string b, e;
  };
  std::vector<R> rs(400);
  WatchRangeIndex<W> idx;
  for (int i = 0; i < 400; ++i) {
    rs[i].w.id = i;
    do {
      rs[i].b = key();
      rs[i].e = key();
    } while (rs[i].b >= rs[i].e);
    idx.Add(&rs[i].w, rs[i].b, rs[i].e);
  }
  std::vector<bool> live(400, true);
  auto check = [&] {
    for (int q = 0; q < 300; ++q) {
      const std::string k = key();
      std::multiset<int> got, want;
      idx.Match(k, [&](W* w) { got.insert(w->id); });
      for (int i = 0; i < 400; ++i) {
        if (live[i] && k >= rs[i].b && k < rs[i].e) want.insert(i);
      }
      ASSERT_EQ(got, want) << "key " << k;
    }
  };
  check();
  for (int i = 0; i < 400; i += 3) {
    EXPECT_TRUE(idx.Remove(&rs[i].w));
    live[i] = false;
  }
  check();
  EXPECT_EQ(idx.size(), 400u - 134u);
  // Churn between lookups: adds and removes of both tree and recent entries.
  for (int round = 0; round < 200; ++round) {
    const int i = static_cast<int>(rng() % 400);
    if (live[i]) {
      EXPECT_TRUE(idx.Remove(&rs[i].w));
    } else {
      idx.Add(&rs[i].w, rs[i].b, rs[i].e);
    }
    live[i] = !live[i];
    if (round % 7 == 0) check();
  }
  check();
  EXPECT_EQ(idx.size(), static_cast<size_t>(std::count(live.begin(), live.end(), true)));
  EXPECT_FALSE(idx.Remove(nullptr));
}

TEST(WatchKeyIndex, ManyUnrelatedRangesDoNotMatch) {
  WatchKeyIndex<W> idx;
  std::vector<W> ws(10000);
  char buf[16];
  for (int i = 0; i < 10000; ++i) {
    ws[i].id = i;
    snprintf(buf, sizeof buf, "r/%05d", i);
    std::string b = buf;
    idx.Add(&ws[i], b, b + "z");  // [r/i, r/iz): neither a key nor a prefix
  }
  EXPECT_EQ(Matches(idx, "r/00077x"), (std::set<int>{77}));
  EXPECT_EQ(Matches(idx, "r/00077z"), (std::set<int>{}));
  EXPECT_EQ(Matches(idx, "q"), (std::set<int>{}));
}

// ---- WatchResponse encoding ----

TEST(WatchResponseEncoding, SplicedBytesParseAsEtcdsMessage) {
  mvccpb::Event ev;
  ev.set_type(mvccpb::Event::PUT);
  ev.mutable_kv()->set_key("k");
  ev.mutable_kv()->set_value("v2");
  ev.mutable_kv()->set_mod_revision(5);
  ev.mutable_prev_kv()->set_key("k");
  ev.mutable_prev_kv()->set_value("v1");
  EncodedEvent e = EncodeEvent(ev);
  std::vector<const EncodedEvent*> evs = {&e, &e};
  std::vector<std::string> out;
  EncodeEventResponses(EncodeHeader(1, 2, 5, 3), 9, evs, true, false, 1 << 20, &out);
  ASSERT_EQ(out.size(), 1u);
  etcdserverpb::WatchResponse r;
  ASSERT_TRUE(r.ParseFromString(out[0]));
  EXPECT_EQ(r.header().revision(), 5);
  EXPECT_EQ(r.header().raft_term(), 3u);
  EXPECT_EQ(r.watch_id(), 9);
  ASSERT_EQ(r.events_size(), 2);
  EXPECT_EQ(r.events(1).prev_kv().value(), "v1");
  out.clear();
  EncodeEventResponses(EncodeHeader(1, 2, 5, 3), 9, evs, false, false, 1 << 20, &out);
  ASSERT_TRUE(r.ParseFromString(out[0]));
  EXPECT_FALSE(r.events(0).has_prev_kv());
  // Byte-identical to protobuf's own encoding of the same message.
  etcdserverpb::WatchResponse ref;
  *ref.mutable_header() = r.header();
  ref.set_watch_id(9);
  for (int i = 0; i < 2; ++i) {
    auto* x = ref.add_events();
    *x = ev;
    x->clear_prev_kv();
  }
  EXPECT_EQ(ref.SerializeAsString(), out[0]);
}

TEST(WatchResponseEncoding, FragmentsStayBelowTheLimitLikeEtcd) {
  mvccpb::Event ev;
  ev.mutable_kv()->set_key("k");
  ev.mutable_kv()->set_value(std::string(1000, 'x'));
  EncodedEvent e = EncodeEvent(ev);
  std::vector<const EncodedEvent*> evs(10, &e);
  std::vector<std::string> out;
  EncodeEventResponses(EncodeHeader(1, 2, 5, 3), 1, evs, false, true, 3500, &out);
  ASSERT_EQ(out.size(), 4u);  // 3 + 3 + 3 + 1
  int total = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    etcdserverpb::WatchResponse r;
    ASSERT_TRUE(r.ParseFromString(out[i]));
    EXPECT_LT(out[i].size(), 3500u);
    EXPECT_EQ(r.fragment(), i + 1 < out.size());
    total += r.events_size();
  }
  EXPECT_EQ(total, 10);
}

// ---- the progress interval flag ----

TEST(ProgressNotifyInterval, ParsesGoDurationsWithEtcdsMinimum) {
  using std::chrono::milliseconds;
  EXPECT_EQ(ParseProgressNotifyInterval("10m0s").value(), milliseconds(600000));
  EXPECT_EQ(ParseProgressNotifyInterval("5s").value(), milliseconds(5000));
  EXPECT_EQ(ParseProgressNotifyInterval("1m30s").value(), milliseconds(90000));
  EXPECT_EQ(ParseProgressNotifyInterval("1.5s").value(), milliseconds(1500));
  EXPECT_EQ(ParseProgressNotifyInterval("50ms").value(), milliseconds(100));  // etcd's minimum
  EXPECT_EQ(ParseProgressNotifyInterval("0").value(), milliseconds(600000));  // default kept
  EXPECT_FALSE(ParseProgressNotifyInterval("5").ok());
  EXPECT_FALSE(ParseProgressNotifyInterval("s").ok());
  EXPECT_FALSE(ParseProgressNotifyInterval("5x").ok());
  EXPECT_EQ(ParseProgressNotifyInterval("abc").status().message(), "time: invalid duration \"abc\"");
  // Beyond int64 nanoseconds is Go's error, not an overflowed conversion.
  EXPECT_FALSE(ParseProgressNotifyInterval("2562048h").ok());
  EXPECT_FALSE(ParseProgressNotifyInterval("99999999999999999999s").ok());
  EXPECT_EQ(ParseProgressNotifyInterval("2562047h").value(), milliseconds(2562047ll * 3600 * 1000));
  EXPECT_EQ(ParseProgressNotifyInterval("-5s").value(), milliseconds(600000));  // default kept
}

// ---- WatchHub ----

// The store: every event ever applied, served as stored would (history chunks, probes).
// Replies are immediate, or held until Release() when `defer` is set.
class FakeStore final : public WatchStore {
 public:
  std::mutex mu;
  std::vector<mvccpb::Event> log;
  int64_t rev = 1;
  int64_t compacted = 0;
  bool defer = false;
  std::deque<std::function<void()>> held;
  int history_reads = 0;

  void CurrentRevision(std::function<void(const Status&, int64_t, uint64_t)> done) override {
    int64_t r;
    {
      std::lock_guard l(mu);
      r = rev;
    }
    done(Status::Ok(), r, 2);
  }
  void ReadHistory(std::string request,
                   std::function<void(const Status&, std::string&&)> done) override {
    internal::WatchHistoryRead q;
    q.ParseFromString(request);
    internal::WatchHistoryChunk c;
    {
      std::lock_guard l(mu);
      ++history_reads;
      c.set_current_revision(rev);
      if (compacted > 0 && q.start_revision() < compacted) {
        c.set_compact_revision(compacted);
      } else {
        c.set_next_revision(rev + 1);
        int64_t last = -1;
        for (const auto& ev : log) {
          int64_t r = ev.kv().mod_revision();
          if (r < q.start_revision()) continue;
          const std::string& k = ev.kv().key();
          bool in = q.range_end().empty() ? k == q.key()
                                          : (k >= q.key() && (q.range_end() == std::string(1, '\0') ||
                                                              k < q.range_end()));
          if (!in) continue;
          if (c.events_size() >= static_cast<int>(q.max_events()) && r != last) {
            c.set_next_revision(r);
            break;
          }
          *c.add_events() = ev;
          last = r;
        }
      }
    }
    std::string bytes = c.SerializeAsString();
    auto fire = [done, bytes]() mutable { done(Status::Ok(), std::move(bytes)); };
    std::unique_lock l(mu);
    if (defer) {
      held.push_back(fire);
      return;
    }
    l.unlock();
    fire();
  }
  uint64_t Term() const override { return 2; }

  // Applies puts (one revision each, or one txn) and returns the batch stored would publish.
  std::shared_ptr<internal::EventBatch> Put(const std::vector<std::string>& keys) {
    std::lock_guard l(mu);
    auto b = std::make_shared<internal::EventBatch>();
    ++rev;
    for (const auto& k : keys) {
      mvccpb::Event ev;
      ev.mutable_kv()->set_key(k);
      std::string v = "v";
      v.append(std::to_string(rev));
      ev.mutable_kv()->set_value(v);
      ev.mutable_kv()->set_mod_revision(rev);
      log.push_back(ev);
      *b->add_events() = ev;
    }
    b->set_revision(rev);
    return b;
  }
  void Release() {
    for (;;) {
      std::function<void()> f;
      {
        std::lock_guard l(mu);
        if (held.empty()) return;
        f = std::move(held.front());
        held.pop_front();
      }
      f();
    }
  }
};

class FakeSink final : public WatchSink {
 public:
  std::vector<etcdserverpb::WatchResponse> got;
  size_t queued = 0;  // what the hub sees as unsent
  size_t Send(std::string response) override {
    etcdserverpb::WatchResponse r;
    EXPECT_TRUE(r.ParseFromString(response));
    got.push_back(r);
    return queued;
  }
  size_t QueuedBytes() const override { return queued; }

  // Revisions of the events delivered to `id`, in order.
  std::vector<int64_t> Revisions(int64_t id) const {
    std::vector<int64_t> out;
    for (const auto& r : got) {
      if (r.watch_id() != id) continue;
      for (const auto& e : r.events()) out.push_back(e.kv().mod_revision());
    }
    return out;
  }
};

etcdserverpb::WatchCreateRequest Req(const std::string& key, const std::string& end = "",
                                     int64_t start = 0) {
  etcdserverpb::WatchCreateRequest r;
  r.set_key(key);
  r.set_range_end(end);
  r.set_start_revision(start);
  return r;
}

std::vector<int64_t> Range(int64_t from, int64_t to) {
  std::vector<int64_t> v;
  for (int64_t r = from; r <= to; ++r) v.push_back(r);
  return v;
}

// Waits for the hub's catch-up thread to settle (it issues reads asynchronously).
void Settle(WatchHub& hub) {
  for (int i = 0; i < 200; ++i) {
    hub.Tick();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

class WatchHubTest : public ::testing::Test {
 protected:
  WatchHubTest() : hub(store, Options()) { hub.Start(); }
  static WatchHubOptions Options() {
    WatchHubOptions o;
    o.cluster_id = 1;
    o.member_id = 2;
    o.chunk_events = 3;  // many chunks
    o.max_queued_bytes = 1000;
    return o;
  }
  FakeStore store;
  WatchHub hub;
};

TEST_F(WatchHubTest, LiveEventsReachOnlyMatchingWatchersWithEtcdHeaders) {
  FakeSink sink;
  auto s = hub.OpenStream(&sink);
  hub.Create(s, Req("a"));
  hub.Create(s, Req("b/", "b0"));
  ASSERT_EQ(sink.got.size(), 2u);
  EXPECT_TRUE(sink.got[0].created());
  EXPECT_EQ(sink.got[0].watch_id(), 0);
  EXPECT_EQ(sink.got[1].watch_id(), 1);
  EXPECT_EQ(sink.got[0].header().revision(), 1);
  hub.OnEventBatch(store.Put({"a"}));
  hub.OnEventBatch(store.Put({"b/1", "b/2", "c"}));
  hub.OnEventBatch(store.Put({"c"}));
  ASSERT_EQ(sink.got.size(), 4u);
  EXPECT_EQ(sink.got[2].watch_id(), 0);
  EXPECT_EQ(sink.got[2].header().revision(), 2);
  EXPECT_EQ(sink.got[3].watch_id(), 1);
  EXPECT_EQ(sink.got[3].events_size(), 2);  // the txn's two matching events, one response
  EXPECT_EQ(sink.got[3].header().cluster_id(), 1u);
  EXPECT_EQ(sink.got[3].header().raft_term(), 2u);
  EXPECT_EQ(hub.stats().streams, 1u);
  EXPECT_EQ(hub.stats().watchers, 2u);
  EXPECT_EQ(hub.stats().events_sent, 3u);  // "a", then "b/1" and "b/2"; "c" matched nobody
  hub.CloseStream(s);
  EXPECT_EQ(hub.stats().streams, 0u);
}

TEST_F(WatchHubTest, CatchUpJoinsLiveEventsWithoutGapOrDuplicate) {
  for (int i = 0; i < 10; ++i) hub.OnEventBatch(store.Put({"k"}));  // before anyone watches
  FakeSink sink;
  auto s = hub.OpenStream(&sink);
  for (int i = 0; i < 5; ++i) hub.OnEventBatch(store.Put({"k"}));  // revisions 12..16
  store.defer = true;
  hub.Create(s, Req("k", "", 2));
  Settle(hub);
  // Live events arrive while the history read is outstanding, then more after each chunk.
  for (int i = 0; i < 4; ++i) {
    hub.OnEventBatch(store.Put({"k"}));
    store.Release();
    Settle(hub);
  }
  store.defer = false;
  store.Release();
  Settle(hub);
  for (int i = 0; i < 3; ++i) hub.OnEventBatch(store.Put({"k"}));
  EXPECT_EQ(sink.Revisions(0), Range(2, store.rev));
  // Every event counted once, whether it came from history or live.
  EXPECT_EQ(hub.stats().events_sent, static_cast<uint64_t>(store.rev - 1));
  EXPECT_EQ(hub.stats().synced, 1u);
  EXPECT_GT(store.history_reads, 3);
  hub.CloseStream(s);
}

TEST_F(WatchHubTest, GapSendsSyncedWatchersBackToHistory) {
  FakeSink sink;
  auto s = hub.OpenStream(&sink);
  hub.Create(s, Req("g/", "g0"));
  hub.OnEventBatch(store.Put({"g/1"}));
  store.Put({"g/2"});  // dropped: the ring was full
  store.Put({"x"});
  auto b = store.Put({"g/3"});
  b->set_after_gap(true);
  hub.OnEventBatch(b);
  Settle(hub);
  hub.OnEventBatch(store.Put({"g/4"}));
  EXPECT_EQ(sink.Revisions(0), (std::vector<int64_t>{2, 3, 5, 6}));
  EXPECT_EQ(hub.stats().gaps, 1u);
  // A stored restart does the same, even with no event lost.
  hub.OnStoredRestart();
  Settle(hub);
  hub.OnEventBatch(store.Put({"g/5"}));
  EXPECT_EQ(sink.Revisions(0), (std::vector<int64_t>{2, 3, 5, 6, 7}));
  hub.CloseStream(s);
}

TEST_F(WatchHubTest, FullStreamPausesItsWatchersWhichResumeFromHistory) {
  FakeSink slow, fast;
  auto ss = hub.OpenStream(&slow);
  auto fs = hub.OpenStream(&fast);
  hub.Create(ss, Req("s"));
  hub.Create(fs, Req("s"));
  hub.OnEventBatch(store.Put({"s"}));
  slow.queued = 5000;  // above max_queued_bytes: gets nothing more
  for (int i = 0; i < 20; ++i) hub.OnEventBatch(store.Put({"s"}));
  EXPECT_EQ(slow.Revisions(0), (std::vector<int64_t>{2}));
  EXPECT_EQ(fast.Revisions(0), Range(2, 22));  // the other stream never waits
  slow.queued = 0;
  hub.OnSinkDrained(ss);
  Settle(hub);
  hub.OnEventBatch(store.Put({"s"}));
  EXPECT_EQ(slow.Revisions(0), Range(2, 23));
  hub.CloseStream(ss);
  hub.CloseStream(fs);
}

TEST_F(WatchHubTest, CompactedStartIsCanceledWithCompactRevision) {
  for (int i = 0; i < 5; ++i) hub.OnEventBatch(store.Put({"c"}));
  store.compacted = 4;
  FakeSink sink;
  auto s = hub.OpenStream(&sink);
  hub.Create(s, Req("c", "", 2));
  Settle(hub);
  ASSERT_EQ(sink.got.size(), 2u);
  EXPECT_TRUE(sink.got[1].canceled());
  EXPECT_EQ(sink.got[1].compact_revision(), 4);
  EXPECT_EQ(sink.got[1].header().revision(), 0);
  EXPECT_EQ(hub.stats().watchers, 0u);
  hub.CloseStream(s);
}

TEST_F(WatchHubTest, DuplicateIdEmptyRangeCancelAndProgress) {
  FakeSink sink;
  auto s = hub.OpenStream(&sink);
  auto r = Req("a");
  r.set_watch_id(5);
  hub.Create(s, r);
  hub.Create(s, r);
  hub.Create(s, Req("b", "a"));
  hub.Cancel(s, 5);
  hub.Cancel(s, 5);  // unknown now: etcd sends nothing
  hub.RequestProgress(s);  // no watchers: nothing (etcd 3.5)
  hub.Create(s, Req("z"));
  hub.RequestProgress(s);
  ASSERT_EQ(sink.got.size(), 6u);
  EXPECT_EQ(sink.got[0].watch_id(), 5);
  EXPECT_EQ(sink.got[1].cancel_reason(), "mvcc: duplicate watch ID provided on the WatchStream");
  EXPECT_EQ(sink.got[1].watch_id(), -1);
  EXPECT_EQ(sink.got[2].cancel_reason(), "mvcc: watcher range is empty");
  EXPECT_TRUE(sink.got[3].canceled());
  EXPECT_EQ(sink.got[3].watch_id(), 5);
  EXPECT_EQ(sink.got[4].watch_id(), 0);
  EXPECT_EQ(sink.got[5].watch_id(), -1);
  EXPECT_EQ(sink.got[5].events_size(), 0);
  EXPECT_FALSE(sink.got[5].created());
  hub.CloseStream(s);
}

// Several revisions applied together (one EventBatch): one response per watcher carrying all
// of its events in revision order, the header at the batch's last revision; a txn is never
// split, and a merged response stays below the response limit by splitting between revisions.
TEST_F(WatchHubTest, ABatchOfRevisionsIsOneResponsePerWatcher) {
  FakeSink sink;
  auto s = hub.OpenStream(&sink);
  hub.Create(s, Req("m/", "m0"));  // id 0: prefix
  hub.Create(s, Req("m/2"));       // id 1: one key
  ASSERT_EQ(sink.got.size(), 2u);
  auto batch = std::make_shared<internal::EventBatch>();
  for (const auto& keys : std::vector<std::vector<std::string>>{
           {"m/1"}, {"m/2", "m/3"}, {"x"}, {"m/2"}}) {
    auto b = store.Put(keys);
    for (const auto& e : b->events()) *batch->add_events() = e;
    batch->set_revision(b->revision());
  }
  hub.OnEventBatch(batch);  // revisions 2..5
  ASSERT_EQ(sink.got.size(), 4u);
  EXPECT_EQ(sink.got[2].watch_id(), 0);
  EXPECT_EQ(sink.Revisions(0), (std::vector<int64_t>{2, 3, 3, 5}));
  EXPECT_EQ(sink.got[2].header().revision(), 5);
  EXPECT_EQ(sink.got[3].watch_id(), 1);
  EXPECT_EQ(sink.Revisions(1), (std::vector<int64_t>{3, 5}));
  EXPECT_EQ(sink.got[3].header().revision(), 5);
  EXPECT_EQ(hub.stats().events_sent, 6u);
  hub.CloseStream(s);
}

TEST(WatchHubLimits, MergedResponsesSplitBetweenRevisionsBelowTheLimit) {
  FakeStore store;
  WatchHubOptions o;
  o.max_response_bytes = 300;
  WatchHub hub(store, o);
  hub.Start();
  FakeSink sink;
  auto s = hub.OpenStream(&sink);
  hub.Create(s, Req("k/", "k0"));
  auto batch = std::make_shared<internal::EventBatch>();
  for (int i = 0; i < 10; ++i) {
    // A txn of three 40-byte values per revision: ~170 bytes of events per revision.
    std::vector<std::string> keys = {"k/a", "k/b", "k/c"};
    auto b = store.Put(keys);
    for (auto e : b->events()) {
      e.mutable_kv()->set_value(std::string(40, 'v'));
      *batch->add_events() = e;
    }
    batch->set_revision(b->revision());
  }
  hub.OnEventBatch(batch);
  ASSERT_GT(sink.got.size(), 2u);  // created + several event responses
  std::vector<int64_t> all;
  for (size_t i = 1; i < sink.got.size(); ++i) {
    const auto& r = sink.got[i];
    EXPECT_LT(r.ByteSizeLong(), 300u);
    ASSERT_EQ(r.events_size() % 3, 0);  // whole txns only
    for (const auto& e : r.events()) all.push_back(e.kv().mod_revision());
  }
  std::vector<int64_t> want;
  for (int64_t r = 2; r <= 11; ++r) want.insert(want.end(), 3, r);
  EXPECT_EQ(all, want);
  hub.CloseStream(s);
}

// etcd answers RequestProgress with the store's current revision, all events up to it
// delivered first: a revision stored applied but whose events are still on the ring holds
// the answer back until the hub delivered it.
TEST_F(WatchHubTest, RequestProgressCarriesStoredsRevisionOnceDelivered) {
  FakeSink sink;
  auto s = hub.OpenStream(&sink);
  hub.Create(s, Req("a"));
  auto b2 = store.Put({"a"});  // applied by stored (revision 2), not yet seen by the hub
  hub.RequestProgress(s);
  ASSERT_EQ(sink.got.size(), 1u);  // created only
  hub.OnEventBatch(b2);
  ASSERT_EQ(sink.got.size(), 3u);
  EXPECT_EQ(sink.Revisions(0), (std::vector<int64_t>{2}));
  EXPECT_EQ(sink.got[2].watch_id(), -1);
  EXPECT_EQ(sink.got[2].header().revision(), 2);
  hub.RequestProgress(s);  // nothing outstanding: answered at once
  ASSERT_EQ(sink.got.size(), 4u);
  EXPECT_EQ(sink.got[3].header().revision(), 2);
  hub.CloseStream(s);
}

// Stored's revision moved on without the events reaching the hub (a follower installed a
// snapshot, or stored dropped the end of a burst and reports the gap only with its next
// frame): in an idle cluster no event comes to close the gap. Once the hub's revision has
// stood still for `progress_stall` below what a RequestProgress waits for, the hub treats
// it as a gap (its watchers read the missing revisions from history) and answers.
TEST(WatchHubProgress, RequestProgressIsAnsweredWhenTheEventsNeverCome) {
  FakeStore store;
  WatchHubOptions o;
  o.progress_stall = std::chrono::milliseconds(50);
  WatchHub hub(store, o);
  hub.Start();
  FakeSink sink;
  auto s = hub.OpenStream(&sink);
  hub.Create(s, Req("a"));
  hub.Create(s, Req("b"));
  hub.OnEventBatch(store.Put({"a"}));  // revision 2, delivered
  store.Put({"a"});                    // 3 and 4: applied by stored, never published
  store.Put({"x"});
  hub.RequestProgress(s);
  ASSERT_EQ(sink.got.size(), 3u);  // two created, one event
  Settle(hub);                     // > progress_stall of ticks
  ASSERT_EQ(sink.got.size(), 5u);
  EXPECT_EQ(sink.Revisions(0), (std::vector<int64_t>{2, 3}));  // 3 from history
  EXPECT_EQ(sink.got[4].watch_id(), -1);
  EXPECT_EQ(sink.got[4].header().revision(), 4);
  EXPECT_EQ(hub.stats().synced, 2u);
  // The lost revisions arriving late are duplicates; the next one is delivered once.
  auto late = std::make_shared<internal::EventBatch>();
  *late->add_events() = store.log[1];  // revision 3
  *late->add_events() = store.log[2];  // revision 4
  hub.OnEventBatch(late);
  hub.OnEventBatch(store.Put({"a"}));
  hub.OnEventBatch(store.Put({"a"}));
  EXPECT_EQ(sink.Revisions(0), (std::vector<int64_t>{2, 3, 5, 6}));
  hub.CloseStream(s);
}

// The same loss without anyone asking for progress: the watcher still gets the events of
// the dropped frames (from history) once the hub saw stored ahead for progress_stall, not
// only at the next write.
TEST(WatchHubProgress, EventsThatNeverComeReachWatchersInAnIdleCluster) {
  FakeStore store;
  WatchHubOptions o;
  o.progress_stall = std::chrono::milliseconds(50);
  WatchHub hub(store, o);
  hub.Start();
  FakeSink sink;
  auto s = hub.OpenStream(&sink);
  hub.Create(s, Req("a"));
  hub.OnEventBatch(store.Put({"a"}));  // 2
  store.Put({"a"});                    // 3: dropped on a full ring, no frame follows
  Settle(hub);
  EXPECT_EQ(sink.Revisions(0), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(hub.stats().revision, 3);
  hub.OnEventBatch(store.Put({"a"}));
  EXPECT_EQ(sink.Revisions(0), (std::vector<int64_t>{2, 3, 4}));
  hub.CloseStream(s);
}

// The snapshot-install case: stored restarts at a newer revision whose events were never
// published. The hub asks stored's revision on the restart and continues from there:
// RequestProgress needs no stall, the next event no second gap.
TEST(WatchHubProgress, RequestProgressIsAnsweredAfterAStoredRestartAhead) {
  FakeStore store;
  WatchHubOptions o;
  o.progress_stall = std::chrono::hours(1);
  WatchHub hub(store, o);
  hub.Start();
  FakeSink sink;
  auto s = hub.OpenStream(&sink);
  hub.Create(s, Req("a"));
  for (int i = 0; i < 3; ++i) store.Put({"a"});  // 2..4, installed from a snapshot
  hub.OnStoredRestart();
  Settle(hub);
  EXPECT_EQ(sink.Revisions(0), Range(2, 4));
  EXPECT_EQ(hub.stats().synced, 1u);
  hub.RequestProgress(s);
  Settle(hub);
  ASSERT_FALSE(sink.got.empty());
  EXPECT_EQ(sink.got.back().watch_id(), -1);
  EXPECT_EQ(sink.got.back().header().revision(), 4);
  const uint64_t gaps = hub.stats().gaps;
  hub.OnEventBatch(store.Put({"a"}));
  EXPECT_EQ(sink.Revisions(0), Range(2, 5));
  EXPECT_EQ(hub.stats().gaps, gaps);  // revision 5 follows 4: no gap
  hub.CloseStream(s);
}

// A client-chosen id reused while the first watcher's history read is in flight: that
// reply belongs to the canceled watcher and must not reach its successor (generations are
// hub-wide, not per watcher).
TEST_F(WatchHubTest, ReusedIdNeverTakesTheCanceledWatchersHistory) {
  store.Put({"a"});  // 2
  store.Put({"b"});  // 3
  FakeSink sink;
  auto s = hub.OpenStream(&sink);
  store.defer = true;
  auto ra = Req("a", "", 1);
  ra.set_watch_id(5);
  hub.Create(s, ra);
  Settle(hub);  // key a's read is in flight
  hub.Cancel(s, 5);
  auto rb = Req("b", "", 1);
  rb.set_watch_id(5);
  hub.Create(s, rb);
  Settle(hub);  // key b's read is in flight
  store.defer = false;
  store.Release();  // a's reply first, then b's
  Settle(hub);
  for (const auto& r : sink.got) {
    for (const auto& e : r.events()) EXPECT_EQ(e.kv().key(), "b");
  }
  EXPECT_EQ(sink.Revisions(5), (std::vector<int64_t>{3}));
  EXPECT_EQ(hub.stats().synced, 1u);
  hub.CloseStream(s);
}

// A response's header revision promises every event of its watcher up to it: a watcher
// whose stream fills in the middle of a batch gets what it merged so far with the revision
// before the one it paused at, not the batch's last (those come later, from history).
TEST_F(WatchHubTest, WatcherPausedMidBatchGetsNoHeaderBeyondItsEvents) {
  FakeSink sink;
  auto s = hub.OpenStream(&sink);
  hub.Create(s, Req("p"));
  auto batch = std::make_shared<internal::EventBatch>();
  for (int i = 0; i < 10; ++i) {  // revisions 2..11, ~200 bytes each: full (1000) midway
    auto b = store.Put({"p"});
    for (auto e : b->events()) {
      e.mutable_kv()->set_value(std::string(200, 'v'));
      *batch->add_events() = e;
    }
    batch->set_revision(b->revision());
  }
  hub.OnEventBatch(batch);
  hub.OnSinkDrained(s);
  Settle(hub);
  EXPECT_EQ(sink.Revisions(0), Range(2, 11));
  std::vector<const etcdserverpb::WatchResponse*> evs;
  for (const auto& r : sink.got) {
    if (r.events_size() > 0) evs.push_back(&r);
  }
  // The live response, then history (whose chunks carry stored's revision, as etcd's
  // unsynced watchers' responses do).
  ASSERT_GT(evs.size(), 1u);
  const auto& live = *evs[0];
  EXPECT_EQ(live.header().revision(), live.events(live.events_size() - 1).kv().mod_revision());
  EXPECT_LT(live.header().revision(), evs[1]->events(0).kv().mod_revision());
  hub.CloseStream(s);
}

// A txn's events stay in one response on the way from history too: chunks end between
// revisions (3 events per chunk here, a txn of 5) and the hub never splits one.
TEST_F(WatchHubTest, CatchUpNeverSplitsATxn) {
  store.Put({"t/1"});
  store.Put({"t/1", "t/2", "t/3", "t/4", "t/5"});  // revision 3: one txn
  store.Put({"t/2"});
  FakeSink sink;
  auto s = hub.OpenStream(&sink);
  hub.Create(s, Req("t/", "t0", 2));
  Settle(hub);
  int with_txn = 0;
  for (const auto& r : sink.got) {
    int txn = 0;
    for (const auto& e : r.events()) txn += e.kv().mod_revision() == 3;
    if (txn > 0) {
      ++with_txn;
      EXPECT_EQ(txn, 5);
    }
  }
  EXPECT_EQ(with_txn, 1);
  EXPECT_EQ(sink.Revisions(0), (std::vector<int64_t>{2, 3, 3, 3, 3, 3, 4}));
  hub.CloseStream(s);
}

TEST_F(WatchHubTest, FiltersAndPrevKv) {
  FakeSink sink;
  auto s = hub.OpenStream(&sink);
  auto r = Req("f");
  r.add_filters(etcdserverpb::WatchCreateRequest::NOPUT);
  hub.Create(s, r);
  hub.OnEventBatch(store.Put({"f"}));
  auto b = std::make_shared<internal::EventBatch>();
  auto* ev = b->add_events();
  ev->set_type(mvccpb::Event::DELETE);
  ev->mutable_kv()->set_key("f");
  ev->mutable_kv()->set_mod_revision(3);
  ev->mutable_prev_kv()->set_key("f");
  hub.OnEventBatch(b);
  ASSERT_EQ(sink.got.size(), 2u);
  EXPECT_EQ(sink.got[1].events(0).type(), mvccpb::Event::DELETE);
  EXPECT_FALSE(sink.got[1].events(0).has_prev_kv());  // not asked for
  hub.CloseStream(s);
}

}  // namespace
}  // namespace rusd::frontend
