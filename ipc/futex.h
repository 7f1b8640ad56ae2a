// Private to ipc/: the two futex calls the doorbells need. Shared (not FUTEX_PRIVATE_FLAG)
// on purpose: the word lives in a segment mapped by several processes, and private
// futexes (which libstdc++'s std::atomic::wait uses) are keyed by the address space.
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>

namespace rusd::ipc {

// Sleeps while *word == expected, at most `timeout`. Returns at once if the word differs;
// may return early (signal, spurious wake-up). Callers recheck their condition.
inline void FutexWait(std::atomic<uint32_t>* word, uint32_t expected,
                      std::chrono::nanoseconds timeout) {
  if (timeout.count() <= 0) return;
  timespec ts;
  ts.tv_sec = static_cast<time_t>(timeout.count() / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(timeout.count() % 1'000'000'000);
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT, expected, &ts, nullptr, 0);
}

// Wakes every thread (in any process) asleep on `word`.
inline void FutexWakeAll(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t));

}  // namespace rusd::ipc
