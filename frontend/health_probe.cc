#include "frontend/health_probe.h"

#include <future>
#include <memory>

#include "etcd/etcdserverpb/rpc.pb.h"
#include "frontend/ring_client.h"

namespace rusd::frontend {

bool RingHealthProbe::HasLeader() { return ring_.leader().leader_id != 0; }

Status RingHealthProbe::Read(bool serializable) {
  etcdserverpb::RangeRequest probe;
  // etcd reads the empty key; a one-byte key keeps stored's own key checks happy and reads
  // the same nothing.
  probe.set_key(std::string(1, '\0'));
  probe.set_keys_only(true);
  probe.set_limit(1);
  probe.set_serializable(serializable);
  auto done = std::make_shared<std::promise<Status>>();
  std::future<Status> result = done->get_future();
  ring_.Read(probe.SerializeAsString(), !serializable,
             [done](const Status& st, std::string&&) { done->set_value(st); });
  return result.get();
}

}  // namespace rusd::frontend
