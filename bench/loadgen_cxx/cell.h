// Running one cell of the request matrix (and preparing its keyspace) over a set of
// GrpcConnections: closed-loop clients, as in the Go loadgen's cell.go. Client g sends on
// connection g % conns and issues its next request when the answer to its previous one
// arrives. The connections are spread over `threads` event-loop threads (connection i on
// thread i % threads, each with its own epoll set); a client lives on its connection's
// thread, so nothing on the request path is shared between threads.
//
// Measurement, as in cell.go: `warmup` unmeasured, then at_start() runs (the caller reads
// the server's CPU time), `duration` (or `ops` successful ops) measured, then every request
// in flight is awaited (and counted), at_end() runs. Errors count only while measuring. A
// request older than op_timeout is cancelled and counted as an error. The loadgen's own CPU
// time (getrusage, all threads) over the same window is returned as well.
//
// The connections must not be used by anyone else while a cell runs.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "bench/loadgen_cxx/grpc_connection.h"
#include "bench/loadgen_cxx/workload.h"

namespace rusd::loadgen {

struct CellSpec {
  WorkloadKind kind = WorkloadKind::kPut;
  int clients = 1;
  uint64_t keyspace = 100000;
  std::chrono::nanoseconds duration = std::chrono::seconds(3);  // used when ops == 0
  int64_t ops = 0;
  std::chrono::nanoseconds warmup = std::chrono::milliseconds(300);
  std::chrono::nanoseconds op_timeout = std::chrono::seconds(10);
  int threads = 1;
  std::function<void()> at_start, at_end;  // may be empty
};

struct CellResult {
  int64_t ops = 0;
  int64_t errors = 0;
  std::string first_error;
  double seconds = 0;
  uint64_t p50_ns = 0, p99_ns = 0;
  double loadgen_cpu_seconds = 0;  // user + system, this process, measured window

  double OpsPerSec() const { return seconds > 0 ? static_cast<double>(ops) / seconds : 0; }
};

CellResult RunCell(const std::vector<GrpcConnection*>& conns, const CellSpec& spec);

// Writes keys [0, keyspace) of the matrix prefix, 256-byte random values, as txns of 100
// puts from `clients` clients over the connections (the Go loadgen's prepare step).
Status PrepareKeyspace(const std::vector<GrpcConnection*>& conns, uint64_t keyspace, int clients);

// One request on an idle connection, waited for (setup and tests): the response message.
Result<std::string> CallOnce(GrpcConnection& conn, Method method, std::string request_frame,
                             std::chrono::nanoseconds timeout = std::chrono::seconds(10));

}  // namespace rusd::loadgen
