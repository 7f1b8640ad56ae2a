#include "frontend/watch_hub.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_set>
#include <vector>

#include "etcd/etcdserverpb/rpc.pb.h"
#include "etcd/mvccpb/kv.pb.h"
#include "frontend/watch_key_index.h"
#include "frontend/watch_response.h"
#include "rusd/internal.pb.h"
#include "rusd/watch.pb.h"

namespace rusd::frontend {
namespace {

using Clock = std::chrono::steady_clock;

// etcd's error texts (mvcc/watcher.go).
constexpr char kErrEmptyRange[] = "mvcc: watcher range is empty";
constexpr char kErrDuplicateId[] = "mvcc: duplicate watch ID provided on the WatchStream";

// The events of one revision, shared by every watcher they match and by the recent buffer.
struct RevisionGroup {
  int64_t revision = 0;
  std::shared_ptr<const internal::EventBatch> batch;
  int begin = 0;  // [begin, end) in batch->events()
  int end = 0;
  size_t bytes = 0;
  // Encoded once, on first delivery (mutable cache: guarded by the hub's lock).
  mutable std::vector<EncodedEvent> encoded;

  const mvccpb::Event& event(int i) const { return batch->events(begin + i); }
  int size() const { return end - begin; }
  const std::vector<EncodedEvent>& Encoded() const {
    if (encoded.empty()) {
      encoded.reserve(static_cast<size_t>(size()));
      for (int i = 0; i < size(); ++i) encoded.push_back(EncodeEvent(event(i)));
    }
    return encoded;
  }
};

enum class WatcherState : uint8_t {
  kSynced,    // takes live events
  kQueued,    // waits for a catch-up slot
  kInFlight,  // a history chunk is being read
  kPaused,    // its stream is full: resumes (from history) when it drains
};

struct Watcher {
  WatchHub::Stream* stream = nullptr;
  int64_t id = 0;
  std::string key;
  std::string range_end;  // normalized: empty = the key alone, "\0" = every key >= key
  bool prev_kv = false;
  bool filter_put = false;
  bool filter_delete = false;
  bool progress_notify = false;
  bool fragment = false;
  WatcherState state = WatcherState::kSynced;
  int64_t next_rev = 0;
  bool progress_idle = true;  // etcd's progress[id]: no event since the last tick
  // Set from the hub's counter (WatchHub::Impl::generation) at every catch-up read: a reply
  // carrying another value is stale, even one for an earlier watcher of the same id.
  uint64_t generation = 0;
  // Matching scratch (one live revision at a time).
  int64_t touched_rev = -1;
  std::vector<int> hits;
  // The events matched during the current ApplyBatch, as `events` fields: sent as ONE
  // response at its end (WatchHub::Impl::SendPending). Empty outside ApplyBatch.
  std::string pending;
  bool pending_listed = false;  // in WatchHub::Impl::pending

  bool Contains(std::string_view k) const {
    if (range_end.empty()) return k == key;
    if (range_end.size() == 1 && range_end[0] == '\0') return k >= std::string_view(key);
    return k >= std::string_view(key) && k < std::string_view(range_end);
  }
  bool Wants(const EncodedEvent& e) const { return e.is_put ? !filter_put : !filter_delete; }
};

}  // namespace

struct WatchHub::PendingOp {
  enum class Kind { kCreate, kCancel, kProgress } kind = Kind::kCreate;
  std::shared_ptr<etcdserverpb::WatchCreateRequest> create;
  int64_t cancel_id = 0;
  bool probed = false;
  Status probe_status;
  int64_t probe_rev = 0;
};

size_t WatchSink::SendEvents(int64_t watch_id, std::string_view header, std::string&& events,
                             size_t /*max_body*/) {
  return Send(EncodeEventsResponse(header, watch_id, events));
}

class WatchHub::Stream {
 public:
  WatchSink* sink = nullptr;
  bool closed = false;
  std::map<int64_t, std::unique_ptr<Watcher>> watchers;
  int64_t next_id = 0;
  std::deque<std::shared_ptr<PendingOp>> ops;
  // A RequestProgress waits until every watcher is synced and the hub has delivered up to
  // `progress_target` (stored's revision when it was asked).
  bool progress_deferred = false;
  int64_t progress_target = 0;
  size_t unsynced = 0;
  size_t paused = 0;
  int progress_watchers = 0;
  Clock::time_point next_progress;
  bool dirty = false;  // responses queued since the last flush
  size_t pending_bytes = 0;  // its watchers' `pending` (ApplyBatch only)
  std::atomic<bool> drained{false};  // set by the sink without the hub's lock
};

struct WatchHub::Impl {
  Impl(WatchStore& s, const WatchHubOptions& o) : store(s), options(o), rng(std::random_device{}()) {}

  WatchStore& store;
  const WatchHubOptions options;

  mutable std::mutex mu;
  // --- guarded by mu ---
  bool ready = false;
  bool wanted = false;           // a stream opened: learn stored's revision
  std::atomic<bool> active{false};  // `wanted`, readable without the lock
  bool probe_outstanding = false;
  int64_t rev = 0;        // every revision <= rev has been delivered to synced watchers
  int64_t known_rev = 0;  // the newest revision seen anywhere (probes, chunks, events)
  Clock::time_point rev_moved;  // when `rev` last changed
  // The newest revision stored reported (probes, chunks) beyond `rev`, and since when the
  // hub has known stored to be ahead (CloseStall).
  int64_t ahead_rev = 0;
  Clock::time_point ahead_since;
  bool idle_probe_outstanding = false;
  Clock::time_point last_idle_probe;
  uint64_t term = 0;
  std::deque<RevisionGroup> recent;  // contiguous revisions ending at rev
  size_t recent_bytes = 0;
  WatchKeyIndex<Watcher> index;
  std::unordered_set<Stream*> streams;
  std::unordered_set<Stream*> progress_streams;
  std::unordered_set<Stream*> progress_waiting;  // streams with progress_deferred
  std::vector<Stream*> dirty;  // streams with unflushed responses
  std::deque<std::shared_ptr<const internal::EventBatch>> held;  // events before `ready`
  struct CatchUp {
    std::weak_ptr<Stream> stream;
    int64_t id;
    uint64_t generation;
  };
  std::deque<CatchUp> catchup_queue;
  std::vector<CatchUp> retry;  // failed reads, re-queued at the next Tick
  int in_flight = 0;
  bool stop = false;
  std::map<Stream*, std::weak_ptr<Stream>> weak_of;  // for catch-ups queued from raw pointers
  std::mt19937_64 rng;
  uint64_t catchup_reads = 0;
  // Catch-ups are matched to their watcher by (stream, id, generation). Hub-wide, never
  // reused: a client may reuse a watch id, and a per-watcher count restarting at 1 let a
  // canceled watcher's reply pass for its successor's.
  uint64_t generation = 0;
  uint64_t gaps = 0;
  uint64_t events_sent = 0;  // events handed to streams, live or from history
  // --- end guarded ---
  std::condition_variable cv;  // catch-up thread: queue non-empty and a slot free, or stop
  std::thread catchup_thread;

  // The last header encoded, reused while revision and term stay: every watcher of a batch
  // shares one (encoding it per watcher through protobuf was a large part of the hub's cost).
  mutable std::string header_cache;
  mutable int64_t header_rev = -1;
  mutable uint64_t header_term = 0;
  std::vector<Watcher*> pending;  // watchers with pending events (ApplyBatch only)
  // DeliverRevision's events of one watcher (it never runs nested).
  std::vector<const EncodedEvent*> deliver_scratch;
  std::vector<Watcher*> live_scratch;  // DeliverLive's matched watchers

  // Valid until the next call.
  const std::string& Header(int64_t revision) const {
    const uint64_t t = std::max(term, store.Term());
    if (revision != header_rev || t != header_term || header_cache.empty()) {
      header_cache = EncodeHeader(options.cluster_id, options.member_id, revision, t);
      header_rev = revision;
      header_term = t;
    }
    return header_cache;
  }

  // ---- all below run with mu held ----
  void Send(Stream* s, std::string response) {
    if (s->closed || s->sink == nullptr) return;
    s->sink->Send(std::move(response));
    MarkDirty(s);
  }
  void MarkDirty(Stream* s) {
    if (!s->dirty) {
      s->dirty = true;
      dirty.push_back(s);
    }
  }
  void FlushDirty() {
    for (Stream* s : dirty) {
      s->dirty = false;
      if (!s->closed && s->sink != nullptr) s->sink->Flush();
    }
    dirty.clear();
  }
  bool Full(Stream* s) const {
    return s->sink == nullptr ||
           s->sink->QueuedBytes() + s->pending_bytes >= options.max_queued_bytes;
  }
  bool HasCredit(Stream* s) const {
    return s->sink != nullptr && s->sink->QueuedBytes() < options.max_queued_bytes / 4;
  }

  void SetState(Watcher* w, WatcherState st) {
    Stream* s = w->stream;
    if (w->state == WatcherState::kSynced && st != WatcherState::kSynced) ++s->unsynced;
    if (w->state != WatcherState::kSynced && st == WatcherState::kSynced) --s->unsynced;
    if (w->state == WatcherState::kPaused && st != WatcherState::kPaused) --s->paused;
    if (w->state != WatcherState::kPaused && st == WatcherState::kPaused) ++s->paused;
    w->state = st;
    if (st == WatcherState::kSynced) MaybeSendDeferredProgress(s);
  }

  // etcd answers RequestProgress with the store's current revision, and every event up to
  // it is delivered first (its watchers are synced). The hub's `rev` may still lag stored's
  // by the events on the ring: the answer waits until it caught up with the revision
  // stored reported after the request.
  void MaybeSendDeferredProgress(Stream* s) {
    if (!s->progress_deferred || s->unsynced != 0 || rev < s->progress_target) return;
    s->progress_deferred = false;
    progress_waiting.erase(s);
    SendProgressAll(s);
  }

  void SendProgressAll(Stream* s) {
    if (s->watchers.empty()) return;  // etcd 3.5: nobody to notify
    ControlResponse r;
    r.watch_id = -1;
    Send(s, EncodeControlResponse(Header(rev), r));
  }

  // Starts (or continues) a watcher's catch-up from history at w->next_rev.
  void QueueCatchUp(Watcher* w) {
    Stream* s = w->stream;
    if (!HasCredit(s)) {
      SetState(w, WatcherState::kPaused);
      return;
    }
    SetState(w, WatcherState::kQueued);
    w->generation = ++generation;
    catchup_queue.push_back(CatchUp{weak_of[s], w->id, w->generation});
    cv.notify_one();
  }

  // Sends w's pending events as one response whose header carries `rev` (every pending
  // event is at or below it: the hub's revision, or the batch's last one at its end).
  // The header promises every event of w up to it: a watcher that stops taking live events
  // mid-batch sends before `rev` moves past what it got.
  void SendPending(Watcher* w) {
    Stream* s = w->stream;
    if (w->pending.empty()) return;
    s->pending_bytes -= w->pending.size();
    std::string body;
    body.swap(w->pending);
    if (s->closed || s->sink == nullptr) return;
    // The sink may merge it with w's previous response: together they stay below the
    // fragment limit, as a response the hub merges itself does (DeliverRevision).
    const std::string& header = Header(rev);
    const size_t room = ResponseOverhead(header, w->id) + 16;
    const size_t max_body = options.max_response_bytes > room ? options.max_response_bytes - room : 0;
    s->sink->SendEvents(w->id, header, std::move(body), max_body);
    MarkDirty(s);
  }
  void SendAllPending() {
    for (Watcher* w : pending) {
      w->pending_listed = false;
      SendPending(w);
    }
    pending.clear();
  }

  // Delivers one live revision (or a replayed one) to `w` if it concerns it. False when
  // the stream is full: the watcher is paused at this revision. With `merge` (live events
  // of one ApplyBatch) the events join w's pending response: a watcher gets one response
  // per batch of revisions, as etcd's own batched (unsynced, victim) watchers do, never a
  // revision split across two responses except by `fragment`.
  bool DeliverRevision(Watcher* w, const RevisionGroup& g, const std::vector<int>* hits,
                       bool merge = false) {
    if (g.revision < w->next_rev) return true;
    const std::vector<EncodedEvent>& enc = g.Encoded();
    std::vector<const EncodedEvent*>& evs = deliver_scratch;  // no allocation per watcher
    evs.clear();
    if (hits != nullptr) {
      for (int i : *hits) {
        if (w->Wants(enc[static_cast<size_t>(i)])) evs.push_back(&enc[static_cast<size_t>(i)]);
      }
    } else {
      for (int i = 0; i < g.size(); ++i) {
        if (w->Contains(g.event(i).kv().key()) && w->Wants(enc[static_cast<size_t>(i)])) {
          evs.push_back(&enc[static_cast<size_t>(i)]);
        }
      }
    }
    if (evs.empty()) {
      w->next_rev = g.revision + 1;
      return true;
    }
    if (Full(w->stream)) {
      spdlog::debug("watch {}: its stream is full at revision {}; it continues from history",
                    w->id, g.revision);
      w->next_rev = g.revision;
      // What it merged so far goes now, under the previous revision (`rev` is still the
      // last one delivered): at the batch's end the header would claim revisions this
      // watcher gets only later, from history.
      SendPending(w);
      SetState(w, WatcherState::kPaused);
      return false;
    }
    if (merge) {
      const size_t size = EventFieldsSize(evs, w->prev_kv);
      const size_t overhead = ResponseOverhead(Header(rev), w->id) + 16;
      if (w->pending.size() + size + overhead >= options.max_response_bytes) SendPending(w);
      if (size + overhead < options.max_response_bytes || !w->fragment) {
        // Merged (a revision too large for a response of its own, without fragment, is
        // sent whole as etcd does).
        if (!w->pending_listed) {
          w->pending_listed = true;
          pending.push_back(w);
        }
        AppendEventFields(evs, w->prev_kv, &w->pending);
        w->stream->pending_bytes += size;
        events_sent += evs.size();
        w->next_rev = g.revision + 1;
        w->progress_idle = false;
        return true;
      }
    }
    std::vector<std::string> out;
    EncodeEventResponses(Header(g.revision), w->id, evs, w->prev_kv, w->fragment,
                         options.max_response_bytes, &out);
    for (auto& r : out) Send(w->stream, std::move(r));
    events_sent += evs.size();
    w->next_rev = g.revision + 1;
    w->progress_idle = false;
    return true;
  }

  void DeliverLive(const RevisionGroup& g) {
    std::vector<Watcher*>& touched = live_scratch;
    touched.clear();
    for (int i = 0; i < g.size(); ++i) {
      index.Match(g.event(i).kv().key(), [&](Watcher* w) {
        if (w->touched_rev != g.revision) {
          w->touched_rev = g.revision;
          w->hits.clear();
          touched.push_back(w);
        }
        w->hits.push_back(i);
      });
    }
    for (Watcher* w : touched) {
      if (w->state != WatcherState::kSynced) continue;
      DeliverRevision(w, g, &w->hits, /*merge=*/true);
    }
  }

  void AddRecent(RevisionGroup g) {
    recent_bytes += g.bytes;
    recent.push_back(std::move(g));
    while (!recent.empty() && (recent_bytes > options.recent_bytes ||
                               recent.size() > options.recent_revisions)) {
      recent_bytes -= recent.front().bytes;
      recent.pop_front();
    }
  }

  // Every synced watcher goes back to history from where it stands.
  void Gap(const char* why) {
    ++gaps;
    size_t moved = 0;
    for (Stream* s : streams) {
      for (auto& [id, w] : s->watchers) {
        if (w->state != WatcherState::kSynced) continue;
        w->next_rev = std::max(w->next_rev, rev + 1);
        QueueCatchUp(w.get());
        ++moved;
      }
    }
    recent.clear();
    recent_bytes = 0;
    spdlog::info("watch: {} after revision {}; {} watchers catch up from history", why, rev,
                 moved);
  }

  void ApplyBatch(const std::shared_ptr<const internal::EventBatch>& batch) {
    const auto& evs = batch->events();
    if (evs.empty()) return;
    const int64_t first = evs[0].kv().mod_revision();
    if (batch->after_gap()) {
      Gap("events were dropped (events ring full)");
    } else if (first > rev + 1) {
      Gap("a revision gap in the events");
    }
    int i = 0;
    while (i < evs.size()) {
      RevisionGroup g;
      g.revision = evs[i].kv().mod_revision();
      g.batch = batch;
      g.begin = i;
      while (i < evs.size() && evs[i].kv().mod_revision() == g.revision) {
        g.bytes += static_cast<size_t>(evs[i].ByteSizeLong()) + 64;
        ++i;
      }
      g.end = i;
      if (g.revision <= rev) continue;  // a duplicate
      if (g.revision > rev + 1 && !recent.empty()) {
        recent.clear();  // never keep a buffer with a hole
        recent_bytes = 0;
      }
      DeliverLive(g);
      rev = g.revision;
      rev_moved = Clock::now();
      known_rev = std::max(known_rev, rev);
      AddRecent(std::move(g));
    }
    SendAllPending();
    if (!progress_waiting.empty()) {
      std::vector<Stream*> waiting(progress_waiting.begin(), progress_waiting.end());
      for (Stream* s : waiting) MaybeSendDeferredProgress(s);
    }
  }

  // ---- creates, in order per stream ----
  void RunOps(Stream* s) {
    while (!s->closed && !s->ops.empty() && ready) {
      std::shared_ptr<PendingOp> op = s->ops.front();
      if (op->kind != PendingOp::Kind::kCancel && !op->probed) return;
      s->ops.pop_front();
      switch (op->kind) {
        case PendingOp::Kind::kCreate: DoCreate(s, *op); break;
        case PendingOp::Kind::kCancel: DoCancel(s, op->cancel_id); break;
        case PendingOp::Kind::kProgress:
          s->progress_deferred = true;
          s->progress_target = std::max(s->progress_target,
                                        op->probe_status.ok() ? op->probe_rev : rev);
          progress_waiting.insert(s);
          MaybeSendDeferredProgress(s);
          break;
      }
    }
  }

  void DoCreate(Stream* s, const PendingOp& op) {
    const etcdserverpb::WatchCreateRequest& req = *op.create;
    const int64_t now_rev = op.probe_status.ok() ? op.probe_rev : std::max(rev, known_rev);
    known_rev = std::max(known_rev, now_rev);
    const std::string header = Header(now_rev);
    ControlResponse resp;
    resp.created = true;
    std::string key = req.key();
    if (key.empty()) key.assign(1, '\0');
    std::string end = req.range_end();
    const bool from_key = end.size() == 1 && end[0] == '\0';
    std::string error;
    // A failed probe (stored restarting) is not the client's problem: the watch starts
    // after the newest revision the hub knows, as good as etcd's "now" up to the events
    // still on the ring.
    if (!end.empty() && !from_key && key >= end) {
      error = kErrEmptyRange;
    }
    int64_t id = req.watch_id();
    if (error.empty()) {
      if (id == 0) {  // clientv3.AutoWatchID
        while (s->watchers.count(s->next_id) != 0) ++s->next_id;
        id = s->next_id++;
      } else if (s->watchers.count(id) != 0) {
        error = kErrDuplicateId;
      }
    }
    if (!error.empty()) {
      resp.watch_id = -1;
      resp.canceled = true;
      resp.cancel_reason = error;
      Send(s, EncodeControlResponse(header, resp));
      return;
    }
    auto w = std::make_unique<Watcher>();
    w->stream = s;
    w->id = id;
    w->key = std::move(key);
    w->range_end = std::move(end);
    w->prev_kv = req.prev_kv();
    w->progress_notify = req.progress_notify();
    w->fragment = req.fragment();
    for (int f : req.filters()) {
      if (f == etcdserverpb::WatchCreateRequest::NOPUT) w->filter_put = true;
      if (f == etcdserverpb::WatchCreateRequest::NODELETE) w->filter_delete = true;
    }
    const int64_t start = req.start_revision() == 0 ? now_rev + 1 : req.start_revision();
    w->next_rev = start;
    Watcher* raw = w.get();
    s->watchers.emplace(id, std::move(w));
    index.Add(raw, raw->key, raw->range_end);
    if (raw->progress_notify && s->progress_watchers++ == 0) {
      progress_streams.insert(s);
      s->next_progress = Clock::now() + ProgressInterval();
    }
    resp.watch_id = id;
    Send(s, EncodeControlResponse(header, resp));
    if (start > rev) return;  // synced: the hub has not seen `start` yet
    raw->state = WatcherState::kSynced;
    QueueCatchUp(raw);
  }

  void RemoveWatcher(Stream* s, std::map<int64_t, std::unique_ptr<Watcher>>::iterator it) {
    Watcher* w = it->second.get();
    if (w->state != WatcherState::kSynced) --s->unsynced;
    if (w->state == WatcherState::kPaused) --s->paused;
    index.Remove(w, w->key, w->range_end);
    if (w->progress_notify && --s->progress_watchers == 0) progress_streams.erase(s);
    s->watchers.erase(it);
    MaybeSendDeferredProgress(s);
  }

  void DoCancel(Stream* s, int64_t id) {
    auto it = s->watchers.find(id);
    if (it == s->watchers.end()) return;  // etcd: ErrWatcherNotExist, nothing sent
    RemoveWatcher(s, it);
    ControlResponse resp;
    resp.watch_id = id;
    resp.canceled = true;
    Send(s, EncodeControlResponse(Header(std::max(rev, known_rev)), resp));
  }

  std::chrono::milliseconds ProgressInterval() {
    auto base = options.progress_interval.count();
    if (base <= 0) base = 1;
    std::uniform_int_distribution<int64_t> jitter(0, std::max<int64_t>(base / 10 - 1, 0));
    return std::chrono::milliseconds(base + jitter(rng));
  }

  // ---- catch-up replies ----
  void OnChunk(Stream* s, Watcher* w, const internal::WatchHistoryChunk& chunk) {
    known_rev = std::max(known_rev, chunk.current_revision());
    NoteStoredRevision(chunk.current_revision());
    term = std::max(term, chunk.raft_term());
    if (chunk.compact_revision() > 0) {
      ControlResponse resp;
      resp.watch_id = w->id;
      resp.canceled = true;
      resp.compact_revision = chunk.compact_revision();
      Send(s, EncodeControlResponse(Header(0), resp));
      RemoveWatcher(s, s->watchers.find(w->id));
      return;
    }
    const int64_t c = chunk.current_revision();
    std::vector<EncodedEvent> enc;
    enc.reserve(static_cast<size_t>(chunk.events_size()));
    for (const auto& ev : chunk.events()) {
      if (ev.kv().mod_revision() < w->next_rev) continue;
      EncodedEvent e = EncodeEvent(ev);
      if (w->Wants(e)) enc.push_back(std::move(e));
    }
    if (!enc.empty()) {
      std::vector<const EncodedEvent*> ptrs;
      ptrs.reserve(enc.size());
      for (const auto& e : enc) ptrs.push_back(&e);
      std::vector<std::string> out;
      EncodeEventResponses(Header(c), w->id, ptrs, w->prev_kv, w->fragment,
                           options.max_response_bytes, &out);
      for (auto& r : out) Send(s, std::move(r));
      events_sent += ptrs.size();
      w->progress_idle = false;
    }
    w->next_rev = std::max(w->next_rev, chunk.next_revision());
    if (chunk.next_revision() <= c) {  // more history to read
      QueueCatchUp(w);
      return;
    }
    w->next_rev = std::max(w->next_rev, c + 1);
    Bridge(w);
  }

  // History is delivered up to next_rev - 1: join the live events.
  void Bridge(Watcher* w) {
    if (w->next_rev > rev) {
      SetState(w, WatcherState::kSynced);
      return;
    }
    if (recent.empty() || recent.front().revision > w->next_rev) {
      QueueCatchUp(w);  // the buffer does not reach back: read history again
      return;
    }
    for (const RevisionGroup& g : recent) {
      if (g.revision < w->next_rev) continue;
      if (!DeliverRevision(w, g, nullptr)) return;  // paused: resumes from history
    }
    w->next_rev = std::max(w->next_rev, rev + 1);
    SetState(w, WatcherState::kSynced);
  }

  // Only events move `rev`, but stored can move ahead without publishing them to the hub:
  // a follower's snapshot install behind a stored restart, the end of a burst dropped on a
  // full events ring (whose gap shows only with the next frame). Given a revision stored
  // has reached, the hub can jump there: every synced watcher that still needs revisions
  // up to it reads them from history (which reaches at least `target`), and events up to
  // it arriving late are dropped as duplicates. Nothing is delivered twice or skipped;
  // events that were merely late only cost catch-up reads.
  void JumpTo(int64_t target, const char* why) {
    if (target <= rev) return;
    ++gaps;
    size_t moved = 0;
    for (Stream* s : streams) {
      for (auto& [id, w] : s->watchers) {
        if (w->state != WatcherState::kSynced || w->next_rev > target) continue;
        w->next_rev = std::max(w->next_rev, rev + 1);
        QueueCatchUp(w.get());
        ++moved;
      }
    }
    recent.clear();
    recent_bytes = 0;
    spdlog::info("watch: {}: revisions {}..{} taken from history; {} watchers catch up", why,
                 rev + 1, target, moved);
    rev = target;
    known_rev = std::max(known_rev, rev);
    rev_moved = Clock::now();
    std::vector<Stream*> waiting(progress_waiting.begin(), progress_waiting.end());
    for (Stream* s : waiting) MaybeSendDeferredProgress(s);
  }

  // Stored reported revision `r` (it has applied it and published its events, or dropped
  // them with a gap the hub may not see before the next write).
  void NoteStoredRevision(int64_t r) {
    if (r <= rev || r <= ahead_rev) return;
    if (ahead_rev <= rev) ahead_since = Clock::now();
    ahead_rev = r;
  }

  // Events that never reach the hub (JumpTo) would hold back a RequestProgress, and the
  // watchers' own events, until the next write — forever in an idle cluster. Once stored
  // has been known to be ahead for progress_stall while `rev` stood still as long, the hub
  // jumps to what stored reported. (An idle hub probes stored's revision every
  // progress_stall to learn it: WatchHub::Tick.)
  void CloseStall(Clock::time_point now) {
    if (ahead_rev <= rev || now - ahead_since < options.progress_stall ||
        now - rev_moved < options.progress_stall) {
      return;
    }
    JumpTo(ahead_rev, "events missing up to stored's revision");
  }
  // An idle hub with watchers checks stored's revision every progress_stall.
  bool WantIdleProbe(Clock::time_point now) {
    if (!ready || idle_probe_outstanding || streams.empty() ||
        now - rev_moved < options.progress_stall || now - last_idle_probe < options.progress_stall) {
      return false;
    }
    idle_probe_outstanding = true;
    last_idle_probe = now;
    return true;
  }

  void CatchUpLoop();
  void IssueCatchUp(const CatchUp& c);
};

void WatchHub::Impl::CatchUpLoop() {
  std::unique_lock lock(mu);
  for (;;) {
    cv.wait(lock, [&] {
      return stop || (!catchup_queue.empty() && in_flight < options.max_catchups_in_flight);
    });
    if (stop) return;
    CatchUp c = catchup_queue.front();
    catchup_queue.pop_front();
    std::shared_ptr<Stream> s = c.stream.lock();
    if (!s || s->closed) continue;
    auto it = s->watchers.find(c.id);
    if (it == s->watchers.end()) continue;
    Watcher* w = it->second.get();
    if (w->generation != c.generation || w->state != WatcherState::kQueued) continue;
    SetState(w, WatcherState::kInFlight);
    internal::WatchHistoryRead read;
    read.set_key(w->key);
    read.set_range_end(w->range_end);
    read.set_start_revision(w->next_rev);
    read.set_prev_kv(w->prev_kv);
    read.set_max_events(options.chunk_events);
    ++in_flight;
    ++catchup_reads;
    std::string payload = read.SerializeAsString();
    lock.unlock();
    store.ReadHistory(std::move(payload), [this, c](const Status& st, std::string&& bytes) {
      internal::WatchHistoryChunk chunk;
      const bool parsed = st.ok() && chunk.ParseFromString(bytes);
      std::lock_guard g(mu);
      --in_flight;
      cv.notify_one();
      std::shared_ptr<Stream> s = c.stream.lock();
      if (!s || s->closed) return;
      auto it = s->watchers.find(c.id);
      if (it == s->watchers.end()) return;
      Watcher* w = it->second.get();
      if (w->generation != c.generation || w->state != WatcherState::kInFlight) return;
      if (!parsed) {
        // Retried every Tick (100 ms) until stored answers: debug, or a stored restart
        // would log a line per watcher and retry.
        spdlog::debug("watch {}: history read failed ({}); retrying", c.id,
                      st.ok() ? "malformed chunk" : st.ToString());
        SetState(w, WatcherState::kQueued);
        w->generation = ++generation;
        retry.push_back(CatchUp{c.stream, c.id, w->generation});
        return;
      }
      OnChunk(s.get(), w, chunk);
      FlushDirty();
    });
    lock.lock();
  }
}

WatchHub::WatchHub(WatchStore& store, const WatchHubOptions& options)
    : impl_(std::make_unique<Impl>(store, options)) {}

WatchHub::~WatchHub() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stop = true;
  }
  impl_->cv.notify_all();
  if (impl_->catchup_thread.joinable()) impl_->catchup_thread.join();
}

void WatchHub::Start() {
  impl_->catchup_thread = std::thread([this] { impl_->CatchUpLoop(); });
}

// Learns stored's revision once; events held meanwhile are applied (those at or below it
// are duplicates), then waiting creates run.
void WatchHub::ProbeStart() {
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->ready || impl_->probe_outstanding) return;
    impl_->probe_outstanding = true;  // from here on, events are held, not dropped
  }
  impl_->store.CurrentRevision([this](const Status& st, int64_t rev, uint64_t term) {
    std::lock_guard lock(impl_->mu);
    Impl& m = *impl_;
    m.probe_outstanding = false;
    if (m.ready) return;
    if (!st.ok()) {
      spdlog::warn("watch: cannot read stored's revision yet ({}); retrying", st.ToString());
      return;  // Tick probes again
    }
    m.rev = rev;
    m.rev_moved = Clock::now();
    m.known_rev = std::max(m.known_rev, rev);
    m.term = std::max(m.term, term);
    m.ready = true;
    spdlog::info("watch: stored is at revision {}", rev);
    while (!m.held.empty()) {
      std::shared_ptr<const internal::EventBatch> b = m.held.front();
      m.held.pop_front();
      m.ApplyBatch(b);
    }
    for (Stream* s : m.streams) m.RunOps(s);
    m.FlushDirty();
  });
}

std::shared_ptr<WatchHub::Stream> WatchHub::OpenStream(WatchSink* sink) {
  // Before any probe of stored's revision: stored publishes every batch applied after a
  // probe read its revision (the probe reads it under the store's publish lock, and the
  // apply thread looks at the flag after releasing that lock), so no revision a watcher
  // starts after is ever skipped.
  std::atomic<uint64_t>* wanted_flag = impl_->options.events_wanted;
  if (wanted_flag != nullptr && wanted_flag->load(std::memory_order_acquire) == 0) {
    wanted_flag->store(1, std::memory_order_release);
  }
  auto s = std::make_shared<Stream>();
  s->sink = sink;
  bool probe = false;
  {
    std::lock_guard lock(impl_->mu);
    impl_->streams.insert(s.get());
    impl_->weak_of[s.get()] = s;
    probe = !impl_->ready && !impl_->wanted;
    impl_->wanted = true;
    impl_->active.store(true, std::memory_order_release);
  }
  // The hub learns stored's revision only once someone watches: a node nobody watches
  // does no watch work at all.
  if (probe) ProbeStart();
  return s;
}

void WatchHub::CloseStream(const std::shared_ptr<Stream>& s) {
  std::lock_guard lock(impl_->mu);
  if (s->closed) return;
  while (!s->watchers.empty()) impl_->RemoveWatcher(s.get(), s->watchers.begin());
  s->closed = true;
  s->sink = nullptr;
  s->ops.clear();
  impl_->streams.erase(s.get());
  impl_->progress_streams.erase(s.get());
  impl_->progress_waiting.erase(s.get());
  auto& d = impl_->dirty;
  d.erase(std::remove(d.begin(), d.end(), s.get()), d.end());
  impl_->weak_of.erase(s.get());
}

void WatchHub::Create(const std::shared_ptr<Stream>& s, const etcdserverpb::WatchCreateRequest& req) {
  auto op = std::make_shared<PendingOp>();
  op->kind = PendingOp::Kind::kCreate;
  op->create = std::make_shared<etcdserverpb::WatchCreateRequest>(req);
  QueueProbedOp(s, std::move(op));
}

// Creates and progress requests need stored's current revision: the op waits in the
// stream's queue (which keeps request order) until the probe answers.
void WatchHub::QueueProbedOp(const std::shared_ptr<Stream>& s, std::shared_ptr<PendingOp> op) {
  {
    std::lock_guard lock(impl_->mu);
    if (s->closed) return;
    s->ops.push_back(op);
  }
  std::weak_ptr<Stream> weak = s;
  impl_->store.CurrentRevision([this, weak, op](const Status& st, int64_t rev, uint64_t term) {
    std::lock_guard lock(impl_->mu);
    op->probed = true;
    op->probe_status = st;
    op->probe_rev = rev;
    impl_->term = std::max(impl_->term, term);
    if (st.ok()) impl_->NoteStoredRevision(rev);
    std::shared_ptr<Stream> s = weak.lock();
    if (s && !s->closed) impl_->RunOps(s.get());
    impl_->FlushDirty();
  });
}

void WatchHub::Cancel(const std::shared_ptr<Stream>& s, int64_t watch_id) {
  auto op = std::make_shared<PendingOp>();
  op->kind = PendingOp::Kind::kCancel;
  op->cancel_id = watch_id;
  std::lock_guard lock(impl_->mu);
  if (s->closed) return;
  s->ops.push_back(op);
  impl_->RunOps(s.get());
  impl_->FlushDirty();
}

void WatchHub::RequestProgress(const std::shared_ptr<Stream>& s) {
  auto op = std::make_shared<PendingOp>();
  op->kind = PendingOp::Kind::kProgress;
  QueueProbedOp(s, std::move(op));
}

void WatchHub::OnSinkDrained(const std::shared_ptr<Stream>& s) {
  // Only a flag: the sink may call this from inside Send (under the hub's lock) if gRPC
  // ever completes a write inline. Tick resumes the paused watchers.
  s->drained.store(true, std::memory_order_release);
}

void WatchHub::OnEventBatch(std::shared_ptr<const internal::EventBatch> owned) {
  std::lock_guard lock(impl_->mu);
  Impl& m = *impl_;
  if (!m.ready) {
    // Before the first probe nobody watches: drop. During it, hold (bounded; a hole shows
    // up as a revision gap once the probe answers).
    if (m.probe_outstanding && m.held.size() < 1024) m.held.push_back(std::move(owned));
    return;
  }
  m.ApplyBatch(owned);
}

void WatchHub::Flush() {
  std::lock_guard lock(impl_->mu);
  impl_->FlushDirty();
}

void WatchHub::OnStoredRestart() {
  {
    std::lock_guard lock(impl_->mu);
    if (!impl_->ready) return;
    impl_->Gap("stored restarted");
    impl_->FlushDirty();
  }
  // A restarted stored may be ahead of every event the hub saw (a follower installed a
  // snapshot): without its revision the hub would wait for the next event to notice, and
  // a RequestProgress for progress_stall. If the probe fails, those still cover it.
  impl_->store.CurrentRevision([this](const Status& st, int64_t rev, uint64_t term) {
    if (!st.ok()) return;
    std::lock_guard lock(impl_->mu);
    impl_->term = std::max(impl_->term, term);
    impl_->JumpTo(rev, "stored restarted ahead of the events");
    impl_->FlushDirty();
  });
}

void WatchHub::Tick() {
  bool need_probe = false;
  bool idle_probe = false;
  {
    std::lock_guard lock(impl_->mu);
    Impl& m = *impl_;
    need_probe = m.wanted && !m.ready && !m.probe_outstanding;
    for (auto& c : m.retry) m.catchup_queue.push_back(c);
    if (!m.retry.empty()) m.cv.notify_one();
    m.retry.clear();
    for (Stream* s : m.streams) {
      if (s->paused == 0 || !s->drained.exchange(false, std::memory_order_acq_rel)) continue;
      for (auto& [id, w] : s->watchers) {
        if (w->state != WatcherState::kPaused) continue;
        if (!m.HasCredit(s)) break;
        m.QueueCatchUp(w.get());
      }
    }
    const Clock::time_point now = Clock::now();
    if (m.ready) m.CloseStall(now);
    idle_probe = m.WantIdleProbe(now);
    for (Stream* s : m.progress_streams) {
      if (now < s->next_progress) continue;
      s->next_progress = now + m.ProgressInterval();
      for (auto& [id, w] : s->watchers) {
        if (!w->progress_notify) continue;
        if (w->progress_idle && w->state == WatcherState::kSynced) {
          ControlResponse r;
          r.watch_id = w->id;
          m.Send(s, EncodeControlResponse(m.Header(m.rev), r));
        }
        w->progress_idle = true;
      }
    }
    m.FlushDirty();
  }
  if (need_probe) ProbeStart();
  if (idle_probe) {
    impl_->store.CurrentRevision([this](const Status& st, int64_t rev, uint64_t term) {
      std::lock_guard lock(impl_->mu);
      impl_->idle_probe_outstanding = false;
      if (!st.ok()) return;
      impl_->term = std::max(impl_->term, term);
      impl_->NoteStoredRevision(rev);
    });
  }
}

bool WatchHub::active() const { return impl_->active.load(std::memory_order_acquire); }

WatchHub::Stats WatchHub::stats() const {
  std::lock_guard lock(impl_->mu);
  Stats st;
  st.streams = impl_->streams.size();
  st.events_sent = impl_->events_sent;
  for (Stream* s : impl_->streams) {
    st.watchers += s->watchers.size();
    st.synced += s->watchers.size() - s->unsynced;
  }
  st.revision = impl_->rev;
  st.recent_revisions = impl_->recent.size();
  st.catchup_reads = impl_->catchup_reads;
  st.gaps = impl_->gaps;
  return st;
}

}  // namespace rusd::frontend
