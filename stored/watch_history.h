// Serving watch catch-up reads (kWatchHistoryRead) in rusd-stored: the reads thread routes
// them to the read workers, which call ServeWatchHistory. One request = one bounded chunk
// (rusd.internal.WatchHistoryChunk, proto/rusd/watch.proto); the frontend asks for the next
// chunk only after it has delivered this one, which is the credit that bounds what a
// catch-up puts on the store-replies ring.
#pragma once

#include <string>

#include "common/status.h"

namespace rusd::internal {
class WatchHistoryRead;
}

namespace rusd::stored {

class KvStore;

// Reads one chunk and returns the serialized WatchHistoryChunk (the kResult payload), or
// the store's error. Any thread.
Result<std::string> ServeWatchHistory(KvStore& store, const internal::WatchHistoryRead& read);

}  // namespace rusd::stored
