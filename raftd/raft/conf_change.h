// A single-member configuration change (etcd's raftpb.ConfChange, one member at a time):
// the data of an EntryType::kConfChange entry. The core applies it when the entry is
// handed out as committed (etcd's rule); `context` is opaque to the core (the cluster
// layer puts the member's name and peer URLs there).
//
// Encoding (little endian): u8 version = 1 | u8 type | u64 node_id | context bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "raftd/raft/messages.h"

namespace rusd::raft {

// Values match etcd's raftpb.ConfChangeType (kUpdateNode is not a configuration change
// for the core: it only carries context).
enum class ConfChangeType : uint8_t {
  kAddNode = 0,         // add a voter, or promote a learner
  kRemoveNode = 1,
  kUpdateNode = 2,      // no change to the configuration (member attributes in context)
  kAddLearnerNode = 3,  // add a non-voting member
};

struct ConfChange {
  ConfChangeType type = ConfChangeType::kAddNode;
  uint64_t node_id = 0;
  std::string context;
  bool operator==(const ConfChange&) const = default;
};

std::string EncodeConfChange(const ConfChange& cc);
Result<ConfChange> DecodeConfChange(std::string_view data);

// `conf` with `cc` applied (etcd 3.4 rules: a voter cannot become a learner; adding an
// existing member of the same kind, or removing a non-member, changes nothing).
ConfState ApplyToConfState(const ConfState& conf, const ConfChange& cc);

}  // namespace rusd::raft
