#include "ipc/ring.h"

#include <sched.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>

#include "ipc/futex.h"
#include "ipc/ring_layout.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define RUSD_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define RUSD_CPU_RELAX() asm volatile("yield" ::: "memory")
#else
#define RUSD_CPU_RELAX() \
  do {                   \
  } while (0)
#endif

namespace rusd::ipc {

namespace {

using Clock = std::chrono::steady_clock;

// How long a consumer spins on its rings before it sleeps on the futex. Long enough to
// catch a reply in a ping-pong (≈0.5 µs round trip), short enough that four processes on
// two cores do not starve each other.
constexpr auto kSpinBeforeSleep = std::chrono::microseconds(5);

// The yield phase of WaitForMessages hands the core to a producer that is runnable but not
// running (four processes on two cores). When the core is shared with other busy work (a
// build, other servers, a CPU hog) a sched_yield instead gives that work a whole time
// slice (EEVDF pushes the yielder's deadline out by one: ~1.5 ms on 2 cores), and a message
// arriving meanwhile cannot wake us: we are runnable, not asleep on the futex. Measured
// with two busy loops beside a node, put 1/1 p50 went from 0.23 ms to 2.7-5.4 ms with the
// yield phase. So a yield that kept us away longer than kSlowYield turns the phase off for
// kYieldCooldown: far more than a futex wake-up costs (tens of µs), less than a slice.
// Alternating runs at put 64/8 with two busy loops beside the node: 200 µs beat the
// unconditional phase in 9 of 9 rounds, 500 µs in 8 of 11; on a quiet machine neither
// changed anything. Under contention the futex wake-ups cost some CPU per put (~+10 %),
// the yields cost slices.
constexpr auto kSlowYield = std::chrono::microseconds(200);
constexpr auto kYieldCooldown = std::chrono::milliseconds(100);

// How a blocked Write polls for space: it yields at first, then sleeps with exponential
// back-off up to kMaxWriteBackoff (it is the consumer that is behind, not a futex event).
constexpr auto kMinWriteBackoff = std::chrono::microseconds(20);
constexpr auto kMaxWriteBackoff = std::chrono::microseconds(1000);

FrameHeader LoadHeader(const char* p) {
  FrameHeader h;
  std::memcpy(&h, p, sizeof h);
  return h;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// RingWriter

RingWriter::RingWriter(Segment& segment, RingId ring, uint64_t sender_epoch)
    : segment_(segment),
      ring_(segment.ring(ring)),
      doorbell_(DoorbellOf(ring)),
      epoch_(sender_epoch),
      bell_(segment.doorbell(DoorbellOf(ring))),
      stats_(segment.metrics().rings[static_cast<int>(ring)]),
      data_(ring_.data()),
      capacity_(ring_.capacity()),
      max_payload_(MaxFramePayload(ring_.capacity())) {
  // A restarted producer continues where its predecessor published its last whole frame.
  head_ = ring_.head.load(std::memory_order_relaxed);
  cached_tail_ = ring_.tail.load(std::memory_order_acquire);
  pending_aborts_.reserve(4);
}

// Finds room for a frame of `frame_bytes` at head_, writing a skip frame first if it does
// not fit before the end of the data area. On success *pos is where the frame goes.
bool RingWriter::ReserveLocked(uint64_t frame_bytes, uint64_t* pos) {
  const uint64_t to_end = capacity_ - (head_ & (capacity_ - 1));
  const uint64_t skip = to_end < frame_bytes ? to_end : 0;
  const uint64_t need = skip + frame_bytes;
  if (head_ + need - cached_tail_ > capacity_) {
    cached_tail_ = ring_.tail.load(std::memory_order_acquire);
    if (head_ + need - cached_tail_ > capacity_) return false;
  }
  uint64_t p = head_;
  if (skip != 0) {
    if (skip >= sizeof(FrameHeader)) {
      FrameHeader h{static_cast<uint32_t>(skip - sizeof(FrameHeader)), 0,
                    static_cast<uint16_t>(kFrameMarker | kSkip), 0, epoch_};
      std::memcpy(data_ + (p & (capacity_ - 1)), &h, sizeof h);
    }
    // else: fewer bytes than a header remain; both ends skip them implicitly.
    p += skip;
  }
  *pos = p;
  return true;
}

// The largest payload one frame could carry if written now (0 if not even a header fits).
uint64_t RingWriter::PayloadRoomLocked() {
  cached_tail_ = ring_.tail.load(std::memory_order_acquire);
  const uint64_t free = capacity_ - (head_ - cached_tail_);
  const uint64_t to_end = capacity_ - (head_ & (capacity_ - 1));
  uint64_t best = 0;
  const uint64_t here = std::min(free, to_end);  // without a skip frame
  if (here >= sizeof(FrameHeader)) best = (here - sizeof(FrameHeader)) & ~(kFrameAlign - 1);
  if (free > to_end) {  // after skipping to the start of the data area
    const uint64_t wrapped = free - to_end;
    if (wrapped >= sizeof(FrameHeader)) {
      best = std::max(best, (wrapped - sizeof(FrameHeader)) & ~(kFrameAlign - 1));
    }
  }
  return std::min(best, max_payload_);
}

void RingWriter::WriteFrameLocked(uint64_t pos, MessageType type, uint16_t flags, uint64_t id,
                                  uint64_t total_prefix, const char* data, uint64_t len) {
  const bool prefixed = (flags & kFirst) && !(flags & kLast);
  const uint64_t payload = len + (prefixed ? sizeof(uint64_t) : 0);
  char* p = data_ + (pos & (capacity_ - 1));
  FrameHeader h{static_cast<uint32_t>(payload), static_cast<uint16_t>(type),
                static_cast<uint16_t>(kFrameMarker | flags), id, epoch_};
  std::memcpy(p, &h, sizeof h);
  p += sizeof h;
  if (prefixed) {
    std::memcpy(p, &total_prefix, sizeof total_prefix);
    p += sizeof total_prefix;
  }
  if (len != 0) std::memcpy(p, data, len);
  head_ = pos + FrameBytes(payload);
}

bool RingWriter::FlushAbortsLocked() {
  while (!pending_aborts_.empty()) {
    uint64_t pos;
    if (!ReserveLocked(FrameBytes(0), &pos)) return false;
    WriteFrameLocked(pos, MessageType::kInvalid, kAbort, pending_aborts_.back(), 0, nullptr, 0);
    pending_aborts_.pop_back();
  }
  return true;
}

uint64_t RingWriter::FreeBytes() const {
  const uint64_t tail = ring_.tail.load(std::memory_order_acquire);
  const uint64_t head = ring_.head.load(std::memory_order_acquire);
  return head - tail >= capacity_ ? 0 : capacity_ - (head - tail);
}

void RingWriter::Publish() { ring_.head.store(head_, std::memory_order_release); }

// The producer half of the doorbell protocol (the consumer half is WaitForMessages).
// The seq_cst fence orders our head store before the load of `sleeping`; the consumer
// orders its store of `sleeping` before its load of head the same way, so at least one
// of us sees the other: either it sees our frame and does not sleep, or we see it asleep
// and wake it. Checking with a plain load first keeps the common case (consumer awake)
// free of a read-modify-write on the shared line.
void RingWriter::WakeConsumer() {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (bell_.sleeping.load(std::memory_order_relaxed) != 0 &&
      bell_.sleeping.exchange(0, std::memory_order_seq_cst) != 0) {
    bell_.word.fetch_add(1, std::memory_order_seq_cst);
    bell_.wakes.fetch_add(1, std::memory_order_relaxed);
    stats_.wakeups.fetch_add(1, std::memory_order_relaxed);
    FutexWakeAll(&bell_.word);
  }
}

Status RingWriter::TryWrite(MessageType type, uint64_t id, std::string_view payload) {
  return TryWriteImpl(type, id, payload, /*wake=*/true);
}

Status RingWriter::TryWriteWithoutWake(MessageType type, uint64_t id, std::string_view payload) {
  return TryWriteImpl(type, id, payload, /*wake=*/false);
}

Status RingWriter::TryWriteImpl(MessageType type, uint64_t id, std::string_view payload,
                                bool wake) {
  if (payload.size() > kMaxMessageBytes) {
    return Status::InvalidArgument("ipc: message of " + std::to_string(payload.size()) +
                                   " bytes exceeds the ring message limit");
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!FlushAbortsLocked()) {
      Publish();
      stats_.full_rejects.fetch_add(1, std::memory_order_relaxed);
      return Status::ResourceExhausted("ipc: ring full");
    }
    if (payload.size() <= max_payload_) {
      uint64_t pos;
      if (!ReserveLocked(FrameBytes(payload.size()), &pos)) {
        Publish();  // aborts flushed above, if any
        stats_.full_rejects.fetch_add(1, std::memory_order_relaxed);
      return Status::ResourceExhausted("ipc: ring full");
      }
      WriteFrameLocked(pos, type, kFirst | kLast, id, 0, payload.data(), payload.size());
    } else {
      // All or nothing: find where every chunk would land before writing any of them.
      const uint64_t first_data = max_payload_ - sizeof(uint64_t);
      uint64_t pos = head_;
      uint64_t off = 0;
      while (off < payload.size()) {
        const uint64_t data = off == 0 ? first_data : std::min(max_payload_, payload.size() - off);
        const uint64_t fb = FrameBytes(data + (off == 0 ? sizeof(uint64_t) : 0));
        const uint64_t to_end = capacity_ - (pos & (capacity_ - 1));
        if (to_end < fb) pos += to_end;
        pos += fb;
        off += data;
      }
      if (pos - head_ > capacity_ - (head_ - cached_tail_)) {
        cached_tail_ = ring_.tail.load(std::memory_order_acquire);
        if (pos - head_ > capacity_ - (head_ - cached_tail_)) {
          Publish();
          stats_.full_rejects.fetch_add(1, std::memory_order_relaxed);
      return Status::ResourceExhausted("ipc: ring full");
        }
      }
      off = 0;
      while (off < payload.size()) {
        const uint64_t data = off == 0 ? first_data : std::min(max_payload_, payload.size() - off);
        const bool last = off + data == payload.size();
        uint16_t flags = (off == 0 ? kFirst : 0) | (last ? kLast : 0);
        const uint64_t fb = FrameBytes(data + (off == 0 ? sizeof(uint64_t) : 0));
        uint64_t at;
        const bool ok = ReserveLocked(fb, &at);
        assert(ok);
        (void)ok;
        WriteFrameLocked(at, type, flags, id, payload.size(), payload.data() + off, data);
        off += data;
      }
    }
    Publish();
  }
  stats_.messages.fetch_add(1, std::memory_order_relaxed);
  if (wake) WakeConsumer();
  return Status::Ok();
}

Status RingWriter::Write(MessageType type, uint64_t id, std::string_view payload,
                         std::chrono::milliseconds timeout) {
  if (payload.size() > kMaxMessageBytes) {
    return Status::InvalidArgument("ipc: message of " + std::to_string(payload.size()) +
                                   " bytes exceeds the ring message limit");
  }
  const Clock::time_point deadline = Clock::now() + timeout;
  const bool single = payload.size() <= max_payload_;
  // A chunk smaller than this is not worth a frame header: wait for more room instead.
  const uint64_t min_chunk = std::max<uint64_t>(64, (max_payload_ / 8) & ~(kFrameAlign - 1));
  uint64_t off = 0;
  auto backoff = kMinWriteBackoff;
  int polls = 0;
  for (;;) {
    bool progressed = false;
    bool done = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      const uint64_t head_before = head_;
      const bool aborts_flushed = FlushAbortsLocked();
      if (aborts_flushed && single) {
        uint64_t pos;
        if (ReserveLocked(FrameBytes(payload.size()), &pos)) {
          WriteFrameLocked(pos, type, kFirst | kLast, id, 0, payload.data(), payload.size());
          progressed = done = true;
        }
      } else if (aborts_flushed) {
        // As much of the rest as fits now, in one frame (streaming through a ring much
        // smaller than the message), but not less than min_chunk unless that is all.
        const uint64_t prefix = off == 0 ? sizeof(uint64_t) : 0;
        const uint64_t want = std::min<uint64_t>(payload.size() - off + prefix, max_payload_);
        uint64_t room = std::min(want, PayloadRoomLocked());
        if (room >= std::min(want, min_chunk) && room > prefix) {
          const uint64_t data = room - prefix;
          const bool last = off + data == payload.size();
          const uint16_t flags = (off == 0 ? kFirst : 0) | (last ? kLast : 0);
          uint64_t pos;
          const bool ok = ReserveLocked(FrameBytes(room), &pos);
          assert(ok);
          (void)ok;
          WriteFrameLocked(pos, type, flags, id, payload.size(), payload.data() + off, data);
          off += data;
          progressed = true;
          done = last;
        }
      }
      if (head_ != head_before) Publish();  // our frames, or just flushed aborts
    }
    if (progressed) {
      if (done) stats_.messages.fetch_add(1, std::memory_order_relaxed);
      WakeConsumer();
      if (done) return Status::Ok();
      backoff = kMinWriteBackoff;
      polls = 0;
      continue;
    }
    if (Clock::now() >= deadline) {
      if (off != 0) {
        // Some chunks are out: cancel them so the reader frees their partial message.
        std::lock_guard<std::mutex> lock(mu_);
        pending_aborts_.push_back(id);
        if (FlushAbortsLocked()) Publish();
      }
      return Status::DeadlineExceeded(std::string("ipc: ring full for ") +
                                      std::to_string(timeout.count()) + " ms");
    }
    // The consumer is behind. Give it the CPU (two cores, four processes), then back off.
    if (polls == 0) stats_.producer_waits.fetch_add(1, std::memory_order_relaxed);
    if (++polls <= 4) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::min<Clock::duration>(backoff, deadline - Clock::now()));
      backoff = std::min(backoff * 2, kMaxWriteBackoff);
    }
  }
}

Result<bool> RingWriter::TryWriteChunks(MessageType type, uint64_t id, std::string_view payload,
                                        uint64_t* offset) {
  if (payload.size() > kMaxMessageBytes) {
    return Status::InvalidArgument("ipc: message of " + std::to_string(payload.size()) +
                                   " bytes exceeds the ring message limit");
  }
  if (*offset >= payload.size() && *offset != 0) return true;
  // As Write, one step at a time: chunks no smaller than min_chunk unless that is all.
  const uint64_t min_chunk = std::max<uint64_t>(64, (max_payload_ / 8) & ~(kFrameAlign - 1));
  bool progressed = false;
  bool done = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const uint64_t head_before = head_;
    if (FlushAbortsLocked()) {
      if (payload.size() <= max_payload_) {
        uint64_t pos;
        if (ReserveLocked(FrameBytes(payload.size()), &pos)) {
          WriteFrameLocked(pos, type, kFirst | kLast, id, 0, payload.data(), payload.size());
          *offset = payload.size();
          progressed = done = true;
        }
      } else {
        while (!done) {
          const uint64_t prefix = *offset == 0 ? sizeof(uint64_t) : 0;
          const uint64_t want =
              std::min<uint64_t>(payload.size() - *offset + prefix, max_payload_);
          const uint64_t room = std::min(want, PayloadRoomLocked());
          if (room < std::min(want, min_chunk) || room <= prefix) break;
          const uint64_t data = room - prefix;
          done = *offset + data == payload.size();
          const uint16_t flags = (*offset == 0 ? kFirst : 0) | (done ? kLast : 0);
          uint64_t pos;
          const bool ok = ReserveLocked(FrameBytes(room), &pos);
          assert(ok);
          (void)ok;
          WriteFrameLocked(pos, type, flags, id, payload.size(), payload.data() + *offset, data);
          *offset += data;
          progressed = true;
        }
      }
    }
    if (head_ != head_before) Publish();  // our frames, or just flushed aborts
  }
  if (progressed) {
    if (done) stats_.messages.fetch_add(1, std::memory_order_relaxed);
    WakeConsumer();
  } else {
    stats_.full_rejects.fetch_add(1, std::memory_order_relaxed);
  }
  return done;
}

void RingWriter::AbortChunks(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  pending_aborts_.push_back(id);
  if (FlushAbortsLocked()) Publish();
}

// ---------------------------------------------------------------------------------------
// RingReader

RingReader::RingReader(Segment& segment, RingId ring)
    : segment_(segment),
      ring_(segment.ring(ring)),
      doorbell_(DoorbellOf(ring)),
      data_(ring_.data()),
      capacity_(ring_.capacity()) {
  // A restarted consumer continues after the last whole frame its predecessor consumed.
  tail_ = ring_.tail.load(std::memory_order_relaxed);
  cached_head_ = ring_.head.load(std::memory_order_acquire);
  seen_word_ = segment.doorbell(doorbell_).word.load(std::memory_order_acquire);
}

bool RingReader::HasData() const {
  return peeked_ || ring_.head.load(std::memory_order_acquire) != tail_;
}

void RingReader::Advance(uint64_t bytes) {
  tail_ += bytes;
  ring_.tail.store(tail_, std::memory_order_release);
}

void RingReader::Resync(const char* why) {
  if (corrupt_resyncs_ == 0) {
    spdlog::error("ipc: corrupt frame on a ring ({}) at position {}; discarding {} bytes", why,
                  tail_, cached_head_ - tail_);
  }
  ++corrupt_resyncs_;
  partial_.clear();
  tail_ = cached_head_;
  ring_.tail.store(tail_, std::memory_order_release);
}

// Keeps *buffer (emptied) as the spare for the next chunked message if it is larger than
// the current spare and not so large that holding on to it would waste memory.
void RingReader::RecycleBuffer(std::string* buffer) {
  if (buffer->capacity() > spare_.capacity() && buffer->capacity() <= kMaxSpareBytes) {
    std::swap(*buffer, spare_);
    spare_.clear();
  }
  buffer->clear();
}

void RingReader::SkipToHead() {
  peeked_ = false;
  peek_frame_bytes_ = 0;
  view_ = MessageView{};
  partial_.clear();
  cached_head_ = ring_.head.load(std::memory_order_acquire);
  tail_ = cached_head_;
  ring_.tail.store(tail_, std::memory_order_release);
}

// A producer restarted with a newer epoch will never finish the partial messages of its
// predecessor: drop them.
void RingReader::NoteEpoch(uint64_t epoch) {
  if (epoch <= newest_epoch_) return;
  newest_epoch_ = epoch;
  for (auto it = partial_.begin(); it != partial_.end();) {
    if (it->second.message.sender_epoch < epoch) {
      ++dropped_chunks_;
      it = partial_.erase(it);
    } else {
      ++it;
    }
  }
}

std::optional<Message> RingReader::TryRead() {
  Message m;
  if (!TryRead(&m)) return std::nullopt;
  return m;
}

bool RingReader::TryRead(Message* out) {
  if (!peeked_ && !FindNext()) return false;
  out->type = view_.type;
  out->id = view_.id;
  out->sender_epoch = view_.sender_epoch;
  if (peek_frame_bytes_ != 0) {
    out->payload.assign(view_.payload.data(), view_.payload.size());
  } else {
    // Hand over the assembled buffer and keep the caller's old one for the next chunked
    // message: a steady stream of large messages then reuses two buffers instead of
    // allocating (and page-faulting) a fresh one per message.
    std::swap(out->payload, assembled_.payload);
    RecycleBuffer(&assembled_.payload);
  }
  Consume();
  return true;
}

bool RingReader::Peek(MessageView* out) {
  if (!peeked_ && !FindNext()) return false;
  *out = view_;
  return true;
}

void RingReader::Consume() {
  if (!peeked_) return;
  if (peek_frame_bytes_ != 0) Advance(peek_frame_bytes_);
  peek_frame_bytes_ = 0;
  peeked_ = false;
  view_ = MessageView{};
}

// Consumes frames up to the next complete message and makes it the peeked one. A message
// in one frame stays in the ring (the tail stops before it); a chunked one is moved into
// assembled_, its frames already consumed.
bool RingReader::FindNext() {
  const uint64_t mask = capacity_ - 1;
  for (;;) {
    if (tail_ == cached_head_) {
      cached_head_ = ring_.head.load(std::memory_order_acquire);
      if (tail_ == cached_head_) return false;
      if (cached_head_ - tail_ > capacity_ || (cached_head_ & (kFrameAlign - 1)) != 0) {
        Resync("head is not within one ring of the tail");
        return false;
      }
    }
    const uint64_t to_end = capacity_ - (tail_ & mask);
    if (to_end < sizeof(FrameHeader)) {  // the producer skipped these implicitly
      Advance(to_end);
      continue;
    }
    if (cached_head_ - tail_ < sizeof(FrameHeader)) {
      Resync("published bytes shorter than a header");
      return false;
    }
    const char* p = data_ + (tail_ & mask);
    const FrameHeader h = LoadHeader(p);
    if ((h.flags & kMarkerMask) != kFrameMarker || (h.flags & ~(kMarkerMask | kFlagBits)) != 0) {
      Resync("bad frame marker");
      return false;
    }
    const uint64_t fb = FrameBytes(h.length);
    if (fb > to_end || fb > cached_head_ - tail_) {
      Resync("frame length beyond the published bytes");
      return false;
    }
    const char* payload = p + sizeof(FrameHeader);
    if (h.flags & kSkip) {
      // A skip frame fills exactly the rest of the data area (RingWriter::ReserveLocked).
      if (fb != to_end) {
        Resync("skip frame does not end at the end of the ring");
        return false;
      }
      Advance(fb);
      continue;
    }
    // No writer makes a longer frame; a longer one is a damaged header, however much was
    // published after it.
    if (h.length > MaxFramePayload(capacity_)) {
      Resync("frame length beyond the largest frame of the ring");
      return false;
    }
    NoteEpoch(h.sender_epoch);
    if (h.flags & kAbort) {
      auto it = partial_.find(h.id);
      if (it != partial_.end() && it->second.message.sender_epoch == h.sender_epoch) {
        ++dropped_chunks_;
        partial_.erase(it);
      }
      Advance(fb);
      continue;
    }
    const bool first = h.flags & kFirst;
    const bool last = h.flags & kLast;
    if (first && last) {
      view_ = {static_cast<MessageType>(h.type), h.id, h.sender_epoch,
               std::string_view(payload, h.length)};
      peek_frame_bytes_ = fb;
      peeked_ = true;
      return true;
    }
    if (first) {
      uint64_t total = 0;
      if (h.length < sizeof total) {
        Resync("first chunk without a total size");
        return false;
      }
      std::memcpy(&total, payload, sizeof total);
      const uint64_t data = h.length - sizeof total;
      if (total > RingWriter::kMaxMessageBytes || total < data) {
        Resync("first chunk announces an impossible total size");
        return false;
      }
      // A first chunk for an id already in progress replaces it (its producer gave up on
      // the old one without our seeing the abort, e.g. it restarted).
      Partial& part = partial_[h.id];
      part.total = total;
      part.message.type = static_cast<MessageType>(h.type);
      part.message.id = h.id;
      part.message.sender_epoch = h.sender_epoch;
      if (spare_.capacity() > part.message.payload.capacity()) {
        std::swap(part.message.payload, spare_);
      }
      part.message.payload.clear();
      if (part.message.payload.capacity() < total) {
        // A recyclable buffer gets headroom so that the next, slightly larger message of a
        // stream still fits in it. But `total` comes from shared memory: reserve no more
        // than a bounded multiple of the bytes this chunk really carries, so that a damaged
        // or hostile header costs memory in proportion to real traffic, not the 1 GiB it
        // may announce; a larger message grows its buffer as its chunks arrive.
        const uint64_t wanted = total <= kMaxSpareBytes / 2 ? total + total / 4 : total;
        part.message.payload.reserve(std::min(wanted, kReserveAheadFactor * data));
      }
      part.message.payload.append(payload + sizeof total, data);
      Advance(fb);
      continue;
    }
    auto it = partial_.find(h.id);
    if (it == partial_.end() || it->second.message.sender_epoch != h.sender_epoch ||
        it->second.message.type != static_cast<MessageType>(h.type)) {
      ++dropped_chunks_;  // we never saw this message's start (we restarted mid-message)
      Advance(fb);
      continue;
    }
    Partial& part = it->second;
    if (part.message.payload.size() + h.length > part.total ||
        (last && part.message.payload.size() + h.length != part.total)) {
      ++dropped_chunks_;
      partial_.erase(it);
      Resync("chunks disagree with the announced total size");
      return false;
    }
    part.message.payload.append(payload, h.length);
    Advance(fb);
    if (last) {
      RecycleBuffer(&assembled_.payload);  // the previous one, if Peek/Consume left it
      assembled_ = std::move(part.message);
      partial_.erase(it);
      view_ = {assembled_.type, assembled_.id, assembled_.sender_epoch, assembled_.payload};
      peek_frame_bytes_ = 0;
      peeked_ = true;
      return true;
    }
  }
}

// ---------------------------------------------------------------------------------------
// WaitForMessages: the consumer half of the doorbell protocol.

void WaitForMessages(Segment& segment, std::span<RingReader* const> readers,
                     std::chrono::milliseconds timeout, std::chrono::microseconds yield_window) {
  if (readers.empty()) {
    std::this_thread::sleep_for(timeout);
    return;
  }
  Doorbell& bell = segment.doorbell(readers[0]->doorbell());
  uint32_t& seen = readers[0]->seen_word_;
  auto any_data = [&] {
    for (RingReader* r : readers) {
      if (r->HasData()) return true;
    }
    return false;
  };
  auto finish = [&] { seen = bell.word.load(std::memory_order_acquire); };
  // A doorbell rung without ring data (raftd's transport thread bumps it for peer
  // messages; WakeAll after an epoch bump) ends the wait as data does: looking for ring
  // data alone kept a woken raftd spinning and yielding its whole window (35 µs, several
  // sched_yield calls) before it noticed at the futex step. Ring producers bump the word
  // only for a sleeper, so for them this changes nothing.
  auto rung = [&] { return bell.word.load(std::memory_order_acquire) != seen; };

  // Rung since we last returned (WakeAll after an epoch bump): let the caller look.
  if (rung()) return finish();

  // Spin briefly: in a request/response exchange the answer often comes within a µs,
  // and a futex sleep + wake costs tens of µs.
  const Clock::time_point spin_end = Clock::now() + kSpinBeforeSleep;
  for (int i = 0;; ++i) {
    if (any_data() || rung()) return finish();
    RUSD_CPU_RELAX();
    if ((i & 15) == 15 && Clock::now() >= spin_end) break;
  }
  // Then yield for a while: with four processes on two cores the producer we wait for is
  // often runnable but not running, and handing it our core is far cheaper than a futex
  // sleep and wake (measured: 10-50 µs round trips instead of 50-300 µs under load). On an
  // idle machine sched_yield returns at once, so this phase is bounded busy-waiting.
  Clock::time_point& no_yield_until = readers[0]->no_yield_until_;
  Clock::time_point before = Clock::now();
  if (before >= no_yield_until) {
    const Clock::time_point yield_end = before + yield_window;
    while (before < yield_end) {
      if (any_data() || rung()) return finish();
      sched_yield();
      const Clock::time_point after = Clock::now();
      if (after - before >= kSlowYield) {
        no_yield_until = after + kYieldCooldown;
        break;
      }
      before = after;
    }
  }

  // Sleep: read the word, declare we sleep, recheck, then wait on the word we read. A
  // producer that publishes after our recheck sees sleeping == 1 and bumps the word, so
  // futex_wait either returns at once (the word moved) or is woken.
  const uint32_t w = bell.word.load(std::memory_order_seq_cst);
  bell.sleeping.store(1, std::memory_order_seq_cst);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (w == seen && !any_data()) FutexWait(&bell.word, w, timeout);
  bell.sleeping.store(0, std::memory_order_relaxed);
  finish();
}

}  // namespace rusd::ipc
