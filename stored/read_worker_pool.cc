#include "stored/read_worker_pool.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "ipc/ring.h"
#include "ipc/segment.h"
#include "rusd/internal.pb.h"
#include "stored/error_reply.h"
#include "stored/mvcc/kv_store.h"
#include "stored/watch_history.h"
#include "rusd/watch.pb.h"

namespace rusd::stored {
namespace {

// How long a worker waits for the frontend to make room for one reply. The frontend's reply
// thread drains store-replies continuously; if it is gone this long, the request is lost
// anyway (the frontend that sent it is dead or wedged, and a new one re-sends its reads).
constexpr std::chrono::milliseconds kReplyWriteTimeout{10000};

}  // namespace

ReadWorkerPool::ReadWorkerPool(KvStore& store, ipc::RingWriter& replies, ipc::Segment& segment,
                               int threads)
    : store_(store), replies_(replies), segment_(segment) {
  threads_.reserve(threads);
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { RunWorker(); });
}

ReadWorkerPool::~ReadWorkerPool() { Stop(); }

void ReadWorkerPool::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

void ReadWorkerPool::ServeRange(uint64_t request_id,
                                std::shared_ptr<const internal::RangeRead> read) {
  if (!Admit(request_id)) return;
  Work work;
  work.request_id = request_id;
  work.read = std::move(read);
  Enqueue(std::move(work));
}

void ReadWorkerPool::ServeWatchHistory(uint64_t request_id,
                                       std::shared_ptr<const internal::WatchHistoryRead> read) {
  if (!Admit(request_id)) return;
  Work work;
  work.request_id = request_id;
  work.history = std::move(read);
  Enqueue(std::move(work));
}

void ReadWorkerPool::SendReply(ipc::MessageType type, uint64_t request_id, std::string payload) {
  // A reply that fits goes out at once from the calling thread (TryWrite never waits): a
  // keep-alive batch's answer then costs no wake-up of a worker. Only a full ring or a
  // reply too large for one TryWrite takes the worker, which may wait for space.
  if (replies_.TryWrite(type, request_id, payload).ok()) return;
  Work work;
  work.request_id = request_id;
  work.type = type;
  work.payload = std::move(payload);
  Enqueue(std::move(work));
}

size_t ReadWorkerPool::queued() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

bool ReadWorkerPool::Admit(uint64_t request_id) {
  std::lock_guard lock(mu_);
  if (reads_in_flight_.insert(request_id).second) return true;
  spdlog::debug("read {:016x} is already being served; dropping the repeat", request_id);
  return false;
}

void ReadWorkerPool::Enqueue(Work work) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    queue_.push_back(std::move(work));
  }
  cv_.notify_one();
}

void ReadWorkerPool::RunWorker() {
  for (;;) {
    Work work;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      work = std::move(queue_.front());
      queue_.pop_front();
    }
    Perform(work);
  }
}

void ReadWorkerPool::ServeTask(uint64_t request_id, Task task) {
  if (!Admit(request_id)) return;
  Work work;
  work.request_id = request_id;
  work.task = std::move(task);
  Enqueue(std::move(work));
}

void ReadWorkerPool::Perform(Work& work) {
  if (work.task) {
    const Reply reply = work.task();
    Write(reply.type, work.request_id, reply.payload);
    std::lock_guard lock(mu_);
    reads_in_flight_.erase(work.request_id);
    return;
  }
  if (work.history) {
    Result<std::string> chunk = stored::ServeWatchHistory(store_, *work.history);
    if (chunk.ok()) {
      Write(ipc::MessageType::kResult, work.request_id, chunk.value());
    } else {
      Write(ipc::MessageType::kError, work.request_id, EncodeErrorReply(chunk.status()));
    }
    std::lock_guard lock(mu_);
    reads_in_flight_.erase(work.request_id);
    return;
  }
  if (!work.read) {
    Write(work.type, work.request_id, work.payload);
    return;
  }
  Result<std::string> response = store_.Range(work.read->request());
  segment_.counter(ipc::Counter::kRangeReads).fetch_add(1, std::memory_order_relaxed);
  if (response.ok()) {
    Write(ipc::MessageType::kResult, work.request_id, response.value());
  } else {
    Write(ipc::MessageType::kError, work.request_id, EncodeErrorReply(response.status()));
  }
  std::lock_guard lock(mu_);
  reads_in_flight_.erase(work.request_id);
}

void ReadWorkerPool::Write(ipc::MessageType type, uint64_t request_id,
                           const std::string& payload) {
  Status st = replies_.Write(type, request_id, payload, kReplyWriteTimeout);
  if (!st.ok()) {
    spdlog::warn("dropping reply for request {:016x} ({} bytes): {}", request_id,
                 payload.size(), st.ToString());
  }
}

}  // namespace rusd::stored
