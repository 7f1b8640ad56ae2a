// Fuzz target: RingReader (ipc/ring.h) over a ring whose bytes a crashed or buggy producer
// (or stray writes into the shared segment) left corrupt: frame headers, skip and abort
// frames, chunk reassembly, head and tail positions.
//
// Input: u32 tail position (8-aligned by the harness), u32 distance from tail to head (not
// aligned: a corrupt head is part of the input), then the ring's data area (4 KiB, the
// smallest ring; the rest is zero). Every frame of the data is taken as published.
//
// Invariants: the reader never reads outside the ring (ASan), returns messages no larger
// than RingWriter::kMaxMessageBytes, and never consumes past the head it was given.
#include <spdlog/spdlog.h>

#include <cstdint>
#include <cstring>

#include "ipc/ring.h"
#include "ipc/ring_layout.h"
#include "ipc/test_segment.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool quiet = [] {
    spdlog::set_level(spdlog::level::off);  // one error per corrupt ring otherwise
    return true;
  }();
  (void)quiet;
  static rusd::ipc::testing::ScopedSegment segment("fuzz",
                                                   rusd::ipc::testing::UniformLayout(4096));
  RUSD_FUZZ_CHECK(segment.ok());
  if (size < 8) return 0;
  uint32_t tail = 0, distance = 0;
  std::memcpy(&tail, data, 4);
  std::memcpy(&distance, data + 4, 4);
  rusd::ipc::Ring& ring = segment->ring(rusd::ipc::RingId::kCommitted);
  const uint64_t capacity = ring.capacity();
  std::memset(ring.data(), 0, capacity);
  std::memcpy(ring.data(), data + 8, std::min<size_t>(size - 8, capacity));
  const uint64_t start = (tail & ~uint64_t{7}) % (1u << 20);
  const uint64_t head = start + distance % (2 * capacity);
  ring.tail.store(start);
  ring.head.store(head);
  rusd::ipc::RingReader reader(*segment, rusd::ipc::RingId::kCommitted);
  rusd::ipc::Message m;
  for (int i = 0; i < 64 && reader.TryRead(&m); ++i) {
    RUSD_FUZZ_CHECK(m.payload.size() <= rusd::ipc::RingWriter::kMaxMessageBytes);
  }
  RUSD_FUZZ_CHECK(ring.tail.load() <= head);
  return 0;
}
