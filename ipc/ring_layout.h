// Private to ipc/: the in-segment control block of one ring and the format of the frames
// on it. Only segment.cc (which lays rings out) and ring.cc (which reads and writes them)
// include this file.
//
// One ring in the segment (its offset is 4 KiB aligned):
//
//   +--------------------------------------+ 0
//   | cache line 0: capacity, magic        |  immutable after Segment::Create
//   | cache line 1: head                   |  written by the producer only (release)
//   | cache line 2: tail                   |  written by the consumer only (release)
//   | cache line 3: unused (keeps the data |
//   |   off the tail's line)               |
//   +--------------------------------------+ sizeof(Ring) == 256
//   | data[capacity]                       |  capacity is a power of two >= 4 KiB
//   +--------------------------------------+
//
// head and tail are byte positions that only ever grow (64 bits: they never wrap in
// practice); the byte at position p lives at data[p & (capacity - 1)]. The bytes in
// [tail, head) are published frames; [head, tail + capacity) is free. Both are always
// multiples of 8 and always sit on frame boundaries, because the producer advances head
// by whole frames after writing them and the consumer advances tail by whole frames after
// copying them out. A process killed at any instruction therefore leaves a ring its
// successor can continue.
//
// One frame (every field little-endian, as the machine is):
//
//   0        4      6      8                16                  24
//   +--------+------+------+----------------+-------------------+----------------------+
//   | length | type | flags|       id       |   sender_epoch    | payload[length] pad8 |
//   |  u32   | u16  | u16  |      u64       |       u64         |                      |
//   +--------+------+------+----------------+-------------------+----------------------+
//
//   - length: payload bytes (not counting the header or the padding to 8 bytes).
//   - flags: bit 0 first chunk, bit 1 last chunk (a message in one frame has both),
//     bit 2 skip marker, bit 3 abort; bits 8..15 hold kFrameMarker so that a reader that
//     lands on garbage notices at once.
//   - A frame never wraps. When the next frame does not fit before the end of the data
//     area, the producer fills the rest with a skip frame (flags = kSkip, length = the
//     bytes after its header up to the end) and starts the frame at data[0]. When fewer
//     than sizeof(FrameHeader) bytes remain before the end, no skip frame fits; both ends
//     then skip those bytes implicitly.
//   - A message bigger than MaxFramePayload(capacity) travels as several chunk frames with
//     the same (sender_epoch, id): the first has kFirst, the last kLast, and the first
//     chunk's payload starts with the u64 total message size (so the reader reserves the
//     whole buffer once). Chunks of different messages may interleave.
//   - An abort frame (flags = kAbort, length 0) tells the reader to drop the partial
//     message of that (sender_epoch, id): a producer whose Write timed out half-way sends
//     it so that the reader does not keep the partial forever.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace rusd::ipc {

inline constexpr uint64_t kRingMagic = 0x676e6952'64737572ull;  // "rusdRing"

// The control block at the start of every ring; the data area follows it.
class Ring {
 public:
  uint64_t capacity() const { return capacity_; }
  char* data() { return reinterpret_cast<char*>(this) + sizeof(Ring); }

  // Called once, by Segment::Create, on zeroed memory.
  void Initialize(uint64_t capacity) {
    capacity_ = capacity;
    magic_ = kRingMagic;
    head.store(0, std::memory_order_relaxed);
    tail.store(0, std::memory_order_relaxed);
  }
  bool Valid() const { return magic_ == kRingMagic; }

  alignas(64) uint64_t capacity_;
  uint64_t magic_;
  alignas(64) std::atomic<uint64_t> head;  // producer-owned
  alignas(64) std::atomic<uint64_t> tail;  // consumer-owned
  alignas(64) char unused_[64];
};
static_assert(sizeof(Ring) == 256);
static_assert(std::atomic<uint64_t>::is_always_lock_free);

struct FrameHeader {
  uint32_t length;
  uint16_t type;
  uint16_t flags;
  uint64_t id;
  uint64_t sender_epoch;
};
static_assert(sizeof(FrameHeader) == 24);

inline constexpr uint16_t kFirst = 1u << 0;
inline constexpr uint16_t kLast = 1u << 1;
inline constexpr uint16_t kSkip = 1u << 2;
inline constexpr uint16_t kAbort = 1u << 3;
inline constexpr uint16_t kFlagBits = kFirst | kLast | kSkip | kAbort;
inline constexpr uint16_t kFrameMarker = 0xA5u << 8;
inline constexpr uint16_t kMarkerMask = 0xFFu << 8;

inline constexpr uint64_t kFrameAlign = 8;
inline constexpr uint64_t kMinRingCapacity = 4096;

inline constexpr uint64_t AlignUp8(uint64_t n) { return (n + kFrameAlign - 1) & ~(kFrameAlign - 1); }

// Bytes a frame with `payload` bytes occupies on the ring.
inline constexpr uint64_t FrameBytes(uint64_t payload) {
  return sizeof(FrameHeader) + AlignUp8(payload);
}

// The largest payload of one frame: a quarter of the ring, so that a big message streams
// through in pieces while the consumer drains the ones before it.
inline constexpr uint64_t MaxFramePayload(uint64_t capacity) {
  return capacity / 4 - sizeof(FrameHeader);
}

}  // namespace rusd::ipc
