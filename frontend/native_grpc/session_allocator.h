// SessionAllocator: nghttp2's allocator for one HTTP/2 session (nghttp2_mem), with a small
// cache of freed blocks per size class.
//
// Why: a session's per-stream objects (its stream, the request header buffers, ...) are
// allocated on the thread that reads the connection and freed on the one that writes its
// answers (native_grpc_server.cc). glibc's per-thread caches serve neither side of that, so
// every such block went through the arena's locked free path (`_int_free` topped the
// frontend's profile under put load). Blocks freed here are kept for the session's next
// allocations of the same size class instead, whichever thread makes them.
//
// Blocks up to kMaxCached bytes are rounded up to 16-byte classes; at most kKeepPerClass
// are kept per class (a bounded cache: ≤ ~0.5 MiB per session in the worst case, a few KiB
// in practice). Larger blocks go straight to malloc/free.
//
// Thread safety: none, as the session it serves (whose owner serialises every call). It
// must outlive the session (nghttp2_session_del frees through it).
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace rusd::frontend::native_grpc {

class SessionAllocator {
 public:
  SessionAllocator() = default;
  ~SessionAllocator() {
    for (Free*& list : free_) {
      while (list != nullptr) {
        Free* next = list->next;
        std::free(HeaderOf(list));
        list = next;
      }
    }
  }
  SessionAllocator(const SessionAllocator&) = delete;
  SessionAllocator& operator=(const SessionAllocator&) = delete;

  // For nghttp2_session_*_new3 (which copies the struct).
  nghttp2_mem* mem() { return &mem_; }

  // Blocks currently kept for reuse (tests).
  size_t cached_blocks() const {
    size_t n = 0;
    for (size_t c : count_) n += c;
    return n;
  }

  static constexpr size_t kGrain = 16;
  static constexpr size_t kClasses = 64;
  static constexpr size_t kMaxCached = kGrain * kClasses;  // 1 KiB
  static constexpr size_t kKeepPerClass = 16;

 private:
  // Before every block (16 bytes: the block keeps malloc's 16-byte alignment).
  struct alignas(16) Header {
    size_t capacity;  // usable bytes
    size_t cls;       // size class, or kClasses for an uncached (large) block
  };
  struct Free {
    Free* next;
  };
  static Header* HeaderOf(void* p) { return static_cast<Header*>(p) - 1; }

  void* Allocate(size_t size) {
    if (size <= kMaxCached) {
      const size_t cls = size == 0 ? 0 : (size - 1) / kGrain;
      if (Free* f = free_[cls]; f != nullptr) {
        free_[cls] = f->next;
        --count_[cls];
        return f;
      }
      return Fresh((cls + 1) * kGrain, cls);
    }
    return Fresh(size, kClasses);
  }

  void* Fresh(size_t capacity, size_t cls) {
    auto* h = static_cast<Header*>(std::malloc(sizeof(Header) + capacity));
    if (h == nullptr) return nullptr;
    h->capacity = capacity;
    h->cls = cls;
    return h + 1;
  }

  void Release(void* p) {
    if (p == nullptr) return;
    Header* h = HeaderOf(p);
    if (h->cls < kClasses && count_[h->cls] < kKeepPerClass) {
      auto* f = static_cast<Free*>(p);
      f->next = free_[h->cls];
      free_[h->cls] = f;
      ++count_[h->cls];
      return;
    }
    std::free(h);
  }

  void* Reallocate(void* p, size_t size) {
    if (p == nullptr) return Allocate(size);
    const size_t have = HeaderOf(p)->capacity;
    if (size <= have) return p;
    void* n = Allocate(size);
    if (n == nullptr) return nullptr;  // p stays valid, as realloc's
    std::memcpy(n, p, have);
    Release(p);
    return n;
  }

  static void* MallocCb(size_t size, void* self) {
    return static_cast<SessionAllocator*>(self)->Allocate(size);
  }
  static void FreeCb(void* p, void* self) { static_cast<SessionAllocator*>(self)->Release(p); }
  static void* CallocCb(size_t n, size_t size, void* self) {
    if (size != 0 && n > static_cast<size_t>(-1) / size) return nullptr;
    void* p = static_cast<SessionAllocator*>(self)->Allocate(n * size);
    if (p != nullptr) std::memset(p, 0, n * size);
    return p;
  }
  static void* ReallocCb(void* p, size_t size, void* self) {
    return static_cast<SessionAllocator*>(self)->Reallocate(p, size);
  }

  Free* free_[kClasses] = {};
  size_t count_[kClasses] = {};
  nghttp2_mem mem_{this, &MallocCb, &FreeCb, &CallocCb, &ReallocCb};
};

}  // namespace rusd::frontend::native_grpc
