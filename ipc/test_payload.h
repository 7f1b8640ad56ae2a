// Test-only: the deterministic numbered stream the ipc tests, the test peer and the bench
// send, so that a receiver can check every byte of a message from its id alone.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace rusd::ipc::testing {

// Size of message `id`: mostly small and varied, every `big_every`-th one `big_bytes` plus a
// bit (several times a small ring, so it travels in chunks).
inline uint64_t PayloadSize(uint64_t id, uint64_t big_every, uint64_t big_bytes) {
  if (big_every != 0 && id % big_every == 0) return big_bytes + (id % 997);
  return 8 + (id * 37) % 1500;
}

inline uint64_t PayloadWord(uint64_t id, uint64_t k) {
  uint64_t x = (id + 1) * 0x9E3779B97F4A7C15ull + k * 0xBF58476D1CE4E5B9ull;
  return x ^ (x >> 29);
}

// Fills *out (reusing its buffer) with message `id`'s payload.
inline void MakePayload(uint64_t id, uint64_t big_every, uint64_t big_bytes, std::string* out) {
  const uint64_t n = PayloadSize(id, big_every, big_bytes);
  out->resize(n);
  for (uint64_t k = 0; k * 8 < n; ++k) {
    const uint64_t w = PayloadWord(id, k);
    std::memcpy(out->data() + k * 8, &w, std::min<uint64_t>(8, n - k * 8));
  }
}

inline bool CheckPayload(uint64_t id, uint64_t big_every, uint64_t big_bytes,
                         std::string_view p) {
  if (p.size() != PayloadSize(id, big_every, big_bytes)) return false;
  for (uint64_t k = 0; k * 8 < p.size(); ++k) {
    const uint64_t w = PayloadWord(id, k);
    if (std::memcmp(p.data() + k * 8, &w, std::min<uint64_t>(8, p.size() - k * 8)) != 0) {
      return false;
    }
  }
  return true;
}

}  // namespace rusd::ipc::testing
