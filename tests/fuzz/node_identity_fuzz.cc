// Fuzz target: the node identity file <data-dir>/member/identity (supervisor/node_identity.h)
// as a crash or an operator's edit may leave it. Invariants: a present file is never
// overwritten; a malformed one is DataLoss with a message; one that loads has non-zero ids.
#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>

#include "supervisor/node_identity.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static rusd::fuzz::ScratchDir scratch;
  scratch.Clear();
  const std::string text(reinterpret_cast<const char*>(data), size);
  const std::string path = rusd::supervisor::NodeIdentityPath(scratch.path());
  rusd::fuzz::WriteFile(path, text);
  rusd::supervisor::NodeIdentity derived;
  derived.name = "derived";
  derived.member_id = 0x1111;
  derived.cluster_id = 0x2222;
  auto id = rusd::supervisor::LoadOrCreateNodeIdentity(scratch.path(), derived);
  if (!id.ok()) {
    RUSD_FUZZ_CHECK(id.status().code() == rusd::StatusCode::kDataLoss);
    RUSD_FUZZ_CHECK(!id.status().message().empty());
  } else {
    RUSD_FUZZ_CHECK(!id->created && id->member_id != 0 && id->cluster_id != 0);
  }
  std::ifstream in(path, std::ios::binary);
  const std::string after((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  RUSD_FUZZ_CHECK(after == text);
  return 0;
}
