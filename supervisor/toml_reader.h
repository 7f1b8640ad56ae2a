// A reader for the small subset of TOML that rusd's --config-file uses.
//
// Supported: `[table]` headers (one level, bare names), `key = value` pairs with bare keys
// (letters, digits, '-', '_') or quoted keys, basic strings ("..." with \" \\ \n \t \r
// \uXXXX escapes), literal strings ('...'), decimal integers (optional sign, '_' between
// digits), booleans, arrays of strings (may span lines, trailing comma allowed), and '#'
// comments. Anything else (floats, dates, inline tables, nested tables, multi-line strings)
// is rejected with a message naming the line, so a typo never silently changes meaning.
//
// Pure function of its input; safe to call from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "common/status.h"

namespace rusd::supervisor {

struct TomlValue {
  enum class Kind { kString, kInteger, kBoolean, kStringArray };
  Kind kind = Kind::kString;
  std::string string_value;
  int64_t integer_value = 0;
  bool boolean_value = false;
  std::vector<std::string> array_value;
  int line = 0;  // 1-based line of the key, for error messages

  static const char* KindName(Kind k);  // "string", "integer", "boolean", "array of strings"
};

// table name ("" for keys before the first header) -> key -> value.
// Keys keep the spelling of the file; tables and keys are unique (a duplicate is an error).
struct TomlDocument {
  std::map<std::string, std::map<std::string, TomlValue>> tables;
  std::map<std::string, int> table_lines;  // line of each [table] header
};

// Parses `text`. Errors are InvalidArgument("<source>:<line>: <what>").
Result<TomlDocument> ParseToml(const std::string& text, const std::string& source);

// Reads and parses a file; a missing or unreadable file is InvalidArgument too.
Result<TomlDocument> ReadTomlFile(const std::string& path);

}  // namespace rusd::supervisor
