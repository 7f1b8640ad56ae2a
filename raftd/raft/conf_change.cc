#include "raftd/raft/conf_change.h"

#include <algorithm>

namespace rusd::raft {
namespace {

constexpr uint8_t kVersion = 1;
constexpr size_t kHeader = 2 + 8;

void Insert(std::vector<uint64_t>& v, uint64_t id) {
  auto it = std::lower_bound(v.begin(), v.end(), id);
  if (it == v.end() || *it != id) v.insert(it, id);
}

void Erase(std::vector<uint64_t>& v, uint64_t id) {
  auto it = std::lower_bound(v.begin(), v.end(), id);
  if (it != v.end() && *it == id) v.erase(it);
}

bool Contains(const std::vector<uint64_t>& v, uint64_t id) {
  return std::binary_search(v.begin(), v.end(), id);
}

}  // namespace

std::string EncodeConfChange(const ConfChange& cc) {
  std::string out;
  out.reserve(kHeader + cc.context.size());
  out.push_back(static_cast<char>(kVersion));
  out.push_back(static_cast<char>(cc.type));
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((cc.node_id >> (8 * i)) & 0xff));
  out.append(cc.context);
  return out;
}

Result<ConfChange> DecodeConfChange(std::string_view data) {
  if (data.size() < kHeader) {
    return Status::InvalidArgument("conf change: " + std::to_string(data.size()) +
                                   " bytes, need at least 10");
  }
  if (static_cast<uint8_t>(data[0]) != kVersion) {
    return Status::InvalidArgument("conf change: unknown version " +
                                   std::to_string(static_cast<uint8_t>(data[0])));
  }
  const auto type = static_cast<uint8_t>(data[1]);
  if (type > static_cast<uint8_t>(ConfChangeType::kAddLearnerNode)) {
    return Status::InvalidArgument("conf change: unknown type " + std::to_string(type));
  }
  ConfChange cc;
  cc.type = static_cast<ConfChangeType>(type);
  for (int i = 0; i < 8; ++i) {
    cc.node_id |= static_cast<uint64_t>(static_cast<uint8_t>(data[2 + i])) << (8 * i);
  }
  if (cc.node_id == 0) return Status::InvalidArgument("conf change: node id 0");
  cc.context.assign(data.substr(kHeader));
  return cc;
}

ConfState ApplyToConfState(const ConfState& conf, const ConfChange& cc) {
  ConfState out = conf;
  switch (cc.type) {
    case ConfChangeType::kAddNode:
      Erase(out.learners, cc.node_id);
      Insert(out.voters, cc.node_id);
      break;
    case ConfChangeType::kAddLearnerNode:
      if (!Contains(out.voters, cc.node_id)) Insert(out.learners, cc.node_id);
      break;
    case ConfChangeType::kRemoveNode:
      Erase(out.voters, cc.node_id);
      Erase(out.learners, cc.node_id);
      break;
    case ConfChangeType::kUpdateNode:
      break;
  }
  return out;
}

}  // namespace rusd::raft
