#include "frontend/native_grpc/session_allocator.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace rusd::frontend::native_grpc {
namespace {

TEST(SessionAllocator, FreedBlockIsReusedForTheSameSizeClass) {
  SessionAllocator a;
  nghttp2_mem* m = a.mem();
  void* p = m->malloc(100, m->mem_user_data);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 16, 0u);
  std::memset(p, 0xab, 100);
  m->free(p, m->mem_user_data);
  EXPECT_EQ(a.cached_blocks(), 1u);
  void* q = m->malloc(110, m->mem_user_data);  // same 16-byte class (97..112)
  EXPECT_EQ(q, p);
  EXPECT_EQ(a.cached_blocks(), 0u);
  void* r = m->malloc(20, m->mem_user_data);  // another class: fresh
  EXPECT_NE(r, p);
  m->free(q, m->mem_user_data);
  m->free(r, m->mem_user_data);
  m->free(nullptr, m->mem_user_data);
}

TEST(SessionAllocator, CallocZeroesAndReallocKeepsTheBytes) {
  SessionAllocator a;
  nghttp2_mem* m = a.mem();
  auto* p = static_cast<unsigned char*>(m->malloc(48, m->mem_user_data));
  std::memset(p, 0xff, 48);
  m->free(p, m->mem_user_data);
  auto* z = static_cast<unsigned char*>(m->calloc(6, 8, m->mem_user_data));  // reuses p
  ASSERT_EQ(z, p);
  for (int i = 0; i < 48; ++i) ASSERT_EQ(z[i], 0) << i;
  for (int i = 0; i < 48; ++i) z[i] = static_cast<unsigned char>(i);
  EXPECT_EQ(m->realloc(z, 40, m->mem_user_data), z);  // fits: unchanged
  auto* big = static_cast<unsigned char*>(m->realloc(z, 5000, m->mem_user_data));
  ASSERT_NE(big, nullptr);
  for (int i = 0; i < 48; ++i) ASSERT_EQ(big[i], i) << i;
  m->free(big, m->mem_user_data);  // large: not cached
  EXPECT_EQ(a.cached_blocks(), 1u);  // z's block, freed by the realloc
  void* fresh = m->realloc(nullptr, 10, m->mem_user_data);
  ASSERT_NE(fresh, nullptr);
  m->free(fresh, m->mem_user_data);
  EXPECT_EQ(m->calloc(static_cast<size_t>(-1) / 2, 4, m->mem_user_data), nullptr);  // overflow
}

TEST(SessionAllocator, CacheIsBoundedPerClass) {
  SessionAllocator a;
  nghttp2_mem* m = a.mem();
  std::vector<void*> blocks;
  for (size_t i = 0; i < 3 * SessionAllocator::kKeepPerClass; ++i) {
    blocks.push_back(m->malloc(64, m->mem_user_data));
  }
  for (void* p : blocks) m->free(p, m->mem_user_data);
  EXPECT_EQ(a.cached_blocks(), SessionAllocator::kKeepPerClass);
  void* large = m->malloc(SessionAllocator::kMaxCached + 1, m->mem_user_data);
  m->free(large, m->mem_user_data);
  EXPECT_EQ(a.cached_blocks(), SessionAllocator::kKeepPerClass);
}

}  // namespace
}  // namespace rusd::frontend::native_grpc
