// What every component's main() does first with the segment: open it (the supervisor
// created it and passed its name in --segment), read the epoch the supervisor assigned
// this incarnation, record the process id and start the heartbeat. Keep the returned
// object alive for the life of the process.
//
//   auto ctx = ipc::ComponentContext::Start(flags, ipc::Component::kRaftd);
//   if (!ctx.ok()) { spdlog::error(...); return 1; }
//   ipc::RingWriter committed((*ctx)->segment(), ipc::RingId::kCommitted, (*ctx)->epoch());
#pragma once

#include <memory>

#include "common/component_flags.h"
#include "common/status.h"
#include "ipc/heartbeat.h"
#include "ipc/segment.h"

namespace rusd::ipc {

class ComponentContext {
 public:
  // Fails with InvalidArgument if --segment is empty, else as Segment::Open.
  static Result<std::unique_ptr<ComponentContext>> Start(const ComponentFlags& flags,
                                                         Component self);

  Segment& segment() { return *segment_; }
  Component self() const { return self_; }
  // This incarnation's epoch, read once at start: stamp it on every frame sent.
  uint64_t epoch() const { return epoch_; }
  // A peer's current epoch (it changes when the supervisor reaps or restarts that peer).
  uint64_t PeerEpoch(Component peer) const;

 private:
  ComponentContext(std::unique_ptr<Segment> segment, Component self);

  std::unique_ptr<Segment> segment_;
  Component self_;
  uint64_t epoch_;
  HeartbeatThread heartbeat_;  // declared after segment_: stops before it is unmapped
};

}  // namespace rusd::ipc
