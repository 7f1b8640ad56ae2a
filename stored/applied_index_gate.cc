#include "stored/applied_index_gate.h"

#include <vector>

#include "rusd/internal.pb.h"
#include "stored/read_worker_pool.h"

namespace rusd::stored {

AppliedIndexGate::AppliedIndexGate(uint64_t applied, ReadWorkerPool& workers)
    : workers_(workers), applied_(applied) {}

void AppliedIndexGate::Submit(uint64_t request_id,
                              std::shared_ptr<const internal::RangeRead> read) {
  const uint64_t wanted = read->min_applied_index();
  {
    std::lock_guard lock(mu_);
    if (wanted > applied_.load(std::memory_order_acquire)) {
      parked_.emplace(wanted, Parked{request_id, std::move(read)});
      return;
    }
  }
  workers_.ServeRange(request_id, std::move(read));
}

void AppliedIndexGate::Advance(uint64_t applied) {
  applied_.store(applied, std::memory_order_release);
  std::vector<Parked> ready;
  {
    std::lock_guard lock(mu_);
    auto end = parked_.upper_bound(applied);
    for (auto it = parked_.begin(); it != end; ++it) ready.push_back(std::move(it->second));
    parked_.erase(parked_.begin(), end);
  }
  for (auto& p : ready) workers_.ServeRange(p.request_id, std::move(p.read));
}

size_t AppliedIndexGate::parked() const {
  std::lock_guard lock(mu_);
  return parked_.size();
}

}  // namespace rusd::stored
