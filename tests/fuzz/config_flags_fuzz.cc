// Fuzz target: the supervisor's configuration path (supervisor/config.h LoadConfig): etcd's
// flags, the ETCD_* environment, and the URL lists and --initial-cluster values inside them.
//
// Input: NUL-separated fields; fields up to the first empty one are arguments, the rest
// are environment entries NAME=VALUE. Arguments or variables that name a config file are
// dropped (the TOML reader has its own target; a fuzzed path could name /dev/zero).
// Invariants: a value or an error with a message (InvalidArgument or FailedPrecondition,
// the two exit codes the supervisor documents).
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "supervisor/config.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> args;
  std::map<std::string, std::string> env;
  bool in_env = false;
  while (!in.empty()) {
    const size_t cut = in.find('\0');
    const std::string field(in.substr(0, cut));
    in.remove_prefix(cut == std::string_view::npos ? in.size() : cut + 1);
    if (field.find("config") != std::string::npos ||
        field.find("CONFIG") != std::string::npos) {
      continue;
    }
    if (!in_env) {
      if (field.empty()) {
        in_env = true;
      } else {
        args.push_back(field);
      }
      continue;
    }
    const size_t eq = field.find('=');
    if (eq != std::string::npos) env[field.substr(0, eq)] = field.substr(eq + 1);
  }
  auto loaded = rusd::supervisor::LoadConfig(args, env);
  if (!loaded.ok()) {
    RUSD_FUZZ_CHECK(!loaded.status().message().empty());
    RUSD_FUZZ_CHECK(loaded.status().code() == rusd::StatusCode::kInvalidArgument ||
                    loaded.status().code() == rusd::StatusCode::kFailedPrecondition);
  }
  return 0;
}
