// Fuzz target: Go duration parsing (common/go_duration.h), which validates the duration
// flags in the supervisor and converts them in the components.
// Invariants: no undefined behaviour (UBSan: no overflowing arithmetic or float-to-int
// conversion); an error is Go's text naming the input; a value printed back as whole
// nanoseconds parses to itself.
#include <cstdint>
#include <string>

#include "common/go_duration.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto d = rusd::ParseGoDuration(text);
  if (!d.ok()) {
    RUSD_FUZZ_CHECK(d.status().message() == "time: invalid duration \"" + text + "\"");
    return 0;
  }
  const int64_t ns = d->count();
  if (ns == INT64_MIN) return 0;  // "-9223372036854775808ns": no positive twin
  std::string again = ns < 0 ? "-" : "";
  again.append(std::to_string(ns < 0 ? -ns : ns)).append("ns");
  auto back = rusd::ParseGoDuration(again);
  RUSD_FUZZ_CHECK(back.ok() && back->count() == ns);
  return 0;
}
