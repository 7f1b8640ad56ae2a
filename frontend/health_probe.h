// RingHealthProbe: the HealthProbe of http_handler.h answered through the rings, as etcd's
// /health does it: a keys-only, limit-1 range (a ReadIndex round trip through raftd first
// unless serializable) that must complete within the request timeout.
//
// Thread safety: any thread; Read blocks the caller until the ring client completes the read
// (the ring client's own deadline bounds it).
#pragma once

#include "frontend/http_handler.h"

namespace rusd::frontend {

class RingClient;

class RingHealthProbe final : public HealthProbe {
 public:
  explicit RingHealthProbe(RingClient& ring) : ring_(ring) {}
  bool HasLeader() override;
  Status Read(bool serializable) override;

 private:
  RingClient& ring_;
};

}  // namespace rusd::frontend
