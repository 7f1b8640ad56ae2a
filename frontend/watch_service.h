// etcd's Watch gRPC service (one bidirectional stream, many watches) on the WatchHub, and
// the pieces around it: the hub's access to stored through the RingClient, and the thread
// that feeds the hub from the events ring.
//
// The service uses gRPC's raw callback API: requests are parsed here, responses arrive from
// the hub already encoded (watch_response.h) and are written in order, one at a time, from
// a per-stream queue whose size the hub bounds (a slow client makes its own watchers fall
// back to history; nothing else waits for it).
//
// Thread safety: the service is immutable after construction and must outlive the
// grpc::Server; the pump runs its own thread between Start and Stop.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string_view>
#include <thread>

#include "common/status.h"
#include "frontend/watch_hub.h"

namespace grpc {
class Service;
}
namespace rusd::ipc {
class RingReader;
class Segment;
}  // namespace rusd::ipc

namespace rusd::frontend {

class RingClient;

// `max_queued_bytes`: the hub's WatchHubOptions::max_queued_bytes. `events_wanted` (the
// segment's Counter::kWatchEventsWanted; may be null) is set to 1 before a stream opens:
// stored builds and publishes events only from then on (stored/event_publisher.h).
std::unique_ptr<grpc::Service> MakeWatchService(WatchHub& hub, size_t max_queued_bytes,
                                               std::atomic<uint64_t>* events_wanted = nullptr);

// The hub's WatchStore on the rings: revision probes as serializable one-key reads,
// history chunks as kWatchHistoryRead.
std::unique_ptr<WatchStore> MakeRingWatchStore(RingClient& ring);

// Consumes the events ring (stored -> frontend) on its own thread: EventBatch frames to
// WatchHub::OnEventBatch, stored epoch changes to OnStoredRestart, and Tick every 100 ms.
// The constructor drops what an earlier frontend left on the ring (construct it before
// WatchHub::Start, whose revision probe then covers everything dropped).
class WatchEventsPump {
 public:
  WatchEventsPump(ipc::Segment& segment, WatchHub& hub);
  ~WatchEventsPump();
  void Start();
  void Stop();

 private:
  void Run();
  // Watch gauges and the events-sent counter into the segment (once per tick).
  void PublishMetrics(uint64_t* events_sent_counted);
  ipc::Segment& segment_;
  WatchHub& hub_;
  std::unique_ptr<ipc::RingReader> events_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// etcd's --experimental-watch-progress-notify-interval (a Go duration such as "10m0s",
// "5s", "500ms"); values below etcd's minimum of 100 ms are raised to it, as etcd does.
Result<std::chrono::milliseconds> ParseProgressNotifyInterval(std::string_view go_duration);

}  // namespace rusd::frontend
