// Fuzz target: raft messages as a peer sends them, decoded (DecodeMessages,
// raftd/transport/wire_format.h) and stepped into the consensus core (raftd/raft/raft_node.h)
// the way RaftProcess does. The handshake checks only cluster and member ids, which are not
// secrets, so anyone who reaches --listen-peer-urls can send any message as any member.
//
// Node 1 of voters {1, 2, 3} starts with entries 1..6 (terms 1,1,2,2,3,3), commit 4.
// Input: byte 0 — bit 0: campaign first; bit 1: tick between messages; bit 2: a proposal
// between messages. The rest is the body of a Messages frame; each message is addressed
// to 1 and comes from 2 or 3 (the transport drops anything else).
//
// Invariants: no crash, no sanitizer report, no assertion (asserts are on in the fuzz
// build); the commit index never decreases and never passes the last index.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "raftd/raft/raft_node.h"
#include "raftd/transport/wire_format.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using rusd::raft::Message;
using rusd::raft::RaftNode;

void Drain(RaftNode* node, uint64_t* commit) {
  for (int i = 0; i < 8 && node->HasReady(); ++i) {
    rusd::raft::Ready rd = node->GetReady();
    if (rd.hard_state) {
      RUSD_FUZZ_CHECK(rd.hard_state->commit >= *commit);
      *commit = rd.hard_state->commit;
    }
    node->Advance(rd);
    RUSD_FUZZ_CHECK(node->log().committed() <= node->log().last_index());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  std::vector<Message> msgs;
  std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (!rusd::transport::DecodeMessages(body, &msgs).ok()) return 0;

  rusd::raft::Config config;
  config.id = 1;
  config.voters = {1, 2, 3};
  config.random_seed = 7;
  rusd::raft::RecoveredState recovered;
  const uint64_t terms[] = {1, 1, 2, 2, 3, 3};
  for (uint64_t i = 0; i < 6; ++i) {
    rusd::raft::Entry e;
    e.index = i + 1;
    e.term = terms[i];
    e.type = rusd::raft::EntryType::kEmpty;
    recovered.entries.push_back(e);
  }
  recovered.hard_state.term = 3;
  recovered.hard_state.commit = 4;
  RaftNode node(config, std::move(recovered));
  uint64_t commit = 4;
  if (mode & 1) node.Campaign();
  Drain(&node, &commit);
  for (Message& m : msgs) {
    m.to = 1;
    m.from = 2 + (m.from & 1);
    node.Step(std::move(m));
    Drain(&node, &commit);
    if (mode & 2) {
      node.Tick();
      Drain(&node, &commit);
    }
    if (mode & 4) {
      std::vector<std::string> batch{"x"};
      (void)node.Propose(batch);
      Drain(&node, &commit);
    }
  }
  return 0;
}
