// A single-producer single-consumer ring of framed, variable-length records in the
// shared-memory segment, and the two ends that use it.
//
// The frame format and the in-segment layout are drawn in ipc/ring_layout.h.
//
// Guarantees:
// - Lock-free: head (producer) and tail (consumer) live on separate cache lines and are
//   published with release / read with acquire. Only whole frames are ever published, so
//   head and tail always sit on frame boundaries: a producer or consumer killed at any
//   instruction leaves a ring that its restarted successor continues without a handshake.
// - A message larger than what fits in one frame travels as several chunk frames with
//   first/last flags; the reader reassembles by (sender epoch, id). Chunks of different
//   messages may interleave. Partial messages of an older sender epoch are dropped.
// - At-most-once at the ring level: a consumer killed between acting on a message and
//   advancing its tail repeats or loses it. Every protocol above deduplicates by frame id.
// - Wake-ups: a consumer that finds all its rings empty spins briefly (~5 µs, then ~30 µs
//   yielding its core), then sleeps on its doorbell's futex; a producer issues the futex wake only when the doorbell says its
//   consumer sleeps.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "ipc/message_type.h"
#include "ipc/segment.h"

namespace rusd::ipc {

// One reassembled message as the consumer sees it.
struct Message {
  MessageType type = MessageType::kInvalid;
  uint64_t id = 0;
  uint64_t sender_epoch = 0;
  std::string payload;
};

// A complete message the reader has not consumed yet (RingReader::Peek). payload points
// into the ring itself (a message that fit in one frame) or into the reader's reassembly
// buffer (a chunked one); it stays valid until Consume() or the next read call.
struct MessageView {
  MessageType type = MessageType::kInvalid;
  uint64_t id = 0;
  uint64_t sender_epoch = 0;
  std::string_view payload;
};

// The producer end. Thread-safe: a process-local mutex is held for one frame at a time
// by Write (for all frames of one message by TryWrite, which never waits), so many
// threads may write; chunks of different messages may interleave on the ring.
// Create exactly one RingWriter per ring in the producing process and share it between
// threads (two writers on one ring would each own a mutex, and the ring would break).
//
// Neither write allocates: the payload is copied straight into the ring.
class RingWriter {
 public:
  // `segment` must outlive the writer. sender_epoch is stamped on every frame.
  RingWriter(Segment& segment, RingId ring, uint64_t sender_epoch);

  // Writes one message if the whole of it fits in the free space now; never blocks.
  // Returns ResourceExhausted when the ring is too full (the caller keeps it and retries
  // later, or fails the request). Used by raftd, which must never block on a ring.
  Status TryWrite(MessageType type, uint64_t id, std::string_view payload);

  // As TryWrite, but leaves the wake-up to the caller: the message is published (a consumer
  // that looks sees it) but a sleeping consumer is not woken. For a producer writing several
  // messages in a row (stored's replies to one apply batch): one doorbell check, a fence and a
  // load of the consumer's cache line, and at most one futex wake for all of them instead of
  // one check per message. The caller MUST call WakeConsumer() after its last such write, or
  // a consumer asleep may see the messages only at its wait's timeout.
  Status TryWriteWithoutWake(MessageType type, uint64_t id, std::string_view payload);
  // Wakes the consumer if it sleeps (one futex wake; nothing when it is awake). Covers every
  // message published before the call.
  void WakeConsumer();

  // Writes one message of any size, in chunks, waiting for space as the consumer drains
  // (bounded polling, not a futex). Fails with DeadlineExceeded if `timeout` passes first;
  // the chunks already written are then cancelled by an abort frame, so the reader never
  // delivers a partial message.
  Status Write(MessageType type, uint64_t id, std::string_view payload,
               std::chrono::milliseconds timeout);

  // Writes a message of any size in chunks over several calls, never waiting (for raftd,
  // which must not block on a ring even for a message larger than the ring): each call
  // writes as many further chunks as fit now. `*offset` (0 to begin) is how much of
  // `payload` is out; pass the same type, id, payload and offset again until it returns
  // true (the reader then has the whole message). Other messages may be written between
  // calls (their frames interleave with the chunks). A message begun (*offset > 0) and
  // not to be finished must be cancelled with AbortChunks.
  Result<bool> TryWriteChunks(MessageType type, uint64_t id, std::string_view payload,
                              uint64_t* offset);
  // Cancels the chunks of message `id` already written (an abort frame, written now or
  // before the next frame): the reader drops its partial copy.
  void AbortChunks(uint64_t id);

  // The largest message TryWrite/Write accept (1 GiB).
  static constexpr uint64_t kMaxMessageBytes = 1ull << 30;

  // The ring's data bytes. A message needs about its size plus 24 bytes per frame (one
  // frame per capacity/4 bytes); TryWrite of a message larger than about half the ring may
  // never succeed, so size batches below that.
  uint64_t capacity() const { return capacity_; }
  // Free bytes right now (a snapshot: the consumer may free more at any moment).
  uint64_t FreeBytes() const;

 private:
  bool ReserveLocked(uint64_t frame_bytes, uint64_t* pos);
  uint64_t PayloadRoomLocked();
  void WriteFrameLocked(uint64_t pos, MessageType type, uint16_t flags, uint64_t id,
                        uint64_t total_prefix, const char* data, uint64_t len);
  bool FlushAbortsLocked();
  void Publish();
  Status TryWriteImpl(MessageType type, uint64_t id, std::string_view payload, bool wake);

  Segment& segment_;
  Ring& ring_;
  DoorbellId doorbell_;
  uint64_t epoch_;
  std::mutex mu_;
  // Guarded by mu_.
  uint64_t head_ = 0;         // our copy of ring_.head (we are its only writer)
  uint64_t cached_tail_ = 0;  // last tail we read; reloaded only when space runs short
  std::vector<uint64_t> pending_aborts_;  // ids whose abort frame did not fit yet
  // Immutable.
  Doorbell& bell_;
  RingStats& stats_;  // this ring's producer-side metrics in the segment
  char* data_;
  uint64_t capacity_;
  uint64_t max_payload_;
};

// The consumer end. Not thread-safe: owned by the one thread that consumes the ring.
//
// Every length read from the ring is bounded by what the protocol allows: a frame's by
// MaxFramePayload and the published bytes, a skip frame's by the end of the data area, a
// chunked message's total by kMaxMessageBytes, and memory reserved for it up front by a
// multiple of the bytes actually received. A corrupt frame header (bad marker, impossible
// length) means the frame boundaries are lost: the reader then discards everything published so far (tail jumps to head), counts
// it in corrupt_resyncs() and logs once; the protocols above recover such losses as they
// recover a restart. Chunks whose first chunk this reader never saw (it started mid-message)
// are dropped silently.
class RingReader {
 public:
  // `segment` must outlive the reader. Starts at the ring's current tail (where a previous
  // consumer of this ring stopped).
  RingReader(Segment& segment, RingId ring);

  // Returns the next complete message, or nullopt if none is complete yet.
  std::optional<Message> TryRead();

  // As TryRead, into *out, reusing its payload buffer (no allocation once it is large
  // enough): a message in one frame is copied once, from the ring into out->payload; a
  // chunked message is assembled once into a buffer reserved to its full size. Returns
  // false if no message is complete yet (*out is then unspecified).
  bool TryRead(Message* out);

  // Zero-copy reading: Peek returns the next complete message without copying it out of
  // the ring (e.g. to parse a protobuf in place); the ring space stays taken until
  // Consume(). Peek again before Consume returns the same message. Returns false if no
  // message is complete yet. Consume without a peeked message does nothing.
  bool Peek(MessageView* out);
  void Consume();

  // Drops everything published so far, and any partial message: for a restarted consumer
  // that wants none of its predecessor's backlog. Moves only this end's index (the tail).
  void SkipToHead();

  // True if a message is peeked but not consumed, or the producer has published frames
  // this reader has not consumed yet (they may still be chunks of an incomplete message).
  // Cheap: one acquire load.
  bool HasData() const;

  DoorbellId doorbell() const { return doorbell_; }

  // Times a corrupt header forced this reader to discard the ring's contents.
  uint64_t corrupt_resyncs() const { return corrupt_resyncs_; }
  // Chunk frames dropped because their message's first chunk was never seen, or their
  // message was aborted or superseded by a newer sender epoch.
  uint64_t dropped_chunks() const { return dropped_chunks_; }

 private:
  friend void WaitForMessages(Segment&, std::span<RingReader* const>, std::chrono::milliseconds,
                              std::chrono::microseconds);
  struct Partial {
    Message message;
    uint64_t total = 0;  // the size announced by the first chunk
  };
  void Advance(uint64_t bytes);
  void Resync(const char* why);
  bool FindNext();
  void RecycleBuffer(std::string* buffer);
  // Reassembly buffers up to this size are kept for reuse; larger ones are freed.
  static constexpr size_t kMaxSpareBytes = 16u << 20;
  // A chunked message's buffer is reserved up front to at most this many times the bytes
  // of its first chunk (a writer's first chunk carries at least 1/8 of a full frame).
  static constexpr uint64_t kReserveAheadFactor = 16;
  void NoteEpoch(uint64_t epoch);

  Segment& segment_;
  Ring& ring_;
  DoorbellId doorbell_;
  std::unordered_map<uint64_t, Partial> partial_;  // by id, while chunks arrive
  uint64_t tail_ = 0;         // our copy of ring_.tail (we are its only writer)
  uint64_t cached_head_ = 0;  // last head we read
  uint64_t newest_epoch_ = 0;
  // The peeked message: in the ring (peek_frame_bytes_ > 0: advance that much on Consume)
  // or reassembled into assembled_.
  bool peeked_ = false;
  MessageView view_;
  uint64_t peek_frame_bytes_ = 0;
  Message assembled_;
  std::string spare_;  // an empty buffer with capacity, for the next chunked message
  uint64_t corrupt_resyncs_ = 0;
  uint64_t dropped_chunks_ = 0;
  uint32_t seen_word_ = 0;  // doorbell word when WaitForMessages last returned
  // Until then WaitForMessages skips its yield phase (a sched_yield was slow: the core is
  // contended by other work; see WaitForMessages).
  std::chrono::steady_clock::time_point no_yield_until_{};
  char* data_;
  uint64_t capacity_;
};

// Blocks the calling consumer thread until one of `readers` may have a message, or
// `timeout` passes. All readers must share one doorbell. Spins briefly (a few µs) first,
// then sleeps on the futex. Spurious returns are allowed; callers loop over TryRead.
// Also returns at once if the doorbell was rung (e.g. by Segment::WakeAll after an epoch
// bump) since the previous return for readers[0], so a caller that checks the epochs after
// every return never misses a bump.
// `yield_window`: how long the yield phase after the spin lasts (default 30 µs). The phase
// is skipped for a while (kYieldCooldown in ring.cc) after one sched_yield kept this thread
// off its core for longer than a wake-up costs (kSlowYield): then other work competes for
// the core, and a yield hands it a whole time slice (milliseconds) during which a message
// that arrives does not wake us (we are not asleep on the futex).
void WaitForMessages(Segment& segment, std::span<RingReader* const> readers,
                     std::chrono::milliseconds timeout,
                     std::chrono::microseconds yield_window = std::chrono::microseconds(30));

}  // namespace rusd::ipc
