// HistoryQuery / HistoryChunk: a watch catch-up read and its answer (KvStore::ReadHistory,
// history_reader.h). Plain data, no RocksDB types.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "etcd/mvccpb/kv.pb.h"

namespace rusd::stored {

struct HistoryQuery {
  // etcd's range conventions (KeySpan::FromRequest): empty range_end = the key alone.
  std::string key;
  std::string range_end;
  int64_t start_revision = 1;
  // Chunk limits; a revision is never split (the chunk may exceed max_bytes by one).
  uint32_t max_events = 1000;
  uint32_t max_bytes = 1u << 20;
  bool prev_kv = false;
};

struct HistoryChunk {
  std::vector<mvccpb::Event> events;
  int64_t next_revision = 0;     // first revision not covered
  int64_t current_revision = 0;  // C: the view's revision
  int64_t compact_revision = 0;  // > 0: start is compacted, no events
};

}  // namespace rusd::stored
