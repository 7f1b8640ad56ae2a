// WatchSendQueue: one Watch stream's unsent responses, in order, with the byte count the
// hub bounds (WatchSink::QueuedBytes). Consecutive event responses of one watcher, with
// nothing queued between them but other watchers' event responses, merge into one (etcd
// batches a busy watcher's revisions the same way) up to a body size the caller gives: the
// hub's fragment limit less the response's header room, and never more than 64 KiB.
//
// Not synchronized: the owner (the gRPC reactor) guards it with its lock.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>

namespace rusd::frontend {

class WatchSendQueue {
 public:
  // A merged response stops growing here whatever the limit (one busy watcher cannot
  // build a huge message).
  static constexpr size_t kMaxMergedBytes = 64 << 10;

  // A response as is (control responses, fragments). A barrier: nothing queued before it
  // takes events queued after it (a progress notification promises what was delivered).
  void PushRaw(std::string response);
  // An event response of `watch_id`: `header` (ResponseHeader bytes) and `events` (its
  // `events` fields). Appended to the watcher's previous event response while that is
  // mergeable and the merged body stays within min(max_body, kMaxMergedBytes); the merged
  // response keeps the later header.
  void PushEvents(int64_t watch_id, std::string_view header, std::string&& events,
                  size_t max_body);

  bool empty() const { return queue_.empty(); }
  // The next response to write, as two parts whose concatenation is the encoded response:
  // `prefix` (an event response's header and watch id fields; empty for a raw response)
  // and `body`, the queued bytes as they are — the writer sends both without joining
  // them (no copy of the events). Its bytes stay counted until WriteDone.
  struct Parts {
    std::string prefix;
    std::string body;
  };
  Parts PopForWriteParts();
  // The same, joined.
  std::string PopForWrite();
  // The next responses to write as one buffer, each with gRPC's 5-byte length prefix (flag
  // 0, big-endian length; forwarded_framing.h): at least one, then more while the total
  // stays within `max_bytes`. Their bytes stay counted until WriteDone.
  std::string PopPrefixedForWrite(size_t max_bytes);
  void WriteDone();
  // Drops everything queued (the stream failed or closes); a write in flight stays counted
  // until WriteDone.
  void Clear();
  // Queued responses plus the one being written.
  size_t queued_bytes() const { return queued_bytes_; }

 private:
  // A ResponseHeader of four varint fields takes at most 44 bytes: an event response keeps
  // its header inline (no allocation per response); a longer one is queued encoded.
  static constexpr size_t kInlineHeaderBytes = 48;
  struct Out {
    bool raw = true;
    uint8_t header_size = 0;
    int64_t watch_id = 0;
    std::array<char, kInlineHeaderBytes> header{};
    std::string body;
    size_t bytes = 0;  // what it counts in queued_bytes_
    std::string_view header_view() const { return {header.data(), header_size}; }
    void set_header(std::string_view h) {
      h.copy(header.data(), h.size());
      header_size = static_cast<uint8_t>(h.size());
    }
  };
  void Push(Out o);

  std::deque<Out> queue_;
  uint64_t front_seq_ = 0;  // sequence number of queue_.front()
  // Watch id -> sequence number of its last queued event response, while nothing but
  // event responses was queued after it.
  std::unordered_map<int64_t, uint64_t> mergeable_;
  size_t queued_bytes_ = 0;
  size_t in_flight_bytes_ = 0;
};

}  // namespace rusd::frontend
