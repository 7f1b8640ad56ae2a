#include "ipc/component_context.h"

#include <unistd.h>

namespace rusd::ipc {

Result<std::unique_ptr<ComponentContext>> ComponentContext::Start(const ComponentFlags& flags,
                                                                  Component self) {
  if (flags.segment.empty()) {
    return Status::InvalidArgument("--segment is required (the supervisor passes it)");
  }
  auto segment = Segment::Open(flags.segment);
  if (!segment.ok()) return segment.status();
  return std::unique_ptr<ComponentContext>(
      new ComponentContext(std::move(segment).value(), self));
}

ComponentContext::ComponentContext(std::unique_ptr<Segment> segment, Component self)
    : segment_(std::move(segment)),
      self_(self),
      epoch_(segment_->component(self).epoch.load(std::memory_order_acquire)),
      heartbeat_(*segment_, self) {
  segment_->component(self).pid.store(static_cast<int32_t>(getpid()), std::memory_order_release);
}

uint64_t ComponentContext::PeerEpoch(Component peer) const {
  return segment_->component(peer).epoch.load(std::memory_order_acquire);
}

}  // namespace rusd::ipc
