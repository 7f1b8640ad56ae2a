// The request matrix's workloads, request for request the Go loadgen's (bench/loadgen/
// workload.go, keys.go): the same key layout (32-byte keys "bench/kv/" + 23 zero-padded
// digits), the same 256-byte printable random values, the same requests and the same checks
// (a read that returns the wrong keys counts as an error, not as an op).
//
// Requests are serialized once per client (RequestTemplate) with a placeholder key; each op
// only overwrites the 23 index digits in place, so building a request costs a few stores and
// no allocation. Responses are decoded into messages the client reuses.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "bench/loadgen_cxx/grpc_connection.h"
#include "etcd/etcdserverpb/rpc.pb.h"

namespace rusd::loadgen {

inline constexpr int kKeyLen = 32;
inline constexpr int kValueLen = 256;
inline constexpr int kRangeKeys = 1000;
inline constexpr std::string_view kMatrixPrefix = "bench/kv/";
inline constexpr int kIndexDigits = kKeyLen - static_cast<int>(kMatrixPrefix.size());  // 23

// "bench/kv/" + i zero-padded to 23 digits.
std::string MatrixKey(uint64_t i);
// Writes i as kIndexDigits zero-padded digits at p.
void WriteIndex(char* p, uint64_t i);

// A small, fast generator (splitmix64), one per client.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t Next() {
    uint64_t z = (s_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n).
  uint64_t Below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(Next()) * n) >> 64);
  }

 private:
  uint64_t s_;
};

// kValueLen printable random bytes (the Go loadgen's alphabet).
std::string RandomValue(Rng& rng);

enum class WorkloadKind { kPut, kGetSerializable, kGetLinearizable, kTxn, kRange1000 };

struct WorkloadInfo {
  WorkloadKind kind;
  const char* name;
};
const std::vector<WorkloadInfo>& AllWorkloads();
// "put,get-serializable" -> workloads in matrix order; "all" or "" = every one.
Result<std::vector<WorkloadInfo>> SelectWorkloads(std::string_view list);

// One client's request for one workload: a gRPC frame with the key digits patched per op,
// and the check of its answer. Not thread-safe; one per client.
class RequestTemplate {
 public:
  RequestTemplate(WorkloadKind kind, const std::string& value);

  Method method() const { return method_; }
  // Picks the op's key(s) from [0, keyspace) and writes the request frame into `frame`
  // (which keeps its capacity between ops).
  void Fill(Rng& rng, uint64_t keyspace, std::string& frame);
  // Checks a successful answer: "" if it is what this op asked for, else why not.
  std::string Check(std::string_view message);

 private:
  WorkloadKind kind_;
  Method method_;
  std::string frame_;               // the serialized request with placeholder keys
  std::vector<size_t> key_digits_;  // offsets of the first key's digits in frame_
  std::vector<size_t> end_digits_;  // range-1000: offsets of range_end's digits
  uint64_t key_ = 0;                // the current op's key index
  std::string want_key_;            // gets: the key asked for
  etcdserverpb::RangeResponse range_;
  etcdserverpb::PutResponse put_;
  etcdserverpb::TxnResponse txn_;
};

// A gRPC message frame (flag 0, big-endian length, bytes) of a serialized message.
std::string GrpcFrame(const google::protobuf::MessageLite& m);

}  // namespace rusd::loadgen
