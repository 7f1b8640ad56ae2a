#include "bench/loadgen_cxx/workload.h"

#include <algorithm>
#include <cassert>

namespace rusd::loadgen {
namespace {

// Placeholder indices whose digits are found in the serialized template and patched per op.
constexpr uint64_t kKeyMark = 11111111111111111111ULL;
constexpr uint64_t kEndMark = 12222222222222222222ULL;

std::vector<size_t> FindAll(const std::string& hay, const std::string& needle) {
  std::vector<size_t> out;
  for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) {
    out.push_back(p + kMatrixPrefix.size());
  }
  return out;
}

}  // namespace

void WriteIndex(char* p, uint64_t i) {
  for (int d = kIndexDigits - 1; d >= 0; --d) {
    p[d] = static_cast<char>('0' + i % 10);
    i /= 10;
  }
}

std::string MatrixKey(uint64_t i) {
  std::string k(kMatrixPrefix);
  k.resize(kKeyLen);
  WriteIndex(k.data() + kMatrixPrefix.size(), i);
  return k;
}

std::string RandomValue(Rng& rng) {
  static constexpr char kAlphabet[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/";
  std::string v(kValueLen, ' ');
  for (char& c : v) c = kAlphabet[rng.Below(64)];
  return v;
}

const std::vector<WorkloadInfo>& AllWorkloads() {
  static const std::vector<WorkloadInfo> kAll = {
      {WorkloadKind::kPut, "put"},
      {WorkloadKind::kGetSerializable, "get-serializable"},
      {WorkloadKind::kGetLinearizable, "get-linearizable"},
      {WorkloadKind::kTxn, "txn"},
      {WorkloadKind::kRange1000, "range-1000"},
  };
  return kAll;
}

Result<std::vector<WorkloadInfo>> SelectWorkloads(std::string_view list) {
  const auto& all = AllWorkloads();
  if (list.empty() || list == "all") return all;
  std::vector<bool> want(all.size(), false);
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view name = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
    while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
    auto it =
        std::find_if(all.begin(), all.end(), [&](const WorkloadInfo& w) { return name == w.name; });
    if (it == all.end())
      return Status::InvalidArgument("unknown workload \"" + std::string(name) + "\"");
    want[static_cast<size_t>(it - all.begin())] = true;
  }
  std::vector<WorkloadInfo> out;
  for (size_t i = 0; i < all.size(); ++i) {
    if (want[i]) out.push_back(all[i]);
  }
  return out;
}

std::string GrpcFrame(const google::protobuf::MessageLite& m) {
  const size_t n = m.ByteSizeLong();
  std::string f(5 + n, '\0');
  f[1] = static_cast<char>((n >> 24) & 0xff);
  f[2] = static_cast<char>((n >> 16) & 0xff);
  f[3] = static_cast<char>((n >> 8) & 0xff);
  f[4] = static_cast<char>(n & 0xff);
  m.SerializeToArray(f.data() + 5, static_cast<int>(n));
  return f;
}

RequestTemplate::RequestTemplate(WorkloadKind kind, const std::string& value) : kind_(kind) {
  const std::string k = MatrixKey(kKeyMark);
  switch (kind) {
    case WorkloadKind::kPut: {
      method_ = Method::kPut;
      etcdserverpb::PutRequest r;
      r.set_key(k);
      r.set_value(value);
      frame_ = GrpcFrame(r);
      break;
    }
    case WorkloadKind::kGetSerializable:
    case WorkloadKind::kGetLinearizable: {
      method_ = Method::kRange;
      etcdserverpb::RangeRequest r;
      r.set_key(k);
      r.set_serializable(kind == WorkloadKind::kGetSerializable);
      frame_ = GrpcFrame(r);
      break;
    }
    case WorkloadKind::kTxn: {
      // clientv3: If(Compare(Version(k), ">", 0)).Then(OpPut(k, v)).Else(OpGet(k)).
      method_ = Method::kTxn;
      etcdserverpb::TxnRequest r;
      auto* cmp = r.add_compare();
      cmp->set_result(etcdserverpb::Compare::GREATER);
      cmp->set_target(etcdserverpb::Compare::VERSION);
      cmp->set_key(k);
      cmp->set_version(0);
      auto* put = r.add_success()->mutable_request_put();
      put->set_key(k);
      put->set_value(value);
      r.add_failure()->mutable_request_range()->set_key(k);
      frame_ = GrpcFrame(r);
      break;
    }
    case WorkloadKind::kRange1000: {
      method_ = Method::kRange;
      etcdserverpb::RangeRequest r;
      r.set_key(k);
      r.set_range_end(MatrixKey(kEndMark));
      frame_ = GrpcFrame(r);
      end_digits_ = FindAll(frame_, MatrixKey(kEndMark));
      assert(end_digits_.size() == 1);
      break;
    }
  }
  key_digits_ = FindAll(frame_, k);
  assert(!key_digits_.empty());
  if (kind == WorkloadKind::kGetSerializable || kind == WorkloadKind::kGetLinearizable ||
      kind == WorkloadKind::kRange1000) {
    want_key_ = k;
  }
}

void RequestTemplate::Fill(Rng& rng, uint64_t keyspace, std::string& frame) {
  if (kind_ == WorkloadKind::kRange1000) {
    key_ = rng.Below(keyspace - kRangeKeys + 1);
    for (size_t off : end_digits_) WriteIndex(frame_.data() + off, key_ + kRangeKeys);
  } else {
    key_ = rng.Below(keyspace);
  }
  for (size_t off : key_digits_) WriteIndex(frame_.data() + off, key_);
  if (!want_key_.empty()) WriteIndex(want_key_.data() + kMatrixPrefix.size(), key_);
  frame.assign(frame_);
}

std::string RequestTemplate::Check(std::string_view message) {
  const auto* data = message.data();
  const int size = static_cast<int>(message.size());
  switch (kind_) {
    case WorkloadKind::kPut:
      if (!put_.ParseFromArray(data, size)) return "malformed PutResponse";
      return "";
    case WorkloadKind::kTxn:
      if (!txn_.ParseFromArray(data, size)) return "malformed TxnResponse";
      if (!txn_.succeeded()) return "txn compare failed on existing key " + MatrixKey(key_);
      return "";
    case WorkloadKind::kGetSerializable:
    case WorkloadKind::kGetLinearizable:
    case WorkloadKind::kRange1000: {
      if (!range_.ParseFromArray(data, size)) return "malformed RangeResponse";
      const int want = kind_ == WorkloadKind::kRange1000 ? kRangeKeys : 1;
      if (range_.kvs_size() != want) {
        return "range returned " + std::to_string(range_.kvs_size()) + " kvs, want " +
               std::to_string(want);
      }
      if (range_.kvs(0).key() != want_key_)
        return "range returned key " + range_.kvs(0).key() + ", want " + want_key_;
      return "";
    }
  }
  return "unknown workload";
}

}  // namespace rusd::loadgen
