// Fuzz target: the TOML reader behind --config-file (supervisor/toml_reader.h).
// Invariants: a value or an InvalidArgument naming the source and line; line numbers are
// positive; a UTF-8 file yields only UTF-8 strings (escapes included: names and URLs end up
// in protobuf string fields, which refuse anything else).
#include <cstdint>
#include <string>

#include "supervisor/toml_reader.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

// RFC 3629: shortest forms only, no surrogates, nothing above U+10FFFF.
bool ValidUtf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (n >= s.size() - i) return false;
    for (size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto doc = rusd::supervisor::ParseToml(text, "fuzz.toml");
  if (!doc.ok()) {
    RUSD_FUZZ_CHECK(doc.status().code() == rusd::StatusCode::kInvalidArgument);
    RUSD_FUZZ_CHECK(doc.status().message().rfind("fuzz.toml:", 0) == 0);
    return 0;
  }
  const bool utf8_input = ValidUtf8(text);
  for (const auto& [table, keys] : doc->tables) {
    for (const auto& [key, value] : keys) {
      RUSD_FUZZ_CHECK(value.line >= 1);
      if (!utf8_input) continue;
      RUSD_FUZZ_CHECK(ValidUtf8(key) && ValidUtf8(value.string_value));
      for (const std::string& item : value.array_value) RUSD_FUZZ_CHECK(ValidUtf8(item));
    }
  }
  return 0;
}
