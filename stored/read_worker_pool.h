// ReadWorkerPool: the threads of rusd-stored that may wait for space on the store-replies
// ring. They serve range reads (KvStore::Range) and write replies too large for the apply
// thread's non-blocking path, with RingWriter::Write (chunked, waits for the frontend to
// drain). They consume no ring, so waiting here cannot deadlock the node (ring rule: no
// thread blocks producing into one ring while it consumes another).
//
// Threads: ServeRange and SendReply may be called from any thread (the reads thread, the
// apply thread); they enqueue (SendReply first tries a non-blocking write) and never block
// on I/O. Stop() (or the destructor) joins
// the workers; work still queued then is dropped: the frontend times those requests out or
// re-sends them when it sees stored's epoch change.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "ipc/message_type.h"

namespace rusd::internal {
class RangeRead;
class WatchHistoryRead;
}
namespace rusd::ipc {
class RingWriter;
class Segment;
}  // namespace rusd::ipc

namespace rusd::stored {

class KvStore;

class ReadWorkerPool {
 public:
  // `store`, `replies` (the store-replies writer) and `segment` must outlive the pool.
  ReadWorkerPool(KvStore& store, ipc::RingWriter& replies, ipc::Segment& segment,
                 int threads);
  ~ReadWorkerPool();
  ReadWorkerPool(const ReadWorkerPool&) = delete;
  ReadWorkerPool& operator=(const ReadWorkerPool&) = delete;

  // Serves `read` at the store's current state and replies kResult (RangeResponse) or kError
  // under `request_id`. The caller has already waited for read->min_applied_index.
  // A read whose id is already queued or being served is dropped: the frontend may re-send
  // a read (stored's epoch moves twice per restart), and two workers streaming chunks under
  // one id at once would interleave them into one corrupt message. A repeat that arrives
  // after the first reply is complete is served again; the frontend drops the extra reply.
  void ServeRange(uint64_t request_id, std::shared_ptr<const internal::RangeRead> read);
  // Serves one watch catch-up chunk (stored/watch_history.h) and replies kResult
  // (WatchHistoryChunk) or kError; repeats of an id in flight are dropped as for ranges.
  void ServeWatchHistory(uint64_t request_id,
                         std::shared_ptr<const internal::WatchHistoryRead> read);
  // Writes a ready-made reply: at once if it fits (RingWriter::TryWrite, never blocks),
  // else through a worker that waits for ring space.
  void SendReply(ipc::MessageType type, uint64_t request_id, std::string payload);

  // A reply that needs store reads to build (e.g. the keys of a lease): the task runs on a
  // worker, off the thread that found the request, and its (type, payload) is the reply.
  // Repeats of an id in flight are dropped as for ranges (a large reply goes in chunks).
  struct Reply {
    ipc::MessageType type = ipc::MessageType::kInvalid;
    std::string payload;
  };
  using Task = std::function<Reply()>;
  void ServeTask(uint64_t request_id, Task task);

  // Work queued and not yet picked up by a worker (tests, logs).
  size_t queued() const;

  void Stop();

 private:
  struct Work {
    uint64_t request_id = 0;
    std::shared_ptr<const internal::RangeRead> read;  // a range to serve, or
    std::shared_ptr<const internal::WatchHistoryRead> history;  // a catch-up chunk, or
    Task task;  // a reply to build, or else
    ipc::MessageType type = ipc::MessageType::kInvalid;  // a ready reply
    std::string payload;
  };

  // Marks `request_id` in flight; false (and the repeat is to be dropped) when it already is:
  // a frontend re-sends a read whose reply it has not seen.
  bool Admit(uint64_t request_id);
  void Enqueue(Work work);
  void RunWorker();
  void Perform(Work& work);
  void Write(ipc::MessageType type, uint64_t request_id, const std::string& payload);

  KvStore& store_;
  ipc::RingWriter& replies_;
  ipc::Segment& segment_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Work> queue_;  // guarded by mu_
  std::unordered_set<uint64_t> reads_in_flight_;  // ids of queued or running reads; mu_
  bool stopping_ = false;   // guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace rusd::stored
