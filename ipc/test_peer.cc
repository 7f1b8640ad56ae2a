// ipc_test_peer: the other process of the cross-process ipc tests.
//
//   ipc_test_peer produce <segment> <first_id> <count|0=forever> <big_every> <big_bytes>
//     Writes the numbered stream (ipc/test_payload.h) on the committed ring as raftd would,
//     stamped with raftd's epoch from the segment.
//   ipc_test_peer consume <segment> <last_id> <big_every> <big_bytes>
//     Reads the committed ring as stored would, checks every payload, and reports the id of
//     every intact message as 8 raw bytes on stdout (unbuffered, so a SIGKILL loses at most
//     the message being handled); reports kCorrupt and exits 3 on a damaged message. Exits 0
//     after message <last_id>.
//   ipc_test_peer sleep-until-epoch <segment>
//     Sleeps on the committed ring's doorbell until raftd's epoch changes; exits 0 then, or
//     4 after 30 s.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "ipc/ring.h"
#include "ipc/segment.h"
#include "ipc/test_payload.h"

namespace {

using namespace rusd::ipc;
using namespace std::chrono_literals;

constexpr uint64_t kCorrupt = ~0ull;

bool Report(uint64_t id) { return write(1, &id, sizeof id) == sizeof id; }

int Produce(Segment& seg, uint64_t first, uint64_t count, uint64_t big_every, uint64_t big) {
  const uint64_t epoch = seg.component(Component::kRaftd).epoch.load();
  RingWriter w(seg, RingId::kCommitted, epoch);
  std::string payload;
  for (uint64_t id = first; count == 0 || id < first + count; ++id) {
    testing::MakePayload(id, big_every, big, &payload);
    auto st = w.Write(MessageType::kCommittedEntries, id, payload, 60s);
    if (!st.ok()) {
      std::fprintf(stderr, "produce: %s\n", st.ToString().c_str());
      return 2;
    }
  }
  return 0;
}

int Consume(Segment& seg, uint64_t last, uint64_t big_every, uint64_t big) {
  RingReader r(seg, RingId::kCommitted);
  RingReader* readers[] = {&r};
  Message m;
  const auto give_up = std::chrono::steady_clock::now() + 120s;
  while (std::chrono::steady_clock::now() < give_up) {
    if (!r.TryRead(&m)) {
      WaitForMessages(seg, readers, 100ms);
      continue;
    }
    if (m.type != MessageType::kCommittedEntries ||
        !testing::CheckPayload(m.id, big_every, big, m.payload)) {
      Report(kCorrupt);
      Report(m.id);
      return 3;
    }
    if (!Report(m.id)) return 5;
    if (m.id == last) return 0;
  }
  return 4;
}

int SleepUntilEpoch(Segment& seg) {
  RingReader r(seg, RingId::kCommitted);
  RingReader* readers[] = {&r};
  const uint64_t epoch = seg.component(Component::kRaftd).epoch.load();
  const auto give_up = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < give_up) {
    if (seg.component(Component::kRaftd).epoch.load() != epoch) return 0;
    WaitForMessages(seg, readers, 30s);
  }
  return 4;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: see ipc/test_peer.cc\n");
    return 64;
  }
  auto seg = Segment::Open(argv[2]);
  if (!seg.ok()) {
    std::fprintf(stderr, "%s\n", seg.status().ToString().c_str());
    return 65;
  }
  const std::string mode = argv[1];
  auto arg = [&](int i) { return i < argc ? std::strtoull(argv[i], nullptr, 10) : 0ull; };
  if (mode == "produce") return Produce(**seg, arg(3), arg(4), arg(5), arg(6));
  if (mode == "consume") return Consume(**seg, arg(3), arg(4), arg(5));
  if (mode == "sleep-until-epoch") return SleepUntilEpoch(**seg);
  return 64;
}
