// WatchHub: the frontend's watch fan-out. It owns every watcher of every Watch stream, takes
// the events stored publishes (EventBatch, in revision order), matches them through a
// WatchKeyIndex and hands each stream its encoded responses; watchers that start in the
// past, fall behind, or sit across a gap are caught up from stored's history and rejoin the
// live events without loss or duplicate (docs/architecture.md, "Reads, watches and leases").
//
// The protocol, per watcher: `next_rev` = every revision below it has been delivered (or
// did not concern the watcher). A *synced* watcher takes live events with revision >=
// next_rev; any other watcher ignores them and catches up: one WatchHistoryRead at a time
// (the credit), chunk by chunk, up to stored's snapshot revision C; then it replays the
// live events after C from the hub's recent-revisions buffer (or reads again from C + 1 if
// the buffer no longer reaches back) and becomes synced. All of it runs under the hub's one
// lock, so a revision is either delivered live or by the catch-up, never both, never
// neither.
//
// - Gaps: a batch marked after_gap, a first revision beyond the last one seen + 1, or a new
//   stored epoch sends every synced watcher back to catch-up (the buffer is dropped). So
//   does stored being ahead with no event coming (after a restart at once, otherwise after
//   progress_stall): the hub continues at stored's revision.
// - Slow streams: a stream whose unsent responses exceed `max_queued_bytes` gets no more
//   live events; its watchers pause and catch up from history once it drained below a
//   quarter of that. Memory per stream is bounded; writers never wait for a watcher.
// - Creates are answered in request order per stream (clientv3 pairs "created" responses
//   with its requests in order). A watch "from now" starts after stored's current revision,
//   read by a probe per create, so a write acknowledged before the create is never seen.
// - Progress: etcd's progress_notify at the configured interval (+ up to 10 % jitter) to
//   synced watchers that got no event since the last tick; RequestProgress answers with
//   watch_id -1 once every watcher of the stream is synced (etcd 3.5).
//
// Threads: every public method from any thread; the lock is never held while calling into
// the store client. WatchSink::Send is called under the lock.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace etcdserverpb {
class WatchCreateRequest;
}
namespace rusd::internal {
class EventBatch;
}

namespace rusd::frontend {

// Where a stream's responses go (the gRPC reactor). Send is called under the hub's lock and
// must not call back into the hub; it returns the bytes queued and not yet written.
class WatchSink {
 public:
  virtual ~WatchSink() = default;
  virtual size_t Send(std::string response) = 0;
  // An event response of `watch_id`: `header` (ResponseHeader bytes) and `events` (its
  // `events` fields, whole revisions in order, no fragment). A sink whose earlier event
  // response of the same watcher is still unsent, with nothing sent to the stream after it
  // but other watchers' event responses, may append `events` to it and keep the later
  // header (etcd batches a busy watcher's revisions the same way) while the merged events
  // stay within `max_body` bytes (the response then stays below the fragment limit). The
  // default sends the response on its own.
  virtual size_t SendEvents(int64_t watch_id, std::string_view header, std::string&& events,
                            size_t max_body);
  virtual size_t QueuedBytes() const = 0;
  // Starts writing what Send queued. The hub calls it once per stream after a burst (all
  // the revisions of a drain of the events ring), so that a stream's responses leave in
  // as few writes as possible. Also under the hub's lock.
  virtual void Flush() {}
};

// The hub's view of stored: a revision probe and a history chunk read. Callbacks may run on
// any thread, or on the calling one (immediate failure).
class WatchStore {
 public:
  virtual ~WatchStore() = default;
  // Stored's current revision and the Raft term (a serializable one-key read).
  virtual void CurrentRevision(std::function<void(const Status&, int64_t rev, uint64_t term)> done) = 0;
  // A rusd.internal.WatchHistoryRead; done gets the WatchHistoryChunk bytes.
  virtual void ReadHistory(std::string request,
                           std::function<void(const Status&, std::string&& chunk)> done) = 0;
  // Raft term as raftd last reported it (0 if unknown).
  virtual uint64_t Term() const = 0;
};

struct WatchHubOptions {
  uint64_t cluster_id = 0;
  uint64_t member_id = 0;
  // etcd's --max-request-bytes + 512 KiB: the fragment size limit.
  size_t max_response_bytes = 1572864 + 512 * 1024;
  std::chrono::milliseconds progress_interval{10 * 60 * 1000};
  size_t max_queued_bytes = 8u << 20;   // per stream
  size_t recent_bytes = 8u << 20;       // the recent-revisions buffer
  size_t recent_revisions = 20000;
  int max_catchups_in_flight = 16;
  uint32_t chunk_events = 1000;
  // The segment's Counter::kWatchEventsWanted (may be null): set to 1 by the first
  // OpenStream, before the hub probes stored's revision. stored builds and publishes events
  // only from then on (stored/event_publisher.h says why no revision a watcher needs is
  // skipped). Every stream counts: gRPC Watch streams and in-process waiters alike.
  std::atomic<uint64_t>* events_wanted = nullptr;
  // Events stored applied but never published to the hub (a burst's end dropped on a full
  // ring): once stored has been seen ahead this long while the hub's revision stood still
  // as long, they are taken from history (a RequestProgress waiting for them is answered).
  // An idle hub with watchers probes stored's revision at this interval to notice.
  std::chrono::milliseconds progress_stall{1000};
};

class WatchHub {
 public:
  class Stream;  // opaque handle of one Watch stream

  WatchHub(WatchStore& store, const WatchHubOptions& options);
  ~WatchHub();  // joins the catch-up thread
  WatchHub(const WatchHub&) = delete;
  WatchHub& operator=(const WatchHub&) = delete;

  // Starts the catch-up thread. The first OpenStream makes the hub learn stored's revision;
  // until it is known, creates wait.
  void Start();

  std::shared_ptr<Stream> OpenStream(WatchSink* sink);
  // After this returns the hub never touches the sink again.
  void CloseStream(const std::shared_ptr<Stream>& stream);

  void Create(const std::shared_ptr<Stream>& stream, const etcdserverpb::WatchCreateRequest& req);
  void Cancel(const std::shared_ptr<Stream>& stream, int64_t watch_id);
  void RequestProgress(const std::shared_ptr<Stream>& stream);
  // The sink's queue fell below a quarter of max_queued_bytes (any thread, even inside
  // WatchSink::Send); paused watchers resume at the next Tick.
  void OnSinkDrained(const std::shared_ptr<Stream>& stream);

  // False until the first stream opens: until then events need not even be parsed (the
  // hub learns stored's revision at that point and drops what came before).
  bool active() const;
  // The events thread: one EventBatch from stored (kept in the recent buffer, hence shared).
  void OnEventBatch(std::shared_ptr<const internal::EventBatch> batch);
  // Writes what OnEventBatch calls queued (the events thread, after draining the ring).
  void Flush();
  // stored restarted: events may have been lost.
  void OnStoredRestart();
  // Periodic work (progress notifications, retries); call every ~100 ms.
  void Tick();

  // Introspection for tests and logs.
  struct Stats {
    size_t streams = 0;
    size_t watchers = 0;
    size_t synced = 0;
    int64_t revision = 0;
    size_t recent_revisions = 0;
    uint64_t catchup_reads = 0;
    uint64_t gaps = 0;
    uint64_t events_sent = 0;  // since the hub started
  };
  Stats stats() const;

 private:
  struct PendingOp;
  void ProbeStart();
  void QueueProbedOp(const std::shared_ptr<Stream>& stream, std::shared_ptr<PendingOp> op);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rusd::frontend
