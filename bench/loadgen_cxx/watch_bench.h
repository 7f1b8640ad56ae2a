// The watch fan-out benchmark against one server, load for load the Go loadgen's `loadgen
// watch` (loadgen/watch.go, watchstream.go, watchdelivery.go), from the lean C++ client:
//
// Watchers: `watchers` watchers on distinct keys wb/00000.. spread over `streams` Watch
// streams (stream s carries keys s, s + streams, ...) on `conns` connections (stream s on
// connection s % conns), plus `prefix_watchers` watchers on the prefix wb/ (range end wb0),
// 10 per stream on the streams after those. Each watcher is created by its own request, one
// at a time per stream (all streams at once), and must be answered `created`, not canceled,
// within 30 s, with a watch id not live on its stream.
//
// Phases of `duration` each: steady (8 putters, `rate` puts/s in all, open loop), max
// (`putters` closed-loop putters), and, when fanout_prefix_watchers > prefix_watchers, fanout
// (that many prefix watchers in all: the missing ones are created on new streams first,
// after a delivery check; then max's load again). Putter g sends on put connection g % 4
// and puts a uniformly random key wb/NNNNN with the value = its send time (Unix ns, decimal).
//
// Measured per phase: events received while the phase runs (and until its putters are
// done), event responses, put-to-event latency at every key watcher and at the first prefix
// watcher (receive time - the value's send time), put RPC latency, the server's CPU (cpu_pid
// and its children) and this process's CPU over the phase. Memory: VmRSS growth of mem_pid
// while the watchers are created (and 1 s after), per 10,000 watchers.
//
// Checks (an error ends the run; nothing is retried or dropped): malformed responses, a
// canceled watcher, events for a watch id not live on the stream, a stream that ends, a
// sampled event with another key or a mod revision not above the previous one. Delivery
// check (after max when there is a fanout phase, and at the end): since the previous check,
// each key watcher has received between the acknowledged and the tried puts on its key, and
// each prefix watcher between the acknowledged and the tried puts in all — no event is lost
// or duplicated. Failed puts are counted (put_errors) and reported.
//
// Everything runs on the calling thread (one epoll loop over every connection).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace rusd::loadgen {

struct WatchBenchSpec {
  std::string name, host;
  int port = 0;
  int mem_pid = 0;  // 0: no memory figure
  int cpu_pid = 0;  // 0: no server CPU figure
  int watchers = 10000;
  int prefix_watchers = 100;
  int fanout_prefix_watchers = 1000;
  int streams = 100;
  int conns = 10;
  std::chrono::nanoseconds duration = std::chrono::seconds(5);
  int rate = 500;
  int putters = 16;
};

struct WatchPhaseResult {
  std::string system, phase;
  int watchers = 0;
  int64_t puts = 0, put_errors = 0, events = 0, responses = 0, latency_samples = 0;
  double seconds = 0, events_per_s = 0;
  double lat_p50_us = 0, lat_p99_us = 0, put_p50_us = 0, put_p99_us = 0;
  double events_per_response = 0, server_cpu_us_per_event = 0;
  double loadgen_cpu_us_per_event = 0, loadgen_cpu_cores = 0;
  int64_t mem_per_10k_kib = 0;
  double create_s = 0;
};

Result<std::vector<WatchPhaseResult>> RunWatchBench(const WatchBenchSpec& spec);

}  // namespace rusd::loadgen
