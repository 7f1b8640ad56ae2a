// Fuzz target: the TOML reader behind --config-file (supervisor/toml_reader.h).
// Invariants: a value or an InvalidArgument naming the source and line; what parses has
// the kinds it claims (an array of strings holds strings, line numbers are positive).
#include <cstdint>
#include <string>

#include "supervisor/toml_reader.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto doc = rusd::supervisor::ParseToml(text, "fuzz.toml");
  if (!doc.ok()) {
    RUSD_FUZZ_CHECK(doc.status().code() == rusd::StatusCode::kInvalidArgument);
    RUSD_FUZZ_CHECK(doc.status().message().rfind("fuzz.toml:", 0) == 0);
    return 0;
  }
  for (const auto& [table, keys] : doc->tables) {
    for (const auto& [key, value] : keys) {
      RUSD_FUZZ_CHECK(value.line >= 1);
      RUSD_FUZZ_CHECK(rusd::supervisor::TomlValue::KindName(value.kind) != nullptr);
    }
  }
  return 0;
}
