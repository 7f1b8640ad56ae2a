// Fuzz target: URL and --initial-cluster parsing (common/url.h, supervisor/cluster_ids.h), which
// flags, the environment, the TOML file and a joining member's peers all feed.
// Input: the first byte picks the parser, the rest is its text.
// Invariants: a value or an error with a message; a parsed URL has a lower-case scheme,
// and an http(s) URL a numeric port.
#include <cstdint>
#include <string>

#include "common/url.h"
#include "supervisor/cluster_ids.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  if ((data[0] & 1) == 0) {
    auto url = rusd::ParseUrl(text);
    if (!url.ok()) {
      RUSD_FUZZ_CHECK(!url.status().message().empty());
      return 0;
    }
    for (char c : url->scheme) RUSD_FUZZ_CHECK(!(c >= 'A' && c <= 'Z'));
    if (url->scheme == "http" || url->scheme == "https") {
      RUSD_FUZZ_CHECK(!url->port.empty());
      for (char c : url->port) RUSD_FUZZ_CHECK(c >= '0' && c <= '9');
    }
    auto peer = rusd::ParsePeerUrl(text);
    RUSD_FUZZ_CHECK(peer.ok() == (url->scheme == "http"));
    return 0;
  }
  auto members = rusd::supervisor::ParseInitialCluster(text);
  if (!members.ok()) {
    RUSD_FUZZ_CHECK(!members.status().message().empty());
    return 0;
  }
  if (members->empty()) return 0;
  auto ids = rusd::supervisor::DeriveClusterIds(*members, members->front().name, "token");
  if (!ids.ok()) RUSD_FUZZ_CHECK(!ids.status().message().empty());
  auto resolved = rusd::supervisor::ResolveClusterMembers(text, "token");
  if (!resolved.ok()) RUSD_FUZZ_CHECK(!resolved.status().message().empty());
  return 0;
}
