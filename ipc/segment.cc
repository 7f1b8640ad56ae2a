#include "ipc/segment.h"

#include <spdlog/spdlog.h>
#include <sys/mman.h>

#include <boost/interprocess/exceptions.hpp>
#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <new>

#include "ipc/futex.h"
#include "ipc/ring_layout.h"

namespace rusd::ipc {

namespace bip = boost::interprocess;

namespace {

constexpr uint64_t kSegmentMagic = 0x4d68536453755221ull;  // "!RuSdShM" read backwards
// Bump whenever anything in SegmentHeader, Ring or FrameHeader changes shape or meaning:
// binaries of two builds must never share a segment.
constexpr uint32_t kLayoutVersion = 3;  // 3: MetricsArea
constexpr uint64_t kRingAlign = 4096;

// Linux 5.14's MADV_POPULATE_WRITE (older headers lack the name; older kernels refuse it
// with EINVAL, which PopulatePages ignores).
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

// Maps every page of the segment into this process, writable, now. Without it the first
// pass of each ring's producer over its data area takes one page fault per 4 KiB (the
// first toucher's also zeroes a fresh shmem page) on the hot path: measured on a 3-node
// put load, the committed ring's faults were ~2 % of a raftd's CPU until the ring had
// wrapped once (8 MiB of entries), and each consumer maps the same pages again. A long-
// running node touches every page anyway; this only moves the cost to start-up (a few ms
// for the default ~34 MiB).
void PopulatePages(void* base, size_t bytes) {
  if (::madvise(base, bytes, MADV_POPULATE_WRITE) != 0 && errno != EINVAL) {
    spdlog::debug("ipc: madvise(MADV_POPULATE_WRITE) on the segment: {}", std::strerror(errno));
  }
}

struct RingDescriptor {
  uint64_t offset;    // of the Ring control block from the segment start
  uint64_t capacity;  // data bytes, a power of two
};

bool IsPowerOfTwo(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }
uint64_t AlignUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

}  // namespace

// The fixed header at offset 0. Written once by Create (magic last, with release), then
// only its atomics change.
struct SegmentHeader {
  std::atomic<uint64_t> magic;
  uint32_t layout_version;
  uint32_t header_bytes;
  uint64_t total_bytes;
  uint32_t component_count;
  uint32_t ring_count;
  uint32_t doorbell_count;
  uint32_t counter_count;
  ComponentSlot components[kComponentCount];
  Doorbell doorbells[kDoorbellCount];
  RingDescriptor rings[kRingCount];
  alignas(64) std::atomic<uint64_t> counters[static_cast<int>(Counter::kCount)];
  MetricsArea metrics;
};
static_assert(sizeof(MetricsArea::rings) / sizeof(RingStats) == kRingCount);
static_assert(sizeof(MetricsArea::components) / sizeof(ComponentStats) == kComponentCount);

struct Segment::Impl {
  bip::shared_memory_object shm;
  bip::mapped_region region;
  SegmentHeader* header = nullptr;

  char* base() { return static_cast<char*>(region.get_address()); }
};

const char* ComponentName(Component c) {
  switch (c) {
    case Component::kFrontend: return "frontend";
    case Component::kRaftd: return "raftd";
    case Component::kStored: return "stored";
  }
  return "unknown";
}

const char* RingName(RingId r) {
  switch (r) {
    case RingId::kProposals: return "proposals";
    case RingId::kRaftReplies: return "raft-replies";
    case RingId::kCommitted: return "committed";
    case RingId::kStoreControl: return "store-control";
    case RingId::kReads: return "reads";
    case RingId::kStoreReplies: return "store-replies";
    case RingId::kEvents: return "events";
  }
  return "unknown";
}

DoorbellId DoorbellOf(RingId r) {
  switch (r) {
    case RingId::kProposals:
    case RingId::kStoreControl: return DoorbellId::kRaftdMain;
    case RingId::kCommitted: return DoorbellId::kStoredApply;
    case RingId::kReads: return DoorbellId::kStoredReads;
    case RingId::kRaftReplies:
    case RingId::kStoreReplies: return DoorbellId::kFrontendReplies;
    case RingId::kEvents: return DoorbellId::kFrontendEvents;
  }
  return DoorbellId::kRaftdMain;
}

const char* CounterName(Counter c) {
  switch (c) {
    case Counter::kProposalsReceived: return "proposals_received";
    case Counter::kEntriesCommitted: return "entries_committed";
    case Counter::kEntriesApplied: return "entries_applied";
    case Counter::kWalFsyncs: return "wal_fsyncs";
    case Counter::kRangeReads: return "range_reads";
    case Counter::kFrontendRequests: return "frontend_requests";
    case Counter::kRaftCommittedIndex: return "raft_committed_index";
    case Counter::kAppliedIndex: return "applied_index";
    case Counter::kWatchEventsWanted: return "watch_events_wanted";
    case Counter::kCount: break;
  }
  return "unknown";
}

Segment::Segment(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Segment::~Segment() = default;

Result<std::unique_ptr<Segment>> Segment::Create(const std::string& name,
                                                 const SegmentLayout& layout) {
  uint64_t offset = AlignUp(sizeof(SegmentHeader), kRingAlign);
  RingDescriptor rings[kRingCount];
  for (int i = 0; i < kRingCount; ++i) {
    const uint64_t cap = layout.ring_bytes[i];
    if (!IsPowerOfTwo(cap) || cap < kMinRingCapacity || cap > (1ull << 32)) {
      return Status::InvalidArgument(std::string("ring ") + RingName(static_cast<RingId>(i)) +
                                     ": size must be a power of two in [4 KiB, 4 GiB]");
    }
    rings[i] = {offset, cap};
    offset = AlignUp(offset + sizeof(Ring) + cap, kRingAlign);
  }
  const uint64_t total = offset;

  // A segment left by a crashed supervisor (or by a previous run) carries epochs, ring
  // positions and frames of processes that no longer exist: start from zero.
  bip::shared_memory_object::remove(name.c_str());
  auto impl = std::make_unique<Impl>();
  try {
    impl->shm = bip::shared_memory_object(bip::create_only, name.c_str(), bip::read_write);
    impl->shm.truncate(static_cast<bip::offset_t>(total));
    impl->region = bip::mapped_region(impl->shm, bip::read_write, 0, total);
  } catch (const bip::interprocess_exception& e) {
    bip::shared_memory_object::remove(name.c_str());
    return Status::Unavailable("cannot create shared-memory segment '" + name + "' of " +
                               std::to_string(total) + " bytes: " + e.what());
  }
  char* base = impl->base();
  PopulatePages(base, total);
  // ftruncate gave us zeroed pages; placement-new makes the atomics real objects.
  auto* h = new (base) SegmentHeader();
  h->layout_version = kLayoutVersion;
  h->header_bytes = sizeof(SegmentHeader);
  h->total_bytes = total;
  h->component_count = kComponentCount;
  h->ring_count = kRingCount;
  h->doorbell_count = kDoorbellCount;
  h->counter_count = static_cast<uint32_t>(Counter::kCount);
  for (int i = 0; i < kRingCount; ++i) {
    h->rings[i] = rings[i];
    auto* ring = new (base + rings[i].offset) Ring();
    ring->Initialize(rings[i].capacity);
  }
  // Publish last: an Open racing with Create sees either no magic or a complete header.
  h->magic.store(kSegmentMagic, std::memory_order_release);
  impl->header = h;
  spdlog::debug("ipc: created segment {} ({} bytes)", name, total);
  return std::unique_ptr<Segment>(new Segment(std::move(impl)));
}

Result<std::unique_ptr<Segment>> Segment::Open(const std::string& name) {
  auto impl = std::make_unique<Impl>();
  try {
    impl->shm = bip::shared_memory_object(bip::open_only, name.c_str(), bip::read_write);
    impl->region = bip::mapped_region(impl->shm, bip::read_write);
  } catch (const bip::interprocess_exception& e) {
    if (e.get_error_code() == bip::not_found_error) {
      return Status::NotFound("shared-memory segment '" + name + "' does not exist");
    }
    return Status::Unavailable("cannot open shared-memory segment '" + name + "': " + e.what());
  }
  const uint64_t size = impl->region.get_size();
  PopulatePages(impl->region.get_address(), size);
  auto bad = [&](const std::string& why) {
    return Status::FailedPrecondition("shared-memory segment '" + name + "' " + why);
  };
  if (size < sizeof(SegmentHeader)) return bad("is too small to hold a header");
  auto* h = reinterpret_cast<SegmentHeader*>(impl->base());
  if (h->magic.load(std::memory_order_acquire) != kSegmentMagic) {
    return bad("has a bad magic number (not a rusd segment, or not initialized yet)");
  }
  if (h->layout_version != kLayoutVersion) {
    return bad("has layout version " + std::to_string(h->layout_version) + ", this binary needs " +
               std::to_string(kLayoutVersion) + " (binaries of different builds?)");
  }
  if (h->header_bytes != sizeof(SegmentHeader) || h->total_bytes != size ||
      h->component_count != kComponentCount || h->ring_count != kRingCount ||
      h->doorbell_count != kDoorbellCount ||
      h->counter_count != static_cast<uint32_t>(Counter::kCount)) {
    return bad("has a header that does not match this binary's layout");
  }
  for (int i = 0; i < kRingCount; ++i) {
    const RingDescriptor& d = h->rings[i];
    if (!IsPowerOfTwo(d.capacity) || d.offset % kRingAlign != 0 ||
        d.offset + sizeof(Ring) + d.capacity > size ||
        !reinterpret_cast<Ring*>(impl->base() + d.offset)->Valid() ||
        reinterpret_cast<Ring*>(impl->base() + d.offset)->capacity() != d.capacity) {
      return bad(std::string("has a corrupt descriptor for ring ") +
                 RingName(static_cast<RingId>(i)));
    }
  }
  impl->header = h;
  return std::unique_ptr<Segment>(new Segment(std::move(impl)));
}

void Segment::Remove(const std::string& name) { bip::shared_memory_object::remove(name.c_str()); }

std::string Segment::NameForDataDir(const std::string& data_dir) {
  std::error_code ec;
  std::filesystem::path p = std::filesystem::absolute(data_dir, ec);
  if (ec) p = data_dir;
  std::string norm = p.lexically_normal().string();
  while (norm.size() > 1 && norm.back() == '/') norm.pop_back();
  // FNV-1a 64: stable across builds and processes (std::hash promises neither).
  uint64_t hash = 0xcbf29ce484222325ull;
  for (unsigned char c : norm) {
    hash ^= c;
    hash *= 0x100000001b3ull;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "rusd-%016llx", static_cast<unsigned long long>(hash));
  return buf;
}

ComponentSlot& Segment::component(Component c) {
  return impl_->header->components[static_cast<int>(c)];
}

Doorbell& Segment::doorbell(DoorbellId d) { return impl_->header->doorbells[static_cast<int>(d)]; }

Ring& Segment::ring(RingId r) {
  return *reinterpret_cast<Ring*>(impl_->base() + impl_->header->rings[static_cast<int>(r)].offset);
}

std::atomic<uint64_t>& Segment::counter(Counter c) {
  return impl_->header->counters[static_cast<int>(c)];
}

MetricsArea& Segment::metrics() { return impl_->header->metrics; }

void Segment::ResetLiveGauges(Component c) {
  MetricsArea& m = impl_->header->metrics;
  switch (c) {
    case Component::kRaftd:
      m.Set(Metric::kHasLeader, 0);
      m.Set(Metric::kIsLeader, 0);
      break;
    case Component::kFrontend:
      m.Set(Metric::kProposalsPending, 0);
      m.Set(Metric::kWatchStreams, 0);  // its streams died with it
      m.Set(Metric::kWatchers, 0);
      m.Set(Metric::kSlowWatchers, 0);
      m.Set(Metric::kPendingEvents, 0);
      break;
    case Component::kStored:
      break;  // its gauges (keys, db size) stay true while it restarts
  }
}

void Segment::WakeAll() {
  for (auto& d : impl_->header->doorbells) {
    // Bumping the word makes a consumer that read it before this point return from
    // futex_wait at once (EAGAIN) instead of missing the wake.
    d.word.fetch_add(1, std::memory_order_seq_cst);
    d.sleeping.store(0, std::memory_order_relaxed);
    d.wakes.fetch_add(1, std::memory_order_relaxed);
    FutexWakeAll(&d.word);
  }
}

}  // namespace rusd::ipc
