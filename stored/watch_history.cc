#include "stored/watch_history.h"

#include <algorithm>

#include "rusd/watch.pb.h"
#include "stored/mvcc/kv_store.h"

namespace rusd::stored {
namespace {

// Defaults and ceilings of a chunk: large enough that a catch-up needs few round trips,
// small enough that one chunk never hogs the store-replies ring or a worker for long.
constexpr uint32_t kDefaultMaxEvents = 1000;
constexpr uint32_t kDefaultMaxBytes = 1u << 20;
constexpr uint32_t kCeilingMaxBytes = 4u << 20;

}  // namespace

Result<std::string> ServeWatchHistory(KvStore& store, const internal::WatchHistoryRead& read) {
  HistoryQuery q;
  q.key = read.key();
  q.range_end = read.range_end();
  q.start_revision = read.start_revision();
  q.max_events = read.max_events() == 0 ? kDefaultMaxEvents : read.max_events();
  q.max_bytes = std::min(read.max_bytes() == 0 ? kDefaultMaxBytes : read.max_bytes(),
                         kCeilingMaxBytes);
  q.prev_kv = read.prev_kv();
  if (q.key.empty()) return Status::InvalidArgument("rusd-stored: watch history needs a key");
  Result<HistoryChunk> chunk = store.ReadHistory(q);
  if (!chunk.ok()) return chunk.status();
  internal::WatchHistoryChunk out;
  out.mutable_events()->Reserve(static_cast<int>(chunk->events.size()));
  for (auto& ev : chunk->events) *out.add_events() = std::move(ev);
  out.set_next_revision(chunk->next_revision);
  out.set_current_revision(chunk->current_revision);
  out.set_compact_revision(chunk->compact_revision);
  out.set_raft_term(store.raft_term());
  return out.SerializeAsString();
}

}  // namespace rusd::stored
